"""The base class every course optimizer derives from, and torch-style argument checks.

A course optimizer is a real :class:`torch.optim.Optimizer`. The base class does the
bookkeeping that is the same for all of them, so a named optimizer only says *what* happens to a
group of parameters in :meth:`BlockOptimizer.update`, as a short composition of blocks from
:mod:`course_lib.optim.blocks`:

1. run the closure (with gradients enabled) and keep its loss;
2. for each param group, collect the parameters that have a gradient (``None`` grads are skipped,
   so their state does not advance);
3. hand the group's hyperparameters, parameters, gradients and per-parameter state dicts to
   ``update`` (with ``maximize`` the gradients are negated *copies*: ``p.grad`` is never written);
4. only for a *two-pass* optimizer (``two_pass = True``: Adai, whose step needs a mean over every
   group): ``combine`` what each group's ``update`` returned, then ``finish`` every group with it.

Large groups take a fast path first (:mod:`course_lib.optim._fast`): the *same* ``update``, run
once on the whole group laid out in one flat tensor and compiled. Switch it off with
``course_lib.optim.set_fast_path(False)``; the steps below are what it computes.

State lives in ``self.state[p]`` under names taken from the papers (``m``, ``v``, ``v_max``,
``step`` ...), so ``state_dict``/``load_state_dict``, ``deepcopy`` and schedulers from
``torch.optim.lr_scheduler`` work as with any PyTorch optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from course_lib.optim._fast import FastPath

__all__ = ["BlockOptimizer", "check_betas", "check_non_negative", "check_lr", "state_bytes"]


def _value(x: Any) -> float:
    return float(x.item()) if isinstance(x, Tensor) else x


def check_lr(lr: float) -> None:
    """``ValueError('Invalid learning rate: -1.0')`` for a negative lr, as torch.optim says it."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= _value(lr):
        raise ValueError(f"Invalid learning rate: {lr}")


def check_non_negative(value: float, what: str) -> None:
    """``ValueError(f'Invalid {what}: {value}')`` unless ``value >= 0`` (torch's wording)."""
    if not 0.0 <= _value(value):
        raise ValueError(f"Invalid {what}: {value}")


def check_betas(betas: Sequence[float], upper_inclusive: bool = False) -> None:
    """Each beta must lie in [0, 1) (or [0, 1] if ``upper_inclusive``), else torch's message."""
    for i, beta in enumerate(betas):
        b = _value(beta)
        ok = 0.0 <= b <= 1.0 if upper_inclusive else 0.0 <= b < 1.0
        if not ok:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensor state an optimizer keeps (each storage counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, Tensor):
                storage = value.untyped_storage()
                key = (storage.data_ptr(), storage.nbytes())
                if key not in seen:
                    seen.add(key)
                    total += storage.nbytes()
    return total


class BlockOptimizer(torch.optim.Optimizer):
    """A :class:`torch.optim.Optimizer` whose update is a composition of blocks.

    Subclasses validate their hyperparameters in ``__init__``, pass them as ``defaults`` (so every
    param group may override them) and implement :meth:`update`. Everything else — closures,
    ``None`` grads, ``maximize``, sparse-gradient errors, state bookkeeping — is done here once.

    ``flat_update`` tells the fast path whether :meth:`update` (and :meth:`finish`) treat their
    tensors elementwise (reductions over the whole group are fine), so that they give the same
    result on the group flattened into one tensor. ``None`` (default): yes, unless the subclass has
    a ``step()`` of its own (the fast path cannot know what that does); ``True``: yes, even with
    its own ``step()`` (Adan's only advances group counters); ``False``: never (an update that
    depends on each tensor's shape).

    ``two_pass``: the step is "pass 1 per group, a reduction over *all* groups, pass 2 per group"
    (Adai: the mean of v̂ spans every group). :meth:`update` is pass 1 and returns the
    group's share of the reduction, :meth:`combine` reduces the shares of all groups, and
    :meth:`finish` is pass 2. Both paths, readable and fast, run them in this order.
    """

    flat_update: bool | None = None
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
        second_pass = []  # two-pass optimizers: per group, (what update() returned, its finish())
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            done = self._fast_path().step(group, params)  # same update() on flat buffers, compiled
            if done is None:  # the readable path
                grads = [p.grad for p in params]
                if any(g.is_sparse for g in grads):
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                if group["maximize"]:
                    grads = [torch.neg(g) for g in grads]  # copies: p.grad stays untouched
                states = [self.state[p] for p in params]
                share = self.update(group, params, grads, states)
                done = (share, partial(self.finish, group, params, grads, states))
            if self.two_pass:
                second_pass.append(done)
        if self.two_pass and second_pass:  # Adai: a statistic over all groups, then pass 2
            stats = self.combine([share for share, _ in second_pass])
            for _, finish in second_pass:
                finish(stats)
        return loss

    def tensor_hyperparameters(self, group: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
        """Hyperparameters :meth:`update` uses only in tensor arithmetic, so that the compiled fast
        path may pass them as 0-d tensors once a scheduler starts changing them (OneCycleLR
        cycles Adam's beta1 and SGD's momentum): one more graph instead of a recompile per value.
        Name -> ``None`` for a number, -> the positions that may change for a tuple (``betas``).
        Anything not listed is a constant of the compiled graph. Default: nothing."""
        return {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients, as :meth:`torch.optim.Optimizer.zero_grad`.

        With ``set_to_none=False`` and a group on the fast path, the zeroed gradients are views of
        the optimizer's flat gradient buffer (like DDP's ``gradient_as_bucket_view``): values,
        shapes and dtypes are torch's, but ``p.grad`` is a new tensor object the first time, and
        ``backward()`` then accumulates straight into the buffer ``step()`` reads, which saves
        ``step()`` a copy of every gradient. ``step()`` itself never writes ``p.grad``.
        """
        if not set_to_none:
            self._fast_path().share_grads()
        super().zero_grad(set_to_none)

    def _fast_path(self) -> FastPath:
        # Created lazily: deepcopy/pickle of an optimizer keep only defaults, state, param_groups.
        fast = self.__dict__.get("_fast")
        if fast is None:
            fast = self.__dict__["_fast"] = FastPath(self)
        return fast

    def state_bytes(self) -> int:
        """Bytes of state this optimizer keeps right now (see :func:`state_bytes`)."""
        return state_bytes(self)
