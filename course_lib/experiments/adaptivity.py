r"""Per-coordinate learning rates, measured (chapters 03 AdaGrad/RMSprop and 04 Adam).

The lessons make claims about *effective learning rates*: AdaGrad's decays like :math:`1/\sqrt t`
and never recovers from one huge gradient, RMSprop forgets it, bias correction removes the
:math:`1-\beta^t` shrinkage of a zero-initialised average.

- :func:`effective_lrs`: feed any optimizer a *prescribed* gradient sequence on a single
  coordinate and record the effective learning rate :math:`|\Delta w_t| / |g_t|` of every step
  (for SGD it is the lr; for AdaGrad :math:`\eta/(\sqrt{G_t}+\epsilon)`). With
  :func:`spike_gradients` this is the "inject one huge gradient" experiment.
- :func:`simulate_ema`: Monte-Carlo estimate of :math:`\mathbb E[v_t]` for a zero-initialised
  EMA of i.i.d. gradients (or their squares), to compare with :math:`(1-\beta^t)\,\mathbb E[g^2]`.
- :func:`spike_recovery_steps` and :func:`recovery_steps`: how long an exponential moving average
  of squared gradients needs to forget one huge gradient, predicted in closed form and measured.
- :func:`average_weights`: the weight each past squared gradient carries in an optimizer's second
  moment, read off the optimizer's own state.

Everything is float64, seeded and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.train import make_optimizer

__all__ = [
    "signed_steps",
    "EMASimulation",
    "average_weights",
    "effective_lrs",
    "recovery_steps",
    "simulate_ema",
    "spike_gradients",
    "spike_recovery_steps",
]

DTYPE = torch.float64


def spike_gradients(
    steps: int,
    spike_at: int | None = None,
    spike: float = 100.0,
    base: float = 1.0,
    *,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A gradient sequence: ``base`` (plus Gaussian ``noise``), with one ``spike`` at ``spike_at``.

    ``spike_at`` is a 0-based step index (``None``: no spike). The spike *replaces* the gradient
    of that step, e.g. an exploding gradient from a bad batch.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if spike_at is not None and not 0 <= spike_at < steps:
        raise ValueError(f"spike_at must be in [0, {steps}), got {spike_at!r}")
    rng = np.random.default_rng(seed)
    g = base + noise * rng.standard_normal(steps)
    if spike_at is not None:
        g[spike_at] = spike
    return g


def signed_steps(
    optimizer: Any,
    grads: Sequence[float] | np.ndarray,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **optimizer_kwargs: Any,
) -> np.ndarray:
    r"""Feed ``optimizer`` the gradients ``grads``; return its signed steps :math:`w_{t-1} - w_t`.

    ``grads`` has shape ``(T,)`` (one coordinate) or ``(T, d)`` (``d`` coordinates stepped
    together). At step ``t`` the parameter's gradient is *set* to ``grads[t]`` (there is no loss:
    the gradient sequence is the experiment) and the optimizer steps. A step is positive when it
    moves against a positive gradient. ``optimizer`` is a class plus ``**optimizer_kwargs`` or a
    factory ``params -> optimizer`` (as everywhere in the course); ``scheduler`` an optional
    factory ``optimizer -> LRScheduler``, stepped after every step. Returns an array of the shape
    of ``grads``.
    """
    g_all = torch.as_tensor(np.asarray(grads, dtype=float), dtype=DTYPE)
    if g_all.ndim not in (1, 2) or g_all.shape[0] < 1:
        raise ValueError(f"grads must have shape (T,) or (T, d), got {tuple(g_all.shape)}")
    squeeze = g_all.ndim == 1
    if squeeze:
        g_all = g_all[:, None]
    w = torch.zeros(g_all.shape[1], dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [w], **optimizer_kwargs)
    sched = scheduler(opt) if scheduler is not None else None
    points = torch.empty(g_all.shape[0] + 1, g_all.shape[1], dtype=DTYPE)
    points[0] = w.detach()
    for t in range(g_all.shape[0]):
        w.grad = g_all[t].clone()
        opt.step()
        if sched is not None:
            sched.step()
        points[t + 1] = w.detach()
    steps = (points[:-1] - points[1:]).numpy()
    return steps[:, 0] if squeeze else steps


def effective_lrs(
    optimizer: Any,
    grads: Sequence[float] | np.ndarray,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **optimizer_kwargs: Any,
) -> np.ndarray:
    r"""Run ``optimizer`` on a parameter fed the gradients ``grads``; return :math:`|\Delta w|/|g|`.

    The steps are :func:`signed_steps` (same arguments); the effective learning rate of step
    ``t`` is :math:`|w_{t+1} - w_t| / |g_t|` (NaN where :math:`g_t = 0`). Returns an array of the
    shape of ``grads``.

    For SGD the result is the learning rate itself; for AdaGrad on a constant gradient it is
    :math:`\eta/\sqrt t`; for Adam on a constant gradient it is :math:`\eta/|g|`.
    """
    dw = np.abs(signed_steps(optimizer, grads, scheduler=scheduler, **optimizer_kwargs))
    g_abs = np.abs(np.asarray(grads, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g_abs != 0, dw / g_abs, np.nan)


@dataclass
class EMASimulation:
    r"""Monte-Carlo estimate of :math:`\mathbb E[v_t]` for a zero-initialised EMA.

    ``t`` (1-based steps), ``mean`` and ``sem`` (its standard error) over ``runs`` independent
    runs, the exact ``expected`` value :math:`(1-\beta^t)\,\mathbb E[x]` and the stationary
    target :math:`\mathbb E[x]` (:math:`x = g^2` for the second moment, :math:`x = g` for the
    first).
    """

    beta: float
    t: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    expected: np.ndarray
    target: float
    runs: int

    @property
    def z(self) -> np.ndarray:
        """(mean − expected) / sem at every step: standard normal if the formula is right."""
        return (self.mean - self.expected) / self.sem

    @property
    def corrected(self) -> np.ndarray:
        r"""The bias-corrected mean :math:`\overline{v_t}/(1-\beta^t)` (≈ ``target`` at every t)."""
        return self.mean / (1 - self.beta**self.t)


def simulate_ema(
    beta: float,
    steps: int,
    runs: int = 4000,
    *,
    mean: float = 0.5,
    std: float = 1.0,
    square: bool = True,
    seed: int = 0,
) -> EMASimulation:
    r"""Simulate ``runs`` zero-initialised EMAs of i.i.d. Gaussian gradients for ``steps`` steps.

    Gradients are :math:`g \sim \mathcal N(\text{mean}, \text{std}^2)`. With ``square=True`` the
    EMA is Adam's second moment :math:`v_t = \beta v_{t-1} + (1-\beta) g_t^2`, whose expectation is
    :math:`(1-\beta^t)\,\mathbb E[g^2]` with :math:`\mathbb E[g^2] = \text{mean}^2 + \text{std}^2`;
    with ``square=False`` it is the first moment :math:`m_t` and :math:`\mathbb E[m_t] =
    (1-\beta^t)\,\text{mean}`.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    if not isinstance(steps, int) or steps < 1 or not isinstance(runs, int) or runs < 2:
        raise ValueError(f"need steps >= 1 and runs >= 2, got steps={steps!r}, runs={runs!r}")
    gen = torch.Generator().manual_seed(seed)
    v = torch.zeros(runs, dtype=DTYPE)
    means, sems = np.empty(steps), np.empty(steps)
    for k in range(steps):
        g = mean + std * torch.randn(runs, generator=gen, dtype=DTYPE)
        v.mul_(beta).add_(g * g if square else g, alpha=1 - beta)
        means[k] = v.mean().item()
        sems[k] = v.std().item() / math.sqrt(runs)
    t = np.arange(1, steps + 1)
    target = mean**2 + std**2 if square else mean
    return EMASimulation(
        beta=beta,
        t=t,
        mean=means,
        sem=sems,
        expected=(1 - beta**t) * target,
        target=target,
        runs=runs,
    )


