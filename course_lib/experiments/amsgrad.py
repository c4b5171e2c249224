r"""When adaptive methods break: the FTRL view, Reddi et al.'s online problem, AMSGrad (chapter 06).

**The FTRL view.** An adaptive method with per-coordinate learning rate :math:`\eta_t` (a vector)
is, coordinate by coordinate, *follow the regularized leader* with quadratic regularizers
(McMahan & Streeter 2010; McMahan 2017): the point it plays is the minimizer of the linearized
losses so far plus :math:`\sum_{s\le t} \tfrac{\sigma_s}{2}(x - x_s)^2`, where the strengths add up
to the inverse learning rate,

.. math::

    \sigma_{1:t} = \sum_{s=1}^{t} \sigma_s = \frac{1}{\eta_t}, \qquad
    \sigma_t = \frac{1}{\eta_t} - \frac{1}{\eta_{t-1}} \quad (1/\eta_0 = 0).

For AdaGrad :math:`1/\eta_t = \sqrt{\sum_{s\le t} g_s^2}/\alpha` can only grow, so every
:math:`\sigma_t \ge 0`. For RMSprop (constant :math:`\alpha`, no bias correction)
:math:`1/\eta_t = \sqrt{v_t}/\alpha` with :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2`, and
:math:`\sigma_t < 0` exactly when :math:`v_t < v_{t-1}`, i.e. when :math:`g_t^2 < v_{t-1}`: a
*negative* regularizer, which pushes the iterate away from where it has been. Reddi, Kale &
Kumar (2018, Sec. 2) write the same quantity as the matrix
:math:`\Gamma_{t+1} = \sqrt{V_{t+1}}/\alpha_{t+1} - \sqrt{V_t}/\alpha_t` and show that Adam's
analysis needs it positive semi-definite. :func:`inverse_lr_increments` computes :math:`\sigma_t`
from measured effective learning rates.

**Reddi et al.'s online problem** (Sec. 3): losses :math:`f_t(x) = C x` when
:math:`t \bmod 3 = 1`, else :math:`-x`, on :math:`\mathcal F = [-1, 1]`, :math:`C > 2`. Every
three steps the losses add up to :math:`(C-2)x`, so the best fixed point is :math:`x = -1`.
:func:`online_linear` runs any optimizer on such a sequence of linear losses
:math:`f_t(x) = c_t x`, projecting onto :math:`[-1, 1]` after every step (in one dimension the
paper's weighted projection :math:`\Pi_{\mathcal F,\sqrt{\hat V_t}}` is plain clipping) with the
paper's step size :math:`\alpha_t = \alpha/\sqrt t`, and measures the regret
:math:`R_T = \sum_t f_t(x_t) - \min_{x\in\mathcal F}\sum_t f_t(x)`.

**The failure region.** Theorems 2 and 3 of the paper: for *every* :math:`\beta_1, \beta_2 \in
[0, 1)` with :math:`\beta_1 < \sqrt{\beta_2}` there is an online (Thm 2) and a stochastic (Thm 3)
convex problem on which Adam does not converge. The problem of Theorem 2 is the family
:math:`f_t(x) = C x` when :math:`t \bmod C = 1`, else :math:`-x`, with :math:`C` large enough
for the betas. :func:`adam_online_sweep` runs Adam (or AMSGrad) on that family for a grid of
betas and several :math:`C` at once (vectorized NumPy; tested equal to ``course_lib.optim.Adam``).

**AMSGrad's conventions.** :func:`v_hat_sequences` feeds a gradient sequence to the blocks of
:mod:`course_lib.optim.blocks.amsgrad` and returns the :math:`\hat v_t` each convention divides
by: Adam's bias-corrected EMA, PyTorch's max of the raw EMA divided by the current correction
(post-correction), optax's max of the corrected EMA (pre-correction), and the memory-free max.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.optim import blocks
from course_lib.train import make_optimizer

__all__ = [
    "CONVENTION_LABELS",
    "OnlineRun",
    "ftrl_proximal_iterates",
    "adam_online_sweep",
    "inverse_lr_increments",
    "inverse_lrs",
    "online_linear",
    "periodic_coefficients",
    "v_hat_sequences",
]

DTYPE = torch.float64

# The v̂ each name of v_hat_sequences stands for.
CONVENTION_LABELS = {
    "adam": "Adam: v_t / (1 − β2ᵗ)",
    "raw": "max of raw v, / (1 − β2ᵗ) (PyTorch)",
    "corrected": "max of v_t / (1 − β2ᵗ) (optax)",
    "memory_free": "memory-free max, / (1 − β2ᵗ)",
}


def inverse_lr_increments(eta: Sequence[float] | np.ndarray) -> np.ndarray:
    r"""The FTRL increments :math:`\sigma_t = 1/\eta_t - 1/\eta_{t-1}` (with :math:`1/\eta_0 = 0`)
    of a sequence of per-coordinate learning rates :math:`\eta_1, \dots, \eta_T`.

    :math:`\sigma_{1:t} = \sum_{s\le t}\sigma_s = 1/\eta_t` is the strength of the quadratic
    regularizer of FTRL at step :math:`t`; a negative :math:`\sigma_t` means the method trusts
    the past *less* than it did one step before.
    """
    eta = np.asarray(eta, dtype=float)
    if eta.ndim != 1 or eta.size == 0 or not np.all(eta > 0):
        raise ValueError("eta must be a non-empty 1-D sequence of positive learning rates")
    return np.diff(1.0 / eta, prepend=0.0)


def ftrl_proximal_iterates(
    grads: Sequence[float] | np.ndarray, inverse_lr: Sequence[float] | np.ndarray, x1: float = 0.0
) -> np.ndarray:
    r"""The iterates of FTRL-Proximal on the linearized losses :math:`g_t x`, unconstrained:

    .. math::

        x_{t+1} = \arg\min_x \Big( \sum_{s\le t} g_s x
        + \sum_{s\le t} \tfrac{\sigma_s}{2} (x - x_s)^2 \Big)
        = \frac{\sum_{s\le t} \sigma_s x_s - \sum_{s\le t} g_s}{\sigma_{1:t}},

    with :math:`\sigma_s` the increments of ``inverse_lr`` (:math:`1/\eta_1, 1/\eta_2, \dots`).
    Solved as written (running sums), not as a gradient step, so that comparing it with an
    optimizer's iterates tests the identity :math:`x_{t+1} = x_t - \eta_t g_t`. Returns
    :math:`x_1, \dots, x_{T+1}`.
    """
    g = np.asarray(grads, dtype=float)
    sigma = np.diff(np.asarray(inverse_lr, dtype=float), prepend=0.0)
    xs = np.empty(g.size + 1)
    xs[0] = x1
    weighted, g_sum, strength = 0.0, 0.0, 0.0
    for t in range(g.size):
        weighted += sigma[t] * xs[t]
        g_sum += g[t]
        strength += sigma[t]
        xs[t + 1] = (weighted - g_sum) / strength
    return xs


def inverse_lrs(
    grads: Sequence[float] | np.ndarray, rule: str, *, lr: float, beta2: float = 0.99
) -> np.ndarray:
    r"""The inverse learning rates :math:`1/\eta_t` of one coordinate, :math:`t = 1..T`, in
    closed form (:math:`\epsilon = 0`, constant ``lr`` :math:`=\alpha`), also at steps where the
    gradient is zero (where a measured :math:`|\Delta w|/|g|` is undefined):

    * ``"adagrad"``: :math:`\sqrt{\sum_{s\le t} g_s^2}/\alpha` (``torch.optim.Adagrad``);
    * ``"rmsprop"``: :math:`\sqrt{v_t}/\alpha`, :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2`
      (``torch.optim.RMSprop`` with ``alpha`` :math:`=\beta_2`, no bias correction).

    The tests check both against the optimizers' measured effective learning rates.
    """
    g = np.asarray(grads, dtype=float)
    if g.ndim != 1 or g.size == 0:
        raise ValueError("grads must be a non-empty 1-D sequence")
    if rule == "adagrad":
        return np.sqrt(np.cumsum(g**2)) / lr
    if rule == "rmsprop":
        v = np.empty_like(g)
        current = 0.0
        for i, g_t in enumerate(g):
            current = beta2 * current + (1 - beta2) * g_t * g_t
            v[i] = current
        return np.sqrt(v) / lr
    raise ValueError(f"rule must be 'adagrad' or 'rmsprop', got {rule!r}")


def periodic_coefficients(C: float, steps: int, period: int = 3) -> np.ndarray:
    r"""The slopes :math:`c_t` of Reddi et al.'s losses :math:`f_t(x) = c_t x`, :math:`t = 1..T`:
    :math:`c_t = C` when :math:`t \bmod \text{period} = 1`, else :math:`-1`.

    ``period=3`` is the problem of Sec. 3 (Theorem 1, :math:`C > 2`); ``period=C`` (an integer
    :math:`C \ge 2`) the family of Theorem 2. In both the best fixed point is :math:`x = -1`.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(period, int) or period < 2:
        raise ValueError(f"period must be an int >= 2, got {period!r}")
    if C <= period - 1:
        raise ValueError(
            f"C must exceed period − 1 = {period - 1} (else −1 is not the best point), got {C}"
        )
    t = np.arange(1, steps + 1)
    return np.where(t % period == 1, float(C), -1.0)


@dataclass(frozen=True)
class OnlineRun:
    r"""One run on linear losses :math:`f_t(x) = c_t x`, :math:`x \in [-1, 1]`.

    ``x[t-1]`` is :math:`x_t`, the point played at step :math:`t` (before :math:`c_t` is seen);
    ``x`` has :math:`T + 1` entries, the last one the point after step :math:`T`. ``regret[t-1]``
    is :math:`R_t = \sum_{s\le t} c_s x_s - \min_{|x|\le 1} \sum_{s\le t} c_s x
    = \sum_{s\le t} c_s x_s + |\sum_{s\le t} c_s|`.
    """

    x: np.ndarray
    coefficients: np.ndarray
    regret: np.ndarray

    @property
    def average_regret(self) -> np.ndarray:
        """:math:`R_t / t`: it tends to 0 for a method that learns."""
        return self.regret / np.arange(1, len(self.regret) + 1)


def online_linear(
    optimizer: Any,
    coefficients: Sequence[float] | np.ndarray,
    *,
    lr: float,
    decay: bool = True,
    x0: float = 0.0,
    **optimizer_kwargs: Any,
) -> OnlineRun:
    r"""Run ``optimizer`` on the losses :math:`f_t(x) = c_t x`, projected onto :math:`[-1, 1]`.

    At step :math:`t` the gradient is :math:`c_t`, the learning rate :math:`\alpha_t = \alpha/\sqrt
    t` (``decay=True``, the step size of Reddi et al.'s theorems; ``lr`` is :math:`\alpha`) or
    :math:`\alpha` (``decay=False``), and after the step :math:`x` is clipped to :math:`[-1, 1]`.
    ``optimizer``: a class plus ``**optimizer_kwargs``, or a factory ``params -> optimizer``.
    """
    c = np.asarray(coefficients, dtype=float)
    if c.ndim != 1 or c.size == 0:
        raise ValueError("coefficients must be a non-empty 1-D sequence")
    if not -1.0 <= x0 <= 1.0:
        raise ValueError(f"x0 must lie in [-1, 1], got {x0}")
    x = torch.tensor([float(x0)], dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [x], lr=lr, **optimizer_kwargs)
    xs = np.empty(c.size + 1)
    xs[0] = x0
    for t, c_t in enumerate(c, start=1):
        if decay:
            for group in opt.param_groups:
                group["lr"] = lr / np.sqrt(t)
        x.grad = torch.tensor([c_t], dtype=DTYPE)
        opt.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
        xs[t] = x.item()
    played = c * xs[:-1]
    regret = np.cumsum(played) + np.abs(np.cumsum(c))
    return OnlineRun(x=xs, coefficients=c, regret=regret)


def adam_online_sweep(
    beta1s: Sequence[float],
    beta2s: Sequence[float],
    Cs: Sequence[int],
    *,
    lr: float = 0.5,
    amsgrad: bool = False,
    periods: int = 30,
    min_steps: int = 3000,
    x0: float = 0.0,
    eps: float = 1e-8,
) -> np.ndarray:
    r"""Adam (PyTorch's form, bias-corrected) on Theorem 2's family, for a grid of betas.

    For every :math:`C` in ``Cs`` the losses are :math:`f_t(x) = C x` when :math:`t \bmod C =
    1`, else :math:`-x` (best point :math:`-1`), for ``max(periods·C, min_steps)`` steps with
    :math:`\alpha_t = \alpha/\sqrt t` and clipping to :math:`[-1, 1]`; all
    :math:`(\beta_1, \beta_2)` pairs run at once, vectorized. ``amsgrad=True`` divides by the
    running maximum of the raw :math:`v` (PyTorch's convention). Returns the array of shape
    ``(len(beta1s), len(beta2s))`` of the *worst* outcome over ``Cs``: the largest mean of
    :math:`x` over the last period (+1 is the worst point, −1 the best).
    """
    b1 = np.asarray(beta1s, dtype=float)[:, None] * np.ones((1, len(beta2s)))
    b2 = np.ones((len(beta1s), 1)) * np.asarray(beta2s, dtype=float)[None, :]
    if np.any((b1 < 0) | (b1 >= 1) | (b2 < 0) | (b2 >= 1)):
        raise ValueError("every beta must lie in [0, 1)")
    worst = np.full(b1.shape, -np.inf)
    for C in Cs:
        if not (isinstance(C, (int, np.integer)) and C >= 2):
            raise ValueError(f"every C must be an int >= 2, got {C!r}")
        steps = max(periods * int(C), min_steps)
        steps -= steps % C  # whole periods, so the last period is complete
        x = np.full(b1.shape, float(x0))
        m = np.zeros_like(x)
        v = np.zeros_like(x)
        v_max = np.zeros_like(x)
        tail = np.zeros_like(x)
        for t in range(1, steps + 1):
            g = float(C) if t % C == 1 else -1.0
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            if amsgrad:
                v_max = np.maximum(v_max, v)
            denom = np.sqrt((v_max if amsgrad else v) / (1 - b2**t)) + eps
            x = np.clip(x - lr / np.sqrt(t) * (m / (1 - b1**t)) / denom, -1.0, 1.0)
            if t > steps - C:
                tail += x
        worst = np.maximum(worst, tail / C)
    return worst


def v_hat_sequences(
    grads: Sequence[float] | np.ndarray,
    beta2: float,
    conventions: Sequence[str] = ("adam", "raw", "corrected", "memory_free"),
) -> dict[str, np.ndarray]:
    r"""The :math:`\hat v_t` that Adam and each AMSGrad convention divide by, for a 1-D gradient
    sequence, computed by the blocks of :mod:`course_lib.optim.blocks` (the code the optimizers
    run). ``"adam"``: :math:`v_t/(1-\beta_2^t)`; ``"raw"``, ``"corrected"``, ``"memory_free"``:
    :func:`course_lib.optim.blocks.amsgrad_v_hat`.
    """
    g = np.asarray(grads, dtype=float)
    if g.ndim != 1 or g.size == 0:
        raise ValueError("grads must be a non-empty 1-D sequence")
    out = {}
    for name in conventions:
        states: list[dict] = [{}]
        values = np.empty(g.size)
        for t, g_t in enumerate(g, start=1):
            grad = [torch.tensor([g_t], dtype=DTYPE)]
            if name == "adam":
                v = blocks.ema_sq(states, "v", grad, beta2)
                v_hat = blocks.unbias(v, blocks.bias_correction(beta2, [t]))
            else:
                v_hat = blocks.amsgrad_v_hat(states, grad, beta2, [t], name)
            values[t - 1] = v_hat[0].item()
        out[name] = values
    return out
