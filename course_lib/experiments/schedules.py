r"""Learning-rate schedules measured on a real task: snapshot ensembles, warmup, lr vs batch size.

Chapter 07 makes four measured claims about schedules; each needs a loop or two, written here
once and tested.

**One training run with a pure schedule** (:func:`train_scheduled`). A tiny MLP on the digits
(:func:`course_lib.data.load_digits_data`), mini-batch training where, before update number
:math:`t+1`, every param group gets :math:`\eta_t = S(t)` (a schedule of
:mod:`course_lib.optim.schedules`; ``t`` counts updates already taken, PyTorch's convention). The
run can keep *snapshots*: the test-set class probabilities after chosen steps. Everything the
chapter compares (constant lr, cosine, SGDR, snapshot ensembles) is one call of it, so runs are
shared between measurements.

**Snapshot ensembles** (Huang et al., "Snapshot Ensembles: Train 1, get M for free", ICLR 2017).
Train with a cyclic cosine schedule of :math:`M` equal cycles (SGDR with :math:`T_{mult} = 1`),
take a snapshot at the end of each cycle, where the lr is smallest, and predict with the average
of the snapshots' softmax outputs (:func:`ensemble_probs`; the paper averages the last
:math:`m \le M` snapshots). An ensemble only helps if its members disagree:
:func:`disagreement` is the fraction of test points on which two snapshots predict different
classes.

**Warmup and the adaptive step** (:func:`adam_update_spread`). Adam's update is
:math:`\eta_t\,\hat m_t/(\sqrt{\hat v_t}+\epsilon)`. In the first steps :math:`\hat v_t` is an
average of very few squared gradients, so :math:`1/\sqrt{\hat v_t}` is wildly spread across
coordinates (with zero-mean Gaussian gradients and :math:`\beta_2 \to 1`, :math:`\hat v_1 = g_1^2`
and :math:`\mathbb E[1/\hat v_1] = \infty`). Feeding Adam i.i.d. gradients and measuring the
spread of the update across many coordinates shows it; a warmup multiplies the update by a small
:math:`\eta_t` exactly while the spread is large. (RAdam, chapter 08, removes the cause instead.)

**Learning rate vs batch size** (:func:`batch_size_sweep`). Smith & Le (2018) and Smith et al.
("Don't decay the learning rate, increase the batch size", ICLR 2018) model SGD as a stochastic
differential equation with noise scale :math:`g = \eta\,(N/B - 1) \approx \eta N/B` for
:math:`B \ll N` (with momentum :math:`\mu`: :math:`g \approx \eta N/(B(1-\mu))`). Runs with the
same :math:`\eta/B` then train alike *per epoch*, as long as (i) :math:`B \ll N` and (ii)
:math:`\eta` stays below the curvature limit (chapter 01's :math:`2/\lambda_{\max}`): both
conditions fail for large :math:`B`, and the sweep shows where.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from course_lib.data import load_digits_data
from course_lib.optim.schedules import lr_at
from course_lib.train import make_mlp

__all__ = [
    "ScheduledRun",
    "adam_update_spread",
    "batch_size_sweep",
    "disagreement",
    "ensemble_probs",
    "mean_disagreement",
    "accuracy",
    "digits",
    "nll",
    "steps_per_epoch",
    "train_scheduled",
]

HIDDEN = 32  # the tiny MLP 64 → 32 → 10 of every run here


@dataclass
class ScheduledRun:
    """One run of :func:`train_scheduled`.

    ``lrs``: the lr of every update; ``epoch_loss``: mean training loss per epoch (NaN after a
    divergence); ``probs``: test-set class probabilities at the end; ``snapshots``: step →
    test probabilities after that many updates; ``diverged``: the loss became non-finite;
    ``train_loss_end``: the loss on the whole training set after the last update;
    ``eval_loss``: the loss on the evaluation split (test, or validation with ``holdout``) after
    every epoch — what ``ReduceLROnPlateau`` or early stopping would watch.
    """

    lrs: np.ndarray
    epoch_loss: np.ndarray
    probs: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    diverged: bool = False
    y_test: torch.Tensor | None = None
    train_loss_end: float = math.nan
    eval_loss: np.ndarray = field(default_factory=lambda: np.array([]))

    @property
    def test_accuracy(self) -> float:
        return accuracy(self.probs, self.y_test)

    @property
    def final_loss(self) -> float:
        return float(self.epoch_loss[-1])


_DIGITS: dict[tuple[int, bool], tuple] = {}
HOLDOUT = 0.2  # the fraction of the training split held out for validation


def digits(seed: int = 0, holdout: bool = False):
    """``(X_train, y_train, X_eval, y_eval)`` of the digits split ``seed`` (cached).

    ``holdout=False``: the training split and the test split. ``holdout=True``: 80 % of the
    training split to train on and the other 20 % (a fixed seeded choice) to validate on; the
    test split is not touched, so hyperparameters tuned on it are then evaluated on unseen data.
    """
    key = (seed, holdout)
    if key not in _DIGITS:
        ds = load_digits_data(seed=seed)
        X, y = ds.train
        if holdout:
            perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
            n_val = int(HOLDOUT * len(X))
            val, tr = perm[:n_val], perm[n_val:]
            _DIGITS[key] = (X[tr], y[tr], X[val], y[val])
        else:
            _DIGITS[key] = (X, y, *ds.test)
    return _DIGITS[key]


def train_scheduled(
    schedule: float | Callable[[int], float],
    *,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 128,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    snapshot_steps: Iterable[int] = (),
    hidden: int = HIDDEN,
    data_seed: int = 0,
    holdout: bool = False,
) -> ScheduledRun:
    r"""Train the digits MLP with lr :math:`\eta_t = S(t)` set before every update.

    ``schedule``: a number (constant lr) or a callable ``step -> lr``. ``optimizer``: a factory
    ``(params, lr) -> optimizer`` (default SGD with momentum 0.9). ``seed`` sets the
    initialisation and the batch order; ``data_seed`` the train/test split; ``holdout=True``
    trains on 80 % of the training split and evaluates on the other 20 % (see :func:`digits`:
    tune there, report on the test split). ``snapshot_steps``:
    after these numbers of updates, store the test probabilities (a snapshot). A run whose loss
    becomes non-finite stops and is marked ``diverged``.
    """
    X, y, X_test, y_test = digits(data_seed, holdout)
    model = make_mlp(X.shape[1], hidden, 10, seed=seed)
    make = optimizer or (lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9))
    opt = make(model.parameters(), lr_at(schedule, 0))
    wanted = set(int(s) for s in snapshot_steps)
    gen = torch.Generator().manual_seed(seed)
    lrs, losses, snapshots, eval_losses = [], [], {}, []
    t, diverged = 0, False
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = perm[start : start + batch_size]
            lr = lr_at(schedule, t)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            lrs.append(lr)
            total += loss.item() * len(idx)
            t += 1
            if t in wanted:
                snapshots[t] = _probs(model, X_test)
        if diverged:
            losses.append(math.nan)
            break
        losses.append(total / len(X))
        eval_losses.append(nll(_probs(model, X_test), y_test))
    probs = _probs(model, X_test) if not diverged else torch.full((len(X_test), 10), 0.1)
    with torch.no_grad():
        end_loss = math.nan if diverged else nn.functional.cross_entropy(model(X), y).item()
    run = ScheduledRun(np.array(lrs), np.array(losses), probs, snapshots, diverged, y_test)
    run.train_loss_end = end_loss if math.isfinite(end_loss) else math.nan
    run.eval_loss = np.array(eval_losses)
    return run


def steps_per_epoch(batch_size: int = 128, data_seed: int = 0, holdout: bool = False) -> int:
    """Updates per epoch of :func:`train_scheduled` (the last batch may be smaller)."""
    return math.ceil(len(digits(data_seed, holdout)[0]) / batch_size)


@torch.no_grad()
def _probs(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(X), dim=1)


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose most probable class is the label."""
    return float((probs.argmax(1) == y).double().mean())


