r"""Adaptive inertia: Adai (Xie et al., ICML 2022, "Adaptive Inertia: Disentangling the Effects of
Adaptive Learning Rate and Momentum"), chapter 09.

Adai keeps an SGD-like step and uses the second moment for something else: each coordinate's
momentum coefficient :math:`\beta_1` is computed from :math:`\hat v` relative to its mean over
*all* parameters, so noisy (sharp) directions get less inertia and flat ones more.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from course_lib.optim.blocks.core import lazy_state

__all__ = ["adaptive_inertia", "global_mean", "inertia_momentum", "sum_and_count"]


def sum_and_count(x: list[Tensor]) -> tuple[Tensor, int]:
    r"""One group's share of a global mean: the sum of all elements of all tensors (0-d) and how
    many elements there are. :func:`global_mean` combines the shares of every group."""
    return sum(x_i.sum() for x_i in x), sum(x_i.numel() for x_i in x)


def global_mean(shares: list[tuple[Tensor, int]]) -> Tensor:
    r"""The mean of *all* elements of *all* groups, :math:`\frac{1}{N}\sum_i \sum_j x_{ij}`, from
    each group's :func:`sum_and_count`.

    Adai compares each :math:`\hat v` with this mean over the whole model, so no group can finish
    its step before every group has contributed its share (a per-parameter callback could not
    compute it). Returns a 0-d tensor.

    Which elements count, as in the official code (``zeke-xie/adaptive-inertia-adai``,
    ``adai.py``, whose first loop skips ``p.grad is None`` and adds ``p.numel()``): every element
    of every parameter *that has a gradient this step*, in every param group, each
    :math:`\hat v` divided by its own parameter's bias correction :math:`1-\beta_2^{t}`.
    Parameters without a gradient neither contribute nor move.
    """
    total = sum(s for s, _ in shares)
    return total / sum(n for _, n in shares)


def adaptive_inertia(
    v_hat: list[Tensor], mean: Tensor, beta0: float, eps: float
) -> list[Tensor]:
    r"""Adai's per-coordinate inertia :math:`\beta_1 = \operatorname{clip}(1 - \beta_0\,
    \hat v / \overline{\hat v},\ 0,\ 1-\epsilon)` (Xie et al., ICML 2022).

    A coordinate with a large second moment (sharp direction, noisy gradient) gets *less* inertia,
    a flat one gets more, up to :math:`1-\epsilon` (:math:`\epsilon` is the "inertia bound", 1e-3).
    ``mean`` is :math:`\overline{\hat v}` from :func:`global_mean`. Where every gradient so far was
    zero (:math:`\overline{\hat v} = 0`) the official code computes 0/0 = NaN; here the ratio is
    taken as 0 instead (every :math:`\hat v` is 0 then too), which changes nothing else.
    """
    out = []
    for v in v_hat:
        ratio = torch.where(mean > 0, v / mean, torch.zeros_like(v))
        out.append((1.0 - ratio * beta0).clamp_(0.0, 1.0 - eps))
    return out


def inertia_momentum(
    states: list[dict[str, Any]], grads: list[Tensor], beta1: list[Tensor]
) -> list[Tensor]:
    r"""Momentum with per-coordinate inertia and its bias correction (Adai).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        P \leftarrow P\,\beta_1, \qquad \hat m = \frac{m}{1 - P}

    :math:`\beta_1` changes every step, so :math:`1-\beta_1^t` no longer corrects the zero start;
    the running product :math:`P = \prod_{s\le t}\beta_{1,s}` (state ``beta1_prod``, starts at 1)
    does. Updates states ``m`` and ``beta1_prod`` and returns :math:`\hat m` (new tensors).
    """
    m = lazy_state(states, "m", grads)
    prod = lazy_state(states, "beta1_prod", grads, fill=1.0)
    out = []
    for m_i, p_i, g, b in zip(m, prod, grads, beta1):
        p_i.mul_(b)
        m_i.mul_(b).addcmul_(1.0 - b, g)
        out.append(m_i / (1.0 - p_i))
    return out
