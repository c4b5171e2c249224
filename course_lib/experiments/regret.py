r"""Regret: how online learning measures an algorithm that sees one loss at a time.

In **online convex optimisation** a learner picks :math:`w_t`, then a convex loss :math:`f_t`
arrives and the learner pays :math:`f_t(w_t)`. Nothing is assumed about how the losses are chosen
(they may be random, or picked by an adversary who knows the algorithm). The yardstick is the best
*fixed* point chosen in hindsight, knowing every loss:

.. math::

    R_T = \sum_{t=1}^{T} f_t(w_t) - \min_{w \in \mathcal W} \sum_{t=1}^{T} f_t(w).

An algorithm *learns* when :math:`R_T` grows sublinearly, :math:`R_T / T \to 0`: on average it
does as well as the best fixed point. **Online (projected) gradient descent** on a convex set of
diameter :math:`D`, with gradients bounded by :math:`G` and steps :math:`\eta_t = D/(G\sqrt t)`,
guarantees :math:`R_T \le \tfrac32 D G \sqrt T` for *every* sequence of convex losses (Zinkevich
2003; Hazan, *Introduction to Online Convex Optimization*, Theorem 3.1).

:func:`ogd_regret` runs that algorithm on the one-dimensional losses
:math:`f_t(w) = \tfrac12 (w - z_t)^2` on :math:`\mathcal W = [-1, 1]` with targets
:math:`z_t \in [-1, 1]`, where everything is exact: :math:`D = 2`, :math:`|f_t'| \le G = 2`, and
the best fixed point is the mean of the targets (clipped to the interval, which it never leaves).
AdaGrad (chapter 03) is this algorithm with a per-coordinate :math:`\eta_t` learned from the
gradients; chapter 06 shows where Adam's regret argument breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OnlineRun", "ogd_regret"]


@dataclass(frozen=True)
class OnlineRun:
    """One online run: what the learner paid, what the best fixed point would have paid."""

    w: np.ndarray  # the learner's choices w_1..w_T (made before seeing z_t)
    learner_loss: np.ndarray  # cumulative Σ_{s≤t} f_s(w_s)
    best_fixed_loss: np.ndarray  # cumulative Σ_{s≤t} f_s(w*_t), w*_t the best point for the first t
    regret: np.ndarray  # R_t = learner_loss − best_fixed_loss, t = 1..T
    bound: np.ndarray  # 1.5·D·G·√t, the guarantee for step D/(G√t)


def ogd_regret(targets: np.ndarray, w0: float = 0.0) -> OnlineRun:
    r"""Online projected gradient descent on :math:`f_t(w) = \tfrac12(w - z_t)^2`, :math:`|w|\le 1`.

    Step :math:`\eta_t = D/(G\sqrt t) = 1/\sqrt t` (here :math:`D = G = 2`). The regret at every
    horizon :math:`t` is measured against the best fixed point for the first :math:`t` losses (the
    running mean of the targets), so ``regret[t-1]`` is :math:`R_t` exactly.
    """
    z = np.asarray(targets, dtype=np.float64)
    if z.ndim != 1 or len(z) == 0 or np.abs(z).max() > 1:
        raise ValueError("targets must be a non-empty 1-D sequence in [-1, 1]")
    diameter, lipschitz = 2.0, 2.0
    T = len(z)
    w = np.empty(T)
    current = float(np.clip(w0, -1.0, 1.0))
    for t in range(1, T + 1):
        w[t - 1] = current
        grad = current - z[t - 1]
        eta = diameter / (lipschitz * np.sqrt(t))
        current = float(np.clip(current - eta * grad, -1.0, 1.0))
    learner = np.cumsum(0.5 * (w - z) ** 2)
    counts = np.arange(1, T + 1)
    mean = np.cumsum(z) / counts  # best fixed point for the first t losses
    # Σ_{s≤t} ½(mean_t − z_s)² = ½(Σ z_s² − t·mean_t²)
    best = 0.5 * (np.cumsum(z**2) - counts * mean**2)
    bound = 1.5 * diameter * lipschitz * np.sqrt(counts)
    return OnlineRun(
        w=w, learner_loss=learner, best_fixed_loss=best, regret=learner - best, bound=bound
    )