def nll(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels (the test cross-entropy of the probabilities)."""
    return float(-torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).double().mean())


def ensemble_probs(members: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ensemble's prediction: the mean of the members' class probabilities (Huang et al.)."""
    return torch.stack(list(members)).mean(0)


def disagreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of rows on which two probability tables predict different classes."""
    return float((a.argmax(1) != b.argmax(1)).double().mean())


def mean_disagreement(members: Sequence[torch.Tensor]) -> float:
    """Mean :func:`disagreement` over all pairs of members (0 for a single member)."""
    pairs = [disagreement(a, b) for i, a in enumerate(members) for b in list(members)[i + 1 :]]
    return float(np.mean(pairs)) if pairs else 0.0


def adam_update_spread(
    schedule: float | Callable[[int], float],
    steps: int = 100,
    coordinates: int = 20_000,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""Adam's adaptive lr and update across many coordinates fed i.i.d. N(0, 1) gradients.

    ``torch.optim.Adam`` steps ``coordinates`` independent coordinates whose gradient at every
    step is drawn from :math:`\mathcal N(0, 1)` (what a network sees near a minimum, where the
    gradient is mostly noise). Before update :math:`t+1` the lr is set to ``schedule(t)``.
    Returns, one value per step:

    * ``"psi_q99"``: the 99th percentile across coordinates of the adaptive factor
      :math:`\psi_t = 1/(\sqrt{\hat v_t}+\epsilon)` (read from the optimizer's state), in units
      of its steady value 1 — how much larger than typical the lr of the most-boosted 1 % is;
    * ``"update_std"``: the standard deviation of the update :math:`w_t - w_{t+1}` across
      coordinates (what actually moves the weights, warmup included).
    """
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(coordinates, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr_at(schedule, 0), betas=betas, eps=eps)
    psi_q99, update_std = np.empty(steps), np.empty(steps)
    for t in range(steps):
        opt.param_groups[0]["lr"] = lr_at(schedule, t)
        w.grad = torch.randn(coordinates, generator=gen, dtype=torch.float64)
        before = w.detach().clone()
        opt.step()
        update_std[t] = float((before - w.detach()).std())
        v_hat = opt.state[w]["exp_avg_sq"] / (1 - betas[1] ** (t + 1))
        psi = 1 / (v_hat.sqrt() + eps)
        psi_q99[t] = float(torch.quantile(psi, 0.99))
    return {"psi_q99": psi_q99, "update_std": update_std}


def batch_size_sweep(
    batch_sizes: Sequence[int],
    lr_per_example: float,
    *,
    epochs: int = 10,
    seeds: Sequence[int] = (0, 1),
    momentum: float = 0.0,
) -> dict[int, dict[str, float]]:
    r"""Train with :math:`\eta = \text{lr\_per\_example}\cdot B` for each batch size :math:`B`.

    Plain SGD (``momentum=0`` by default, so :math:`g = \eta(N/B - 1)` applies as written) for
    the same number of *epochs*. Returns ``B -> {"lr", "train_loss", "test_accuracy",
    "diverged"}``: the mean over ``seeds`` of the training loss after the last update (on the
    whole training set; NaN if a seed diverged) and of the test accuracy, and the fraction of
    seeds that diverged.
    """
    out: dict[int, dict[str, float]] = {}
    for B in batch_sizes:
        lr = lr_per_example * B
        runs = [
            train_scheduled(
                lr,
                seed=s,
                epochs=epochs,
                batch_size=int(B),
                optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=momentum),
            )
            for s in seeds
        ]
        out[int(B)] = {
            "lr": lr,
            "train_loss": float(np.mean([r.train_loss_end for r in runs])),
            "test_accuracy": float(np.mean([r.test_accuracy for r in runs])),
            "diverged": float(np.mean([r.diverged for r in runs])),
        }
    return out
