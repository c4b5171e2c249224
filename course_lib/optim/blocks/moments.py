r"""Moment estimates and adaptive scaling: EMAs of the gradient and its square, bias correction."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from course_lib.optim.blocks.core import lazy_state

__all__ = ["bias_correction", "ema", "ema_sq", "unbias"]


def ema(states: list[dict[str, Any]], key: str, x: list[Tensor], beta: float) -> list[Tensor]:
    r"""Exponential moving average, zero-initialised: :math:`m \leftarrow \beta m + (1-\beta)\,x`.

    Returns the state buffers. Adam's first moment is ``ema(states, "m", grads, beta1)``.
    """
    m = lazy_state(states, key, x)
    for m_i, x_i in zip(m, x):
        m_i.lerp_(x_i, 1 - beta)
    return m


def ema_sq(states: list[dict[str, Any]], key: str, x: list[Tensor], beta: float) -> list[Tensor]:
    r"""EMA of the elementwise square: :math:`v \leftarrow \beta v + (1-\beta)\,x \odot x`."""
    v = lazy_state(states, key, x)
    for v_i, x_i in zip(v, x):
        v_i.mul_(beta).addcmul_(x_i, x_i, value=1 - beta)
    return v


def bias_correction(beta: float, steps: list[int]) -> list[float]:
    r"""The factors :math:`1 - \beta^t` that undo the zero initialisation of an EMA.

    For i.i.d. inputs, :math:`\mathbb E[v_t] = (1-\beta^t)\,\mathbb E[x^2]`, so dividing by
    :math:`1-\beta^t` gives an unbiased estimate (chapter 04 derives and measures it).
    """
    return [1 - beta**t for t in steps]


def unbias(x: list[Tensor], corrections: list[float]) -> list[Tensor]:
    r"""Bias-corrected moments :math:`\hat m = m / (1-\beta^t)`, given the factors of
    :func:`bias_correction`. Returns new tensors (the state keeps the raw, biased EMA).
    """
    return [x_i / c for x_i, c in zip(x, corrections)]
