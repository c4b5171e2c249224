r"""Choosing a learning rate in practice: what to watch in a run, and how to search (chapter 01).

**Watching a run.** :func:`lr_sweep` trains the same network with several learning rates and
records, at every step, the mini-batch loss and, for every parameter tensor, the
*update-to-weight ratio* :math:`\lVert\Delta w\rVert / \lVert w\rVert` (the size of the step
actually taken, relative to the weights it changes). The CS231n notes (Karpathy, "Neural Networks
Part 3") suggest tracking this ratio per set of parameters, with "somewhere around 1e-3" as a rough
heuristic; for plain SGD the update is :math:`\eta g`, so the ratio is proportional to
:math:`\eta`.

**Searching.** Bergstra & Bengio (2012, "Random search for hyper-parameter optimization", JMLR
13) observe that when only a few of several hyperparameters matter, a grid wastes its budget:
a :math:`3\times3` grid tries only 3 values of the important one, nine random points try 9.
:class:`LeastSquaresTuning` is a small problem whose validation loss after :math:`T` steps of
gradient descent has a closed form for every (learning rate, weight decay), so thousands of
searches cost nothing: :func:`grid_search` and :func:`random_search` compare the two on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "LeastSquaresTuning",
    "SweepRun",
    "grid_search",
    "lr_sweep",
    "random_search",
]


@dataclass
class SweepRun:
    """One learning rate of :func:`lr_sweep`: per-step records, cut where the run diverged."""

    lr: float
    losses: np.ndarray  # mini-batch loss of every step
    update_ratio: dict[str, np.ndarray]  # parameter name -> ‖Δw‖/‖w‖ of every step
    diverged_at: int | None  # first step whose loss was not finite (None: never)


def lr_sweep(
    make_model: Callable[[], nn.Module],
    X: torch.Tensor,
    y: torch.Tensor,
    lrs: Sequence[float],
    epochs: int = 5,
    batch_size: int = 32,
    seed: int = 0,
) -> list[SweepRun]:
    r"""Train ``make_model()`` with plain SGD at every learning rate in ``lrs``; watch each step.

    Every run starts from a fresh ``make_model()`` (so from the same weights if it is seeded),
    uses the same seeded batch order and :class:`course_lib.optim.SGD` with cross-entropy. At
    every step it records the mini-batch loss and, for each parameter tensor,
    :math:`\lVert w_{k+1} - w_k\rVert / \lVert w_k\rVert`, measured on the weights themselves
    (so it is right for any optimizer). A run stops at the first non-finite loss.
    """
    from course_lib.optim import SGD

    runs = []
    for lr in lrs:
        model = make_model()
        opt = SGD(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        names = [name for name, _ in model.named_parameters()]
        losses: list[float] = []
        ratios: dict[str, list[float]] = {name: [] for name in names}
        diverged_at = None
        for _ in range(epochs):
            for idx in torch.randperm(len(X), generator=gen).split(batch_size):
                before = [p.detach().clone() for p in model.parameters()]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
                if not torch.isfinite(loss):
                    diverged_at = len(losses)
                    break
                loss.backward()
                opt.step()
                losses.append(loss.item())
                for name, p, p0 in zip(names, model.parameters(), before):
                    ratios[name].append(float((p.detach() - p0).norm() / p0.norm()))
            if diverged_at is not None:
                break
        runs.append(
            SweepRun(lr, np.array(losses), {k: np.array(v) for k, v in ratios.items()}, diverged_at)
        )
    return runs


class LeastSquaresTuning:
    r"""A tuning problem with an exact answer: least squares trained by ``steps`` steps of GD.

    Features :math:`x \in \mathbb R^d` have standard deviations spread log-uniformly from 1 down
    to ``min_scale`` (so the problem is ill-conditioned and the number of steps is too small
    unless the learning rate is well chosen); targets are :math:`y = x^\top w_{true} + `
    noise. Training minimises :math:`\frac1{2n}\lVert Xw - y\rVert^2 + \frac{\lambda}2\lVert
    w\rVert^2` by gradient descent from :math:`w = 0`; in the eigenbasis of
    :math:`H = X^\top X/n` the iterate after :math:`T` steps is

    .. math:: w_T = \sum_i \frac{1 - (1 - \eta(h_i + \lambda))^T}{h_i + \lambda}\,
              (q_i^\top b)\,q_i, \qquad b = X^\top y/n,

    so :meth:`validation_loss` evaluates any (η, λ) exactly and in bulk. A learning rate above
    :math:`2/(h_{\max} + \lambda)` diverges: its loss is ``inf``.
    """

    def __init__(
        self,
        n_train: int = 300,
        n_val: int = 100,
        d: int = 20,
        min_scale: float = 0.03,
        noise: float = 0.5,
        steps: int = 100,
        seed: int = 0,
    ):
        rng = np.random.default_rng(seed)
        n = n_train + n_val
        X = rng.standard_normal((n, d)) * np.geomspace(1.0, min_scale, d)
        y = X @ rng.standard_normal(d) + noise * rng.standard_normal(n)
        self.X_train, self.y_train = X[:n_train], y[:n_train]
        self.X_val, self.y_val = X[n_train:], y[n_train:]
        self.steps = steps
        H = self.X_train.T @ self.X_train / n_train
        self.curvatures, self.eigenvectors = np.linalg.eigh(H)
        self._b = self.eigenvectors.T @ (self.X_train.T @ self.y_train / n_train)

    def validation_loss(self, lr, weight_decay) -> np.ndarray:
        """½·mean squared error on the validation set after training with (lr, weight_decay).

        Broadcasts over arrays of learning rates and weight decays; ``inf`` where GD diverges.
        """
        lr, wd = np.broadcast_arrays(np.asarray(lr, float), np.asarray(weight_decay, float))
        h = self.curvatures + wd[..., None]
        factor = 1 - lr[..., None] * h
        with np.errstate(over="ignore", invalid="ignore"):
            coords = self._b * (1 - factor**self.steps) / h
            w = coords @ self.eigenvectors.T
            residual = w @ self.X_val.T - self.y_val
            loss = 0.5 * np.mean(residual**2, axis=-1)
        diverged = np.any(np.abs(factor) > 1, axis=-1)
        return np.where(diverged | ~np.isfinite(loss), np.inf, loss)


def _log_points(low: float, high: float, u: np.ndarray) -> np.ndarray:
    return np.exp(math.log(low) + (math.log(high) - math.log(low)) * u)


def grid_search(
    problem: LeastSquaresTuning,
    lr_range: tuple[float, float],
    wd_range: tuple[float, float] | None,
    points_per_axis: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The best validation loss of a log-spaced grid, and the grid's points ``(lrs, wds)``.

    ``wd_range=None`` searches the learning rate alone (weight decay 0): a 1-D grid.
    """
    u = np.linspace(0.0, 1.0, points_per_axis)
    lrs = _log_points(*lr_range, u)
    if wd_range is None:
        LR, WD = lrs, np.zeros_like(lrs)
    else:
        LR, WD = (a.ravel() for a in np.meshgrid(lrs, _log_points(*wd_range, u)))
    return float(problem.validation_loss(LR, WD).min()), LR, WD


def random_search(
    problem: LeastSquaresTuning,
    lr_range: tuple[float, float],
    wd_range: tuple[float, float] | None,
    trials: int,
    repeats: int,
    seed: int = 0,
) -> np.ndarray:
    """The best validation loss of ``repeats`` independent random searches of ``trials`` points.

    Each point is drawn log-uniformly in the box (weight decay 0 when ``wd_range`` is None).
    Returns an array of ``repeats`` best losses: the distribution of what one search finds.
    """
    rng = np.random.default_rng(seed)
    LR = _log_points(*lr_range, rng.random((repeats, trials)))
    WD = np.zeros_like(LR) if wd_range is None else _log_points(*wd_range, rng.random(LR.shape))
    return problem.validation_loss(LR, WD).min(axis=1)
