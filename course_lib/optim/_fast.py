r"""The fast path: a group's *own* ``update()`` run on one flat tensor, compiled.

What students read (:meth:`BlockOptimizer.update` calling the blocks, one tensor at a time) is also
what runs fast. The trick is to change the *data*, not the code:

1. **Flat layout.** On the first eligible step, a group's parameters are copied into one contiguous
   buffer and every ``p.data`` becomes a view of it; every per-parameter state tensor
   (``state[p]["m"]`` …) is likewise a view of a flat state buffer with the same layout. The
   readable path, ``state_dict``/``load_state_dict`` and the model itself see the same tensors,
   shapes and names as before.
2. **One tensor instead of hundreds.** The gradients are copied into a preallocated flat buffer
   (one ``_foreach_copy_``, no allocation); ``p.grad`` itself is only read, never written. Then
   ``update(group, [flat_p], [flat_g], [flat_state])`` runs on a *list of one tensor*: the loops
   in the blocks run once. The copy costs 8 bytes per parameter (Adam's update itself moves 28);
   it disappears in a loop with ``zero_grad(set_to_none=False)``: the zeroed gradients are then
   views of the flat buffer (:meth:`FastPath.share_grads`, like DDP's
   ``gradient_as_bucket_view``), ``backward()`` accumulates into them in place and there is
   nothing left to gather. With the default ``zero_grad()`` the gradients are new tensors every
   step; the layout puts parameters of ``direct_min`` (2**19) elements or more first, and a
   compiled step reads *their* gradients where they are, one call per such parameter on its slice
   of the flat buffers (the same graph serves every length), then one call on the rest.
3. **Compiled.** That call goes through :func:`torch.compile` (``fullgraph=True``, so a compile
   either succeeds before anything runs or fails with nothing changed). The learning rate and the
   scalar states (the step counter) enter as 0-d float64 tensors, so a scheduler changing ``lr`` or
   the step advancing does not recompile; so do the hyperparameters an optimizer declares safe as
   tensors (``tensor_hyperparameters``: Adam's beta1, SGD's momentum) once a scheduler changes
   them (OneCycleLR cycles both). Other numbers are constants of the graph: a new value
   recompiles. The flat length is dynamic, so groups of other sizes reuse the same code.
   Scalar-only arithmetic (``1 - beta**t`` …) is kept out of the elementwise loop by a graph pass
   (:func:`_hoist_scalars`): otherwise the compiler recomputes the powers for every vector of 16
   elements.
4. **Two passes.** A two-pass optimizer (Adai: ``update`` per group, then a mean over *all*
   groups, then ``finish`` per group) runs both methods here, each compiled on the same flat
   buffers; what ``update`` returns (the group's share of the mean: a 0-d sum and a count) goes to
   :meth:`BlockOptimizer.combine <course_lib.optim.BlockOptimizer.combine>` with the other groups'
   shares, readable or flat alike, and ``finish`` runs once every group has contributed.

Every step falls back to the readable path when the flat path does not apply: fast path switched
off (:func:`set_fast_path`, a group's ``"fast": False``, an optimizer class with
``flat_update = False``), parameters whose gradients come and go (their per-parameter step
counters diverge; a parameter that never has one, like a frozen layer's, is simply left out of
the layout), sparse gradients, mixed dtypes or devices in a group, non-floating or
non-contiguous parameters, or a group smaller than ``min_numel`` elements (default 100 000: the 2-D
landscapes and small notebook models never compile). If :func:`torch.compile` is missing or fails
(for example a data-dependent Python branch on a tensor in some ``update()``), a warning is issued
once and that group takes the readable path. ``set_fast_path(compile=False)`` runs the flat update
uncompiled: no compiler needed, but meant for tests and debugging (Adam on 5.4M parameters takes
52 ms this way against 30 ms readable: each full-size temporary is a fresh allocation).

Both paths compute the same thing: ``tests/test_optim_fast.py`` checks parameters and every state
tensor in float64 for each course optimizer.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import os
import threading
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

__all__ = ["fast_path_config", "fast_path_stats", "set_fast_path"]


def _env_flag() -> tuple[bool, bool]:
    value = os.environ.get("COURSE_LIB_FAST_PATH", "1").strip().lower()
    enabled = value not in ("0", "false", "off", "no")
    return enabled, enabled and value != "eager"


_ENABLED, _COMPILE = _env_flag()
_CONFIG: dict[str, Any] = {
    "enabled": _ENABLED,
    "compile": _COMPILE,
    "min_numel": 100_000,
    "direct_min": 1 << 19,
}
_STATS = {
    "compiles": 0,
    "compiled_steps": 0,
    "eager_flat_steps": 0,
    "layouts": 0,
    "grad_copies": 0,
    "segmented_steps": 0,
}
_WARNED: set[str] = set()


def set_fast_path(
    enabled: bool | None = None,
    *,
    compile: bool | None = None,
    min_numel: int | None = None,
    direct_min: int | None = None,
) -> dict[str, Any]:
    """Switch the fast path for every course optimizer; returns the previous settings.

    ``enabled=False``: always the readable per-tensor path. ``compile=False``: flat layout but no
    :func:`torch.compile` (no compiler, no warm-up; for tests: not faster than readable).
    ``min_numel``: smallest group (total elements) that takes the fast path. ``direct_min``:
    smallest parameter (elements, default 2**19) whose gradient a compiled step on the CPU reads
    where it is instead of copying it into the flat buffer (one more compiled call, ~45 µs,
    against a copy of 8 bytes per element; applies to new layouts). Restore with
    ``set_fast_path(**previous)``. The environment variable ``COURSE_LIB_FAST_PATH=0`` (or
    ``=eager``) sets the default at import. A single group opts out with
    ``{"params": ..., "fast": False}``.
    """
    previous = dict(_CONFIG)
    if enabled is not None:
        _CONFIG["enabled"] = bool(enabled)
    if compile is not None:
        _CONFIG["compile"] = bool(compile)
    if min_numel is not None:
        _CONFIG["min_numel"] = int(min_numel)
    if direct_min is not None:
        _CONFIG["direct_min"] = max(2, int(direct_min))
    return previous


def fast_path_config() -> dict[str, Any]:
    """The current settings (see :func:`set_fast_path`)."""
    return dict(_CONFIG)


def fast_path_stats(reset: bool = False) -> dict[str, int]:
    """Counters since import (or the last reset): graphs compiled, compiled and uncompiled flat
    steps, flat layouts built, steps that copied gradients into a flat buffer, compiled steps
    that read some gradients in place (one call per large parameter)."""
    out = dict(_STATS)
    if reset:
        for key in _STATS:
            _STATS[key] = 0
    return out


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


# --- compiler backend: inductor, with scalar-only arithmetic hoisted out of elementwise loops ---

_barrier = None
if hasattr(torch.library, "custom_op"):

    @torch.library.custom_op("course_lib::scalar_barrier", mutates_args=())
    def _barrier(x: Tensor) -> Tensor:
        """Identity on a 0-d tensor that the compiler cannot inline into its consumers."""
        return x.clone()

    @_barrier.register_fake
    def _(x: Tensor) -> Tensor:
        return torch.empty_like(x)


def _hoist_scalars(gm: torch.fx.GraphModule) -> None:
    """Compute each 0-d value that depends only on 0-d inputs once, not once per vector.

    Inductor inlines pointwise producers into their consumers, so ``1 - beta**t`` would be
    evaluated inside the loop over the flat buffer. A barrier after the last scalar-only node
    makes the compiler materialise it in a tiny kernel of its own.
    """
    if _barrier is None:
        return
    scalar: set[torch.fx.Node] = set()
    for node in gm.graph.nodes:
        value = node.meta.get("example_value")
        if not (isinstance(value, Tensor) and value.dim() == 0):
            continue
        if node.op == "placeholder" or (
            node.op in ("call_function", "call_method")
            and all(
                i in scalar or not isinstance(i.meta.get("example_value"), Tensor)
                for i in node.all_input_nodes
            )
        ):
            scalar.add(node)
    for node in list(gm.graph.nodes):
        if node not in scalar or node.op == "placeholder":
            continue
        users = [u for u in node.users if u not in scalar and u.op != "output"]
        if not users:
            continue
        with gm.graph.inserting_after(node):
            hoisted = gm.graph.call_function(torch.ops.course_lib.scalar_barrier.default, (node,))
        hoisted.meta = dict(node.meta)
        for user in users:
            user.replace_input_with(node, hoisted)
    gm.recompile()


def _trusted_cpu_isa():
    """Take the CPU's vector instruction set from what it reports (``/proc/cpuinfo`` via cpuinfo)
    instead of inductor's probe, which builds a test library and loads it in a new Python process
    for each candidate (0.7 s of every process's first compile here). If the compiler then
    cannot build for that instruction set, the compile fails and :func:`_backend` retries with
    the probe."""
    cpp = getattr(torch._inductor.config, "cpp", None)
    if cpp is None or not hasattr(cpp, "vec_isa_ok") or cpp.vec_isa_ok is not None:
        return contextlib.nullcontext()
    return torch._inductor.config.patch({"cpp.vec_isa_ok": True})


def _backend(gm: torch.fx.GraphModule, example_inputs):
    from torch._inductor.compile_fx import compile_fx

    _hoist_scalars(gm)
    try:
        with _trusted_cpu_isa():
            compiled = compile_fx(gm, example_inputs)
    except Exception as exc:
        if isinstance(exc, getattr(torch._dynamo.exc, "RestartAnalysis", ())):
            raise  # dynamo's signal to trace again: not a failure
        # A precompiled header left broken in the shared cache by another process (seen with
        # several inductor processes at once) fails every C++ kernel; so could a compiler that
        # cannot build for the instruction set the CPU reports: retry once without both.
        with torch._inductor.config.patch(cpp_cache_precompile_headers=False):
            compiled = compile_fx(gm, example_inputs)
    _STATS["compiles"] += 1
    return compiled


_SETTINGS = threading.local()  # how deep this thread is inside _static_floats()


@contextlib.contextmanager
def _static_floats():
    """The dynamo settings of every compiled call, entered once however deeply nested (the calls
    of a segmented step share one entry).

    Every Python number of the group other than lr, the counters and the declared tensor
    hyperparameters is a constant of the graph (a new value recompiles, under a guard). Left to
    dynamo, a float that changed between calls becomes a graph input, and inductor's pass that
    turns such floats into tensors miscompiled together with :func:`_hoist_scalars` (torch 2.13:
    Adai with two weight decays)."""
    depth = getattr(_SETTINGS, "depth", 0)
    if depth:
        yield
        return
    _SETTINGS.depth = 1
    try:
        with _dynamo_patch():
            yield
    finally:
        _SETTINGS.depth = 0


def _dynamo_patch():
    global _DYNAMO_CHANGES
    config = torch._dynamo.config
    if _DYNAMO_CHANGES is None:
        _DYNAMO_CHANGES = {}
        if hasattr(config, "specialize_float"):
            _DYNAMO_CHANGES["specialize_float"] = True
        # One code object (``Adam.update``) serves every optimizer of its class in the process,
        # each with its own constants: dynamo's default of 8 graphs per code object would end a
        # hyperparameter sweep on the readable path. A group whose constants keep changing stops
        # compiling on its own (``_MAX_CONSTANT_CHANGES``).
        for name in ("recompile_limit", "cache_size_limit"):  # (the older name)
            if hasattr(config, name):
                _DYNAMO_CHANGES[name] = max(getattr(config, name), _GRAPHS_PER_METHOD)
                break
    return config.patch(_DYNAMO_CHANGES) if _DYNAMO_CHANGES else contextlib.nullcontext()


_DYNAMO_CHANGES: dict[str, Any] | None = None  # the settings _dynamo_patch applies, found once
_GRAPHS_PER_METHOD = 64  # compiled graphs kept per optimizer method (dynamo's default: 8)
_MAX_CONSTANT_CHANGES = 4  # new values of a constant hyperparameter before a group stops compiling


# --- the flat layout of one param group ---


def _views(flat: Tensor, like: list[Tensor], offsets: list[int]) -> list[Tensor]:
    return [flat[o : o + p.numel()].view(p.shape) for p, o in zip(like, offsets)]


def class_applies(cls: type) -> bool:
    """May the fast path run ``cls.update`` (and ``cls.finish``) on flat buffers? Not if the class
    says its update is not elementwise (``flat_update = False``), nor if it has a ``step()`` of its
    own (what it does around ``update()`` is unknown here) unless it says so (``flat_update =
    True``: Adan's step() only advances group counters). Two-pass optimizers (Adai) keep the base
    ``step()``, which drives both passes on either path.
    """
    from course_lib.optim._base import BlockOptimizer

    if not issubclass(cls, BlockOptimizer) or cls.flat_update is False:
        return False
    own_step = inspect.unwrap(cls.step) is not inspect.unwrap(BlockOptimizer.step)
    return cls.flat_update is True or not own_step


def _mark_dynamic(flat: Tensor) -> None:
    """One compiled graph for every flat length (importing the compiler only when it is used)."""
    if _CONFIG["compile"]:
        torch._dynamo.maybe_mark_dynamic(flat, 0)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _call_with(fn: Callable, group: dict, *, params, grads, state, extra) -> Any:
    """``fn(group, params, grads, [state], *extra)``: a compiled method with all but the group
    bound (see :meth:`FastPath._call_with_group`)."""
    return fn(group, params, grads, [state], *extra)


def _floaty(value: Any) -> bool:
    """A float, or a tuple of numbers with a float in it (``betas``)."""
    if isinstance(value, tuple):
        return (
            bool(value)
            and all(_is_scalar(x) for x in value)
            and any(isinstance(x, float) for x in value)
        )
    return isinstance(value, float)


class _FlatGroup:
    """One param group in flat buffers: params, grads and every per-parameter state tensor."""

    # kept when the layout is rebuilt (new state, new parameters): the group's compile history
    CARRIED = (
        "compiled_ok",
        "group_counters",
        "tensor_keys",
        "static_keys",
        "hyper_seen",
        "constant_changes",
    )

    def __init__(self, params: list[Tensor], reuse: _FlatGroup | None) -> None:
        self.params = list(params)
        self.numel = sum(p.numel() for p in params)
        if reuse is not None:  # the params already live in a flat buffer of ours
            self.param, self.grad = reuse.param, reuse.grad
            self.offsets, self.direct = reuse.offsets, reuse.direct
            self.grad_views = reuse.grad_views  # gradients shared by zero_grad stay shared
        else:
            # Large parameters first: a compiled step may read their gradients where they are,
            # one call each, and copy only the small ones into the contiguous rest.
            self.direct = [i for i, p in enumerate(params) if p.numel() >= _CONFIG["direct_min"]]
            big = set(self.direct)
            self.offsets, offset = [0] * len(params), 0
            for i in self.direct + [i for i in range(len(params)) if i not in big]:
                self.offsets[i] = offset
                offset += params[i].numel()
            p0 = params[0]
            self.param = torch.empty(self.numel, dtype=p0.dtype, device=p0.device)
            self.grad = torch.zeros_like(self.param)
            param_views = _views(self.param, params, self.offsets)
            torch._foreach_copy_(param_views, [p.detach() for p in params])
            for p, view in zip(params, param_views):
                p.data = view
            self.grad_views = _views(self.grad, params, self.offsets)
        self.rest_start = sum(params[i].numel() for i in self.direct)
        # this step's (start, end, gradient) calls when large gradients are read in place
        self.segments: list[tuple[int, int, Tensor]] | None = None
        self.marked = False  # segment tensors marked dynamic once (the graph is dynamic then)
        self.step_grad = self.grad  # the flat gradient of the current step (negated: maximize)
        self.ptrs = [p.data_ptr() for p in params]
        self.buffers: dict[str, Tensor] = {}  # flat state tensors
        self.views: dict[str, list[Tensor]] = {}  # their per-parameter views, in self.state
        self.scalars: dict[str, Any] = {}  # per-parameter numbers, equal for all params
        self.keys: list[str] = []  # state keys in insertion order
        self.state_dicts: list[dict] = []  # the per-parameter state dicts after our last step
        self.dirty = True  # state may have changed outside the fast path: check it all
        self.fresh = True  # no step taken on this layout yet
        self.compiled_ok = True
        self.group_counters: dict[str, Any] = {}  # numbers update() advances in the group dict
        # Float hyperparameters a scheduler changes (OneCycleLR cycles Adam's beta1, SGD's
        # momentum) enter compiled calls as 0-d tensors from their first change on: key -> None
        # for a float, -> the indices of the changing floats in a tuple such as ``betas``.
        self.tensor_keys: dict[str, set[int] | None] = {}
        self.static_keys: set[str] = set()  # tried as tensors, did not compile: constants
        self.hyper_seen: dict[str, Any] | None = None  # values at the last compiled step
        self.constant_changes = 0  # compiled steps that found a new value of a constant
        for flat in (self.param, self.grad):
            _mark_dynamic(flat)
        _STATS["layouts"] += 1

    @staticmethod
    def build(
        params: list[Tensor], states: list[dict], old: _FlatGroup | None
    ) -> _FlatGroup | None:
        """A layout for ``params`` with their current ``states``, or ``None`` if they do not fit."""
        keys = list(states[0])
        if any(list(st) != keys for st in states):
            return None
        plan: dict[str, Any] = {}
        for key in keys:
            values = [st[key] for st in states]
            if all(isinstance(v, Tensor) and v.shape == p.shape for v, p in zip(values, params)):
                v0 = values[0]
                if any(v.dtype != v0.dtype or v.device != v0.device or v.is_sparse for v in values):
                    return None
                plan[key] = values
            elif all(_is_scalar(v) for v in values) and all(v == values[0] for v in values):
                plan[key] = values[0]
            else:
                return None
        reuse = old if old is not None and old.same_params(params) else None
        layout = _FlatGroup(params, reuse)
        for key, values in plan.items():
            if isinstance(values, list):
                flat = torch.empty(layout.numel, dtype=values[0].dtype, device=values[0].device)
                views = _views(flat, params, layout.offsets)
                torch._foreach_copy_(views, values)
                layout._adopt(key, flat, views, states)
            else:
                layout.scalars[key] = values
        layout.keys = keys
        layout.fresh = not keys
        if old is not None:  # what the group's compiled steps learnt so far
            for name in _FlatGroup.CARRIED:
                setattr(layout, name, getattr(old, name))
        return layout

    def _adopt(self, key: str, flat: Tensor, views: list[Tensor], states: list[dict]) -> None:
        _mark_dynamic(flat)
        self.buffers[key], self.views[key] = flat, views
        for st, view in zip(states, views):
            st[key] = view

    def same_params(self, params: list[Tensor]) -> bool:
        return (  # (map: this runs every step, over every parameter)
            len(params) == len(self.params)
            and all(map(operator.is_, params, self.params))
            and list(map(Tensor.data_ptr, params)) == self.ptrs
        )

    def matches(self, params: list[Tensor], states: list[dict]) -> bool:
        """Are params and states still exactly the views this layout made (no ``p.data = …``,
        no ``load_state_dict``, no readable step that created new state)?"""
        if not self.same_params(params):
            return False
        if not self.dirty:  # the same state dicts as after our last step, and no readable step
            return all(map(operator.is_, states, self.state_dicts))
        nkeys = len(self.keys)
        for i, st in enumerate(states):
            if len(st) != nkeys:
                return False
            for key, views in self.views.items():
                if st.get(key) is not views[i]:
                    return False
            for key, value in self.scalars.items():
                if st.get(key) != value:
                    return False
        return True

    def flat_state(self, as_tensors: bool, start: int = 0, end: int | None = None) -> dict:
        """The state as ``update`` sees it: flat buffers (or their ``[start:end]`` slice) and the
        per-parameter numbers (as 0-d float64 tensors for a compiled call)."""
        out: dict[str, Any] = {}
        whole = start == 0 and end is None
        for key in self.keys:
            if key in self.buffers:
                out[key] = self.buffers[key] if whole else self.buffers[key][start:end]
            else:
                value = self.scalars[key]
                out[key] = torch.tensor(value, dtype=torch.float64) if as_tensors else value
        return out

    def merge_segments(self, done: list[tuple[int, int, dict, dict]]) -> dict[str, Any]:
        """One flat state from calls that each updated ``[start:end]`` (``done`` holds
        ``(start, end, state given, state after)``): a state tensor a call replaced is copied
        into its slice, a new per-element tensor is assembled, numbers agree in every call."""
        first = done[0][3]
        merged: dict[str, Any] = {}
        for key, value in first.items():
            if key in self.buffers:
                for _, _, given, after in done:
                    if after[key] is not given[key]:
                        given[key].copy_(after[key])
                merged[key] = self.buffers[key]
            elif isinstance(value, Tensor) and value.dim() == 1:
                merged[key] = value.new_empty(self.numel)
                for start, end, _, after in done:
                    merged[key][start:end].copy_(after[key])
            else:
                merged[key] = value
        return merged

    def absorb(self, flat_state: dict[str, Any], states: list[dict]) -> None:
        """Write what ``update`` did to the flat state back into the per-parameter states."""
        for key, value in flat_state.items():
            if key in self.buffers:
                if value is not self.buffers[key]:  # the update replaced the tensor
                    self.buffers[key].copy_(value)
            elif isinstance(value, Tensor) and value.dim() == 1 and value.numel() == self.numel:
                flat = value.contiguous()
                self._adopt(key, flat, _views(flat, self.params, self.offsets), states)
            elif isinstance(value, Tensor) and value.dim() == 0:
                old = self.scalars.get(key)
                number = value.item()
                if isinstance(old, int):
                    number = int(round(number))
                self.scalars[key] = number
                for st in states:
                    st[key] = number
            elif _is_scalar(value):
                self.scalars[key] = value
                for st in states:
                    st[key] = value
            else:  # not expressible per parameter: the layout cannot continue
                for st in states:
                    st[key] = value
                self.keys = []
                self.ptrs = [-1] * len(self.ptrs)
                return
        self.keys = list(flat_state)
        self.fresh = False
        self.state_dicts, self.dirty = states, False


class FastPath:
    """The fast path of one optimizer: a flat layout per param group and the compiled update."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.layouts: dict[int, _FlatGroup] = {}
        self.compiled: dict[str, Callable] = {}  # "update" / "finish" -> the compiled method
        self.applies = class_applies(type(optimizer))

    def step(
        self, group: dict[str, Any], params: list[Tensor]
    ) -> tuple[Any, Callable[[Any], None]] | None:
        """Take ``group``'s step (pass 1 for a two-pass optimizer) on the flat path.

        Returns ``(what update() returned, finish)``, where ``finish(stats)`` runs the group's pass
        2 on the same flat buffers, or ``None`` (nothing done) if the flat path does not apply.
        """
        if not (self.applies and _CONFIG["enabled"]):
            return None
        index = next(i for i, g in enumerate(self.optimizer.param_groups) if g is group)
        done = self._step(index, group, params)
        if done is not None:
            return done
        if index in self.layouts:  # the readable path takes this step: check everything next time
            self.layouts[index].dirty = True
        return None

    def share_grads(self) -> None:
        """``zero_grad(set_to_none=False)``: let each flat group's gradients *be* views of its flat
        gradient buffer (torch's ``zero_grad`` then zeroes them). ``backward()`` accumulates into
        them in place, so the next ``step()`` has nothing to gather — the idea of DDP's
        ``gradient_as_bucket_view``. Only groups already laid out flat, whose parameters all have
        dense gradients of their own dtype, device and shape; the others are left alone."""
        if not (self.applies and _CONFIG["enabled"]):
            return
        groups = self.optimizer.param_groups
        for index, layout in self.layouts.items():
            if index >= len(groups) or not groups[index].get("fast", True):
                continue
            params = groups[index]["params"]
            if not layout.same_params(params):
                continue
            flat = layout.grad
            if any(
                p.grad is None
                or p.grad.is_sparse
                or p.grad.dtype != flat.dtype
                or p.grad.device != flat.device
                or p.grad.shape != p.shape
                for p in params
            ):
                continue
            for p, view in zip(params, layout.grad_views):
                if p.grad is not view:
                    p.grad = view

    def _step(
        self, index: int, group: dict[str, Any], params: list[Tensor]
    ) -> tuple[Any, Callable[[Any], None]] | None:
        opt = self.optimizer
        if not group.get("fast", True):
            return None  # opted out
        layout = self.layouts.get(index)
        if layout is not None and _CONFIG["compile"] and not layout.compiled_ok:
            return None  # compiling failed: the readable path (an uncompiled flat update is no
            # faster on large groups: its full-size temporaries are fresh allocations each step)
        states = [opt.state[p] for p in params]
        if layout is None or not layout.matches(params, states):
            if not self._eligible(params, layout):
                return None
            layout = _FlatGroup.build(params, states, layout)
            if layout is None:
                return None
            self.layouts[index] = layout
        # The gradients go into our flat buffer: one gather, no allocation. Gradients that are
        # already views of it (after ``zero_grad(set_to_none=False)``, see :meth:`share_grads`)
        # are skipped. ``step()`` only reads ``p.grad``: never writes or re-points it.
        compiled = not layout.fresh and layout.compiled_ok and _CONFIG["compile"]
        grads = [p.grad for p in params]
        layout.segments = None
        if all(map(operator.is_, grads, layout.grad_views)):
            copy = []  # every gradient already lives in our buffer
        else:
            copy = [i for i, (g, v) in enumerate(zip(grads, layout.grad_views)) if g is not v]
            if any(grads[i].is_sparse or grads[i].dtype != layout.param.dtype for i in copy):
                return None
            if compiled and self._segmentable(layout, group):
                layout.segments, copy = self._segments(layout, grads, copy)
        if copy:
            views = [layout.grad_views[i] for i in copy]
            torch._foreach_copy_(views, [grads[i] for i in copy])
            _STATS["grad_copies"] += 1
        layout.step_grad = layout.grad
        if group["maximize"]:
            if len(copy) < len(params):  # the caller's gradients live there: negate a copy
                layout.step_grad = torch.neg(layout.grad)
            else:
                layout.grad.neg_()
        ran, share = self._run("update", layout, group, states, compiled)
        if not ran:
            return None
        _STATS["compiled_steps" if compiled else "eager_flat_steps"] += 1
        return share, partial(self._finish, layout, group, states, compiled)

    def _segmentable(self, layout: _FlatGroup, group: dict[str, Any]) -> bool:
        """May this compiled step run once per large parameter (plus once on the rest)? Only on
        the CPU (on a GPU, copying a gradient costs microseconds, less than one more compiled
        call), for a single-pass update with nothing counted in the group dict (each call would
        advance it) and no ``maximize`` (its gradients are negated in our buffer)."""
        rest = layout.numel - layout.rest_start
        return (
            bool(layout.direct)
            and layout.grad.device.type == "cpu"
            and rest != 1  # a length-1 call would compile a graph of its own
            and not group["maximize"]
            and not self.optimizer.two_pass
            and not layout.group_counters
            and not _is_scalar(group.get("step"))
        )

    @staticmethod
    def _segments(
        layout: _FlatGroup, grads: list[Tensor], copy: list[int]
    ) -> tuple[list[tuple[int, int, Tensor]], list[int]]:
        """``(start, end, gradient)`` per large parameter, its gradient read where it is when
        dense and contiguous, then the rest of the buffer; and what still has to be copied."""
        segments, direct = [], set()
        for i in layout.direct:
            g, start = grads[i], layout.offsets[i]
            end = start + g.numel()
            if g.is_contiguous() and g.device == layout.grad.device:
                segments.append((start, end, g.view(-1)))
                direct.add(i)
            else:
                segments.append((start, end, layout.grad[start:end]))
        if layout.rest_start < layout.numel:
            segments.append((layout.rest_start, layout.numel, layout.grad[layout.rest_start :]))
        return segments, [i for i in copy if i not in direct]

    def _finish(
        self, layout: _FlatGroup, group: dict[str, Any], states: list[dict], compiled: bool, stats
    ) -> None:
        """Pass 2 of a two-pass optimizer, on the buffers pass 1 used (and compiled if it was)."""
        ran, _ = self._run("finish", layout, group, states, compiled, stats)
        if not ran:  # the compile failed before anything ran; pass 1 is done, so finish here
            self._run("finish", layout, group, states, False, stats)

    def _run(
        self,
        method: str,
        layout: _FlatGroup,
        group: dict[str, Any],
        states: list[dict],
        compiled: bool,
        *extra,
    ) -> tuple[bool, Any]:
        """The optimizer's ``method`` ("update" or "finish") on the flat buffers, compiled or not,
        then its new state written back per parameter. ``(False, None)``: the compile failed and
        nothing ran; otherwise ``(True, what the method returned)``."""
        opt = self.optimizer
        if compiled and layout.segments is not None:
            return self._segmented_run(method, layout, group, states, extra)
        flat_params, flat_grads = [layout.param], [layout.step_grad]
        if compiled:
            flat_state = layout.flat_state(as_tensors=True)
            ran, out = self._compiled_call(
                method, layout, group, flat_params, flat_grads, flat_state, extra
            )
            if not ran:
                return False, None
        else:
            flat_state = layout.flat_state(as_tensors=False)
            numbers = {k: v for k, v in group.items() if _is_scalar(v)}
            out = getattr(opt, method)(group, flat_params, flat_grads, [flat_state], *extra)
            for key, value in group.items():  # counters kept in the group (Adan's step)
                if _is_scalar(value) and (key not in numbers or numbers[key] != value):
                    layout.group_counters[key] = type(value)
        layout.absorb(flat_state, states)
        return True, out

    def _segmented_run(
        self, method: str, layout: _FlatGroup, group: dict[str, Any], states: list[dict], extra
    ) -> tuple[bool, Any]:
        """:meth:`_run` as one compiled call per segment (:meth:`_segments`), on slices of the
        flat buffers; the same graph serves every length."""
        fn = self._compiled_fn(method, layout)
        if fn is None:
            return False, None
        done: list[tuple[int, int, dict, dict]] = []
        compiled_group = None  # the first call settles it; no counters, so the calls share it
        with _static_floats():
            for start, end, grad in layout.segments:
                params = [layout.param[start:end]]
                given = layout.flat_state(as_tensors=True, start=start, end=end)
                after = dict(given)
                if not layout.marked:  # one graph for all lengths, whichever call compiles it
                    for t in (params[0], grad, *(v for v in given.values() if v.dim() == 1)):
                        _mark_dynamic(t)
                if compiled_group is None:
                    call = partial(
                        _call_with, fn, params=params, grads=[grad], state=after, extra=extra
                    )
                    ok, _, compiled_group, _ = self._call_with_group(layout, group, call)
                    if not ok:
                        return False, None  # nothing ran: the readable path takes the step
                else:
                    try:
                        fn(compiled_group, params, [grad], [after], *extra)
                    except Exception as exc:  # a later call failed to recompile: uncompiled
                        self._compile_failed(layout, exc)
                        given = layout.flat_state(as_tensors=False, start=start, end=end)
                        after = dict(given)
                        getattr(self.optimizer, method)(group, params, [grad], [after], *extra)
                done.append((start, end, given, after))
        layout.marked = True
        layout.absorb(layout.merge_segments(done), states)
        _STATS["segmented_steps"] += 1
        return True, None

    def _eligible(self, params: list[Tensor], old: _FlatGroup | None) -> bool:
        if sum(p.numel() for p in params) < _CONFIG["min_numel"]:
            return False
        p0 = params[0]
        if not (p0.is_floating_point() and p0.layout == torch.strided):
            return False
        if any(p.dtype != p0.dtype or p.device != p0.device for p in params):
            return False
        if any(not p.is_contiguous() or p.layout != torch.strided for p in params):
            return False
        if old is not None and old.same_params(params):
            return True
        # Params that share memory (views of one tensor) must keep sharing it: leave them alone.
        # Views of our own flat buffer (the group's set of gradients changed) are disjoint.
        own = old.param.untyped_storage().data_ptr() if old is not None else None
        mine = {id(p) for p in old.params} if old is not None else set()
        storages = [p.untyped_storage().data_ptr() for p in params]
        foreign = [s for p, s in zip(params, storages) if not (id(p) in mine and s == own)]
        return len(set(foreign)) == len(foreign) and own not in foreign

    def _compiled_call(
        self, method, layout, group, params, grads, flat_state, extra
    ) -> tuple[bool, Any]:
        fn = self._compiled_fn(method, layout)
        if fn is None:
            return False, None
        call = partial(_call_with, fn, params=params, grads=grads, state=flat_state, extra=extra)
        ok, out, compiled_group, counters = self._call_with_group(layout, group, call)
        if not ok:
            return False, None
        for key, kind in counters.items():
            value = compiled_group.get(key)
            if isinstance(value, Tensor):
                group[key] = kind(round(value.item())) if kind is int else value.item()
        return True, out

    def _call_with_group(
        self, layout: _FlatGroup, group: dict[str, Any], call: Callable[[dict], Any]
    ) -> tuple[bool, Any, dict, dict]:
        """``call(compiled group)``; ``(ok, its result, the compiled group, the counters)``.

        Hyperparameters that changed since the last compiled step become tensors first (one
        recompile). If that graph does not compile (the update branches on the value in Python,
        or passes it where torch wants a number), they stay constants and the call is retried:
        each new value then recompiles, as before. Any other failure: the readable path."""
        fresh = self._note_changes(layout, group)
        if layout.constant_changes > _MAX_CONSTANT_CHANGES:
            name = type(self.optimizer).__name__
            _warn_once(
                f"{name}:constants",
                f"course_lib.optim: a hyperparameter of {name} that the compiled step takes as a "
                "constant keeps changing (each value would recompile); this group now takes "
                "the readable path",
            )
            layout.compiled_ok = False
            return False, None, {}, {}
        while True:
            compiled_group, counters = self._compiled_group(layout, group)
            try:
                with _static_floats():
                    out = call(compiled_group)
                return True, out, compiled_group, counters
            except Exception as exc:  # fullgraph: nothing ran
                if not fresh:
                    self._compile_failed(layout, exc)
                    return False, None, compiled_group, counters
                for key in fresh:
                    layout.tensor_keys.pop(key, None)
                    layout.static_keys.add(key)
                fresh = {}

    def _note_changes(self, layout: _FlatGroup, group: dict[str, Any]) -> dict[str, Any]:
        """Record the hyperparameters the optimizer allows as tensors
        (:meth:`~course_lib.optim.BlockOptimizer.tensor_hyperparameters`); those that changed
        since the last compiled step (and are neither tensors already nor known not to compile
        as tensors) are added to ``layout.tensor_keys``. Returns the ones added now."""
        allowed = self.optimizer.tensor_hyperparameters(group)
        seen = {
            key: value
            for key, value in group.items()
            if key not in ("params", "lr") and key not in layout.group_counters and _floaty(value)
        }
        fresh: dict[str, Any] = {}
        constant_changed = False
        old_seen = layout.hyper_seen or {}
        for key, value in seen.items():
            old = old_seen.get(key)
            if old is None or old == value:
                continue
            if key not in allowed or key in layout.static_keys:
                constant_changed = True
            elif isinstance(value, tuple):
                if not isinstance(old, tuple) or len(old) != len(value):
                    constant_changed = True
                    continue
                known = layout.tensor_keys.get(key) or set()
                changed = {i for i, (a, b) in enumerate(zip(old, value)) if a != b}
                positions = allowed[key] or ()
                ok = {i for i in changed if i in positions and isinstance(value[i], float)}
                constant_changed |= bool(changed - ok)
                if ok - known:
                    fresh[key] = ok - known
                    layout.tensor_keys[key] = known | ok
            elif key not in layout.tensor_keys:
                fresh[key] = None
                layout.tensor_keys[key] = None
        layout.hyper_seen = seen
        layout.constant_changes += constant_changed
        return fresh

    def _compiled_fn(self, method: str, layout: _FlatGroup) -> Callable | None:
        """The compiled ``method`` of our optimizer (compiled lazily, at its first call)."""
        fn = self.compiled.get(method)
        if fn is None:
            try:
                target = getattr(self.optimizer, method)
                fn = torch.compile(target, backend=_backend, fullgraph=True)
            except Exception as exc:  # torch.compile unavailable on this platform/version
                self._compile_failed(layout, exc)
                return None
            self.compiled[method] = fn
        return fn

    @staticmethod
    def _compiled_group(layout: _FlatGroup, group: dict[str, Any]) -> tuple[dict, dict]:
        """The group as the compiled update sees it: ``lr`` and the counters ``update`` advances
        in the group dict as 0-d float64 tensors (new values do not recompile); and those
        counters with their Python types."""
        lr = group["lr"]
        lr = lr if isinstance(lr, Tensor) else torch.tensor(lr, dtype=torch.float64)
        compiled_group = {**group, "lr": lr}
        counters = dict(layout.group_counters)
        if _is_scalar(group.get("step")):  # a group step counter advanced outside update()
            counters.setdefault("step", type(group["step"]))
        for key in counters:
            if key in group:
                compiled_group[key] = torch.tensor(group[key], dtype=torch.float64)
        for key, indices in layout.tensor_keys.items():
            value = group.get(key)
            if indices is None and isinstance(value, float):
                compiled_group[key] = torch.tensor(value, dtype=torch.float64)
            elif indices is not None and isinstance(value, tuple):
                compiled_group[key] = tuple(
                    torch.tensor(x, dtype=torch.float64)
                    if i in indices and isinstance(x, float)
                    else x
                    for i, x in enumerate(value)
                )
        return compiled_group, counters

    def _compile_failed(self, layout: _FlatGroup, exc: Exception) -> bool:
        name = type(self.optimizer).__name__
        _warn_once(
            name,
            f"course_lib.optim: torch.compile failed for {name} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); using the readable path",
        )
        layout.compiled_ok = False
        return False
