"""Compiling an optimizer's own ``update`` for flat buffers, and calling it.

``update`` goes through :func:`torch.compile` with ``fullgraph=True`` (a compile either succeeds
before anything runs or fails with nothing changed) and ``dynamic=True``: the flat length and the
integer step counters are symbols of the graph, so a group of another size, the next step — and
a Python ``if`` on the step, like RAdam's switch at :math:`\\rho_t > 5` — reuse the graph (the
``if`` becomes a guard: one more graph when it flips). The learning rate enters as a 0-d float64
tensor, so a scheduler changing it does not recompile; so do the float hyperparameters an
optimizer declares safe as tensors (:mod:`course_lib.optim.fastpath.traits`) once they change.
Other floats are constants of the graph: a new value recompiles, and a group whose constants keep
changing stops compiling after a few values, with a warning.

The compiler backend is inductor, after one graph pass (:mod:`~course_lib.optim.fastpath.hoisting`:
numbers computed from the step once per step, not per element), with two settings that only save
time: it trusts the vector
instruction set the CPU reports instead of probing it in a new process (0.7 s per process), and
if a C++ build fails (a precompiled header left broken by another process, or a compiler that
cannot build for that instruction set) it retries once without both.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from course_lib.optim.fastpath.hoisting import hoist_scalars
from course_lib.optim.fastpath.layout import is_scalar
from course_lib.optim.fastpath.settings import STATS, warn_once
from course_lib.optim.fastpath.torch_internals import Internals

__all__ = ["CompileHistory", "Compiler"]

MAX_CONSTANT_CHANGES = 4  # new values of a constant hyperparameter before a group stops compiling


@dataclass
class CompileHistory:
    """What one param group's compiled steps have learnt (kept when its layout is rebuilt)."""

    ok: bool = True  # False after a failed compile: the readable path from then on
    tensor_keys: dict[str, set[int] | None] = field(default_factory=dict)  # passed as tensors
    static_keys: set[str] = field(default_factory=set)  # tried as tensors, did not compile
    seen: dict[str, Any] | None = None  # float hyperparameters at the last compiled step
    constant_changes: int = 0  # compiled steps that found a new value of a constant


def _is_float_hyperparameter(value: Any) -> bool:
    """A float, or a tuple of numbers with a float in it (``betas``)."""
    if isinstance(value, tuple):
        return bool(value) and all(is_scalar(x) for x in value) and any(
            isinstance(x, float) for x in value
        )
    return isinstance(value, float)


_BACKENDS: dict[int, tuple[Internals, Callable]] = {}


def backend_for(internals: Internals) -> Callable:
    """The compiler backend, one function per set of internals: dynamo caches graphs per backend
    object, so every optimizer must hand it the same one (a new one recompiles everything)."""
    known = _BACKENDS.get(id(internals))
    if known is not None and known[0] is internals:
        return known[1]

    def backend(gm: torch.fx.GraphModule, example_inputs):
        hoist_scalars(gm, internals.scalar_barrier)
        try:
            with internals.trusted_isa():
                compiled = internals.compile_fx(gm, example_inputs)
        except Exception as exc:
            if isinstance(exc, internals.restart_analysis):
                raise  # dynamo's signal to trace again: not a failure
            with internals.inductor_patch(internals.no_precompiled_headers):
                compiled = internals.compile_fx(gm, example_inputs)
        STATS["compiles"] += 1
        return compiled

    _BACKENDS[id(internals)] = (internals, backend)
    return backend


