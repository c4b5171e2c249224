"""Which optimizers the fast path may run on flat buffers, and what it may pass as tensors.

Running ``update`` on one flat tensor instead of a list of tensors gives the same result only if
the update treats its tensors elementwise (reductions over the whole group, like Adai's mean, are
fine); an update that uses a tensor's shape, or a per-tensor norm (LAMB's trust ratio), would
silently compute something else. So the fast path runs only the optimizers listed here — the
course's own, and any class registered with :func:`register` — and only when the class that
defines ``update`` (and ``finish``, ``combine``, ``step``) is one of them: a subclass that
overrides any of these takes the readable path until it is registered itself.

``tensor_hyperparameters``: float hyperparameters that ``update`` uses only in tensor arithmetic
(never in a Python ``if``, never as a Python-number argument such as ``alpha=``), so that the
compiled step may take them as 0-d tensors once a scheduler starts changing them — OneCycleLR
cycles Adam's β₁ every step — one more graph instead of a recompile per value. ``name -> None``
for a number, ``-> positions`` for a tuple (``betas``). Everything else is a constant of the
compiled graph: a new value recompiles.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from course_lib.optim import adam, classic, frontier, online
from course_lib.optim.base import BlockOptimizer

__all__ = ["Traits", "register", "traits_of"]


@dataclass(frozen=True)
class Traits:
    tensor_hyperparameters: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    own_step: bool = False  # the class's step() only does group bookkeeping around the base step


_BETA1 = Traits({"betas": (0,)})  # beta1 only enters lerp_ and 1 - beta1**t

_TRAITS: dict[type, Traits] = {
    classic.SGD: Traits(),  # momentum decides a Python branch (no state when it is 0)
    classic.Adagrad: Traits(),
    classic.RMSprop: Traits(),
    classic.RMSpropBC: Traits(),
    classic.Adadelta: Traits(),
    adam.Adam: _BETA1,
    adam.RAdam: _BETA1,
    adam.NAdam: Traits(),  # beta1 feeds mu_product, kept in the state as a number
    adam.Adamax: _BETA1,
    frontier.Lion: Traits(),
    frontier.Adai: Traits(),
    frontier.Adan: Traits(own_step=True),  # its step() advances the group counters only
    frontier.PowerSign: Traits(),
    frontier.AddSign: Traits(),
    online.OnlineRMSprop: Traits(),
    online.SCAdagrad: Traits(),
    online.SCRMSprop: Traits(),
}
_METHODS = ("update", "finish", "combine")


def register(
    cls: type, tensor_hyperparameters: dict[str, tuple[int, ...] | None] | None = None
) -> None:
    """Declare that ``cls.update`` (and ``finish``) treat their tensors elementwise, so the fast
    path may run ``cls`` on flat buffers; optionally name its float hyperparameters that may be
    passed as 0-d tensors (see the module docstring)."""
    if not (isinstance(cls, type) and issubclass(cls, BlockOptimizer)):
        raise TypeError(f"{cls!r} is not a BlockOptimizer subclass")
    _TRAITS[cls] = Traits(dict(tensor_hyperparameters or {}))


def _owner(cls: type, name: str) -> type | None:
    """The class whose code ``cls.<name>`` runs. torch wraps ``step`` of every optimizer class it
    instantiates (a profiling hook, stored on that class), so wrappers are looked through."""
    code = inspect.unwrap(getattr(cls, name))
    owners = [k for k in cls.__mro__ if name in vars(k) and inspect.unwrap(vars(k)[name]) is code]
    return owners[-1] if owners else None


def traits_of(cls: type) -> Traits | None:
    """The traits that apply to ``cls``, or ``None`` if the fast path may not run it."""
    update_owner = _owner(cls, "update")
    traits = _TRAITS.get(update_owner)
    if traits is None:
        return None
    for name in _METHODS:
        owner = _owner(cls, name)
        if owner is not BlockOptimizer and owner not in _TRAITS:
            return None
    step_owner = _owner(cls, "step")
    if step_owner is not BlockOptimizer and not (
        step_owner in _TRAITS and _TRAITS[step_owner].own_step
    ):
        return None
    return traits
