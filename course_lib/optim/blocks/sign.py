r"""Sign updates: Lion (Chen et al., 2023), PowerSign and AddSign (Bello et al., 2017), chapter 10.

The direction is (partly) a sign, so the size of a step no longer follows the size of the gradient:
Lion moves every coordinate by exactly the learning rate; PowerSign and AddSign scale the gradient
up where it agrees in sign with its running average and down where it does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "SIGN_DECAYS",
    "add_sign_scale",
    "cosine_sign_decay",
    "linear_sign_decay",
    "lion_interpolation",
    "power_sign_scale",
    "restart_sign_decay",
    "sign",
    "sign_agreement",
    "sign_decay_values",
]

SIGN_DECAYS = ("linear", "cosine")  # the named sign decays (or pass a function of the step)


def sign(x: list[Tensor]) -> list[Tensor]:
    r"""Elementwise sign, :math:`\operatorname{sign}(x) \in \{-1, 0, 1\}` (``torch.sign``).

    A sign update moves every coordinate by exactly the learning rate, whatever the gradient's
    scale (only an exact zero gives no move). Returns new tensors.
    """
    return [torch.sign(x_i) for x_i in x]


def lion_interpolation(m: list[Tensor], grads: list[Tensor], beta1: float) -> list[Tensor]:
    r"""Lion's update direction before the sign: :math:`c = \beta_1 m + (1-\beta_1)\, g`.

    Lion interpolates with :math:`\beta_1` for the *update* and then, separately, tracks the
    momentum with :math:`\beta_2` (``ema(states, "m", grads, beta2)`` *after* the move): two
    coefficients where heavy-ball momentum has one (Chen et al., 2023). ``m`` is read, not
    changed. Computed as ``m * beta1 + (1 - beta1) * g``, the operation order of ``lion-pytorch``.
    """
    return [m_i.mul(beta1).add_(g, alpha=1 - beta1) for m_i, g in zip(m, grads)]


def sign_agreement(grads: list[Tensor], m: list[Tensor]) -> list[Tensor]:
    r""":math:`\operatorname{sign}(g)\cdot\operatorname{sign}(m)`: +1 where the gradient agrees with
    its running average, -1 where it disagrees, 0 where either is zero (Bello et al., 2017)."""
    return [torch.sign(g) * torch.sign(m_i) for g, m_i in zip(grads, m)]


def sign_decay_values(
    sign_decay: str | Callable[[int], float] | None,
    steps: list[int],
    decay_steps: int | None = None,
    num_periods: float = 0.5,
) -> list[float]:
    r"""The sign-decay factors :math:`f` for each parameter's step :math:`t` (1 = first step).

    ``sign_decay`` is ``None`` (no decay, :math:`f \equiv 1`), ``"linear"``
    (:func:`linear_sign_decay`) or ``"cosine"`` (:func:`cosine_sign_decay`) over ``decay_steps``,
    or any pure function of the number of steps already *completed*. Either way the first update
    uses :math:`f(0)` — TensorFlow's convention (``tf.contrib.opt`` evaluates the decay at the
    global step before incrementing it).
    """
    if sign_decay is None:
        return [1.0 for _ in steps]
    if sign_decay == "linear":
        return [linear_sign_decay(t - 1, decay_steps) for t in steps]
    if sign_decay == "cosine":
        return [cosine_sign_decay(t - 1, decay_steps, num_periods) for t in steps]
    return [sign_decay(t - 1) for t in steps]


def power_sign_scale(
    grads: list[Tensor], agreement: list[Tensor], base: float, decays: list[float]
) -> list[Tensor]:
    r"""PowerSign's update :math:`\alpha^{f(t)\,\operatorname{sign}(g)\operatorname{sign}(m)}\, g`.

    Where gradient and momentum agree the step is multiplied by :math:`\alpha^{f}` (``base``, e in
    the paper), where they disagree it is divided by it, where either is zero it is left alone.
    The exponent :math:`f s` takes only the values :math:`f, 0, -f`, so the factor is *picked*
    among :math:`\alpha^{f}, 1, \alpha^{-f}` rather than exponentiated per element (TensorFlow's
    ``ApplyPowerSign`` computes :math:`\exp(\ln\alpha\cdot f s)` per element: the same values
    up to rounding, at the cost of an ``exp`` per element). ``decays`` holds :math:`f(t)` per
    parameter (see :func:`sign_decay_values`).
    """
    out = []
    for g, a, f in zip(grads, agreement, decays):
        up, down = base**f, base ** (-f)
        scale = torch.where(a > 0, up, torch.where(a < 0, down, torch.ones_like(g)))
        out.append(scale.mul_(g))
    return out


def add_sign_scale(
    grads: list[Tensor], agreement: list[Tensor], alpha: float, decays: list[float]
) -> list[Tensor]:
    r"""AddSign's update :math:`(\alpha + f(t)\,\operatorname{sign}(g)\operatorname{sign}(m))\, g`.

    With :math:`\alpha = 1` (the paper's choice) a coordinate whose gradient agrees with its
    momentum gets a double step, one that disagrees gets no step at all.
    """
    return [(a * f).add_(alpha).mul_(g) for g, a, f in zip(grads, agreement, decays)]


def linear_sign_decay(t: int, decay_steps: int) -> float:
    r"""Linear sign decay :math:`f(t) = \max(0,\ 1 - t/T)` with :math:`T` = ``decay_steps``.

    A pure function of the number of completed steps ``t``: 1 at the start, 0 from :math:`T` on,
    so PowerSign/AddSign turn into plain SGD by the end of training (Bello et al., 2017; the same
    formula as ``tf.contrib.opt.sign_decay.get_linear_decay_fn``). The optimizers take it as
    ``sign_decay="linear", decay_steps=T``.
    """
    t = min(t, decay_steps)
    return max(0.0, (decay_steps - t) / decay_steps)


def cosine_sign_decay(t: int, decay_steps: int, num_periods: float = 0.5) -> float:
    r"""Cosine (cyclical) sign decay :math:`f(t) = \tfrac12\,(1 + \cos(2\pi n\, t/T))`.

    :math:`n` = ``num_periods``, :math:`T` = ``decay_steps``, ``t`` clipped at :math:`T`. With the
    default :math:`n = 1/2` it is one half cosine from 1 down to 0 at :math:`T`; with
    :math:`n > 1/2` it oscillates, the cyclical decay of Bello et al. (2017). Same formula as
    ``tf.contrib.opt.sign_decay.get_cosine_decay_fn`` (without its ``zero_after`` option). The
    optimizers take it as ``sign_decay="cosine", decay_steps=T, num_periods=n``.
    """
    t = min(t, decay_steps)
    return 0.5 * (1.0 + math.cos(2.0 * math.pi * num_periods * t / decay_steps))


def restart_sign_decay(t: int, decay_steps: int, num_periods: float = 1.0) -> float:
    r"""Restart sign decay :math:`f(t) = \tfrac12\,\big(1 + \cos(\pi\,((n\,t) \bmod T)/T)\big)`.

    :math:`n` = ``num_periods``, :math:`T` = ``decay_steps``, ``t`` clipped at :math:`T`: a half
    cosine from 1 towards 0 that starts again at 1 every :math:`T/n` steps, the restart decay of
    Bello et al. (2017), after SGDR's warm restarts (Loshchilov & Hutter, 2017). Same formula as
    ``tf.contrib.opt.sign_decay.get_restart_decay_fn`` (without ``zero_after``). Not one of the
    named decays of the optimizers: pass ``sign_decay=lambda t: restart_sign_decay(t, T, n)``.
    """
    t = min(t, decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * ((num_periods * t) % decay_steps) / decay_steps))
