r"""Rectification and Nesterov inside adaptive methods: RAdam, NAdam and Adan (chapter 08).

**The variance of the adaptive learning rate.** Adam divides by :math:`\sqrt{\hat v_t}`, an
average of only :math:`t` squared gradients in the first steps. With gradients
:math:`g_i \sim \mathcal N(0, \sigma^2)` (the model of Liu et al., 2020, Sec. 3), the adaptive
learning rate :math:`\psi_t = \sqrt{(1-\beta_2^t)/v_t}` is a random variable whose spread is huge
at first and shrinks as the average fills. :func:`simulate_adaptive_lr` measures that spread by
Monte Carlo; chapter 07 measures what warmup does about it.

**RAdam's model of it.** Liu et al. approximate the exponential moving average by a simple moving
average of length

.. math::
    \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \qquad
    \rho_\infty = \frac{2}{1-\beta_2} - 1,

so that :math:`\psi_t^2` is a scaled inverse :math:`\chi^2` with :math:`\rho_t` degrees of
freedom. Its variance :func:`psi_variance_exact` is infinite for :math:`\rho_t \le 2`; the
paper's first-order approximation :func:`psi_variance_approx`,
:math:`\rho/(2(\rho-2)(\rho-4))` (in units of :math:`1/\sigma^2`), exists only for
:math:`\rho_t > 4`. The rectifier :math:`r_t = \sqrt{\mathrm{Var}_\infty/\mathrm{Var}_t}` built
from the approximation,

.. math::
    r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\,\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\,\rho_t}},

scales the adaptive step so that its variance is the one it will have at :math:`t\to\infty`.
Before the switch (:func:`switch_step`) RAdam takes the momentum step :math:`\eta\,\hat m_t`
without any division. Thresholds differ: :math:`\rho_t > 4` in the paper's Algorithm 2,
:math:`\rho_t > 5` in ``torch.optim.RAdam`` (and in ``course_lib.optim.RAdam``),
:math:`\rho_t \ge 5` in the official repository (``LiyuanLucasLiu/RAdam``, which also takes the
momentum step before the switch by default, ``degenerated_to_sgd=True``, and skips the update
only when that flag is turned off).

**NAdam's momentum schedule** (:func:`nadam_mu`): ``torch.optim.NAdam`` multiplies the momentum by
:math:`\mu_t = \beta_1(1 - \tfrac12\,0.96^{t\psi})`, :math:`\psi` = ``momentum_decay`` = 0.004,
which starts near :math:`\beta_1/2` and creeps towards :math:`\beta_1` over thousands of steps.

**Training comparisons** (:func:`train_grid`): the same model, data, budget and seeds for every
optimizer and learning rate, the final training loss of each run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from course_lib.optim.blocks.rectification import radam_rho, radam_rho_inf

__all__ = [
    "AdaptiveLrSpread",
    "TrainGrid",
    "THRESHOLDS",
    "nadam_mu",
    "psi_variance_approx",
    "psi_variance_exact",
    "rectifier",
    "rho",
    "rho_inf",
    "simulate_adaptive_lr",
    "step_sizes",
    "switch_step",
    "train_grid",
]

# Where each source switches from the momentum step to the rectified step: (threshold, inclusive).
THRESHOLDS: dict[str, tuple[float, bool]] = {
    "paper, Algorithm 2: ρ_t > 4": (4.0, False),
    "torch.optim.RAdam: ρ_t > 5": (5.0, False),
    "official repository: ρ_t ≥ 5": (5.0, True),
}


def rho_inf(beta2: float) -> float:
    r""":math:`\rho_\infty = 2/(1-\beta_2) - 1`, the length of the SMA the EMA tends to."""
    return radam_rho_inf(beta2)


def rho(t: int | np.ndarray, beta2: float) -> np.ndarray:
    r""":math:`\rho_t` for steps :math:`t \ge 1` (vectorised); :math:`\rho_1 = 1` for every
    :math:`\beta_2`, and :math:`\rho_t` increases to :math:`\rho_\infty`."""
    t = np.asarray(t, dtype=float)
    return np.vectorize(lambda s: radam_rho(int(s), beta2), otypes=[float])(t)


def switch_step(beta2: float, threshold: float = 5.0, inclusive: bool = False) -> int | None:
    r"""The first step :math:`t` with :math:`\rho_t > \text{threshold}` (``inclusive``:
    :math:`\ge`), i.e. RAdam's first rectified step; ``None`` if :math:`\rho_\infty` never gets
    there (:math:`\beta_2` too small)."""
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")
    limit = rho_inf(beta2)
    if limit < threshold or (limit == threshold and not inclusive):
        return None
    t = 1
    while True:
        r = radam_rho(t, beta2)
        if r > threshold or (inclusive and r >= threshold):
            return t
        if r >= limit - 1e-12:  # converged without crossing (threshold within rounding of ρ∞)
            return None
        t += 1


def rectifier(t: int | np.ndarray, beta2: float) -> np.ndarray:
    r""":math:`r_t` for each step (vectorised), ``nan`` where :math:`\rho_t \le 4` (undefined)."""
    r = rho(t, beta2)
    ri = rho_inf(beta2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt((r - 4) * (r - 2) * ri / ((ri - 4) * (ri - 2) * r))
    return np.where(r > 4, out, np.nan)


def psi_variance_exact(rho_: float | np.ndarray) -> np.ndarray:
    r""":math:`\mathrm{Var}[\psi]\,\sigma^2` for :math:`\psi^2 \sim` scaled inverse
    :math:`\chi^2` with :math:`\rho` degrees of freedom (mean :math:`\rho/((\rho-2)\sigma^2)`):

    .. math::
        \mathrm{Var}[\psi]\,\sigma^2 = \frac{\rho}{\rho-2}
            - \frac{\rho}{2}\left(\frac{\Gamma(\frac{\rho-1}{2})}{\Gamma(\frac{\rho}{2})}\right)^2,

    from :math:`E[X^{-1}] = 1/(\rho-2)` and :math:`E[X^{-1/2}] = \Gamma(\frac{\rho-1}2)/
    (\sqrt2\,\Gamma(\frac\rho2))` for :math:`X \sim \chi^2_\rho`. Infinite for :math:`\rho\le 2`.
    """
    rho_ = np.atleast_1d(np.asarray(rho_, dtype=float))
    out = np.full(rho_.shape, np.inf)
    ok = rho_ > 2
    lg = np.array([math.lgamma((r - 1) / 2) - math.lgamma(r / 2) for r in rho_[ok]])
    out[ok] = rho_[ok] / (rho_[ok] - 2) - rho_[ok] / 2 * np.exp(2 * lg)
    return out


def psi_variance_approx(rho_: float | np.ndarray) -> np.ndarray:
    r"""The paper's first-order approximation :math:`\rho/(2(\rho-2)(\rho-4))` of
    :math:`\mathrm{Var}[\psi]\,\sigma^2`; ``nan`` for :math:`\rho \le 4`, where it does not
    exist."""
    rho_ = np.atleast_1d(np.asarray(rho_, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = rho_ / (2 * (rho_ - 2) * (rho_ - 4))
    return np.where(rho_ > 4, out, np.nan)


@dataclass
class AdaptiveLrSpread:
    """Monte Carlo spread of the adaptive learning rate over ``runs`` independent runs.

    ``var_adam[t-1]`` is the variance over runs of :math:`\\psi_t = \\sqrt{(1-\\beta_2^t)/v_t}`
    (Adam's adaptive lr per unit :math:`\\eta`), ``var_rectified[t-1]`` that of
    :math:`r_t\\,\\psi_t` (``nan`` before the switch), ``var_limit`` the approximation
    :math:`\\mathrm{Var}_\\infty` the rectifier aims at; gradients are :math:`\\mathcal N(0, 1)`.
    """

    beta2: float
    t: np.ndarray
    var_adam: np.ndarray
    var_rectified: np.ndarray
    var_limit: float
    runs: int


def simulate_adaptive_lr(
    beta2: float = 0.999, steps: int = 200, runs: int = 20_000, seed: int = 0
) -> AdaptiveLrSpread:
    r"""Feed ``runs`` independent streams of :math:`\mathcal N(0,1)` gradients to Adam's second
    moment and measure, per step, the variance of :math:`\psi_t` with and without RAdam's
    rectifier (torch's threshold :math:`\rho_t > 5`). In float64."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(steps, runs, generator=gen, dtype=torch.float64)
    t = np.arange(1, steps + 1)
    v = torch.zeros(runs, dtype=torch.float64)
    var_adam = np.empty(steps)
    for i in range(steps):
        v.mul_(beta2).addcmul_(g[i], g[i], value=1 - beta2)
        psi = ((1 - beta2 ** (i + 1)) / v).sqrt()
        var_adam[i] = psi.var().item()
    r = rectifier(t, beta2)
    rectified = rho(t, beta2) > 5
    var_rect = np.where(rectified, r**2 * var_adam, np.nan)
    limit = float(psi_variance_approx(rho_inf(beta2))[0])
    return AdaptiveLrSpread(beta2, t, var_adam, var_rect, limit, runs)


def nadam_mu(t: int | np.ndarray, beta1: float = 0.9, momentum_decay: float = 4e-3) -> np.ndarray:
    r"""``torch.optim.NAdam``'s momentum coefficient :math:`\mu_t = \beta_1(1 - \tfrac12\,
    0.96^{t\psi})` at steps ``t`` (:math:`\psi` = ``momentum_decay``)."""
    t = np.asarray(t, dtype=float)
    return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))


