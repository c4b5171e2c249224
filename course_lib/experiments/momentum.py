r"""Momentum one eigen-direction at a time: iteration matrices, rates, regimes, tuned comparisons.

Chapter 02 measures what heavy ball and Nesterov do on a quadratic, and where that picture stops
holding. The helpers below are the plumbing of those measurements; the few lines that run an
optimizer are in the lesson.

**One eigen-direction.** On :math:`f(w) = \tfrac12 w^\top H w` every method with constant
hyperparameters acts on each eigenvector of :math:`H` separately. Along one with eigenvalue
:math:`\lambda_i` the gradient is :math:`\lambda_i w`, and heavy ball in PyTorch's form
(:math:`v \leftarrow \mu v + g`, :math:`w \leftarrow w - \eta v`) is the linear map

.. math::
    \begin{pmatrix} v_{k+1} \\ w_{k+1} \end{pmatrix}
    = \underbrace{\begin{pmatrix} \mu & \lambda_i \\ -\eta\mu & 1 - \eta\lambda_i \end{pmatrix}}_{T}
      \begin{pmatrix} v_k \\ w_k \end{pmatrix},

whose characteristic polynomial is :math:`z^2 - (1 + \mu - h)\,z + \mu` with :math:`h =
\eta\lambda_i`. The coordinate shrinks by the spectral radius :math:`\rho(T)` per step, and the
roots decide how (:func:`heavy_ball_regime`):

* two positive real roots, :math:`h \le (1-\sqrt\mu)^2`: **monotone** (it crosses 0 at most once);
* complex roots of modulus :math:`\sqrt\mu`, :math:`(1-\sqrt\mu)^2 < h < (1+\sqrt\mu)^2`:
  **ripples**, a spiral that turns by :math:`\arccos\frac{1+\mu-h}{2\sqrt\mu}` per step;
* two negative real roots, :math:`h \ge (1+\sqrt\mu)^2`: **zig-zag**, the sign flips every step;
* a root beyond :math:`-1` once :math:`h > 2(1+\mu)`: **divergent**.

Nesterov in PyTorch's form (:math:`v \leftarrow \mu v + g`, :math:`w \leftarrow w - \eta(g + \mu
v)`) gives another 2×2 matrix (:func:`nesterov_matrix`); :func:`convergence_rate` computes the
spectral radius of either from the matrix itself.

**A spectrum.** On :math:`\lambda_i \in [\lambda_{\min}, \lambda_{\max}]` the slowest direction
sets the speed, :math:`\max_i \rho`. For both methods :math:`\rho` as a function of :math:`h` first
falls, then (possibly after a flat stretch) rises, so the maximum over an interval sits at one of
its two ends (:func:`worst_case_rate`, checked against a dense grid in the tests), and
:func:`tune` finds the best :math:`(\eta, \mu)` by a grid search over that worst case.

**Beyond quadratics.** :func:`lessard_function` is the one-dimensional, 1-strongly convex,
25-smooth function on which heavy ball with the parameters that are optimal for quadratics never
converges from some starts (Lessard, Recht & Packard 2016); :func:`run_1d` runs any optimizer
on it.

**Also here**: :func:`noisy_quadratic_losses` (many noisy runs at once, for noise floors),
:func:`velocity_weights` (the weight of a past gradient in heavy ball's position) and
:func:`training_memory` (parameters, gradients and optimizer state, counted separately).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib.optim import SGD
from course_lib.optim.base import state_bytes, tensor_bytes
from course_lib.train import make_optimizer

__all__ = [
    "LESSARD_SMOOTHNESS",
    "LESSARD_STRONG_CONVEXITY",
    "METHODS",
    "REGIMES",
    "MemoryBreakdown",
    "Tuned",
    "convergence_rate",
    "eigen_direction_run",
    "heavy_ball_matrix",
    "heavy_ball_rate",
    "heavy_ball_regime",
    "lessard_function",
    "measured_rate",
    "nesterov_matrix",
    "noisy_quadratic_losses",
    "quadratic_errors",
    "regime_boundaries",
    "run_1d",
    "training_memory",
    "tune",
    "velocity_weights",
    "worst_case_rate",
]

METHODS = ("heavy_ball", "nesterov")
REGIMES = ("monotone", "ripples", "zig-zag", "divergent")
DTYPE = torch.float64


# ---------------------------------------------------------------------------------------------
# One eigen-direction
# ---------------------------------------------------------------------------------------------


def heavy_ball_matrix(lr: float, momentum: float, curvature: float) -> np.ndarray:
    r"""Heavy ball (PyTorch form) on one eigen-direction: :math:`(v_{k+1}, w_{k+1}) = T(v_k, w_k)`.

    :math:`v_{k+1} = \mu v_k + \lambda_i w_k` and :math:`w_{k+1} = w_k - \eta v_{k+1}`.
    """
    return np.array([[momentum, curvature], [-lr * momentum, 1.0 - lr * curvature]])


def nesterov_matrix(lr: float, momentum: float, curvature: float) -> np.ndarray:
    r"""Nesterov (PyTorch form) on one eigen-direction: :math:`(v_{k+1}, w_{k+1}) = N(v_k, w_k)`.

    :math:`v_{k+1} = \mu v_k + \lambda_i w_k` and
    :math:`w_{k+1} = w_k - \eta(\lambda_i w_k + \mu v_{k+1})`.
    """
    h = lr * curvature
    return np.array([[momentum, curvature], [-lr * momentum**2, 1.0 - h * (1.0 + momentum)]])


_MATRICES: dict[str, Callable[[float, float, float], np.ndarray]] = {
    "heavy_ball": heavy_ball_matrix,
    "nesterov": nesterov_matrix,
}


def convergence_rate(method: str, h: Any, momentum: Any) -> np.ndarray:
    r"""Spectral radius of the iteration matrix for :math:`h = \eta\lambda_i` (broadcasts).

    Computed from the eigenvalues of the 2×2 matrix of ``method`` (``"heavy_ball"`` or
    ``"nesterov"``) with :math:`\lambda_i = 1`, :math:`\eta = h`: the rate depends on ``h`` only.
    Below 1 the coordinate converges, shrinking by this factor per step in the long run.
    """
    if method not in _MATRICES:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    h, mu = np.broadcast_arrays(np.asarray(h, dtype=float), np.asarray(momentum, dtype=float))
    one = np.ones_like(h)
    if method == "heavy_ball":
        rows = [[mu, one], [-h * mu, 1 - h]]
    else:
        rows = [[mu, one], [-h * mu**2, 1 - h * (1 + mu)]]
    matrices = np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)
    return np.abs(np.linalg.eigvals(matrices)).max(axis=-1)


def heavy_ball_rate(h: Any, momentum: Any) -> np.ndarray:
    r"""Heavy ball's rate from the roots of :math:`z^2 - (1+\mu-h)z + \mu` (closed form).

    Complex roots (:math:`(1+\mu-h)^2 < 4\mu`) have modulus :math:`\sqrt\mu`; otherwise the rate
    is the larger modulus of the two real roots :math:`\tfrac12\big((1+\mu-h) \pm
    \sqrt{(1+\mu-h)^2 - 4\mu}\big)`.
    """
    h, mu = np.broadcast_arrays(np.asarray(h, dtype=float), np.asarray(momentum, dtype=float))
    b = 1.0 + mu - h
    disc = b * b - 4.0 * mu
    root = np.sqrt(np.abs(disc))
    real = np.maximum(np.abs(b + root), np.abs(b - root)) / 2.0
    return np.where(disc < 0, np.sqrt(mu), real)


def regime_boundaries(momentum: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The values of :math:`h = \eta\lambda_i` where heavy ball's regime changes.

    Returns :math:`(1-\sqrt\mu)^2` (end of monotone), :math:`(1+\sqrt\mu)^2` (start of zig-zag)
    and :math:`2(1+\mu)` (divergence).
    """
    mu = np.asarray(momentum, dtype=float)
    root = np.sqrt(mu)
    return (1 - root) ** 2, (1 + root) ** 2, 2 * (1 + mu)


