r"""Blocks of the frontier optimizers (chapters 03, 08, 09, 10).

* **Sign updates** — Lion, PowerSign, AddSign: the direction is (partly) a sign, so the size of a
  step no longer follows the size of the gradient.
* **Adaptive inertia** — Adai: a per-coordinate momentum coefficient computed from
  :math:`\hat v` relative to its mean over *all* parameters.
* **Gradient-difference momentum** — Adan: an EMA of :math:`g_k - g_{k-1}` (Nesterov without the
  extra gradient evaluation) and the proximal form of weight decay.
* **Online second moments** — Mukkamala & Hein (2017): RMSprop with :math:`\beta_t = 1-\gamma/t`,
  which *is* AdaGrad for :math:`\gamma = 1`, and the strongly convex variants that divide by
  :math:`v` instead of :math:`\sqrt v`.

Like every block they take and return *lists* of tensors (one per parameter) and never write into
the gradients they are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from course_lib.optim.blocks.core import is_zero, lazy_state

__all__ = [
    # sign updates: Lion, PowerSign, AddSign
    "add_sign_scale",
    "cosine_sign_decay",
    "lion_interpolation",
    "linear_sign_decay",
    "power_sign_scale",
    "sign",
    "sign_agreement",
    "sign_decay_values",
    # adaptive inertia: Adai
    "adaptive_inertia",
    "global_mean",
    "inertia_momentum",
    "sum_and_count",
    # gradient-difference momentum: Adan
    "adan_direction",
    "adan_lookahead_grad",
    "count_group_step",
    "grad_difference",
    "prox_weight_decay",
    # online and strongly convex second moments: OnlineRMSprop, SC-AdaGrad, SC-RMSprop
    "online_ema_sq",
    "online_rms_direction",
    "running_sum_sq",
    "sc_direction",
]


# --------------------------------------------------------------------------------------------
# Sign updates
# --------------------------------------------------------------------------------------------


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
    sign_decay: Callable[[int], float] | None, steps: list[int]
) -> list[float]:
    r"""The sign-decay factors :math:`f` for each parameter's step :math:`t` (1 = first step).

    ``sign_decay`` is a pure function of the number of steps already *completed*, so the first
    update uses :math:`f(0)` — TensorFlow's convention (``tf.contrib.opt`` evaluates it at the
    global step before incrementing it). ``None`` means no decay, :math:`f \equiv 1`.
    """
    if sign_decay is None:
        return [1.0 for _ in steps]
    return [float(sign_decay(t - 1)) for t in steps]


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
        up, down = math.exp(math.log(base) * f), math.exp(-math.log(base) * f)
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
    formula as ``tf.contrib.opt.sign_decay.get_linear_decay_fn``). Bind ``decay_steps`` with
    ``functools.partial(linear_sign_decay, decay_steps=T)`` to pass it as ``sign_decay``.
    """
    t = min(t, decay_steps)
    return max(0.0, (decay_steps - t) / decay_steps)


def cosine_sign_decay(t: int, decay_steps: int, num_periods: float = 0.5) -> float:
    r"""Cosine (cyclical) sign decay :math:`f(t) = \tfrac12\,(1 + \cos(2\pi n\, t/T))`.

    :math:`n` = ``num_periods``, :math:`T` = ``decay_steps``, ``t`` clipped at :math:`T`. With the
    default :math:`n = 1/2` it is one half cosine from 1 down to 0 at :math:`T`; with
    :math:`n > 1/2` it oscillates, the cyclical decay of Bello et al. (2017). Same formula as
    ``tf.contrib.opt.sign_decay.get_cosine_decay_fn`` (without its ``zero_after`` option).
    """
    t = min(t, decay_steps)
    return 0.5 * (1.0 + math.cos(2.0 * math.pi * num_periods * t / decay_steps))


# --------------------------------------------------------------------------------------------
# Adaptive inertia (Adai)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Gradient-difference momentum (Adan)
# --------------------------------------------------------------------------------------------


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
    if is_zero(weight_decay):
        return
    for p in params:
        p.div_(1 + lr * weight_decay)


# --------------------------------------------------------------------------------------------
# Online and strongly convex second moments (Mukkamala & Hein, 2017)
# --------------------------------------------------------------------------------------------


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
    r"""The online RMSprop step (Mukkamala & Hein, Algorithm 3) with :math:`\alpha` factored out.

    The paper uses a decaying step :math:`\alpha_t = \alpha/\sqrt t` and damping
    :math:`\epsilon_t = \delta/\sqrt t`:

    .. math::
        \alpha_t\,\frac{g}{\sqrt{v_t} + \epsilon_t} = \alpha\,\frac{g}{\sqrt{t\, v_t} + \delta},

    which is what is returned divided by :math:`\alpha` (use ``apply_update(params, d, alpha)``).
    For :math:`\gamma = 1`, :math:`t v_t = \sum_s g_s^2` and this is AdaGrad's step with
    :math:`\epsilon = \delta` outside the root, exactly as ``torch.optim.Adagrad``.
    """
    return [g / (v_i * t).sqrt_().add_(delta) for g, v_i, t in zip(grads, v, steps)]


def running_sum_sq(
    states: list[dict[str, Any]], grads: list[Tensor], key: str = "v"
) -> list[Tensor]:
    r"""AdaGrad's accumulator :math:`v_t = v_{t-1} + g_t^2` (the sum, never forgetting).

    Returns the state buffers.
    """
    v = lazy_state(states, key, grads)
    for v_i, g in zip(v, grads):
        v_i.addcmul_(g, g)
    return v


def sc_direction(
    grads: list[Tensor], s: list[Tensor], xi1: float, xi2: float
) -> list[Tensor]:
    r"""Strongly convex scaling :math:`g / (s + \delta)`, :math:`\delta = \xi_2 e^{-\xi_1 s}`.

    No square root: for strongly convex losses dividing by the accumulated squares themselves gives
    :math:`O(\log T)` regret (Mukkamala & Hein, 2017). :math:`s` is the sum of squared gradients:
    :math:`v_t` for SC-AdaGrad, :math:`t\, v_t` for SC-RMSprop (then :math:`\frac{\alpha}{t}\cdot
    \frac{g}{v_t + \delta_t/t}` is the same step). The damping :math:`\delta` is large while
    :math:`s` is small and vanishes as it grows, as in the authors' code
    (``mmahesh/variants-of-rmsprop-and-adagrad``). Returns new tensors.
    """
    return [g / torch.exp(s_i * -xi1).mul_(xi2).add_(s_i) for g, s_i in zip(grads, s)]