class Compiler:
    """The compiled methods of one optimizer and the calls into them."""

    def __init__(self, optimizer: Any, internals: Internals, tensor_hyperparameters: dict):
        self.optimizer = optimizer
        self.torch = internals
        self.backend = backend_for(internals)
        self.allowed = tensor_hyperparameters
        self.compiled: dict[str, Callable] = {}  # "update" / "finish" -> the compiled method
        self._depth = threading.local()

    @contextlib.contextmanager
    def settings(self):
        """Dynamo's settings, entered once however many compiled calls a step makes."""
        if getattr(self._depth, "n", 0):
            yield
            return
        self._depth.n = 1
        try:
            with self.torch.dynamo():
                yield
        finally:
            self._depth.n = 0

    def function(self, method: str) -> Callable | None:
        """The compiled ``method`` of the optimizer (compiled lazily, at its first call)."""
        fn = self.compiled.get(method)
        if fn is None:
            try:
                target = getattr(self.optimizer, method)
                fn = torch.compile(target, backend=self.backend, fullgraph=True, dynamic=True)
            except Exception as exc:  # torch.compile unavailable on this platform/version
                self.failed(None, exc)
                return None
            self.compiled[method] = fn
        return fn

    def failed(self, history: CompileHistory | None, exc: BaseException) -> None:
        name = type(self.optimizer).__name__
        first = str(exc).splitlines()[0] if str(exc) else ""
        warn_once(
            name,
            f"course_lib.optim: torch.compile failed for {name} ({type(exc).__name__}: "
            f"{first}); using the readable path",
        )
        if history is not None:
            history.ok = False

    # --- one call ---

    def call(
        self, history: CompileHistory, group: dict[str, Any], call: Callable[[dict], Any]
    ) -> tuple[bool, Any, dict]:
        """``call(compiled group)``; ``(ok, its result, the compiled group)``.

        Hyperparameters that changed since the last compiled step become tensors first (one
        recompile). If that graph does not compile, they stay constants and the call is retried:
        each new value then recompiles. Any other failure: ``ok = False``, nothing ran."""
        fresh = self._note_changes(history, group)
        if history.constant_changes > MAX_CONSTANT_CHANGES:
            name = type(self.optimizer).__name__
            warn_once(
                f"{name}:constants",
                f"course_lib.optim: a hyperparameter of {name} that the compiled step takes as a "
                "constant keeps changing (each value would recompile); this group now takes "
                "the readable path",
            )
            history.ok = False
            return False, None, {}
        while True:
            compiled_group = self.group_for(history, group)
            try:
                with self.settings():
                    out = call(compiled_group)
            except Exception as exc:  # fullgraph: nothing ran
                if not fresh:
                    self.failed(history, exc)
                    return False, None, compiled_group
                for key in fresh:
                    history.tensor_keys.pop(key, None)
                    history.static_keys.add(key)
                fresh = {}
                continue
            for key, value in compiled_group.items():  # numbers update() changed in the group
                if is_scalar(value) and group.get(key) != value:
                    group[key] = value
            return True, out, compiled_group

    @staticmethod
    def group_for(history: CompileHistory, group: dict[str, Any]) -> dict[str, Any]:
        """The group as the compiled update sees it: ``lr`` and the hyperparameters passed as
        tensors as 0-d float64 tensors, everything else as it is."""
        lr = group["lr"]
        compiled_group = {
            **group,
            "lr": lr if isinstance(lr, Tensor) else torch.tensor(lr, dtype=torch.float64),
        }
        for key, positions in history.tensor_keys.items():
            value = group.get(key)
            if positions is None and isinstance(value, float):
                compiled_group[key] = torch.tensor(value, dtype=torch.float64)
            elif positions is not None and isinstance(value, tuple):
                compiled_group[key] = tuple(
                    torch.tensor(x, dtype=torch.float64)
                    if i in positions and isinstance(x, float)
                    else x
                    for i, x in enumerate(value)
                )
        return compiled_group

    def _note_changes(self, history: CompileHistory, group: dict[str, Any]) -> dict[str, Any]:
        """Float hyperparameters that changed since the last compiled step: those the optimizer
        allows as tensors (and are not known to fail) join ``history.tensor_keys``; a change of
        any other counts as a constant change. Returns the keys added now."""
        seen = {
            k: v
            for k, v in group.items()
            if k not in ("params", "lr") and _is_float_hyperparameter(v)
        }
        fresh: dict[str, Any] = {}
        constant_changed = False
        for key, value in seen.items():
            old = (history.seen or {}).get(key)
            if old is None or old == value:
                continue
            if key not in self.allowed or key in history.static_keys:
                constant_changed = True
            elif isinstance(value, tuple):
                if not isinstance(old, tuple) or len(old) != len(value):
                    constant_changed = True
                    continue
                known = history.tensor_keys.get(key) or set()
                changed = {i for i, (a, b) in enumerate(zip(old, value)) if a != b}
                positions = self.allowed[key] or ()
                ok = {i for i in changed if i in positions and isinstance(value[i], float)}
                constant_changed |= bool(changed - ok)
                if ok - known:
                    fresh[key] = ok - known
                    history.tensor_keys[key] = known | ok
            elif key not in history.tensor_keys:
                fresh[key] = None
                history.tensor_keys[key] = None
        history.seen = seen
        history.constant_changes += constant_changed
        return fresh
