"""One param group laid out in flat buffers: parameters, gradients and per-parameter state.

On the first eligible step a group's parameters are copied into one contiguous buffer and every
``p.data`` becomes a view of it; every per-parameter state tensor (``state[p]["m"]`` …) becomes a
view of a flat state buffer with the same layout. The model, ``state_dict``/``load_state_dict``
and the readable path see the same tensors, shapes and values as before; the parameters are still
updated in place (only their storage moved, once). If anything else shares a parameter's memory
(a view taken earlier, ``model.state_dict()`` held without a copy), moving it would leave that
alias behind, so such a group is not laid out: it takes the readable path.

Per-parameter numbers (``step``) must be equal across the group; they are kept once.
"""

from __future__ import annotations

import operator
from itertools import repeat
from typing import Any

import torch
from torch import Tensor

from course_lib.optim.fastpath.settings import CONFIG, STATS
from course_lib.optim.fastpath.torch_internals import Internals

__all__ = ["FlatGroup", "is_scalar"]


def is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _views(flat: Tensor, like: list[Tensor], offsets: list[int]) -> list[Tensor]:
    return [flat[o : o + p.numel()].view(p.shape) for p, o in zip(like, offsets)]


class FlatGroup:
    """Flat buffers of one param group and the per-parameter views into them."""

    def __init__(self, params: list[Tensor], torch_: Internals, reuse: FlatGroup | None) -> None:
        self.params = list(params)
        self.numel = sum(p.numel() for p in params)
        self.torch = torch_
        if reuse is not None:  # the params already live in a flat buffer of ours
            self.param, self.grad = reuse.param, reuse.grad
            self.offsets, self.direct = reuse.offsets, reuse.direct
            self.grad_views = reuse.grad_views  # gradients shared by zero_grad stay shared
        else:
            # Large parameters first: a compiled step may read their gradients where they are,
            # one call each, and copy only the small ones into the contiguous rest.
            self.direct = [i for i, p in enumerate(params) if p.numel() >= CONFIG["direct_min"]]
            big = set(self.direct)
            self.offsets, offset = [0] * len(params), 0
            for i in self.direct + [i for i in range(len(params)) if i not in big]:
                self.offsets[i] = offset
                offset += params[i].numel()
            p0 = params[0]
            self.param = torch.empty(self.numel, dtype=p0.dtype, device=p0.device)
            self.grad = torch.zeros_like(self.param)
            param_views = _views(self.param, params, self.offsets)
            torch_.foreach_copy(param_views, [p.detach() for p in params])
            for p, view in zip(params, param_views):
                p.data = view
            self.grad_views = _views(self.grad, params, self.offsets)
        self.rest_start = sum(params[i].numel() for i in self.direct)
        self.ptrs = [p.data_ptr() for p in params]
        self.buffers: dict[str, Tensor] = {}  # flat state tensors
        self.views: dict[str, list[Tensor]] = {}  # their per-parameter views, in the states
        self.scalars: dict[str, Any] = {}  # per-parameter numbers, equal for all params
        self.keys: list[str] = []  # state keys in insertion order
        self.fresh = True  # no step taken on this layout yet
        self.step_grad = self.grad  # the flat gradient of the current step (negated: maximize)
        STATS["layouts"] += 1

    # --- building ---

    @staticmethod
    def build(
        params: list[Tensor], states: list[dict], old: FlatGroup | None, torch_: Internals
    ) -> FlatGroup | None:
        """A layout for ``params`` with their current ``states``, or ``None`` if they do not fit
        (state keys or numbers differ between parameters, or moving the parameters would leave
        an alias of their memory behind)."""
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
            elif all(is_scalar(v) for v in values) and all(v == values[0] for v in values):
                plan[key] = values[0]
            else:
                return None
        reuse = old if old is not None and old.same_params(params) else None
        if reuse is None and not FlatGroup.movable(params, old, torch_):
            return None
        layout = FlatGroup(params, torch_, reuse)
        for key, values in plan.items():
            if isinstance(values, list):
                flat = torch.empty(layout.numel, dtype=values[0].dtype, device=values[0].device)
                views = _views(flat, params, layout.offsets)
                torch_.foreach_copy(views, values)
                layout._adopt(key, flat, views, states)
            else:
                layout.scalars[key] = values
        layout.keys = keys
        layout.fresh = not keys
        return layout

    @staticmethod
    def movable(params: list[Tensor], old: FlatGroup | None, torch_: Internals) -> bool:
        """May ``p.data`` of every parameter be re-pointed into a new flat buffer? Only if no
        other tensor shares its memory: a parameter of its own has a storage used once; one that
        already lives in our old flat buffer shares it only with that buffer and the other
        parameters laid out there."""
        ours = old.param.untyped_storage().data_ptr() if old is not None else None
        for p in params:
            if p.untyped_storage().data_ptr() != ours:
                if torch_.storage_use_count(p) != 1:
                    return False
        if ours is not None:
            inside = sum(1 for p in old.params if p.untyped_storage().data_ptr() == ours)
            if torch_.storage_use_count(old.param) != 1 + inside:
                return False
        return True

    def _adopt(self, key: str, flat: Tensor, views: list[Tensor], states: list[dict]) -> None:
        self.buffers[key], self.views[key] = flat, views
        for st, view in zip(states, views):
            st[key] = view

    # --- checks, every step ---

    def same_params(self, params: list[Tensor]) -> bool:
        return (  # (map: this runs every step, over every parameter)
            len(params) == len(self.params)
            and all(map(operator.is_, params, self.params))
            and list(map(Tensor.data_ptr, params)) == self.ptrs
        )

    def matches(self, params: list[Tensor], states: list[dict]) -> bool:
        """Are params and states exactly what this layout left after its last step? Any change a
        user can make between steps fails it: ``p.data = …``, a state dict cleared or replaced
        (``load_state_dict``), an entry replaced or rewritten (``state[p]["step"] = 1``), a
        readable step taken meanwhile (``set_fast_path(False)``, a ``None`` gradient). It runs
        every step over every parameter, hence the C-level ``map``s."""
        if not self.same_params(params):
            return False
        if any(map(operator.ne, map(len, states), repeat(len(self.keys)))):
            return False
        try:
            for key, views in self.views.items():
                if not all(map(operator.is_, map(operator.itemgetter(key), states), views)):
                    return False
            for key, value in self.scalars.items():
                if not all(map(operator.eq, map(operator.itemgetter(key), states), repeat(value))):
                    return False
        except KeyError:
            return False
        return True

    # --- what update() sees, and what it did ---

    def flat_state(self, as_tensors: bool, start: int = 0, end: int | None = None) -> dict:
        """The state as ``update`` sees it: flat buffers (or their ``[start:end]`` slice) and the
        per-parameter numbers — for a compiled call, floats as 0-d float64 tensors (a new value
        does not recompile) and ints as they are (dynamic in the graph)."""
        out: dict[str, Any] = {}
        whole = start == 0 and end is None
        for key in self.keys:
            if key in self.buffers:
                out[key] = self.buffers[key] if whole else self.buffers[key][start:end]
            else:
                value = self.scalars[key]
                if as_tensors and isinstance(value, float):
                    value = torch.tensor(value, dtype=torch.float64)
                out[key] = value
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

    def absorb(self, flat_state: dict[str, Any], states: list[dict]) -> bool:
        """Write what ``update`` did to the flat state back into the per-parameter states.
        ``False`` if the result cannot be expressed per parameter: the layout is then spent."""
        for key, value in flat_state.items():
            if key in self.buffers:
                if value is not self.buffers[key]:  # the update replaced the tensor
                    self.buffers[key].copy_(value)
            elif isinstance(value, Tensor) and value.dim() == 1 and value.numel() == self.numel:
                flat = value.contiguous()
                self._adopt(key, flat, _views(flat, self.params, self.offsets), states)
            elif isinstance(value, Tensor) and value.dim() == 0:
                self._set_scalar(key, value.item(), states)
            elif is_scalar(value):
                self._set_scalar(key, value, states)
            else:  # not expressible per parameter
                for st in states:
                    st[key] = value
                self.keys, self.views, self.scalars = [], {}, {}
                self.ptrs = [-1] * len(self.ptrs)  # never matches again: rebuild or readable
                return False
        self.keys = list(flat_state)
        self.fresh = False
        return True

    def _set_scalar(self, key: str, number: Any, states: list[dict]) -> None:
        self.scalars[key] = number
        for st in states:
            st[key] = number
