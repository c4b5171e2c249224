r"""What Adam's per-coordinate scaling is, and what it is not: a second-order method?

A common description: "Newton's method multiplies the gradient by :math:`H^{-1}`; Adam divides by
:math:`\sqrt{\hat v}`, a diagonal estimate of the curvature, so Adam is a cheap diagonal Newton
method." Three things are wrong with it, and this module measures each.

1. **The power.** Adam divides by the *root* of a second moment. Even if :math:`\hat v` were the
   diagonal of the Hessian, the step would be :math:`\mathrm{diag}(H)^{-1/2}\,g`, half-way (on a
   log scale) between gradient descent (power 0) and Newton (power 1).
2. **What** :math:`\hat v` **estimates.** It is an average of squared *mini-batch gradients*.
   With exact gradients that is :math:`g^2` and the step is :math:`\eta\,\mathrm{sign}(g)`
   (:mod:`course_lib.experiments.adam_steps`). With mini-batches of size :math:`B` drawn without
   replacement from :math:`N` examples whose gradients :math:`g_n` have mean :math:`\bar g`,

   .. math:: \mathbb E\big[g_B^2\big] = \bar g^2 + \frac{N-B}{(N-1)\,B}\,\big(F - \bar g^2\big),
             \qquad F = \frac1N \sum_n g_n^2

   (elementwise; :func:`minibatch_second_moment`). :math:`F` is the diagonal of the *empirical
   Fisher* matrix :math:`\frac1N\sum_n g_n g_n^\top`. The mini-batch second moment is that only
   for :math:`B = 1` at a stationary point; in general it mixes :math:`\bar g^2` and
   :math:`F/B`.
3. **Empirical Fisher ≠ Hessian.** For softmax regression the Hessian's diagonal is
   :math:`\frac1N\sum_n p_{nk}(1-p_{nk})\,x_{nj}^2` and the empirical Fisher's is
   :math:`\frac1N\sum_n (p_{nk}-y_{nk})^2\,x_{nj}^2` (:class:`SoftmaxCurvature`). They agree in
   expectation only when the labels are drawn from the model's own predictions (the *Fisher*
   equals the Hessian here; the *empirical* Fisher uses the observed labels). At a minimum that
   fits the training labels confidently, :math:`(p-y)^2 \ll p(1-p)`: the empirical Fisher is
   much smaller than the Hessian, not close to it (Kunstner, Balles & Hennig, 2019).

And the classic experiment — a diagonal method is much faster on an ill-conditioned quadratic
whose axes are the coordinate axes than on the same quadratic rotated — shows **axis
alignment**, which every per-coordinate method has, curvature-aware or not (sign descent has it
too): :func:`rotated_quadratic`, :func:`best_final_loss`. Rotated by 45°, the Hessian of
:math:`\tfrac12 w^\top H w` with eigenvalues :math:`\lambda_{\min}, \lambda_{\max}` has both
diagonal entries :math:`(\lambda_{\min}+\lambda_{\max})/2`, so "diagonal Newton"
(:func:`diagonal_newton`) *is* gradient descent with the step :math:`2/(\lambda_{\min}+
\lambda_{\max})`: the optimal fixed step of gradient descent on a quadratic (chapter 01), whose
error shrinks by :math:`(\kappa-1)/(\kappa+1)` per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.landscapes import Landscape, quadratic, run_optimizer

__all__ = [
    "SoftmaxCurvature",
    "best_final_loss",
    "diagonal_newton",
    "minibatch_second_moment",
    "rotated_quadratic",
    "sampled_minibatch_second_moment",
    "softmax_curvature",
    "softmax_regression_minimum",
]

DTYPE = torch.float64


# ---------------------------------------------------------------------------------------------
# Rotated quadratics
# ---------------------------------------------------------------------------------------------


def rotated_quadratic(
    condition_number: float, angle: float, start_in_eigenbasis: Sequence[float] = (-1.7, 0.9)
) -> tuple[Landscape, tuple[float, float]]:
    r""":func:`course_lib.landscapes.quadratic` rotated by ``angle`` degrees, and a start point
    rotated with it.

    The start point has the same coordinates ``start_in_eigenbasis`` in the eigenbasis of the
    Hessian at every angle, so a rotation-invariant method (gradient descent) traces the same
    path, rotated, and reaches the same losses: any difference between angles is the method's.
    """
    land = quadratic(condition_number=condition_number, angle=angle)
    th = math.radians(angle)
    e0, e1 = (float(v) for v in start_in_eigenbasis)
    start = (math.cos(th) * e0 - math.sin(th) * e1, math.sin(th) * e0 + math.cos(th) * e1)
    return land, start


def best_final_loss(
    landscape: Landscape,
    optimizer: Any,
    lrs: Sequence[float],
    steps: int,
    start: Sequence[float],
    **optimizer_kwargs: Any,
) -> tuple[float, float]:
    """The lowest final loss over the learning rates ``lrs`` after ``steps`` steps, and that lr.

    A diverged run counts as ``inf``. Returns ``(loss, lr)``.
    """
    best = (math.inf, math.nan)
    for lr in lrs:
        run = run_optimizer(landscape, optimizer, steps, start, lr=lr, **optimizer_kwargs)
        loss = math.inf if run.diverged else run.final_loss
        if loss < best[0]:
            best = (loss, float(lr))
    return best


def diagonal_newton(landscape: Landscape, start: Sequence[float], steps: int) -> np.ndarray:
    r"""Iterates of :math:`w \leftarrow w - \mathrm{diag}(H)^{-1}\nabla f(w)` on a quadratic
    landscape (Hessian constant), shape ``(steps + 1, 2)`` including the start."""
    H = torch.tensor(landscape.hessian(landscape.minima[0]), dtype=DTYPE)
    w = torch.tensor(start, dtype=DTYPE)
    points = [w.clone()]
    for _ in range(steps):
        w = w - (H @ w) / H.diagonal()
        points.append(w.clone())
    return torch.stack(points).numpy()


# ---------------------------------------------------------------------------------------------
# Softmax regression: Hessian, empirical Fisher, mini-batch second moments
# ---------------------------------------------------------------------------------------------


def _with_bias(X: torch.Tensor) -> torch.Tensor:
    X = torch.as_tensor(X, dtype=DTYPE)
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=DTYPE)], dim=1)


def softmax_regression_minimum(
    X: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-3
) -> torch.Tensor:
    r"""The minimiser :math:`W^\star` (``(n_classes, d + 1)``, last column the bias) of the mean
    cross-entropy of softmax regression plus :math:`\tfrac{\ell_2}{2}\lVert W\rVert^2`, by L-BFGS
    in float64 to a gradient norm below :math:`10^{-7}` (the problem is strongly convex)."""
    Xb = _with_bias(X)
    Y = torch.nn.functional.one_hot(torch.as_tensor(y), n_classes).to(DTYPE)
    W = torch.zeros(n_classes, Xb.shape[1], dtype=DTYPE, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W], lr=1.0, max_iter=1000, tolerance_grad=1e-12, tolerance_change=0.0,
        history_size=50, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = -(torch.log_softmax(Xb @ W.T, dim=1) * Y).sum(1).mean() + 0.5 * l2 * (W**2).sum()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    closure()
    grad_norm = W.grad.norm().item()
    if not grad_norm < 1e-7:
        raise RuntimeError(f"L-BFGS stopped at a gradient norm of {grad_norm:.2e}")
    return W.detach()


@dataclass
class SoftmaxCurvature:
    r"""Per-coordinate quantities of softmax regression at one point :math:`W`, each
    ``(n_classes, d + 1)``: the diagonal of the Hessian, of the empirical Fisher
    :math:`F = \frac1N\sum_n g_n^2`, and the full-batch gradient :math:`\bar g`; plus the
    per-example gradients :math:`g_n` (``(N, n_classes, d + 1)``) for sampling mini-batches.
    All include the L2 term (it is part of every example's loss). ``informative`` marks the
    coordinates whose input feature is not constant zero (constant pixels of the digits carry
    no data: their Hessian is just :math:`\ell_2` and their Fisher 0)."""

    hessian: torch.Tensor
    fisher: torch.Tensor
    mean_gradient: torch.Tensor
    per_example: torch.Tensor
    informative: torch.Tensor

    @property
    def n_examples(self) -> int:
        return self.per_example.shape[0]


def softmax_curvature(
    W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float = 1e-3
) -> SoftmaxCurvature:
    r"""Hessian diagonal, empirical Fisher diagonal and gradients of softmax regression at ``W``.

    With :math:`p_n = \mathrm{softmax}(W x_n)`: per-example gradient
    :math:`g_{n,kj} = (p_{nk}-y_{nk})\,x_{nj} + \ell_2 W_{kj}`, Hessian diagonal
    :math:`\frac1N\sum_n p_{nk}(1-p_{nk})\,x_{nj}^2 + \ell_2`.
    """
    W = torch.as_tensor(W, dtype=DTYPE)
    Xb = _with_bias(X)
    Y = torch.nn.functional.one_hot(torch.as_tensor(y), W.shape[0]).to(DTYPE)
    P = torch.softmax(Xb @ W.T, dim=1)
    per_example = (P - Y)[:, :, None] * Xb[:, None, :] + l2 * W
    hessian = (P * (1 - P)).T @ Xb**2 / Xb.shape[0] + l2
    informative = (Xb.abs().amax(0) > 0).expand_as(W)
    return SoftmaxCurvature(
        hessian=hessian,
        fisher=(per_example**2).mean(0),
        mean_gradient=per_example.mean(0),
        per_example=per_example,
        informative=informative,
    )


def minibatch_second_moment(curvature: SoftmaxCurvature, batch_size: int) -> torch.Tensor:
    r""":math:`\mathbb E[g_B^2]` for mini-batches of ``batch_size`` examples drawn without
    replacement: :math:`\bar g^2 + \frac{N-B}{(N-1)B}(F - \bar g^2)` (see the module)."""
    n = curvature.n_examples
    if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an int in [1, {n}], got {batch_size!r}")
    g2 = curvature.mean_gradient**2
    return g2 + (n - batch_size) / ((n - 1) * batch_size) * (curvature.fisher - g2)


def sampled_minibatch_second_moment(
    curvature: SoftmaxCurvature, batch_size: int, draws: int = 500, *, seed: int = 0
) -> torch.Tensor:
    r"""Monte-Carlo estimate of :math:`\mathbb E[g_B^2]`: the mean of :math:`g_B^2` over ``draws``
    mini-batches of ``batch_size`` distinct examples (seeded), to check
    :func:`minibatch_second_moment`."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros_like(curvature.mean_gradient)
    for _ in range(draws):
        batch = torch.randperm(curvature.n_examples, generator=gen)[:batch_size]
        total += curvature.per_example[batch].mean(0) ** 2
    return total / draws