def heavy_ball_regime(h: float, momentum: float) -> str:
    """``"monotone"``, ``"ripples"``, ``"zig-zag"`` or ``"divergent"`` (see the module notes).

    At ``h = 2(1 + μ)`` exactly a root sits on −1: the coordinate neither shrinks nor grows;
    that boundary is counted as divergent (it does not converge).
    """
    monotone_end, zigzag_start, divergence = regime_boundaries(momentum)
    if h >= divergence:
        return "divergent"
    if h >= zigzag_start:
        return "zig-zag"
    if h > monotone_end:
        return "ripples"
    return "monotone"


def eigen_direction_run(
    curvature: float,
    lr: float,
    momentum: float,
    steps: int,
    nesterov: bool = False,
    w0: float = 1.0,
) -> np.ndarray:
    r"""The iterates :math:`w_0, \dots, w_{\text{steps}}` of the course's ``SGD`` on
    :math:`f(w) = \tfrac12\lambda_i w^2` (float64, autograd gradients).

    Stops early (shorter result) once :math:`|w|` exceeds :math:`10^{100}`: a divergent run.
    """
    w = torch.tensor([float(w0)], dtype=DTYPE, requires_grad=True)
    opt = SGD([w], lr=lr, momentum=momentum, nesterov=nesterov)
    values = [float(w0)]
    for _ in range(steps):
        w.grad = None
        (0.5 * curvature * w * w).sum().backward()
        opt.step()
        values.append(w.item())
        if not abs(values[-1]) < 1e100:
            break
    return np.array(values)


