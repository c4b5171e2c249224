r"""Gradient-difference momentum: Adan (Xie et al., 2022, "Adan: Adaptive Nesterov Momentum
Algorithm for Faster Optimizing Deep Models"), chapter 08.

Adan estimates the gradient at Nesterov's look-ahead point without evaluating it there, through an
EMA of gradient *differences* :math:`g_k - g_{k-1}`, and decays the weights proximally.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "adan_direction",
    "adan_lookahead_grad",
    "count_group_step",
    "grad_difference",
    "prox_weight_decay",
]


def count_group_step(group: dict[str, Any]) -> int:
    r"""Advance the *group's* step counter :math:`k \leftarrow k+1` (stored in ``group["step"]``).

    The official Adan code keeps one counter per parameter group ("assume same step across group
    now to simplify things"), advanced on every ``step()`` call, so a parameter that skipped steps
    is still bias-corrected with the group's :math:`k`. It is saved by ``state_dict`` with the
    group's hyperparameters.
    """
    group["step"] = group.get("step", 0) + 1
    return group["step"]


def grad_difference(
    states: list[dict[str, Any]], grads: list[Tensor], key: str = "prev_grad"
) -> list[Tensor]:
    r"""The gradient difference :math:`g_k - g_{k-1}`, remembering :math:`g_k` for the next step.

    On a parameter's first step there is no :math:`g_{k-1}`; the official Adan code sets it to
    :math:`g_1`, so the first difference is exactly zero. The previous gradient is stored in state
    ``key`` (``prev_grad``). Returns new tensors.
    """
    diffs = []
    for state, g in zip(states, grads):
        if key not in state:
            diffs.append(torch.zeros_like(g))
            state[key] = g.detach().clone()
        else:
            diffs.append(g - state[key])
            state[key].copy_(g)
    return diffs


def adan_lookahead_grad(grads: list[Tensor], diffs: list[Tensor], beta2: float) -> list[Tensor]:
    r"""Adan's extrapolated gradient :math:`g_k + \beta_2\,(g_k - g_{k-1})` (code convention).

    It estimates the gradient at the Nesterov look-ahead point without evaluating it there; Adan
    tracks its square in :math:`n`. In the paper's convention the factor is :math:`1-\beta_2`.
    """
    return [g.add(d, alpha=beta2) for g, d in zip(grads, diffs)]


def adan_direction(
    m: list[Tensor],
    v: list[Tensor],
    n: list[Tensor],
    step: int,
    betas: tuple[float, float, float],
    eps: float,
) -> list[Tensor]:
    r"""Adan's direction with bias correction, in the official code's betas.

    .. math::
        u = \frac{\hat m + \beta_2 \hat v}{\sqrt{\hat n} + \epsilon}, \qquad
        \hat m = \frac{m}{1-\beta_1^k},\ \hat v = \frac{v}{1-\beta_2^k},\
        \hat n = \frac{n}{1-\beta_3^k}

    with :math:`k` the group's step. The code's :math:`\beta_i` are :math:`1 -` the paper's (paper
    :math:`\beta_1 = 0.02` is code 0.98); :math:`\epsilon` sits outside the square root.
    """
    beta1, beta2, beta3 = betas
    c1, c2, c3 = 1 - beta1**step, 1 - beta2**step, 1 - beta3**step
    out = []
    for m_i, v_i, n_i in zip(m, v, n):
        denom = (n_i.sqrt() / c3**0.5).add_(eps)
        out.append((m_i / c1).add_(v_i * (beta2 / c2)).div_(denom))
    return out


def prox_weight_decay(params: list[Tensor], lr: float, weight_decay: float) -> None:
    r"""Proximal weight decay, applied *after* the step: :math:`w \leftarrow w / (1 + \eta\lambda)`.

    This is the exact minimiser of :math:`\tfrac{1}{2\eta}\lVert w - w'\rVert^2 +
    \tfrac{\lambda}{2}\lVert w\rVert^2` around the stepped point :math:`w'` — Adan's default
    (``no_prox=False``). To first order in :math:`\eta\lambda` it equals decoupled decay.
    """
    if weight_decay == 0:
        return
    for p in params:
        p.div_(1 + lr * weight_decay)
