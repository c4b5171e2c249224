r"""RAdam's variance rectification (Liu et al., 2020, "On the Variance of the Adaptive Learning
Rate and Beyond"), chapter 08.

In the first steps :math:`\hat v` is an average of very few squared gradients, so the adaptive rate
:math:`1/\sqrt{\hat v}` has a large (for the first two steps, infinite) variance — what warmup
fixes by hand. RAdam approximates the EMA by a simple moving average of length :math:`\rho_t`,
takes plain momentum steps while :math:`\rho_t` is too short for the paper's approximation of
that variance to exist, and afterwards multiplies the adaptive step by :math:`r_t`, which scales
its variance down to the variance it will have once the EMA is long (:math:`t \to \infty`).
Measured in chapter 08 (:mod:`course_lib.experiments.rectification`).
"""

from __future__ import annotations

import math

from torch import Tensor

from course_lib.optim.blocks.moments import bias_correction

__all__ = ["radam_direction", "radam_rectification", "radam_rho", "radam_rho_inf"]


def radam_rho_inf(beta2: float) -> float:
    r""":math:`\rho_\infty = 2/(1-\beta_2) - 1`: the length of the simple moving average that
    has the same centre of mass as an infinitely long EMA with factor :math:`\beta_2`."""
    return 2 / (1 - beta2) - 1


def radam_rho(step: int, beta2: float) -> float:
    r""":math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`: the length of the SMA that
    approximates the bias-corrected EMA after :math:`t` steps (:math:`\rho_1 = 1`)."""
    return radam_rho_inf(beta2) - 2 * step * beta2**step / (1 - beta2**step)


def radam_rectification(steps: list[int], beta2: float) -> list[float | None]:
    r"""The rectification factor :math:`r_t` per step, or ``None`` while it is undefined.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \qquad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    :math:`r_t` is the square root of the ratio of the paper's approximate variances
    :math:`\rho/(2(\rho-2)(\rho-4))` at :math:`\rho_\infty` and at :math:`\rho_t`; that
    approximation exists only for :math:`\rho_t > 4`, the paper's threshold (Algorithm 2; the
    exact variance is already finite for :math:`\rho_t > 2`). Like ``torch.optim.RAdam`` we
    rectify only when :math:`\rho_t > 5` and return ``None`` otherwise (take the momentum-only
    step). With :math:`\beta_2 = 0.999` the first rectified step is :math:`t = 6` (:math:`t = 5`
    with the paper's threshold).
    """
    rho_inf = radam_rho_inf(beta2)
    out: list[float | None] = []
    for t in steps:
        rho_t = radam_rho(t, beta2)
        if rho_t > 5:
            ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            out.append(math.sqrt(ratio))
        else:
            out.append(None)
    return out


def radam_direction(
    m_hat: list[Tensor], v: list[Tensor], steps: list[int], beta2: float, eps: float
) -> list[Tensor]:
    r"""RAdam's direction: rectified Adam when possible, plain momentum before.

    .. math::
        u_t = \begin{cases}
            r_t\, \hat m_t\, \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon} & \rho_t > 5 \\
            \hat m_t & \text{otherwise (SGD with bias-corrected momentum)}
        \end{cases}

    :math:`\hat m_t` is the bias-corrected first moment. Note where :math:`\epsilon` goes: added to
    :math:`\sqrt{v_t}` *before* the bias correction (as ``torch.optim.RAdam`` does; the paper has no
    :math:`\epsilon`), i.e. :math:`\epsilon/\sqrt{1-\beta_2^t}` in Adam's convention.
    """
    out = []
    for m_i, v_i, r, c in zip(
        m_hat, v, radam_rectification(steps, beta2), bias_correction(beta2, steps)
    ):
        if r is None:
            out.append(m_i)
        else:
            out.append(m_i.div(v_i.sqrt().add_(eps)).mul_(r * math.sqrt(c)))
    return out
