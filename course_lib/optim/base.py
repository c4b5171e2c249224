"""The base class every course optimizer derives from.

A course optimizer is a real :class:`torch.optim.Optimizer`. The base class does the bookkeeping
that is the same for all of them, so a named optimizer only says *what* happens to a group of
parameters in :meth:`BlockOptimizer.update`, as a short composition of blocks from
:mod:`course_lib.optim.blocks`. One call of :meth:`~BlockOptimizer.step`:

1. run the closure (with gradients enabled) and keep its loss;
2. for each param group, collect the parameters that have a gradient (``None`` grads are skipped,
   so their state does not advance);
3. hand the group's hyperparameters, parameters, gradients and per-parameter state dicts to
   ``update`` (with ``maximize`` the gradients are negated *copies*: ``p.grad`` is never written;
   a complex parameter is seen as its real view, real and imaginary parts as independent
   coordinates, as ``torch.optim`` does);
4. only for a *two-pass* optimizer (``two_pass = True``: Adai, whose step needs a mean over every
   group): ``combine`` what each group's ``update`` returned, then ``finish`` every group with it.

State lives in ``self.state[p]`` under names taken from the papers (``m``, ``v``, ``v_max``,
``step`` ...), so ``state_dict``/``load_state_dict``, ``deepcopy`` and schedulers from
``torch.optim.lr_scheduler`` work as with any PyTorch optimizer; ``load_state_dict`` also accepts
the state of the reference implementation (``torch.optim``'s ``exp_avg`` … are translated, see
:mod:`course_lib.optim.interop`).

Large groups may take a step engine installed by :mod:`course_lib.optim.fastpath`, which runs the
*same* ``update`` on the group laid out in one flat tensor, compiled; what it computes is what
the steps above compute (``course_lib.optim.set_fast_path(False)`` runs only them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor

from course_lib.optim.interop import translate_state_dict

__all__ = ["BlockOptimizer", "StepEngine", "install_step_engine", "state_bytes", "tensor_bytes"]


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes held by ``tensors``, counting each underlying storage once.

    Two views of one buffer (or the same tensor listed twice) cost the memory once: what is
    counted is the storage each tensor lives in (``untyped_storage().nbytes()``).
    """
    seen: set[tuple[str, int]] = set()
    total = 0
    for t in tensors:
        storage = t.untyped_storage()
        nbytes, ptr = storage.nbytes(), storage.data_ptr()
        if nbytes == 0:
            continue
        if ptr == 0:  # no real allocation to share (e.g. meta tensors): count by size
            total += nbytes
            continue
        key = (str(t.device), ptr)
        if key not in seen:
            seen.add(key)
            total += nbytes
    return total


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensor state an optimizer keeps (each storage counted once)."""
    return tensor_bytes(
        value
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, Tensor)
    )


class StepEngine(Protocol):
    """What a step engine (the fast path) offers :class:`BlockOptimizer`."""

    def step_group(
        self, group: dict[str, Any], params: list[Tensor]
    ) -> tuple[Any, Callable[[Any], None]] | None:
        """Take ``group``'s step; ``(what update() returned, finish)`` or ``None`` (not taken:
        the readable step runs instead)."""

    def zero_grad(self, set_to_none: bool) -> None:
        """Called before the gradients are reset."""


_ENGINE_FACTORY: Callable[[torch.optim.Optimizer], StepEngine | None] | None = None


def install_step_engine(
    factory: Callable[[torch.optim.Optimizer], StepEngine | None] | None,
) -> None:
    """Give every course optimizer a step engine, made by ``factory(optimizer)`` at its first step
    (``None``: the optimizer has none). The fast path installs itself this way; the base never
    imports it."""
    global _ENGINE_FACTORY
    _ENGINE_FACTORY = factory


def _real(tensors: list[Tensor]) -> list[Tensor]:
    """Complex tensors as their real views (last dimension: real, imaginary), as torch.optim."""
    return [torch.view_as_real(x) if x.is_complex() else x for x in tensors]


class BlockOptimizer(torch.optim.Optimizer):
    """A :class:`torch.optim.Optimizer` whose update is a composition of blocks.

    Subclasses validate their hyperparameters in ``__init__`` (with
    :mod:`course_lib.optim.validation`), pass them as ``defaults`` (so every param group may
    override them) and implement :meth:`update`. Everything else — closures, ``None`` grads,
    ``maximize``, complex parameters, sparse-gradient errors, state bookkeeping — is done here once.

    ``two_pass``: the step is "pass 1 per group, a reduction over *all* groups, pass 2 per group"
    (Adai: the mean of v̂ spans every group). :meth:`update` is pass 1 and returns the group's
    share of the reduction, :meth:`combine` reduces the shares of all groups, and :meth:`finish`
    is pass 2.
    """

    two_pass: bool = False

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        defaults.setdefault("maximize", False)
        super().__init__(params, defaults)

    def update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
    ) -> Any:
        """Apply one step to ``params`` (in place) given their ``grads`` (read-only) and ``states``.

        ``params``, ``grads`` and ``states`` are aligned lists holding only the parameters of
        ``group`` that have a gradient this step. Blocks see the whole list at once, so a block may
        use statistics over all of a group's parameters. A two-pass optimizer returns the group's
        share of the cross-group reduction (see :meth:`combine`); the others return nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def combine(self, shares: list[Any]) -> Any:
        """Two-pass optimizers: reduce what :meth:`update` returned for every group (in
        ``param_groups`` order) into the statistics :meth:`finish` needs."""
        raise NotImplementedError(f"{type(self).__name__} is two-pass: it must implement combine()")

    def finish(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        stats: Any,
    ) -> None:
        """Two-pass optimizers: pass 2 of one group, with the same lists :meth:`update` was given
        and the result of :meth:`combine`."""
        raise NotImplementedError(f"{type(self).__name__} is two-pass: it must implement finish()")

    @torch.no_grad()
    def step(self, closure=None):
        """One optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        engine = self._step_engine()
        second_pass = []  # two-pass optimizers: per group, (what update() returned, its finish())
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            taken = engine.step_group(group, params) if engine is not None else None
            if taken is None:
                taken = self._readable_step(group, params)
            second_pass.append(taken)
        if self.two_pass and second_pass:  # Adai: a statistic over all groups, then pass 2
            stats = self.combine([share for share, _ in second_pass])
            for _, finish in second_pass:
                finish(stats)
        return loss

    def _readable_step(
        self, group: dict[str, Any], params: list[Tensor]
    ) -> tuple[Any, Callable[[Any], None]]:
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        if group["maximize"]:
            grads = [torch.neg(g) for g in grads]  # copies: p.grad stays untouched
        states = [self.state[p] for p in params]
        params, grads = _real(params), _real(grads)
        share = self.update(group, params, grads, states)
        return share, partial(self.finish, group, params, grads, states)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients, as :meth:`torch.optim.Optimizer.zero_grad`.

        A step engine is told first: the fast path, with ``set_to_none=False``, makes the zeroed
        gradients views of its flat gradient buffer (see :mod:`course_lib.optim.fastpath`).
        """
        engine = self._step_engine()
        if engine is not None:
            engine.zero_grad(set_to_none)
        super().zero_grad(set_to_none)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by this optimizer — or by its reference implementation: the state
        of ``torch.optim`` (and ``lion-pytorch``) is translated to our names and continues exactly
        like it would there. Keys we cannot translate raise a ``ValueError`` naming them."""
        super().load_state_dict(translate_state_dict(self, state_dict))

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a group saved without a hyperparameter gets the default
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def _step_engine(self) -> StepEngine | None:
        # Made lazily: deepcopy/pickle of an optimizer keep only defaults, state and param_groups.
        if "_engine" not in self.__dict__:
            self.__dict__["_engine"] = _ENGINE_FACTORY(self) if _ENGINE_FACTORY else None
        return self.__dict__["_engine"]

    def state_bytes(self) -> int:
        """Bytes of state this optimizer keeps right now (see :func:`state_bytes`)."""
        return state_bytes(self)
