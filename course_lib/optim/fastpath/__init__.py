"""The fast path: a group's *own* ``update()`` run on one flat tensor, compiled.

What students read (:meth:`BlockOptimizer.update <course_lib.optim.BlockOptimizer.update>` calling
the blocks, one tensor at a time) is also what runs fast. The trick is to change the *data*, not
the code: a large param group is laid out in one flat buffer per tensor kind
(:mod:`~course_lib.optim.fastpath.layout`), and ``update`` runs on a *list of one tensor*, so the
loops in the blocks run once, under :func:`torch.compile`
(:mod:`~course_lib.optim.fastpath.compiler`). :mod:`~course_lib.optim.fastpath.engine` decides,
group by group and step by step, whether the flat path applies.

It is a plug-in: it imports the optimizers and installs itself as their step engine
(:func:`course_lib.optim.base.install_step_engine`); the optimizers never import it.

Gradients: copied into a preallocated flat buffer (one ``_foreach_copy_``); ``p.grad`` is only
read, never written. The copy costs 8 bytes per parameter (Adam's update itself moves 28) and
disappears in a loop with ``zero_grad(set_to_none=False)``: the zeroed gradients are then views
of the flat buffer, ``backward()`` accumulates into them and there is nothing to gather. With the
default ``zero_grad()`` a compiled step on the CPU reads the gradients of parameters of
``direct_min`` (2**19) elements or more where they are, one call each, and copies only the rest.

When it does not apply, the readable path takes the step — same result, every time:

- switched off (:func:`set_fast_path`, ``COURSE_LIB_FAST_PATH=0``, a group's ``"fast": False``);
- an optimizer class it does not know (:mod:`~course_lib.optim.fastpath.traits`: a subclass that
  overrides ``update`` must be registered), or a torch whose private pieces it needs are missing
  or different (:mod:`~course_lib.optim.fastpath.torch_internals`; one warning);
- a group smaller than ``min_numel`` elements (100 000: the 2-D landscapes and notebook models
  never compile), with parameters of mixed dtypes or devices, non-contiguous, complex or sparse;
- parameters that share memory with other tensors (a view taken earlier): moving them into the
  flat buffer would leave the view behind (one warning);
- per-parameter state that differs between parameters (gradients that come and go, a state
  the user cleared or rewrote for one parameter);
- a failed compile (one warning), or a constant hyperparameter that keeps changing (each value
  would recompile; after 4 new values, one warning). Dynamo keeps at most 64 graphs per method
  here (its default is 8), so a sweep over many optimizers in one process still compiles.

The fast path honours everything a user can do between steps — ``load_state_dict``, clearing or
replacing a state entry, ``p.data = …``, switching the fast path off and on — because it checks
parameters and state against what it left after its last step, every step, and lays the group out
again when they differ. The user's parameters are updated in place: the first layout moves their
storage into the flat buffer once (``p.data`` becomes a view), and later views follow it.

Both paths compute the same thing: ``tests/test_optim_fast.py`` checks parameters and every state
tensor in float64 for each course optimizer.
"""

from __future__ import annotations

from typing import Any

from course_lib.optim.base import install_step_engine
from course_lib.optim.fastpath import torch_internals
from course_lib.optim.fastpath.engine import FastPath
from course_lib.optim.fastpath.settings import (
    CONFIG,
    fast_path_config,
    fast_path_stats,
    set_fast_path,
    warn_once,
)
from course_lib.optim.fastpath.traits import register, traits_of

__all__ = ["fast_path_config", "fast_path_stats", "register", "set_fast_path"]


class _Unavailable:
    """The engine of an optimizer the fast path cannot run: it never takes a step."""

    def step_group(self, group, params):
        return None

    def zero_grad(self, set_to_none):
        return None


_NEVER = _Unavailable()


class _Deferred:
    """Decides, at the first step of a group large enough for the fast path, whether the optimizer
    gets a :class:`FastPath`. Resolving the torch internals imports the compiler (≈ 3 s), so it
    happens only then: the small problems of the lessons never pay for it."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer
        self.engine: Any = None

    def _resolve(self) -> Any:
        if self.engine is None:
            traits = traits_of(type(self.optimizer))
            internals = torch_internals.resolve() if traits is not None else None
            if traits is None:
                self.engine = _NEVER
            elif isinstance(internals, str):
                warn_once(
                    "torch-internals",
                    "course_lib.optim: the fast path is off with this torch "
                    f"({internals}); every optimizer takes its readable path",
                )
                self.engine = _NEVER
            else:
                self.engine = FastPath(self.optimizer, internals, traits.tensor_hyperparameters)
        return self.engine

    def step_group(self, group, params):
        if not (CONFIG["enabled"] and group.get("fast", True)):
            return None
        if self.engine is None and sum(p.numel() for p in params) < CONFIG["min_numel"]:
            return None  # too small for the fast path: decide nothing yet
        return self._resolve().step_group(group, params)

    def zero_grad(self, set_to_none):
        if set_to_none or not CONFIG["enabled"] or self.engine is None:
            return None  # no layout exists before the first fast step
        return self.engine.zero_grad(set_to_none)


install_step_engine(_Deferred)
