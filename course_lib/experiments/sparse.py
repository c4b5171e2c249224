r"""Sparse features: L2-regularised logistic regression where most features are rare (chapter 03).

AdaGrad's per-coordinate rates shine when some features appear rarely: each rare feature keeps a
large rate because its accumulated squared gradient stays small.

- :func:`sparse_logistic_problem`: the problem on :func:`course_lib.data.make_sparse_logistic`
  data, with its exact optimum (Newton's method).
- :func:`train_sparse_logistic`: a fixed-budget mini-batch run of any optimizer.
- :func:`sparse_logistic_objective`: the suboptimality :math:`f(w_T) - f^\star` as an objective
  for :func:`course_lib.experiments.comparison.compare_optimizers`.
- :func:`feature_groups` and :func:`lr_sweep`: how far the common and the rare weights are from
  their optimum after a fixed budget, for every learning rate of a grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.data import make_sparse_logistic
from course_lib.train import make_optimizer

__all__ = [
    "LrSweep",
    "SparseLogistic",
    "feature_groups",
    "lr_sweep",
    "sparse_logistic_objective",
    "sparse_logistic_problem",
    "train_sparse_logistic",
]

DTYPE = torch.float64


@dataclass
class SparseLogistic:
    r"""L2-regularised logistic regression with rare features and its exact optimum.

    :math:`f(w) = \frac1n\sum_i \log(1 + e^{-s_i x_i^\top w}) + \frac\lambda2\lVert w\rVert^2`
    (:math:`s_i = \pm 1`), on the training split of :func:`course_lib.data.make_sparse_logistic`
    with a constant feature appended (the bias). ``frequency[j]`` is the fraction of examples in
    which feature ``j`` is non-zero; ``f_star`` is the minimum, found by Newton's method.
    """

    X: torch.Tensor
    y: torch.Tensor
    l2: float
    w_star: torch.Tensor
    f_star: float
    frequency: np.ndarray
    seed: int

    def loss(self, w: torch.Tensor) -> float:
        """Full-batch objective :math:`f(w)`."""
        with torch.no_grad():
            return _logistic_loss(self.X, self.y, w.detach().to(DTYPE), self.l2).item()

    def gradient(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient of the objective on the examples ``idx`` (all of them if ``None``)."""
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        with torch.no_grad():
            return X.T @ (torch.sigmoid(X @ w) - y) / len(y) + self.l2 * w

    def hessian(self, w: torch.Tensor | None = None) -> torch.Tensor:
        r"""Full-batch Hessian :math:`\frac1n X^\top \mathrm{diag}(p(1-p))\, X + \lambda I` at ``w``
        (at the optimum :math:`w^\star` if ``None``), :math:`p = \sigma(Xw)`.

        Its diagonal entry :math:`j` is the curvature along weight :math:`j`: about
        :math:`\tfrac14\cdot` (the fraction of examples where feature :math:`j` is present), so a
        rare feature's direction is flat; its largest eigenvalue :math:`\lambda_{\max}` sets the
        full-batch gradient-descent limit :math:`\eta < 2/\lambda_{\max}` (chapter 01).
        """
        w = self.w_star if w is None else w.detach().to(DTYPE)
        with torch.no_grad():
            p = torch.sigmoid(self.X @ w)
            eye = torch.eye(self.X.shape[1], dtype=DTYPE)
            return (self.X.T * (p * (1 - p))) @ self.X / len(self.y) + self.l2 * eye


def _logistic_loss(X, y, w, l2):
    return torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 0.5 * l2 * (w @ w)


def sparse_logistic_problem(
    seed: int = 0, n: int = 2000, d: int = 100, l2: float = 1e-3, **data_kwargs: Any
) -> SparseLogistic:
    """Build the problem from ``make_sparse_logistic(n, d, seed)`` and solve it exactly.

    Newton's method with the exact Hessian (``d + 1`` unknowns) converges to machine precision in
    a few iterations; the L2 term makes the problem strongly convex, so the optimum is unique even
    when a rare feature appears only in positive examples.
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it makes the optimum finite), got {l2!r}")
    data = make_sparse_logistic(n=n, d=d, seed=seed, dtype=DTYPE, **data_kwargs)
    X = torch.cat([data.X_train, torch.ones(len(data.X_train), 1, dtype=DTYPE)], dim=1)
    y = data.y_train.to(DTYPE)
    w = torch.zeros(X.shape[1], dtype=DTYPE)
    eye = torch.eye(X.shape[1], dtype=DTYPE)
    for _ in range(50):
        p = torch.sigmoid(X @ w)
        grad = X.T @ (p - y) / len(y) + l2 * w
        if grad.abs().max() < 1e-13:
            break
        H = (X.T * (p * (1 - p))) @ X / len(y) + l2 * eye
        w = w - torch.linalg.solve(H, grad)
    frequency = (data.X_train != 0).double().mean(0).numpy()
    return SparseLogistic(
        X=X,
        y=y,
        l2=l2,
        w_star=w,
        f_star=_logistic_loss(X, y, w, l2).item(),
        frequency=frequency,
        seed=seed,
    )


def train_sparse_logistic(
    problem: SparseLogistic,
    optimizer: Any,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **optimizer_kwargs: Any,
) -> torch.Tensor:
    """Mini-batch training of the weights of ``problem`` from :math:`w = 0`; returns :math:`w_T`.

    ``optimizer`` is a class plus ``**optimizer_kwargs`` or a factory ``params -> optimizer``. The
    batch order is drawn from a generator seeded with ``seed``; gradients are computed in closed
    form (:meth:`SparseLogistic.gradient`), so a run of a few hundred steps takes milliseconds.
    ``scheduler``: optional factory ``optimizer -> LRScheduler``, stepped after every step.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    w = torch.zeros(problem.X.shape[1], dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [w], **optimizer_kwargs)
    sched = scheduler(opt) if scheduler is not None else None
    gen = torch.Generator().manual_seed(seed)
    n = len(problem.y)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            w.grad = problem.gradient(w.detach(), perm[i : i + batch_size])
            opt.step()
            if sched is not None:
                sched.step()
    return w.detach().clone()


