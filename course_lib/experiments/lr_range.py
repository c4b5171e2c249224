r"""The learning-rate range test: one short run with a growing lr, the loss against the lr.

**What Smith (2017) proposes.** "Cyclical Learning Rates for Training Neural Networks"
(WACV 2017, Sec. 3.3) runs the model "for several epochs while letting the learning rate
increase *linearly* between low and high LR values", plots the *accuracy* against the lr, and
takes the lr where the accuracy starts to rise as the lower bound of a cycle and the lr where it
slows, becomes ragged or falls as the upper bound. (He also gives a rule of thumb: the best lr is
usually within a factor of two of the largest one that converges.)

**What is usually run today** (fastai's ``lr_find``, this module): the lr grows
*exponentially*, :math:`\eta_k = \eta_{\text{start}}\,(\eta_{\text{end}}/
\eta_{\text{start}})^{k/(K-1)}` for :math:`k = 0, \dots, K-1`, so every decade gets the same
number of steps; each step trains on a new mini-batch; the training loss is smoothed with a
bias-corrected EMA, :math:`s_k = \beta\,s_{k-1} + (1-\beta)\,\ell_k` (:math:`s_{-1} = 0`) and
:math:`\hat s_k = s_k/(1-\beta^{k+1})`; the test stops early when :math:`\hat s_k` exceeds
``diverge_factor`` times its minimum (the loss has blown up).

**Rules to pick a value** (:func:`suggest_lr`), both heuristics, neither from Smith 2017:

* ``"min/10"``: one tenth of the lr at which the smoothed loss is smallest (at that lr the loss is
  still falling, but it is already close to blowing up);
* ``"steepest"``: the lr where the smoothed loss falls fastest per decade of lr.

The test is cheap (one short run), but it measures *early* training at a moving lr: the lesson
checks its pick against a sweep of constant learning rates trained for longer.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["LRRangeResult", "lr_range_test", "suggest_lr"]


@dataclass
class LRRangeResult:
    """``lrs``, raw ``losses`` and bias-corrected EMA ``smoothed`` losses, one per step run;
    ``stopped_early``: the smoothed loss exceeded ``diverge_factor`` × its minimum."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    stopped_early: bool


def lr_range_test(
    model: nn.Module,
    optimizer: Callable[..., torch.optim.Optimizer],
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    lr_start: float = 1e-4,
    lr_end: float = 10.0,
    steps: int = 100,
    batch_size: int = 64,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
    seed: int = 0,
    loss_fn: Callable = nn.functional.cross_entropy,
) -> LRRangeResult:
    """Run the range test on a *copy* of ``model`` (the model passed in is not trained).

    ``optimizer``: a factory ``(params, lr) -> optimizer``. ``steps`` updates, each on a fresh
    mini-batch of ``batch_size`` rows drawn in a seeded random order (reshuffled every pass).
    """
    if not (0 < lr_start < lr_end):
        raise ValueError(f"need 0 < lr_start < lr_end, got {lr_start}, {lr_end}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    net = copy.deepcopy(model)
    opt = optimizer(net.parameters(), lr_start)
    gen = torch.Generator().manual_seed(seed)
    ratio = lr_end / lr_start
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    order = torch.randperm(len(X), generator=gen)
    pos = 0
    for k in range(steps):
        if pos + batch_size > len(X):
            order, pos = torch.randperm(len(X), generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        lr = lr_start * ratio ** (k / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(net(X[idx]), y[idx])
        value = loss.item()
        if not math.isfinite(value):
            stopped = True
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        avg = smoothing * avg + (1 - smoothing) * value
        corrected = avg / (1 - smoothing ** (k + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(corrected)
        best = min(best, corrected)
        if corrected > diverge_factor * best:
            stopped = True
            break
    return LRRangeResult(np.array(lrs), np.array(losses), np.array(smoothed), stopped)


def suggest_lr(result: LRRangeResult, rule: str = "min/10") -> float:
    """A learning rate picked from a range test by ``rule`` (``"min/10"`` or ``"steepest"``)."""
    lrs, s = result.lrs, result.smoothed
    if len(lrs) < 3:
        raise ValueError("the range test ran fewer than 3 steps: start from a smaller lr_start")
    if rule == "min/10":
        return float(lrs[int(np.argmin(s))] / 10)
    if rule == "steepest":
        slope = np.gradient(s, np.log10(lrs))  # change of the loss per decade of lr
        upto = int(np.argmin(s)) + 1  # only the falling part counts
        return float(lrs[int(np.argmin(slope[:upto]))])
    raise ValueError(f"unknown rule {rule!r}: 'min/10' or 'steepest'")