def step_sizes(
    optimizer: Callable[..., torch.optim.Optimizer],
    grads: Sequence[float] | np.ndarray,
    **hyperparameters: Any,
) -> np.ndarray:
    """|Δw| of a one-parameter ``optimizer`` fed the gradient sequence ``grads`` (float64)."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = optimizer([w], **hyperparameters)
    out = np.empty(len(grads))
    for i, g in enumerate(grads):
        before = w.detach().clone()
        w.grad = torch.full_like(w, float(g))
        opt.step()
        out[i] = (w.detach() - before).abs().item()
    return out


@dataclass
class TrainGrid:
    """Final training losses of a learning-rate × seed grid, per optimizer.

    ``loss[name]`` has one row per learning rate of ``lrs[name]`` and one column per seed: the
    mean training loss of the last epoch, ``inf`` where the run diverged.
    """

    lrs: dict[str, list[float]]
    seeds: tuple[int, ...]
    loss: dict[str, np.ndarray] = field(default_factory=dict)
    test_accuracy: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0

    def best(self, name: str) -> tuple[float, np.ndarray]:
        """The learning rate with the lowest median loss over seeds, and its losses."""
        med = np.median(self.loss[name], axis=1)
        i = int(np.argmin(med))
        return self.lrs[name][i], self.loss[name][i]


def train_grid(
    methods: dict[str, tuple[Any, dict[str, Any], Callable[[float], Any] | None]],
    lrs: dict[str, Iterable[float]],
    data: Any,
    *,
    hidden: int = 128,
    epochs: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    batch_size: int = 64,
) -> TrainGrid:
    """Train ``make_mlp(n_in, hidden, n_classes)`` on ``data`` for every method, lr and seed.

    ``methods[name] = (optimizer class, fixed hyperparameters, schedule or None)``; a schedule is
    a function ``lr -> (step -> lr)`` (e.g. a linear warmup to ``lr``). Same initialisation and
    batch order for a given seed, same number of steps for everyone.
    """
    from course_lib.train import make_mlp, train

    n_in, n_out = data.X_train.shape[1], int(data.y_train.max()) + 1
    grid = TrainGrid({k: list(v) for k, v in lrs.items()}, tuple(seeds))
    for name, (cls, hyper, schedule) in methods.items():
        losses, accs = [], []
        for lr in grid.lrs[name]:
            row, acc = [], []
            for seed in seeds:
                h = train(
                    make_mlp(n_in, hidden, n_out, seed=seed),
                    cls,
                    data,
                    epochs=epochs,
                    lr=lr,
                    lr_schedule=None if schedule is None else schedule(lr),
                    batch_size=batch_size,
                    seed=seed,
                    progress=False,
                    **hyper,
                )
                grid.steps = max(grid.steps, h.steps)
                row.append(math.inf if h.diverged else h.epoch_loss[-1])
                acc.append(h.test_accuracy[-1] if h.test_accuracy and not h.diverged else 0.0)
            losses.append(row)
            accs.append(acc)
        grid.loss[name] = np.array(losses)
        grid.test_accuracy[name] = np.array(accs)
    return grid
