"""The fast path of one optimizer: per param group, the flat layout and the compiled update.

:class:`FastPath` is the step engine :class:`~course_lib.optim.base.BlockOptimizer` calls for each
group (see :mod:`course_lib.optim.fastpath` for the whole picture). For a group it either takes
the step — the optimizer's own ``update`` (and ``finish``) on the group's flat buffers, compiled —
or returns ``None``, and the base runs the readable step instead. Every step it checks first that
parameters and state are exactly what its last step left (:meth:`FlatGroup.matches`); anything
a user changed in between makes it lay the group out again from the current state, or give the
step to the readable path.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from course_lib.optim.fastpath.compiler import CompileHistory, Compiler
from course_lib.optim.fastpath.layout import FlatGroup
from course_lib.optim.fastpath.settings import CONFIG, STATS, warn_once
from course_lib.optim.fastpath.torch_internals import Internals

__all__ = ["FastPath"]


class FastPath:
    """The step engine of one optimizer."""

    def __init__(self, optimizer: Any, internals: Internals, tensor_hyperparameters: dict):
        self.optimizer = optimizer
        self.torch = internals
        self.compiler = Compiler(optimizer, internals, tensor_hyperparameters)
        self.layouts: dict[int, FlatGroup] = {}
        self.history: dict[int, CompileHistory] = {}

    # --- the StepEngine protocol ---

    def step_group(
        self, group: dict[str, Any], params: list[Tensor]
    ) -> tuple[Any, Callable[[Any], None]] | None:
        """Take ``group``'s step (pass 1 for a two-pass optimizer) on the flat path: ``(what
        update() returned, finish)``, where ``finish(stats)`` runs pass 2 on the same buffers,
        or ``None`` (nothing done) if the flat path does not apply."""
        if not (CONFIG["enabled"] and group.get("fast", True)):
            return None
        index = next(i for i, g in enumerate(self.optimizer.param_groups) if g is group)
        history = self.history.setdefault(index, CompileHistory())
        if CONFIG["compile"] and not history.ok:
            return None  # compiling failed: the readable path (an uncompiled flat update is no
            # faster on large groups: its full-size temporaries are fresh allocations each step)
        states = [self.optimizer.state[p] for p in params]
        layout = self._layout(index, params, states)
        if layout is None:
            return None
        return self._step(layout, history, group, params, states)

    def zero_grad(self, set_to_none: bool) -> None:
        """``zero_grad(set_to_none=False)``: let each flat group's gradients *be* views of its flat
        gradient buffer (torch's ``zero_grad`` then zeroes them). ``backward()`` accumulates into
        them in place, so the next ``step()`` has nothing to gather — the idea of DDP's
        ``gradient_as_bucket_view``. Only groups already laid out flat, whose parameters all have
        dense gradients of their own dtype, device and shape; the others are left alone."""
        if set_to_none or not CONFIG["enabled"]:
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

    # --- the layout ---

    def _layout(self, index: int, params: list[Tensor], states: list[dict]) -> FlatGroup | None:
        """This group's layout, checked against the current parameters and state (rebuilt when
        they changed), or ``None`` if the group cannot be laid out."""
        layout = self.layouts.get(index)
        if layout is not None and layout.matches(params, states):
            return layout
        if not self._eligible(params):
            return None
        new = FlatGroup.build(params, states, layout, self.torch)
        if new is None:
            if layout is None or not layout.same_params(params):
                self._explain_alias(params, layout)
            return None
        self.layouts[index] = new
        return new

    @staticmethod
    def _eligible(params: list[Tensor]) -> bool:
        if sum(p.numel() for p in params) < CONFIG["min_numel"]:
            return False
        p0 = params[0]
        if not (p0.is_floating_point() and p0.layout == torch.strided):
            return False  # complex parameters among others: the readable path handles them
        return all(
            p.dtype == p0.dtype
            and p.device == p0.device
            and p.is_contiguous()
            and p.layout == torch.strided
            for p in params
        )

    def _explain_alias(self, params: list[Tensor], old: FlatGroup | None) -> None:
        if FlatGroup.movable(params, old, self.torch):
            return  # the state did not fit (keys or steps differ): nothing to explain
        name = type(self.optimizer).__name__
        warn_once(
            f"{name}:alias",
            f"course_lib.optim: {name} takes its readable (slower) path for a group whose "
            "parameters share memory with other tensors (a view or alias of a parameter, e.g. a "
            "model.state_dict() kept without copying it, or parameters that are views of one "
            "tensor): the fast path would move the parameters into one buffer and leave those "
            "behind. Delete or copy them to get the fast path back.",
        )

    # --- one step ---

    def _step(
        self,
        layout: FlatGroup,
        history: CompileHistory,
        group: dict,
        params: list[Tensor],
        states: list[dict],
    ) -> tuple[Any, Callable[[Any], None]] | None:
        # The gradients go into our flat buffer: one gather, no allocation. Gradients that are
        # already views of it (after ``zero_grad(set_to_none=False)``) are skipped. ``step()``
        # only reads ``p.grad``: it never writes or re-points it.
        compiled = not layout.fresh and CONFIG["compile"]
        grads = [p.grad for p in params]
        segments = None
        if all(map(operator.is_, grads, layout.grad_views)):
            copy = []  # every gradient already lives in our buffer
        else:
            copy = [i for i, (g, v) in enumerate(zip(grads, layout.grad_views)) if g is not v]
            if any(grads[i].is_sparse or grads[i].dtype != layout.param.dtype for i in copy):
                return None
            if compiled and self._segmentable(layout, group):
                segments, copy = self._segments(layout, grads, copy)
        if copy:
            self.torch.foreach_copy([layout.grad_views[i] for i in copy], [grads[i] for i in copy])
            STATS["grad_copies"] += 1
        layout.step_grad = layout.grad
        if group["maximize"]:
            if len(copy) < len(params):  # the caller's gradients live there: negate a copy
                layout.step_grad = torch.neg(layout.grad)
            else:
                layout.grad.neg_()
        ran, share = self._run("update", layout, history, group, states, compiled, segments)
        if not ran:
            return None
        STATS["compiled_steps" if compiled else "eager_flat_steps"] += 1
        return share, partial(self._finish, layout, history, group, states, compiled)

    def _segmentable(self, layout: FlatGroup, group: dict[str, Any]) -> bool:
        """May this compiled step run once per large parameter (plus once on the rest)? Only on
        the CPU (on a GPU, copying a gradient costs microseconds, less than one more compiled
        call), for a single-pass update and no ``maximize`` (its gradients are negated in our
        buffer)."""
        rest = layout.numel - layout.rest_start
        return (
            bool(layout.direct)
            and layout.grad.device.type == "cpu"
            and rest != 1  # a length-1 call would compile a graph of its own
            and not group["maximize"]
            and not self.optimizer.two_pass
        )

    @staticmethod
    def _segments(
        layout: FlatGroup, grads: list[Tensor], copy: list[int]
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

    def _finish(self, layout, history, group, states, compiled, stats) -> None:
        """Pass 2 of a two-pass optimizer, on the buffers pass 1 used (and compiled if it was)."""
        ran, _ = self._run("finish", layout, history, group, states, compiled, None, stats)
        if not ran:  # the compile failed before anything ran; pass 1 is done, so finish here
            self._run("finish", layout, history, group, states, False, None, stats)

    def _run(
        self,
        method: str,
        layout: FlatGroup,
        history: CompileHistory,
        group: dict[str, Any],
        states: list[dict],
        compiled: bool,
        segments: list[tuple[int, int, Tensor]] | None,
        *extra,
    ) -> tuple[bool, Any]:
        """The optimizer's ``method`` ("update" or "finish") on the flat buffers, compiled or not,
        then its new state written back per parameter. ``(False, None)``: the compile failed and
        nothing ran; otherwise ``(True, what the method returned)``."""
        if compiled and segments is not None:
            return self._segmented_run(method, layout, history, group, states, segments, extra)
        flat_params, flat_grads = [layout.param], [layout.step_grad]
        if compiled:
            fn = self.compiler.function(method)
            if fn is None:
                history.ok = False
                return False, None
            flat_state = layout.flat_state(as_tensors=True)
            ok, out, _ = self.compiler.call(
                history,
                group,
                lambda g: fn(g, flat_params, flat_grads, [flat_state], *extra),
            )
            if not ok:
                return False, None
        else:
            flat_state = layout.flat_state(as_tensors=False)
            out = getattr(self.optimizer, method)(
                group, flat_params, flat_grads, [flat_state], *extra
            )
        layout.absorb(flat_state, states)
        return True, out

    @staticmethod
    def _call_segment(fn, params, grad, state, extra, group):
        return fn(group, params, [grad], [state], *extra)

    def _segmented_run(self, method, layout, history, group, states, segments, extra):
        """:meth:`_run` as one compiled call per segment (:meth:`_segments`), on slices of the
        flat buffers; the same graph serves every length."""
        fn = self.compiler.function(method)
        if fn is None:
            history.ok = False
            return False, None
        done: list[tuple[int, int, dict, dict]] = []
        compiled_group = None  # the first call settles it; the others reuse it
        with self.compiler.settings():
            for start, end, grad in segments:
                params = [layout.param[start:end]]
                given = layout.flat_state(as_tensors=True, start=start, end=end)
                after = dict(given)
                if compiled_group is None:
                    call = partial(self._call_segment, fn, params, grad, after, extra)
                    ok, _, compiled_group = self.compiler.call(history, group, call)
                    if not ok:
                        return False, None  # nothing ran: the readable path takes the step
                else:
                    try:
                        fn(compiled_group, params, [grad], [after], *extra)
                    except Exception as exc:  # a later call failed to recompile: uncompiled
                        self.compiler.failed(history, exc)
                        given = layout.flat_state(as_tensors=False, start=start, end=end)
                        after = dict(given)
                        getattr(self.optimizer, method)(group, params, [grad], [after], *extra)
                done.append((start, end, given, after))
        layout.absorb(layout.merge_segments(done), states)
        STATS["segmented_steps"] += 1
        return True, None
