r"""Stability and speed on a landscape: where gradient methods diverge, how fast they converge.

Chapters 01–02 measure the learning rate at which gradient descent starts to diverge (and compare
it with :math:`2/\lambda_{\max}`), how many iterations a method needs to reach a tolerance, and
how often an iterate changes sign (the zig-zag of a too-large step or of momentum's ripples).

- :func:`is_divergent`: did a run blow up, or end with more loss than it started with?
- :func:`bisect_threshold`: the boundary of a monotone yes/no property, by bisection (e.g. the
  divergence learning rate).
- :func:`iterations_to_tolerance`: first iteration that gets within a tolerance of the minimum.
- :func:`count_sign_changes`: sign flips along a sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from course_lib.landscapes import Landscape, get_landscape, run_optimizer
from course_lib.train import make_optimizer

__all__ = [
    "bisect_threshold",
    "count_sign_changes",
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
