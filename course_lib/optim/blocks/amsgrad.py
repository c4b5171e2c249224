r"""AMSGrad (Reddi, Kale & Kumar, 2018): a second moment that never shrinks (chapter 06).

Adam's :math:`\hat v` can fall when recent gradients are small, so a coordinate's effective learning
rate :math:`\eta/\sqrt{\hat v}` can *grow* — the flaw behind Reddi et al.'s counterexample. AMSGrad
divides by a running maximum instead. Three conventions are in use; :func:`amsgrad_v_hat` gives
the :math:`\hat v` of each, built from two small blocks:

* ``"raw"`` (``torch.optim.Adam(amsgrad=True)``): the max of the *raw* EMA,
  :math:`v^{\max}_t = \max(v^{\max}_{t-1}, v_t)` (state ``v_max``), divided by the *current*
  correction :math:`1-\beta_2^t` — "post-correction";
* ``"corrected"`` (optax's ``scale_by_amsgrad``): the max of the bias-corrected
  :math:`\hat v_t`, :math:`\hat v^{\max}_t = \max(\hat v^{\max}_{t-1}, \hat v_t)` (state
  ``v_hat_max``) — "pre-correction";
* ``"memory_free"``: no extra buffer, :math:`v_t = \max(v_{t-1},\ \beta_2 v_{t-1} + (1-\beta_2)
  g_t^2)` kept in ``v`` itself, then the usual correction.

The first two coincide while :math:`\hat v_t` is non-decreasing (then both are :math:`\hat v_t`)
and differ after a large early gradient: the raw max of it is divided by a growing
:math:`1-\beta_2^t` and decays, the corrected max stays. Only pre-correction keeps the denominator
truly non-decreasing (the property the proof needs); post-correction is what PyTorch chose. Both
cost one more buffer: Adam's state × 3/2, parameters + state × 4/3. The memory-free heuristic
costs nothing and has no convergence proof. The paper's own Algorithm 2 has no bias correction at
all (chapter 06 measures the three conventions).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from course_lib.optim.blocks.core import lazy_state
from course_lib.optim.blocks.moments import bias_correction, ema_sq, unbias

__all__ = ["AMSGRAD_CONVENTIONS", "amsgrad_v_hat", "ema_sq_nondecreasing", "running_max"]

AMSGRAD_CONVENTIONS = ("raw", "corrected", "memory_free")


def running_max(states: list[dict[str, Any]], key: str, x: list[Tensor]) -> list[Tensor]:
    r"""The elementwise running maximum :math:`x^{\max} \leftarrow \max(x^{\max}, x)`, zero at
    the start (state ``key``). Returns the state buffers."""
    x_max = lazy_state(states, key, x)
    for x_max_i, x_i in zip(x_max, x):
        torch.maximum(x_max_i, x_i, out=x_max_i)
    return x_max


def ema_sq_nondecreasing(
    states: list[dict[str, Any]], key: str, x: list[Tensor], beta: float
) -> list[Tensor]:
    r"""An EMA of the squares that may only grow:
    :math:`v \leftarrow \max(v,\ \beta v + (1-\beta)\, x^2)`, in place (state ``key``).

    Memory-free AMSGrad: the max feeds back into the next EMA step, so no second buffer is needed.
    Returns the state buffers.
    """
    v = lazy_state(states, key, x)
    for v_i, x_i in zip(v, x):
        torch.maximum(v_i, v_i.mul(beta).addcmul_(x_i, x_i, value=1 - beta), out=v_i)
    return v


def amsgrad_v_hat(
    states: list[dict[str, Any]],
    grads: list[Tensor],
    beta2: float,
    steps: list[int],
    convention: str = "raw",
) -> list[Tensor]:
    r"""AMSGrad's :math:`\hat v` in one of the three conventions of this module.

    Updates the EMA ``v`` (and ``v_max`` or ``v_hat_max``) and returns the :math:`\hat v` that
    Adam's step divides by (new tensors, or for ``"corrected"`` the state buffers).
    """
    corrections = bias_correction(beta2, steps)
    if convention == "memory_free":
        return unbias(ema_sq_nondecreasing(states, "v", grads, beta2), corrections)
    v = ema_sq(states, "v", grads, beta2)
    if convention == "raw":
        return unbias(running_max(states, "v_max", v), corrections)
    if convention == "corrected":
        return running_max(states, "v_hat_max", unbias(v, corrections))
    raise ValueError(
        f"Invalid amsgrad_convention: {convention!r} (expected one of {AMSGRAD_CONVENTIONS})"
    )