def sparse_logistic_objective(
    epochs: int = 10,
    batch_size: int = 32,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **problem_kwargs: Any,
) -> Callable[[Callable, int], float]:
    r"""Suboptimality after a budget, as an objective for
    :func:`~course_lib.experiments.comparison.compare_optimizers`.

    ``objective(make_optimizer, seed)`` builds :func:`sparse_logistic_problem` with that ``seed``
    (a new data set per seed; problems are cached), starts from :math:`w = 0`, runs ``epochs``
    epochs of mini-batch steps (batch order seeded by ``seed``) and returns
    :math:`f(w_T) - f^\star` (NaN if the run diverged). ``scheduler`` (optional factory
    ``optimizer -> LRScheduler``) is applied to every run, e.g. the :math:`\alpha/\sqrt t` decay
    of the Adam paper's convex experiments (the paper's :math:`\alpha` is the course's
    :math:`\eta`, ``lr``).
    """
    cache: dict[int, SparseLogistic] = {}

    def objective(make_opt: Callable, seed: int) -> float:
        if seed not in cache:
            cache[seed] = sparse_logistic_problem(seed=seed, **problem_kwargs)
        prob = cache[seed]
        w = train_sparse_logistic(
            prob, make_opt, epochs=epochs, batch_size=batch_size, seed=seed, scheduler=scheduler
        )
        gap = prob.loss(w) - prob.f_star
        return gap if math.isfinite(gap) else math.nan

    objective.problems = cache  # type: ignore[attr-defined]
    return objective


# ---------------------------------------------------------------------------------------------
# Common and rare weights under one learning rate
# ---------------------------------------------------------------------------------------------


def feature_groups(
    problem: SparseLogistic, common_above: float = 0.1, rare_below: float = 0.01
) -> dict[str, np.ndarray]:
    """Boolean masks over the weights: ``"common"`` and ``"rare"`` features by frequency.

    A feature is common when it is present in more than ``common_above`` of the examples and
    rare below ``rare_below``; the appended bias weight (last) is in neither group.
    """
    if not 0 < rare_below <= common_above < 1:
        raise ValueError(
            f"need 0 < rare_below <= common_above < 1, got {rare_below!r}, {common_above!r}"
        )
    freq = problem.frequency
    return {
        "common": np.r_[freq > common_above, False],
        "rare": np.r_[freq < rare_below, False],
    }


@dataclass
class LrSweep:
    """The result of :func:`lr_sweep`: one entry per learning rate of ``lrs``.

    ``gap`` is :math:`f(w_T) - f^\\star` (``inf`` where the run blew up) and ``errors[name]`` the
    mean :math:`|w_T - w^\\star|` over the weights of each group.
    """

    lrs: np.ndarray
    gap: np.ndarray
    errors: dict[str, np.ndarray]

    def best(self, key: str = "gap") -> float:
        """The learning rate with the smallest ``gap`` (or the smallest error of group ``key``)."""
        values = self.gap if key == "gap" else self.errors[key]
        return float(self.lrs[int(np.nanargmin(values))])

    def at(self, lr: float, key: str = "gap") -> float:
        """The ``gap`` (or the error of group ``key``) at learning rate ``lr`` of the grid."""
        values = self.gap if key == "gap" else self.errors[key]
        matches = np.flatnonzero(np.isclose(self.lrs, lr))
        if not len(matches):
            raise KeyError(f"lr {lr!r} is not in the grid {self.lrs.tolist()}")
        return float(values[matches[0]])


def lr_sweep(
    problem: SparseLogistic,
    optimizer: Any,
    lrs: Sequence[float],
    groups: dict[str, np.ndarray],
    epochs: int = 2,
    batch_size: int = 32,
    seed: int = 0,
    **optimizer_kwargs: Any,
) -> LrSweep:
    """Train once per learning rate (same batch order) and measure each group's distance to w*.

    Every run is :func:`train_sparse_logistic` from :math:`w = 0` with ``optimizer(lr=lr,
    **optimizer_kwargs)``; the groups come from :func:`feature_groups`.
    """
    if not len(lrs):
        raise ValueError("lrs must not be empty")
    gaps, errors = [], {name: [] for name in groups}
    for lr in lrs:
        w = train_sparse_logistic(
            problem, optimizer, epochs=epochs, batch_size=batch_size, seed=seed, lr=lr,
            **optimizer_kwargs,
        )  # fmt: skip
        gap = problem.loss(w) - problem.f_star
        gaps.append(gap if math.isfinite(gap) else math.inf)
        distance = (w - problem.w_star).abs().numpy()
        for name, mask in groups.items():
            errors[name].append(float(distance[mask].mean()))
    return LrSweep(
        lrs=np.asarray(lrs, dtype=float),
        gap=np.asarray(gaps),
        errors={name: np.asarray(v) for name, v in errors.items()},
    )
