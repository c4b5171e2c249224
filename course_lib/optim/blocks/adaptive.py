r"""Per-parameter learning rates: AdaGrad's sum, RMS scaling, centered RMSprop and Adadelta.

Every adaptive method divides a direction by a running size of the gradient,
:math:`u = x / (\sqrt{v} + \epsilon)` (:func:`rms_scale`); they differ in how :math:`v` is kept:

* AdaGrad: the plain sum :math:`G = \sum_s g_s^2` (:func:`accumulate_sq`) — the step only shrinks;
* RMSprop/Adam: an EMA (:func:`course_lib.optim.blocks.ema_sq`), optionally centered
  (:func:`centered_second_moment`) or bias-corrected (:func:`course_lib.optim.blocks.unbias`);
* AMSGrad: the running maximum of it (:mod:`course_lib.optim.blocks.amsgrad`);
* Adadelta: a second EMA of the updates themselves sets the scale (:func:`adadelta_direction`);
* AdaMax: no square at all, an exponentially weighted *maximum* of :math:`|g|`
  (:func:`ema_inf_norm`), divided by as it is (:func:`inf_norm_scale`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from course_lib.optim.blocks.core import lazy_state

__all__ = [
    "accumulate_sq",
    "adadelta_direction",
    "centered_second_moment",
    "ema_inf_norm",
    "inf_norm_scale",
    "rms_scale",
]


def accumulate_sq(
    states: list[dict[str, Any]], key: str, grads: list[Tensor], initial: float = 0.0
) -> list[Tensor]:
    r"""AdaGrad's accumulator (Duchi, Hazan & Singer, 2011): :math:`G \leftarrow G + g \odot g`.

    :math:`G` (state ``key``) starts at ``initial`` (``initial_accumulator_value`` in
    ``torch.optim.Adagrad``, default 0). A sum never forgets: one huge early gradient shrinks the
    step for good (chapter 03 measures it), and the effective rate decays like
    :math:`O(1/\sqrt t)`. Returns the state buffers.
    """
    accumulators = lazy_state(states, key, grads, fill=initial)
    for G, g in zip(accumulators, grads):
        G.addcmul_(g, g)
    return accumulators


def rms_scale(
    x: list[Tensor], v: list[Tensor], eps: float, eps_inside: bool = False
) -> list[Tensor]:
    r"""Divide by the root of a second moment: :math:`x / (\sqrt{v} + \epsilon)`.

    Pass the bias-corrected :math:`\hat v` where the method corrects it (Adam). By default
    :math:`\epsilon` sits *outside* the square root, as in the Adam paper and ``torch.optim``
    (Adagrad, RMSprop, Adam). ``eps_inside=True`` gives :math:`x / \sqrt{v + \epsilon}`
    (Adadelta's convention, and a classic source of exercise mismatches: with
    :math:`\epsilon = 10^{-8}` the two differ visibly once :math:`v \lesssim 10^{-8}`). Returns
    new tensors.
    """
    if eps_inside:
        return [x_i / v_i.add(eps).sqrt_() for x_i, v_i in zip(x, v)]
    return [x_i / v_i.sqrt().add_(eps) for x_i, v_i in zip(x, v)]


def centered_second_moment(
    states: list[dict[str, Any]], grads: list[Tensor], v: list[Tensor], beta: float, key: str = "m"
) -> list[Tensor]:
    r"""Centered RMSprop (Graves, 2013): the variance :math:`v - m^2` instead of :math:`v`.

    Keeps the EMA of the gradient itself, :math:`m \leftarrow \beta m + (1-\beta)\,g` (state
    ``m``, the same ``beta`` as ``v``), and returns :math:`v - m \odot m`, an estimate of the
    gradient's variance: a large but steady gradient is no longer damped. Returns new tensors.
    """
    m = lazy_state(states, key, grads)
    out = []
    for m_i, g, v_i in zip(m, grads, v):
        m_i.lerp_(g, 1 - beta)
        out.append(v_i.addcmul(m_i, m_i, value=-1))
    return out


def adadelta_direction(
    grads: list[Tensor], v: list[Tensor], u: list[Tensor], eps: float
) -> list[Tensor]:
    r"""Adadelta's step (Zeiler, 2012): :math:`\Delta = g\,\sqrt{u + \epsilon}/\sqrt{v+\epsilon}`.

    Adadelta keeps two accumulators, both EMAs with rate :math:`\rho`: :math:`v` of the squared
    gradients (update it *before* this call) and :math:`u` of the squared updates (update it
    *after*, with the returned :math:`\Delta`: ``ema_sq(states, "u", delta, rho)``). The ratio of
    the two roots gives the step the units of the parameter, so no learning rate is needed (torch
    keeps ``lr=1.0`` as a multiplier). :math:`\epsilon` is *inside* both roots, as in the paper
    and ``torch.optim.Adadelta``; it also starts the process, since :math:`u_0 = 0`.
    """
    scaled = rms_scale(grads, v, eps, eps_inside=True)
    return [s.mul_(u_i.add(eps).sqrt_()) for s, u_i in zip(scaled, u)]


def ema_inf_norm(
    states: list[dict[str, Any]], key: str, grads: list[Tensor], beta: float, eps: float
) -> list[Tensor]:
    r"""AdaMax's scale (Kingma & Ba 2015, §7.1): :math:`u \leftarrow \max(\beta u, |g| + \epsilon)`.

    Adam's :math:`v` is an EMA of :math:`|g|^2`. Take the power :math:`p` instead of 2 and the
    decay :math:`\beta^p` instead of :math:`\beta`; the :math:`p`-th root of that EMA,
    :math:`\big((1-\beta^p)\sum_s \beta^{p(t-s)}|g_s|^p\big)^{1/p}`, tends as
    :math:`p \to \infty` to its largest term, :math:`u_t = \max_s \beta^{t-s}|g_s|`: the
    exponentially weighted infinity norm of the gradients, which this recursion computes. A large
    gradient sets the scale at once and is then forgotten by a factor :math:`\beta` per step; it
    is not averaged in, as in :math:`v`.

    No bias correction is needed: a maximum started at 0 is not pulled towards 0 (the first step
    gives :math:`u_1 = |g_1| + \epsilon`). :math:`\epsilon` is ``torch.optim.Adamax``'s (the
    paper has none): it is added to :math:`|g|` *inside* the maximum, so :math:`u \ge \epsilon`
    and a coordinate whose gradients are all zero is never divided by zero. Returns the state
    buffers (state ``key``, zero before the first step).
    """
    u = lazy_state(states, key, grads)
    for u_i, g in zip(u, grads):
        torch.maximum(u_i.mul_(beta), g.abs().add_(eps), out=u_i)
    return u


def inf_norm_scale(x: list[Tensor], u: list[Tensor]) -> list[Tensor]:
    r"""Divide by AdaMax's scale as it is: :math:`x / u`.

    Unlike :func:`rms_scale` there is no root (:math:`u` already has the units of :math:`g`) and
    no :math:`\epsilon` (:func:`ema_inf_norm` has put it inside :math:`u`). Returns new tensors.
    """
    return [x_i / u_i for x_i, u_i in zip(x, u)]
