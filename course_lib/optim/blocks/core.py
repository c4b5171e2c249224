r"""Core blocks: lazily created state, the step counter, weight decay and the final parameter move.

Every block works on *lists* of tensors (one entry per parameter of a group) and never writes into
the gradients it is given: a block that changes the gradient returns new tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "add_l2",
    "apply_update",
    "count_step",
    "decay_weights",
    "lazy_state",
    "scale_by_lr",
]


def lazy_state(
    states: list[dict[str, Any]], key: str, like: list[Tensor], fill: float = 0.0
) -> list[Tensor]:
    """The buffer ``key`` of every state, created on first use as ``fill``-filled ``like``.

    Lazy creation is how ``torch.optim`` does it: an optimizer holds no memory for a parameter
    until that parameter first receives a gradient.
    """
    buffers = []
    for state, x in zip(states, like):
        if key not in state:
            state[key] = torch.full_like(x, fill, memory_format=torch.preserve_format)
        buffers.append(state[key])
    return buffers


def count_step(states: list[dict[str, Any]]) -> list[int]:
    r"""Advance each parameter's step counter :math:`t \leftarrow t + 1` and return the new values.

    The counter is per parameter (as in ``torch.optim``): a parameter whose gradient was ``None``
    on some steps has taken fewer steps, and its bias correction uses its own :math:`t`.
    """
    for state in states:
        state["step"] = state.get("step", 0) + 1
    return [state["step"] for state in states]


def add_l2(grads: list[Tensor], params: list[Tensor], weight_decay: float) -> list[Tensor]:
    r"""L2 regularisation as a gradient term: :math:`g \leftarrow g + \lambda w`.

    This is the gradient of :math:`\tfrac{\lambda}{2}\lVert w\rVert^2` added to the loss — what
    ``weight_decay`` means in ``torch.optim.SGD``/``Adam``. Placed *before* an adaptive block, the
    term is divided by :math:`\sqrt{v}` like the rest of the gradient (chapter 05). Returns new
    tensors; the input gradients are left untouched.
    """
    if weight_decay == 0:
        return grads
    return [g.add(p, alpha=weight_decay) for g, p in zip(grads, params)]


def decay_weights(params: list[Tensor], lr: float, weight_decay: float) -> None:
    r"""Decoupled weight decay (Loshchilov & Hutter): :math:`w \leftarrow (1 - \eta\lambda)\,w`.

    Applied to the weights directly, outside any adaptive scaling, so the decay every weight feels
    is the same whatever its gradient history. The decay is multiplied by the learning rate, as in
    ``torch.optim.AdamW`` and ``lion-pytorch``.
    """
    if weight_decay == 0:
        return
    for p in params:
        p.mul_(1 - lr * weight_decay)


def apply_update(params: list[Tensor], updates: list[Tensor], lr: float) -> None:
    r"""The move itself: :math:`w \leftarrow w - \eta\, u`."""
    for p, u in zip(params, updates):
        p.sub_(lr * u)


def scale_by_lr(
    updates: list[Tensor], lr_of_step: Callable[[int], float], steps: list[int]
) -> list[Tensor]:
    r"""Multiply each update by the learning rate of its own step: :math:`u \leftarrow \eta_t\, u`.

    ``lr_of_step`` is a pure function ``t -> lr`` (a schedule, e.g. from
    :mod:`course_lib.optim.schedules`), evaluated at each parameter's own step :math:`t` — which
    is how AdaGrad's ``lr_decay`` works (:math:`\eta_t = \eta/(1+(t-1)\delta)`). Returns new
    tensors; follow with ``apply_update(params, updates, 1.0)``.
    """
    return [u * lr_of_step(t) for u, t in zip(updates, steps)]