def measured_rate(values: Sequence[float], skip: int = 0) -> float:
    r"""The per-step contraction of a run, measured on the pair :math:`(w_k, w_{k-1})`.

    :math:`\big(\lVert(w_K, w_{K-1})\rVert / \lVert(w_s, w_{s-1})\rVert\big)^{1/(K-s)}` with
    :math:`s` = ``max(skip, 1)`` and :math:`K` the last step. The pair, not :math:`|w_k|` alone:
    a spiralling coordinate passes close to 0 without having converged. Over many steps this
    tends to the spectral radius of the iteration matrix.
    """
    w = np.asarray(values, dtype=float)
    start, end = max(skip, 1), len(w) - 1
    if end - start < 1:
        raise ValueError("need at least two steps after skip")
    first = math.hypot(w[start], w[start - 1])
    last = math.hypot(w[end], w[end - 1])
    return (last / first) ** (1.0 / (end - start))


# ---------------------------------------------------------------------------------------------
# A spectrum: worst case and tuning
# ---------------------------------------------------------------------------------------------


def worst_case_rate(
    method: str, lr: Any, momentum: Any, lambda_min: float, lambda_max: float
) -> np.ndarray:
    r"""The slowest rate over a spectrum: :math:`\max_{\lambda_{\min} \le \lambda \le
    \lambda_{\max}} \rho(\eta\lambda, \mu)` (broadcasts).

    The rate of both methods falls and then rises with :math:`h` (quasi-convex), so the maximum
    over the interval is attained at one of its ends: two evaluations instead of a sweep.
    """
    lr = np.asarray(lr, dtype=float)
    return np.maximum(
        convergence_rate(method, lr * lambda_min, momentum),
        convergence_rate(method, lr * lambda_max, momentum),
    )


@dataclass(frozen=True)
class Tuned:
    """The best setting found by :func:`tune`: its worst-case rate, learning rate and momentum."""

    rate: float
    lr: float
    momentum: float


def tune(
    method: str,
    lambda_min: float,
    lambda_max: float,
    lrs: Sequence[float],
    momenta: Sequence[float],
) -> Tuned:
    """Grid search of the worst-case rate over ``lrs`` × ``momenta``; the best point on the grid."""
    lr_grid, mu_grid = np.meshgrid(
        np.asarray(lrs, dtype=float), np.asarray(momenta, dtype=float), indexing="ij"
    )
    rates = worst_case_rate(method, lr_grid, mu_grid, lambda_min, lambda_max)
    i, j = np.unravel_index(int(np.argmin(rates)), rates.shape)
    return Tuned(float(rates[i, j]), float(lr_grid[i, j]), float(mu_grid[i, j]))


