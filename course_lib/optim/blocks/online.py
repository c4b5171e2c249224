r"""Online and strongly convex second moments (Mukkamala & Hein, ICML 2017, "Variants of RMSProp
and Adagrad with Logarithmic Regret Bounds"), chapter 03.

RMSprop with a *growing* averaging horizon, :math:`\beta_t = 1 - \gamma/t`, sits between RMSprop
and AdaGrad: for :math:`\gamma = 1` it *is* AdaGrad. The strongly convex variants divide by the
accumulated squares instead of their root.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from course_lib.optim.blocks.core import lazy_state

__all__ = ["online_ema_sq", "online_rms_direction", "sc_direction"]


def online_ema_sq(
    states: list[dict[str, Any]],
    grads: list[Tensor],
    gamma: float,
    steps: list[int],
    key: str = "v",
) -> list[Tensor]:
    r"""Second moment with a growing horizon: :math:`v_t = \beta_t v_{t-1} + (1-\beta_t)\, g_t^2`,
    :math:`\beta_t = 1 - \gamma/t`.

    With :math:`\gamma = 1` this is the plain average :math:`v_t = \frac1t\sum_{s\le t} g_s^2`
    (check: :math:`v_1 = g_1^2`, and :math:`\frac{t-1}{t}\cdot\frac{1}{t-1}\sum_{s<t} g_s^2 +
    \frac1t g_t^2`), so :math:`t\,v_t` is AdaGrad's sum. With :math:`\gamma < 1` recent gradients
    weigh more, like RMSprop, but the forgetting slows down over time. ``steps`` are each
    parameter's own :math:`t`. Returns the state buffers.
    """
    v = lazy_state(states, key, grads)
    for v_i, g, t in zip(v, grads, steps):
        w = gamma / t
        v_i.mul_(1 - w).addcmul_(g, g * w)
    return v


def online_rms_direction(
    grads: list[Tensor], v: list[Tensor], steps: list[int], delta: float
) -> list[Tensor]:
    r"""The online RMSprop step (Mukkamala & Hein, Algorithm 3) with :math:`\eta` factored out.

    The paper uses a decaying step :math:`\eta_t = \eta/\sqrt t` (it writes :math:`\alpha` for
    the course's :math:`\eta`) and damping :math:`\epsilon_t = \delta/\sqrt t`:

    .. math::
        \eta_t\,\frac{g}{\sqrt{v_t} + \epsilon_t} = \eta\,\frac{g}{\sqrt{t\, v_t} + \delta},

    which is what is returned divided by :math:`\eta` (use ``apply_update(params, d, lr)``).
    For :math:`\gamma = 1`, :math:`t v_t = \sum_s g_s^2` and this is AdaGrad's step with
    :math:`\epsilon = \delta` outside the root, exactly as ``torch.optim.Adagrad``.
    """
    return [g / (v_i * t).sqrt_().add_(delta) for g, v_i, t in zip(grads, v, steps)]


def sc_direction(
    grads: list[Tensor], s: list[Tensor], xi1: float, xi2: float
) -> list[Tensor]:
    r"""Strongly convex scaling :math:`g / (s + \delta)`, :math:`\delta = \xi_2 e^{-\xi_1 s}`.

    No square root: for strongly convex losses dividing by the accumulated squares themselves gives
    :math:`O(\log T)` regret (Mukkamala & Hein, 2017). :math:`s` is the sum of squared gradients:
    :math:`v_t` for SC-AdaGrad, :math:`t\, v_t` for SC-RMSprop (then :math:`\frac{\eta}{t}\cdot
    \frac{g}{v_t + \delta_t/t}` is the same step). The damping :math:`\delta` is large while
    :math:`s` is small and vanishes as it grows, as in the authors' code
    (``mmahesh/variants-of-rmsprop-and-adagrad``). Returns new tensors.
    """
    return [g / torch.exp(s_i * -xi1).mul_(xi2).add_(s_i) for g, s_i in zip(grads, s)]
