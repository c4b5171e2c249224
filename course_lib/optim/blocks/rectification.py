r"""RAdam's variance rectification (Liu et al., 2020, "On the Variance of the Adaptive Learning
Rate and Beyond"), chapter 08.

In the first steps :math:`\hat v` is an average of very few squared gradients, so the adaptive rate
:math:`1/\sqrt{\hat v}` has a large (for the first few steps, unbounded) variance — what warmup
fixes by hand. RAdam approximates the EMA by a simple moving average of length :math:`\rho_t`,
takes plain momentum steps while :math:`\rho_t` is too short for the variance to be finite, and
afterwards multiplies the adaptive step by :math:`r_t`, which scales its variance down to the
variance it will have once the EMA is long (:math:`t \to \infty`).
"""

from __future__ import annotations

import math

from torch import Tensor

from course_lib.optim.blocks.moments import bias_correction

__all__ = ["radam_direction", "radam_rectification"]


def radam_rectification(steps: list[int], beta2: float) -> list[float | None]:
    r"""The rectification factor :math:`r_t` per step, or ``None`` while it is undefined.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \qquad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    The variance of the adaptive rate is finite only when :math:`\rho_t > 4` (the paper's
    threshold); like ``torch.optim.RAdam`` we rectify only when :math:`\rho_t > 5` and return
    ``None`` otherwise (take the momentum-only step). With :math:`\beta_2 = 0.999` the first
    rectified step is :math:`t = 6`.
    """
    rho_inf = 2 / (1 - beta2) - 1
    out: list[float | None] = []
    for t in steps:
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
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
