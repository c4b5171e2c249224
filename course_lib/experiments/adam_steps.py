r"""How large Adam's steps are: without bias correction, after a silence, after a drop, under noise.

Adam's step is :math:`\eta\,\hat m_t/(\sqrt{\hat v_t}+\epsilon)`. Its size is a ratio of two
averages, and every claim chapter 04 makes about it is a claim about that ratio on a gradient
sequence we choose. The functions here compute the ratio in closed form where there is one, and
run the real optimizer where there is not (or to check the closed form).

**Without bias correction** (:func:`uncorrected_factor`). On a constant gradient :math:`g`,
:math:`m_t = (1-\beta_1^t)\,g` and :math:`v_t = (1-\beta_2^t)\,g^2`, so the uncorrected step is

.. math:: \eta\,\frac{m_t}{\sqrt{v_t}} = \eta\,\frac{1-\beta_1^t}{\sqrt{1-\beta_2^t}}\,
          \mathrm{sign}(g) \qquad (\epsilon = 0).

The two biases do not cancel: :math:`3.16\,\eta` at :math:`t = 1` for the default betas, a peak
of :math:`6.57\,\eta` at :math:`t = 12` (:func:`uncorrected_peak`), above :math:`1.5\,\eta`
until :math:`t = 587`. A *larger* :math:`\beta_1` makes it smaller (the numerator grows more
slowly), a larger :math:`\beta_2` makes it larger and longer.

**After a silence** (:func:`silence_then_constant`). A coordinate whose gradient has been exactly
zero for many steps has :math:`m = v = 0` again, but its step counter has run on, so the bias
correction :math:`1-\beta^t` is already 1: when the gradient comes back, Adam restarts *without*
bias correction, and the steps follow the factor above (a rare token's embedding, a unit that was
inactive). Kingma & Ba (2015, Sec. 2.1) bound the step by
:math:`\eta\,(1-\beta_1)/\sqrt{1-\beta_2}` for "the most severe case of sparsity"; that is only
the first step after the silence (:func:`restart_factor` gives every step).

**After a drop** (:func:`readaptation_steps`). When the gradient scale falls from 1 to
:math:`s < 1` after a long stretch (so :math:`\hat v \approx 1`), :math:`\hat v_k \approx
\beta_2^k + (1-\beta_2^k)\,s^2` :math:`k` steps later and, once the momentum has followed
(:math:`\hat m \approx s`), the step is :math:`\eta\, s/\sqrt{\hat v_k}`. It is back to
:math:`c\,\eta` when

.. math:: k = \frac{\ln\!\big((1-s^2)\,/\,(s^2(c^{-2}-1))\big)}{-\ln\beta_2}
          \approx \frac{1}{1-\beta_2}\,\ln\frac{1-s^2}{s^2(c^{-2}-1)} :

about :math:`3.5/(1-\beta_2)` steps for a 10× drop and :math:`c = 1/2`, :math:`1.2/(1-\beta_2)`
for a 3.3× drop, :math:`8.1/(1-\beta_2)` for a 100× drop — the memory :math:`1/(1-\beta_2)` times
a logarithm of the drop. :func:`measured_readaptation` runs Adam to check it.

**Under noise** (:func:`noisy_gradients`, :func:`signed_steps`). For i.i.d. gradients with mean
:math:`\bar g` and standard deviation :math:`\sigma`, :math:`\hat m` averages to :math:`\bar g` and
:math:`\hat v` (a long average) to :math:`\bar g^2+\sigma^2`, so the mean step is

.. math:: \eta\,\frac{\bar g}{\sqrt{\bar g^2+\sigma^2}}
          = \eta\,\frac{\mathrm{SNR}}{\sqrt{1+\mathrm{SNR}^2}}\,\mathrm{sign}(\bar g),
          \qquad \mathrm{SNR} = |\bar g|/\sigma :

:math:`\eta\,\mathrm{sign}(\bar g)` for clean gradients (sign descent),
:math:`\eta\cdot\mathrm{SNR}` for noisy ones. The step measures the gradient's
signal-to-noise ratio, not the curvature.

Everything is float64 and seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from course_lib.experiments.adaptivity import signed_steps
from course_lib.optim import Adam

__all__ = [
    "measured_readaptation",
    "noisy_gradients",
    "readaptation_steps",
    "restart_factor",
    "signed_steps",
    "silence_then_constant",
    "uncorrected_factor",
    "uncorrected_peak",
]


def _check_betas(beta1: float, beta2: float) -> None:
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must be in [0, 1), got beta1={beta1!r}, beta2={beta2!r}")


def uncorrected_factor(beta1: float, beta2: float, steps: int) -> np.ndarray:
    r""":math:`(1-\beta_1^t)/\sqrt{1-\beta_2^t}` for :math:`t = 1, \dots,` ``steps``: Adam's step
    without bias correction on a constant gradient, in units of :math:`\eta` (ε = 0)."""
    _check_betas(beta1, beta2)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    t = np.arange(1, steps + 1, dtype=float)
    return (1 - beta1**t) / np.sqrt(1 - beta2**t)


def uncorrected_peak(beta1: float, beta2: float) -> tuple[int, float]:
    r"""The step :math:`t` at which :func:`uncorrected_factor` is largest, and its value.

    The factor tends to 1 as :math:`t \to \infty`; for :math:`\beta_2 > \beta_1` from above
    (:math:`\approx 1 - \beta_1^t + \beta_2^t/2`), so its maximum is at a finite :math:`t`. The
    search runs over :math:`40/(1-\beta_2)` steps, where :math:`\beta_2^t < 10^{-17}`.
    """
    _check_betas(beta1, beta2)
    horizon = max(100, math.ceil(40 / (1 - beta2)))
    factor = uncorrected_factor(beta1, beta2, horizon)
    k = int(np.argmax(factor))
    return k + 1, float(factor[k])


def restart_factor(beta1: float, beta2: float, silence: int, steps: int) -> np.ndarray:
    r"""Adam's step (units of η, ε = 0) at the steps :math:`k = 1, \dots,` ``steps`` after
    ``silence`` zero gradients, on a constant gradient: :math:`m` and :math:`v` restart from 0,
    the counter from :math:`Q` = ``silence``, so

    .. math:: \frac{(1-\beta_1^k)/(1-\beta_1^{Q+k})}{\sqrt{(1-\beta_2^k)/(1-\beta_2^{Q+k})}},

    which is :func:`uncorrected_factor` once :math:`\beta_2^Q` is negligible."""
    _check_betas(beta1, beta2)
    k = np.arange(1, steps + 1, dtype=float)
    corrected_m = (1 - beta1**k) / (1 - beta1 ** (silence + k))
    corrected_v = (1 - beta2**k) / (1 - beta2 ** (silence + k))
    return corrected_m / np.sqrt(corrected_v)


def silence_then_constant(silence: int, active: int, value: float = 1.0) -> np.ndarray:
    """``silence`` zero gradients, then ``active`` gradients equal to ``value``."""
    if not (isinstance(silence, int) and silence >= 0 and isinstance(active, int) and active > 0):
        raise ValueError(f"need silence >= 0 and active > 0 steps, got {silence!r}, {active!r}")
    return np.r_[np.zeros(silence), np.full(active, float(value))]


def readaptation_steps(beta2: float, drop: float, criterion: float = 0.5) -> float:
    r"""Steps after a drop of the gradient scale from 1 to ``drop`` until Adam's step is back to
    ``criterion`` × η (steady state before the drop, momentum already adapted; see the module)."""
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2!r}")
    if not 0 < drop < criterion < 1:
        raise ValueError(f"need 0 < drop < criterion < 1, got drop={drop!r}, {criterion=!r}")
    ratio = (1 - drop**2) / (drop**2 * (criterion**-2 - 1))
    return math.log(ratio) / -math.log(beta2)


def measured_readaptation(
    beta2: float,
    drops: Sequence[float],
    criterion: float = 0.5,
    *,
    beta1: float = 0.9,
    warmup: int | None = None,
    optimizer: Any = None,
) -> np.ndarray:
    r"""Run Adam through a drop of the gradient scale and count the steps until it recovers.

    One coordinate per entry of ``drops``: gradient 1 for ``warmup`` steps (default
    :math:`10/(1-\beta_2)`, so :math:`\hat v` has settled at 1), then ``drop``. Right after the
    drop the momentum still carries the old scale, the step falls below ``criterion`` × η within
    a few dozen steps, and climbs back as :math:`\hat v` forgets; the result is, per coordinate,
    the number of steps after the drop at which it is back to ``criterion`` × η. The formula of
    :func:`readaptation_steps` assumes the momentum adapts first; for a small drop and a short
    memory (say 0.4 with β2 = 0.98) the step never dips below ``criterion`` × η at all, and this
    raises ``RuntimeError`` instead of returning a count.
    ``optimizer`` defaults to :class:`course_lib.optim.Adam` (ε = 0, so only the ratio counts).
    """
    warmup = math.ceil(10 / (1 - beta2)) if warmup is None else warmup
    drops_arr = np.asarray(drops, dtype=float)
    horizon = math.ceil(1.2 * max(readaptation_steps(beta2, s, criterion) for s in drops_arr)) + 200
    grads = np.vstack([np.ones((warmup, len(drops_arr))), np.tile(drops_arr, (horizon, 1))])
    # lr = 1, so a step is measured in units of η
    steps = signed_steps(optimizer or Adam, grads, lr=1.0, betas=(beta1, beta2), eps=0.0)
    steps = steps[warmup:]
    out = np.empty(len(drops_arr))
    for i in range(len(drops_arr)):
        below = np.nonzero(steps[:, i] < criterion)[0]
        if below.size == 0:
            raise RuntimeError(
                f"the step never fell below {criterion}·η after a drop to {drops_arr[i]}"
            )
        back = np.nonzero(steps[below[0] :, i] >= criterion)[0]
        if back.size == 0:
            raise RuntimeError(f"no recovery within {horizon} steps after a drop to {drops_arr[i]}")
        out[i] = below[0] + back[0] + 1  # 1-based: the k-th step after the drop
    return out


def noisy_gradients(
    snr: Sequence[float], steps: int, copies: int = 1, *, seed: int = 0
) -> np.ndarray:
    r"""I.i.d. gradients :math:`g \sim \mathcal N(\mathrm{SNR}, 1)`, ``(steps, len(snr)·copies)``.

    Column :math:`i \cdot` ``copies`` :math:`+ j` has signal-to-noise ratio ``snr[i]`` (mean
    ``snr[i]``, standard deviation 1); ``copies`` independent columns per ratio let one run of
    an optimizer average over many coordinates.
    """
    if not isinstance(steps, int) or steps < 1 or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"need steps >= 1 and copies >= 1, got {steps!r}, {copies!r}")
    means = np.repeat(np.asarray(snr, dtype=float), copies)
    rng = np.random.default_rng(seed)
    return means[None, :] + rng.standard_normal((steps, means.size))
