r"""Stability and speed on a landscape: where gradient methods diverge, how fast they converge.

Chapters 01–02 measure the learning rate at which gradient descent starts to diverge (and compare
it with :math:`2/\lambda_{\max}`), how many iterations a method needs to reach a tolerance, and
how often an iterate changes sign (the zig-zag of a too-large step or of momentum's ripples).

- :func:`is_divergent`: did a run blow up, or end with more loss than it started with?
- :func:`bisect_threshold`: the boundary of a monotone yes/no property, by bisection (e.g. the
  divergence learning rate).
- :func:`iterations_to_tolerance`: first iteration that gets within a tolerance of the minimum.
- :func:`count_sign_changes`: sign flips along a sequence.

The same questions on a real network (chapter 01): :func:`digits_checkpoint` trains a small MLP
on the digits for a few epochs (a reproducible point in weight space), :func:`gd_diverges`
asks whether full-batch gradient descent from a model's weights blows up within a few steps, and
:func:`divergence_lr` finds, by bisection, the learning rate where it starts to. Compare it with
:math:`2/\lambda_{\max}` from :func:`course_lib.experiments.sharpness.top_hessian_eigenvalue`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib.landscapes import Landscape, get_landscape, run_optimizer
from course_lib.train import make_optimizer

__all__ = [
    "bisect_threshold",
    "count_sign_changes",
    "digits_checkpoint",
    "divergence_lr",
    "gd_diverges",
    "is_divergent",
    "iterations_to_tolerance",
]


def is_divergent(landscape: Landscape | str, optimizer: Any, steps: int = 1000, **kwargs) -> bool:
    """Did a run fail to make progress? True if it blew up or ended with more loss than at start.

    ``optimizer`` and ``kwargs`` are passed to :func:`~course_lib.landscapes.run_optimizer`. On a
    quadratic, gradient descent with ``lr`` a little above ``2/λ_max`` grows its steep component
    by ``|1 − lr·λ_max| > 1`` per step: slowly, so it may stay inside the escape box for
    ``steps`` steps, but its loss does end above the start. Just below the threshold every
    component shrinks, and so does the loss.
    """
    tr = run_optimizer(landscape, optimizer, steps=steps, **kwargs)
    return bool(tr.diverged or tr.losses[-1] > tr.losses[0])


def bisect_threshold(
    predicate: Callable[[float], bool], lo: float, hi: float, rtol: float = 1e-4, max_iter: int = 60
) -> float:
    """The value where ``predicate`` switches from False to True, by bisection on ``[lo, hi]``.

    Needs ``predicate(lo)`` False and ``predicate(hi)`` True (checked; ``ValueError`` otherwise).
    Stops when the bracket is narrower than ``rtol`` times its midpoint and returns the midpoint.
    """
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")
    if predicate(lo) or not predicate(hi):
        raise ValueError(
            f"bisection needs predicate(lo={lo}) False and predicate(hi={hi}) True"
        )
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        if hi - lo <= rtol * mid:
            break
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def iterations_to_tolerance(
    landscape: Landscape | str,
    optimizer: Any,
    tol: float = 1e-6,
    max_steps: int = 2000,
    target: Sequence[float] | None = None,
    start: Sequence[float] | None = None,
    **optimizer_kwargs: Any,
) -> int | None:
    """Steps until the iterate is within ``tol`` of ``target`` (default: the first known minimum).

    The loop is :func:`~course_lib.landscapes.run_optimizer`'s (float64, autograd gradients,
    ``optimizer`` a class plus hyperparameters or a factory) but stops as soon as the distance
    to ``target`` is at most ``tol``, so sweeps over many settings stay cheap. Returns ``None``
    if that does not happen within ``max_steps`` steps or the iterate becomes non-finite.
    """
    land = get_landscape(landscape)
    if target is None:
        if not land.minima:
            raise ValueError(f"{land.name} has no known minimum: pass target")
        target = land.minima[0]
    x0 = land.start if start is None else start
    p = torch.tensor([float(v) for v in x0], dtype=torch.float64, requires_grad=True)
    goal = torch.tensor([float(v) for v in target], dtype=torch.float64)
    opt = make_optimizer(optimizer, [p], **optimizer_kwargs)
    for k in range(max_steps + 1):
        distance = float((p.detach() - goal).norm())
        if distance <= tol:
            return k
        if k == max_steps or not np.isfinite(distance):
            return None
        p.grad = None
        land.f(p).backward()
        opt.step()
    return None


def count_sign_changes(values: Sequence[float]) -> int:
    """How many times a sequence changes sign (zeros are skipped): the zig-zags of a coordinate."""
    v = np.asarray(values, dtype=float)
    s = np.sign(v[v != 0])
    return int(np.count_nonzero(s[1:] != s[:-1]))


def digits_checkpoint(
    seed: int = 0, epochs: int = 3, hidden: int = 16
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """``(model, X, y)``: an MLP 64-``hidden``-10 after ``epochs`` epochs of SGD on the digits.

    The model is :func:`course_lib.train.make_mlp` initialised from ``seed`` and trained with
    :func:`course_lib.train.train` (course ``SGD``, lr 0.1, momentum 0.9, batch size 64, batch
    order from ``seed``); ``epochs=0`` returns it untrained. ``(X, y)`` is the full digits
    training set (1,347 examples, float32), the data every full-batch measurement uses.
    """
    from course_lib.data import load_digits_data
    from course_lib.optim import SGD
    from course_lib.train import make_mlp, train

    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    digits = load_digits_data()
    model = make_mlp(64, hidden, 10, seed=seed)
    if epochs:
        train(model, SGD, digits, epochs=epochs, lr=0.1, momentum=0.9, seed=seed, progress=False)
    return model, digits.X_train, digits.y_train


def gd_diverges(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    steps: int = 20,
    loss_fn: Callable | None = None,
) -> bool:
    """Does full-batch gradient descent with ``lr`` from ``model``'s weights fail within ``steps``?

    Runs ``steps`` steps of :class:`course_lib.optim.SGD` (no momentum) on the loss of the whole
    ``(X, y)`` (default: cross-entropy), on a copy of the model, and answers True when the loss
    becomes non-finite or ends *not lower* than it started. ``model`` is not changed.
    """
    from course_lib.optim import SGD

    loss_fn = loss_fn or nn.functional.cross_entropy
    work = copy.deepcopy(model)
    opt = SGD(work.parameters(), lr=lr)
    with torch.no_grad():
        start = float(loss_fn(work(X), y))
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(work(X), y)
        if not torch.isfinite(loss):
            return True
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = float(loss_fn(work(X), y))
    return not end < start  # also True for NaN


def divergence_lr(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    lo: float,
    hi: float,
    steps: int = 20,
    rtol: float = 1e-3,
) -> float:
    """The smallest learning rate at which :func:`gd_diverges` says yes, by bisection on [lo, hi].

    ``lo`` must be a learning rate that does not diverge and ``hi`` one that does
    (:func:`bisect_threshold` checks both).
    """
    return bisect_threshold(lambda lr: gd_diverges(model, X, y, lr, steps), lo, hi, rtol=rtol)