def quadratic_errors(
    eigenvalues: Sequence[float],
    steps: int,
    tol: float | None = None,
    start: Sequence[float] | None = None,
    **sgd_kwargs: Any,
) -> np.ndarray:
    r""":math:`\lVert w_k \rVert` for :math:`k = 0, 1, \dots` of the course's ``SGD`` on
    :math:`f(w) = \tfrac12\sum_i \lambda_i w_i^2` (a diagonal quadratic, float64).

    ``start`` is :math:`w_0` (default :math:`(1, \dots, 1)`). The minimum is 0, so
    :math:`\lVert w_k \rVert` is the error. With ``tol``, stops once the error is at most
    ``tol`` times the initial one (the result is then shorter than ``steps + 1``); a run whose
    error passes :math:`10^{100}` stops too. The gradient :math:`\lambda_i w_i` is written in
    directly (it is exact; autograd would give the same numbers, only slower), so sweeps over
    many settings stay cheap.
    """
    lam = torch.as_tensor(list(eigenvalues), dtype=DTYPE)
    w0 = torch.ones_like(lam) if start is None else torch.as_tensor(list(start), dtype=DTYPE)
    w = w0.clone().requires_grad_(True)
    opt = SGD([w], **sgd_kwargs)
    errors = [float(w0.norm())]
    for _ in range(steps):
        w.grad = lam * w.detach()
        opt.step()
        errors.append(float(w.detach().norm()))
        if tol is not None and errors[-1] <= tol * errors[0]:
            break
        if not errors[-1] < 1e100:
            break
    return np.array(errors)


def noisy_quadratic_losses(
    eigenvalues: Sequence[float],
    steps: int,
    noise: float,
    runs: int = 8,
    seed: int = 0,
    **sgd_kwargs: Any,
) -> np.ndarray:
    r"""Mean loss over ``runs`` independent noisy runs of the course's ``SGD``, per step.

    The problem is :math:`f(w) = \tfrac12\sum_i \lambda_i w_i^2` from :math:`w_0 = (1, \dots, 1)`;
    every gradient :math:`\lambda_i w_i` gets independent Gaussian noise of standard deviation
    ``noise`` (seeded), a stand-in for mini-batch noise. The runs share nothing but their
    hyperparameters, so they are stacked as the rows of one parameter tensor and stepped together
    (``SGD`` is elementwise: this is exactly ``runs`` separate runs, only faster). Returns
    ``steps + 1`` mean losses, :math:`w_0` first.
    """
    lam = torch.as_tensor(list(eigenvalues), dtype=DTYPE)
    w = torch.ones(runs, len(lam), dtype=DTYPE, requires_grad=True)
    opt = SGD([w], **sgd_kwargs)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps + 1):
        current = w.detach()
        losses.append(float((0.5 * lam * current * current).sum(dim=1).mean()))
        if len(losses) > steps:
            break
        w.grad = lam * current + noise * torch.randn(w.shape, generator=gen, dtype=DTYPE)
        opt.step()
    return np.array(losses)


# ---------------------------------------------------------------------------------------------
# Beyond quadratics
# ---------------------------------------------------------------------------------------------

LESSARD_STRONG_CONVEXITY = 1.0
LESSARD_SMOOTHNESS = 25.0


