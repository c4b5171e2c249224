r"""When to stop, and how fast (stochastic) gradient descent gets there (chapters 00 and 01).

Three numbers measure how far an iterate :math:`w_k` is from done: the distance to the optimum
:math:`\lVert w_k - w^\star\rVert`, the suboptimality :math:`f(w_k) - f^\star` and the gradient
norm :math:`\lVert\nabla f(w_k)\rVert`. On an :math:`m`-strongly convex, :math:`L`-smooth
function they are tied by fixed constants,

.. math::

    \tfrac{m}{2}\lVert w-w^\star\rVert^2 \le f(w)-f^\star
    \le \tfrac{L}{2}\lVert w-w^\star\rVert^2,
    \qquad
    \tfrac{1}{2L}\lVert\nabla f(w)\rVert^2 \le f(w)-f^\star
    \le \tfrac{1}{2m}\lVert\nabla f(w)\rVert^2,

so a small gradient certifies a small distance and a small gap. Without strong convexity
(:math:`m = 0`) only the upper bounds by :math:`L` survive, and the three can shrink at
different rates: on :math:`f(w) = w^4` gradient descent has :math:`|w_k| \propto k^{-1/2}`,
:math:`f(w_k) \propto k^{-2}` and :math:`|f'(w_k)|^2 \propto k^{-3}`.

- :func:`gd_criteria`: run gradient descent on a function with a known minimiser and record the
  three criteria at every iterate.
- :func:`gradient_norm`: the norm of a model's full gradient on a data set.
- :func:`noisy_labels`: a training subset with a fraction of its labels replaced by wrong ones.
- :func:`watch_training`: mini-batch SGD with a constant learning rate, recording per epoch the
  mini-batch and the full gradient norms and the training and validation losses (what one could
  stop on).
- :func:`averaged_sgd_on_absolute_value`: the :math:`O(1/\sqrt T)` guarantee of SGD for convex
  functions, measured on :math:`f(w) = |w|` with noisy subgradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "AveragedSGDResult",
    "Criteria",
    "TrainingWatch",
    "averaged_sgd_on_absolute_value",
    "gd_criteria",
    "gradient_norm",
    "noisy_labels",
    "watch_training",
]


@dataclass
class Criteria:
    """The three convergence criteria at every iterate ``w_0 … w_steps`` of a run."""

    distance: np.ndarray  # ‖w_k − w*‖
    gap: np.ndarray  # f(w_k) − f*
    grad_norm: np.ndarray  # ‖∇f(w_k)‖


def gd_criteria(
    f: Callable[[torch.Tensor], torch.Tensor],
    w0: Sequence[float],
    w_star: Sequence[float],
    lr: float,
    steps: int,
) -> Criteria:
    r"""Gradient descent :math:`w \leftarrow w - \eta\nabla f(w)` from ``w0``; the criteria at each
    iterate.

    ``f`` maps a float64 tensor to a scalar tensor (gradients come from autograd); ``w_star`` is
    its minimiser, so :math:`f^\star = f(w^\star)`. Returns arrays of length ``steps + 1``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    w = torch.tensor([float(v) for v in w0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([float(v) for v in w_star], dtype=torch.float64)
    if w.shape != target.shape:
        raise ValueError("w0 and w_star must have the same length")
    f_star = float(f(target))
    distance, gap, grad_norm = [], [], []
    for k in range(steps + 1):
        loss = f(w)
        (g,) = torch.autograd.grad(loss, w)
        distance.append(float((w.detach() - target).norm()))
        gap.append(loss.item() - f_star)
        grad_norm.append(float(g.norm()))
        if k < steps:
            with torch.no_grad():
                w -= lr * g
    return Criteria(np.array(distance), np.array(gap), np.array(grad_norm))


def gradient_norm(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: Callable | None = None
) -> float:
    """``‖∇L‖`` of ``loss_fn(model(X), y)`` over all parameters (default: cross-entropy).

    The model's ``.grad`` fields are left untouched (the gradient is computed with
    ``torch.autograd.grad``).
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model(X), y), params)
    return float(torch.sqrt(sum(g.pow(2).sum() for g in grads)))


def noisy_labels(
    X: torch.Tensor, y: torch.Tensor, n: int, fraction: float, n_classes: int = 10, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples, with a ``fraction`` of their labels replaced by a *wrong* class.

    Each corrupted label is moved to one of the other ``n_classes − 1`` classes uniformly at
    random, so exactly the chosen examples are wrong. A network that fits them must memorise
    noise, which is what makes the validation loss rise late in training.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if not 1 <= n <= len(X):
        raise ValueError(f"n must be between 1 and {len(X)}, got {n}")
    gen = torch.Generator().manual_seed(seed)
    X, y = X[:n], y[:n].clone()
    flip = torch.rand(n, generator=gen) < fraction
    shift = torch.randint(1, n_classes, (int(flip.sum()),), generator=gen)
    y[flip] = (y[flip] + shift) % n_classes
    return X, y


@dataclass
class TrainingWatch:
    """Per-epoch records of :func:`watch_training` (one entry per epoch)."""

    minibatch_grad_norm: np.ndarray  # mean over the epoch's steps of ‖∇L_B‖ (before each step)
    full_grad_norm: np.ndarray  # ‖∇L‖ on the whole training set, at the end of the epoch
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray

    @property
    def best_epoch(self) -> int:
        """The epoch (0-based) with the lowest validation loss: where early stopping restores."""
        return int(np.argmin(self.val_loss))


def watch_training(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    val_data: tuple[torch.Tensor, torch.Tensor],
    lr: float,
    epochs: int,
    batch_size: int = 30,
    seed: int = 0,
) -> TrainingWatch:
    r"""Mini-batch SGD with a constant ``lr`` (cross-entropy); record what one could stop on.

    Every step draws the next mini-batch of a seeded shuffle, computes :math:`\nabla L_B`,
    records its norm and takes the step :math:`w \leftarrow w - \eta\nabla L_B` with
    :class:`course_lib.optim.SGD`. After every epoch it records the full training gradient norm
    :math:`\lVert\nabla L\rVert` (:func:`gradient_norm`), the training loss and the validation
    loss and accuracy. ``model`` is trained in place.
    """
    from course_lib.optim import SGD

    if epochs < 1 or batch_size < 1:
        raise ValueError("need epochs >= 1 and batch_size >= 1")
    X, y = train_data
    X_val, y_val = val_data
    loss_fn = nn.functional.cross_entropy
    opt = SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    records = []
    for _ in range(epochs):
        norms = []
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            norms.append(float(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))))
            opt.step()
        full = gradient_norm(model, X, y, loss_fn)
        with torch.no_grad():
            train_loss = float(loss_fn(model(X), y))
            out = model(X_val)
            val_loss = float(loss_fn(out, y_val))
            val_acc = float((out.argmax(1) == y_val).double().mean())
        records.append((np.mean(norms), full, train_loss, val_loss, val_acc))
    cols = np.array(records).T
    return TrainingWatch(*cols)


@dataclass
class AveragedSGDResult:
    """:func:`averaged_sgd_on_absolute_value`: measured gaps and the guarantee, per horizon."""

    horizons: np.ndarray
    gap: np.ndarray  # E f(w̄_T) − f*, averaged over the chains
    std_error: np.ndarray  # standard error of that mean
    bound: np.ndarray  # D·G/√T


def averaged_sgd_on_absolute_value(
    horizons: Sequence[int],
    distance: float = 1.0,
    noise: float = 1.0,
    chains: int = 2000,
    seed: int = 0,
) -> AveragedSGDResult:
    r"""The :math:`DG/\sqrt T` guarantee of SGD with iterate averaging, measured on :math:`|w|`.

    The function :math:`f(w) = |w|` is convex (not smooth, not strongly convex), with
    :math:`w^\star = 0` and :math:`f^\star = 0`. A stochastic subgradient is
    :math:`g = \mathrm{sign}(w) + \xi` with :math:`\xi \sim N(0, \sigma^2)`, so
    :math:`\mathbb E\,g^2 = 1 + \sigma^2 =: G^2` (:math:`\mathrm{sign}(0) = 0`). For every
    horizon :math:`T`, ``chains`` independent runs start at :math:`w_0 = D` (``distance``),
    take :math:`T` steps with the constant step :math:`\eta = D/(G\sqrt T)` and return the
    average :math:`\bar w_T = \frac1T\sum_{t<T} w_t`. The theorem (e.g. Nemirovski, Juditsky,
    Lan & Shapiro 2009) guarantees :math:`\mathbb E f(\bar w_T) - f^\star \le DG/\sqrt T`.
    """
    horizons = np.asarray(horizons, dtype=int)
    if np.any(horizons < 1) or distance <= 0 or noise < 0 or chains < 2:
        raise ValueError("need horizons >= 1, distance > 0, noise >= 0 and chains >= 2")
    rng = np.random.default_rng(seed)
    G = math.sqrt(1.0 + noise**2)
    gaps, errors = [], []
    for T in horizons:
        lr = distance / (G * math.sqrt(T))
        w = np.full(chains, float(distance))
        total = np.zeros(chains)
        for _ in range(T):
            total += w
            g = np.sign(w) + noise * rng.standard_normal(chains)
            w = w - lr * g
        values = np.abs(total / T)
        gaps.append(values.mean())
        errors.append(values.std(ddof=1) / math.sqrt(chains))
    bound = distance * G / np.sqrt(horizons)
    return AveragedSGDResult(horizons, np.array(gaps), np.array(errors), bound)