# ---------------------------------------------------------------------------------------------
# Forgetting a spike
# ---------------------------------------------------------------------------------------------


def spike_recovery_steps(beta: float, spike_ratio: float, tolerance: float = 0.01) -> int:
    r"""Steps an EMA of squared gradients needs to forget one spike, in closed form.

    The setting: gradients of constant size :math:`c` for long enough that the average has
    settled, :math:`v = c^2` (many multiples of :math:`1/(1-\beta)` steps), then *one* gradient
    of size :math:`s = r c` (``spike_ratio`` :math:`r`), then size :math:`c` again. The average
    is linear in the squared gradients, so :math:`n` steps after the spike (:math:`n = 0` is the
    spike's own step) it exceeds the spike-free average by exactly the spike's decayed excess:

    .. math::
        v_n = c^2 + (1-\beta)\,\beta^n\,(s^2 - c^2).

    The effective learning rate :math:`\eta/\sqrt{v_n}` (ε neglected) is the spike-free one times
    :math:`\sqrt{c^2/v_n}`; it is back within a factor :math:`1-\delta` (``tolerance``
    :math:`\delta`) once :math:`(1-\beta)\beta^n(r^2-1) \le (1-\delta)^{-2} - 1`, i.e. after

    .. math::
        n^\star = \left\lceil \frac{\ln\!\big[(1-\beta)(r^2-1)\,/\,((1-\delta)^{-2}-1)\big]}
                                   {\ln(1/\beta)} \right\rceil
        \;\approx\; \frac{1}{1-\beta}\,
        \ln\frac{(1-\beta)(r^2-1)}{(1-\delta)^{-2}-1}

    steps (0 when the logarithm is negative: the spike never pushed the rate below the band).
    So the recovery time is the averaging horizon :math:`1/(1-\beta)` times a *logarithm* of the
    spike's energy and of the tolerance: "a few horizons" is right only for one spike size and
    one criterion. With :math:`\beta = 0.99`, a spike 100 times the typical gradient and a 1 %
    band, :math:`n^\star` is about 8.5 horizons; a spike 3 times the typical gradient and a 10 %
    band needs none. The same formula holds for Adam's second moment (:math:`\beta = \beta_2`)
    once :math:`1-\beta_2^t \approx 1`.
    """
    if not 0 < beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta!r}")
    if not spike_ratio >= 1:
        raise ValueError(f"spike_ratio must be >= 1 (a spike is larger), got {spike_ratio!r}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    excess = (1 - beta) * (spike_ratio**2 - 1) / ((1 - tolerance) ** -2 - 1)
    if excess <= 1:
        return 0
    return math.ceil(math.log(excess) / math.log(1 / beta))


def recovery_steps(
    with_spike: np.ndarray, without_spike: np.ndarray, spike_at: int, tolerance: float = 0.01
) -> int | None:
    r"""Measured :func:`spike_recovery_steps`: when a run's effective rate is back in the band.

    ``with_spike`` and ``without_spike`` are :func:`effective_lrs` of the same optimizer on the
    same gradient stream with and without a spike at the 0-based step ``spike_at``. Returns the
    smallest :math:`n \ge 0` such that from step ``spike_at + n`` to the end of the run the
    ratio ``with_spike / without_spike`` stays :math:`\ge 1 - \delta`, or ``None`` if the run
    ends before that (AdaGrad's sum never forgets, so on a long enough stream it is ``None``).
    """
    with_spike, without_spike = np.asarray(with_spike), np.asarray(without_spike)
    if with_spike.shape != without_spike.shape or with_spike.ndim != 1:
        raise ValueError("with_spike and without_spike must be 1-D arrays of the same length")
    if not 0 <= spike_at < len(with_spike):
        raise ValueError(f"spike_at must be in [0, {len(with_spike)}), got {spike_at!r}")
    below = with_spike[spike_at:] / without_spike[spike_at:] < 1 - tolerance
    if below[-1]:
        return None
    return int(np.flatnonzero(below)[-1] + 1) if below.any() else 0


# ---------------------------------------------------------------------------------------------
# Which past gradients an average remembers
# ---------------------------------------------------------------------------------------------


def average_weights(
    optimizer: Any, steps: int, state_key: str, **optimizer_kwargs: Any
) -> np.ndarray:
    r"""The weight of each past squared gradient in an optimizer's second moment after ``steps``.

    Every second moment in this chapter is *linear* in the squared gradients,
    :math:`v_T = \sum_{s=1}^{T} a_{s,T}\, g_s^2`. To read the weights :math:`a_{s,T}` off the
    optimizer itself, run it on ``steps`` coordinates where coordinate :math:`s` receives the
    gradient 1 at step :math:`s` and 0 at every other step: after the last step, coordinate
    :math:`s` of the state ``state_key`` holds exactly :math:`a_{s,T}`. Returns
    :math:`(a_{1,T}, \dots, a_{T,T})`.

    RMSprop (:math:`v \leftarrow \beta v + (1-\beta) g^2`): :math:`a_{s,T} = (1-\beta)\beta^{T-s}`,
    recent gradients weigh most. AdaGrad's sum: all 1. Online RMSprop with :math:`\gamma = 1`:
    all :math:`1/T` (the plain average); with :math:`\gamma < 1` the *oldest* gradients weigh
    most (:math:`a_{s,T} \approx \gamma\, s^{\gamma-1} T^{-\gamma}`): each new gradient enters with
    weight :math:`\gamma/t`, less than the plain average's :math:`1/t`.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    w = torch.zeros(steps, dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [w], **optimizer_kwargs)
    one_hot = torch.eye(steps, dtype=DTYPE)
    for t in range(steps):
        w.grad = one_hot[t].clone()
        opt.step()
    state = opt.state[w]
    if state_key not in state:
        raise KeyError(f"state_key {state_key!r} not in the optimizer's state {sorted(state)}")
    return state[state_key].detach().numpy().copy()