def lessard_function(x: torch.Tensor) -> torch.Tensor:
    r"""The counterexample of Lessard, Recht & Packard (2016) for the heavy-ball method.

    .. math::
        f(x) = \begin{cases} \tfrac{25}{2}x^2 & x < 1 \\ \tfrac12 x^2 + 24x - 12 & 1 \le x < 2 \\
        \tfrac{25}{2}x^2 - 24x + 36 & x \ge 2 \end{cases}

    Its derivative :math:`25x,\ x + 24,\ 25x - 24` is continuous and increasing with slopes 25, 1,
    25: :math:`f` is 1-strongly convex and 25-smooth (:math:`\kappa = 25`), minimum 0 at 0.
    Elementwise, differentiable by autograd.
    """
    low = 12.5 * x * x
    middle = 0.5 * x * x + 24.0 * x - 12.0
    high = 12.5 * x * x - 24.0 * x + 36.0
    return torch.where(x < 1, low, torch.where(x < 2, middle, high))


def run_1d(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: float | Sequence[float],
    steps: int,
    optimizer: Any = SGD,
    **kwargs: Any,
) -> np.ndarray:
    r"""Iterates :math:`x_0, \dots, x_{\text{steps}}` of an optimizer on a 1-D function (float64).

    ``x0`` is one start or a sequence of starts; several starts run together as the elements of
    one tensor (``f`` must act elementwise, and the optimizer too, as every optimizer of chapters
    01–04 does), which is the same as separate runs, only faster. Returns shape
    ``(steps + 1,)`` for one start, ``(steps + 1, len(x0))`` for several. ``optimizer`` is a class
    (with ``kwargs``) or a factory, as in :func:`course_lib.train.make_optimizer`.
    """
    single = np.ndim(x0) == 0
    x = torch.tensor(np.atleast_1d(np.asarray(x0, dtype=float)), dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [x], **kwargs)
    values = [x.detach().clone()]
    for _ in range(steps):
        x.grad = None
        f(x).sum().backward()
        opt.step()
        values.append(x.detach().clone())
    result = torch.stack(values).numpy()
    return result[:, 0] if single else result


# ---------------------------------------------------------------------------------------------
# Online view and memory
# ---------------------------------------------------------------------------------------------


def velocity_weights(momentum: float, delays: Any) -> np.ndarray:
    r"""How much of a gradient heavy ball has applied :math:`d` steps after computing it.

    Unrolling :math:`v \leftarrow \mu v + g`, :math:`w \leftarrow w - \eta v` from :math:`v_0 = 0`:

    .. math::
        w_t = w_0 - \eta \sum_{j<t} c_{t-j}\, g_j, \qquad c_d = \frac{1-\mu^d}{1-\mu}
        = 1 + \mu + \dots + \mu^{d-1},

    so a gradient enters with weight 1 at once and tends to :math:`1/(1-\mu)` later. Returns
    :math:`c_d` for the given delays :math:`d \ge 0` (``c_0 = 0``).
    """
    d = np.asarray(delays, dtype=float)
    if momentum == 1:
        return d
    return (1 - momentum**d) / (1 - momentum)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes held during a training step, by kind (activations are not counted)."""

    label: str
    params: int
    grads: int
    state: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.state

    def __str__(self) -> str:
        p = self.params
        return (
            f"{self.label}: parameters {p:,} B, gradients {self.grads:,} B "
            f"({self.grads / p:.2f}×), optimizer state {self.state:,} B ({self.state / p:.2f}×); "
            f"all three {self.total / p:.2f}× the parameters"
        )


def training_memory(
    model: nn.Module, optimizer: Any, inputs: torch.Tensor, label: str = "", **kwargs: Any
) -> MemoryBreakdown:
    """Parameters, gradients and optimizer state after one forward, backward and ``step()``.

    Works on a copy of ``model`` (yours is not changed). The loss is the mean of the outputs
    (any scalar will do: sizes do not depend on values). Gradients are counted as they stand
    between ``backward()`` and the next ``zero_grad()``: at the moment of ``step()`` they, the
    parameters and the state are all alive at once.
    """
    model = copy.deepcopy(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, **kwargs)
    model(inputs).mean().backward()
    opt.step()
    grads = [p.grad for p in params if p.grad is not None]
    return MemoryBreakdown(
        label=label or type(opt).__name__,
        params=tensor_bytes(params),
        grads=tensor_bytes(grads),
        state=state_bytes(opt),
    )
