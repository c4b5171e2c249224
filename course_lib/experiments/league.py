r"""A league table of every optimizer of the course, under the fair protocol (chapter 11).

The protocol is :func:`course_lib.experiments.comparison.compare_optimizers`: the same budget for
all, each optimizer's lr tuned on a grid declared here (:data:`LEAGUE`), several seeds, mean ±
standard deviation, the full hyperparameters of the winner. On top of the final loss the league
reports what the protocol does not: the test accuracy of the tuned runs, the time of one
``optimizer.step()`` and the bytes of optimizer state (measured with
:mod:`course_lib.experiments.memory`, as a multiple of the parameters' bytes).

**The task** (:func:`digits_task`): the scikit-learn digits, an MLP 64 → 32 → 10 (2,410
parameters), **full-batch** gradient descent for a fixed number of steps (default 60), float32,
cross-entropy. Full batch keeps the budget at a few seconds for 19 optimizers × 3 lrs × 3
seeds on one CPU core; the seed changes the initialisation only. It is a small, easy, almost
noise-free problem: a ranking here says how fast each optimizer gets going with its best lr on
this problem and budget, not which optimizer is best in general. Change the budget, the model or
the grid and the ranking changes (the lesson shows it); :func:`gpu_task` is a second, larger task
(mini-batches, a wider and deeper MLP, many more steps) that runs only where CUDA is present.

Fixed hyperparameters (not tuned) are the defaults of :mod:`course_lib.optim` except: momentum
0.9 for the SGD family; decoupled decay λ = 10⁻² for AdamW, SGDW and AdaiW, 10⁻¹ for Lion (its
λ is usually taken 3–10× larger than AdamW's since its lr is smaller); ``sign_decay=None`` for
PowerSign and AddSign.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib import optim
from course_lib.data import load_digits_data, make_classification_data
from course_lib.experiments.comparison import Comparison, compare_optimizers
from course_lib.experiments.memory import optimizer_state_bytes
from course_lib.train import make_mlp

__all__ = [
    "LEAGUE",
    "League",
    "digits_curve",
    "digits_task",
    "gpu_task",
    "lockstep_difference",
    "run_league",
]

_MOMENTUM_LRS = (0.03, 0.1, 0.3)
_ADAM_LRS = (3e-3, 1e-2, 3e-2)

# name -> ((optimizer class, fixed kwargs), the declared lr grid). Each grid is three lrs a factor
# ~3 apart, centred on the best of a wider scan (five lrs, 3 seeds) with the default task.
LEAGUE: dict[str, tuple[tuple[type, dict[str, Any]], tuple[float, ...]]] = {
    "SGD": ((optim.SGD, {}), (0.3, 1.0, 3.0)),
    "Momentum": ((optim.SGD, {"momentum": 0.9}), _MOMENTUM_LRS),
    "Nesterov": ((optim.SGD, {"momentum": 0.9, "nesterov": True}), _MOMENTUM_LRS),
    "SGDW": ((optim.SGDW, {"momentum": 0.9, "weight_decay": 1e-2}), _MOMENTUM_LRS),
    "AdaGrad": ((optim.Adagrad, {}), (0.03, 0.1, 0.3)),
    "Adadelta": ((optim.Adadelta, {}), (3.0, 10.0, 30.0)),
    "RMSprop": ((optim.RMSprop, {}), _ADAM_LRS),
    "Adam": ((optim.Adam, {}), _ADAM_LRS),
    "AdamW": ((optim.AdamW, {"weight_decay": 1e-2}), _ADAM_LRS),
    "AMSGrad": ((optim.Adam, {"amsgrad": True}), _ADAM_LRS),
    "Adamax": ((optim.Adamax, {}), (1e-2, 3e-2, 0.1)),
    "RAdam": ((optim.RAdam, {}), (0.03, 0.1, 0.3)),
    "NAdam": ((optim.NAdam, {}), (1e-2, 3e-2, 0.1)),
    "Adan": ((optim.Adan, {}), _ADAM_LRS),
    "Adai": ((optim.Adai, {}), (0.3, 1.0, 3.0)),
    "AdaiW": ((optim.AdaiW, {"weight_decay": 1e-2}), (0.3, 1.0, 3.0)),
    "Lion": ((optim.Lion, {"weight_decay": 0.1}), (1e-3, 3e-3, 1e-2)),
    "PowerSign": ((optim.PowerSign, {}), (0.1, 0.3, 1.0)),
    "AddSign": ((optim.AddSign, {}), (0.1, 0.3, 1.0)),
}  # fmt: skip


@dataclass
class RunRecord:
    """What one training run measured besides its final loss."""

    accuracy: float
    step_seconds: float
    state_bytes: int
    param_bytes: int


Task = Callable[[Callable, int], tuple[float, RunRecord]]


def digits_task(
    steps: int = 80, hidden: int = 32, batch_size: int = 128, device: Any = None
) -> Task:
    """Mini-batch training on digits: ``task(make_optimizer, seed) -> (held-out loss, record)``.

    The seed sets the initialisation and the batches. The loss is the cross-entropy on the
    held-out split after ``steps`` steps (NaN if training diverged); the record holds the
    held-out accuracy, the median time of one ``optimizer.step()`` and the state bytes.
    """
    data = load_digits_data(seed=0, device=device)
    (X, y), (X_test, y_test) = data.train, data.test

    def model_fn(seed: int) -> nn.Module:
        return make_mlp(X.shape[1], hidden, 10, seed=seed).to(X.device)

    return _training_task(model_fn, X, y, X_test, y_test, steps, batch_size)


def _training_task(model_fn, X, y, X_test, y_test, steps, batch_size) -> Task:
    loss_fn = nn.CrossEntropyLoss()

    def task(make_optimizer: Callable, seed: int) -> tuple[float, RunRecord]:
        model = model_fn(seed)
        opt = make_optimizer(list(model.parameters()))
        gen = torch.Generator().manual_seed(seed)
        step_times = []
        loss = torch.tensor(math.nan)
        for _ in range(steps):
            idx = torch.randint(0, len(X), (batch_size,), generator=gen).to(X.device)
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            if not torch.isfinite(loss):
                break
            loss.backward()
            if X.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            opt.step()
            if X.is_cuda:
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - start)
        with torch.no_grad():
            out = model(X_test)
            final = loss_fn(out, y_test).item() if torch.isfinite(loss) else math.nan
            accuracy = (out.argmax(1) == y_test).float().mean().item()
        params = list(model.parameters())
        record = RunRecord(
            accuracy=accuracy,
            step_seconds=float(np.median(step_times)) if step_times else math.nan,
            state_bytes=optimizer_state_bytes(opt),
            param_bytes=sum(p.numel() * p.element_size() for p in params),
        )
        return (final if math.isfinite(final) else math.nan), record

    return task


@dataclass
class League:
    """The league: the fair comparison (:attr:`comparison`) plus, per optimizer, the test
    accuracy over seeds of its tuned runs, its median step time and its state bytes."""

    comparison: Comparison
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    task: str = ""

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per optimizer, best final loss first: the comparison's row plus
        ``accuracy_mean``, ``accuracy_std``, ``step_us``, ``state_ratio``, ``state_bytes``."""
        return [{**row, **self.extras[row["name"]]} for row in self.comparison.rows]

    def table(self) -> str:
        head = (f"{'#':>2} {'optimizer':<10} {'best lr':>8}  {'held-out loss':<20} "
                f"{'held-out accuracy':<17} {'µs/step':>8} {'state':>7}")  # fmt: skip
        lines = [self.task, head, "-" * len(head)]
        for rank, r in enumerate(self.rows, 1):
            loss = f"{r['mean']:.4f} ± {r['std']:.4f}"
            if r["diverged"]:
                loss += f" ({r['diverged']} div.)"
            acc = f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} %"
            lines.append(
                f"{rank:>2} {r['name']:<10} {r['best_lr']:>8.3g}  {loss:<20} {acc:<16} "
                f"{r['step_us']:>8.0f} {r['state_ratio']:>6.2f}×"
            )
        lines.append(
            "mean ± std over seeds "
            f"{self.comparison.eval_seeds}; state = optimizer state bytes / parameter bytes; "
            "µs/step = median time of optimizer.step() on this machine (not a benchmark)."
        )
        lines.append("Full hyperparameters of the tuned runs:")
        for r in self.rows:
            lines.append(f"  {r['name']}: {r['label']} (lr grid {list(r['lr_grid'])})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def run_league(
    names: Sequence[str] | None = None,
    *,
    task: Task | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    lr_grids: Mapping[str, Sequence[float]] | None = None,
    description: str = "",
) -> League:
    """Tune and run every optimizer of :data:`LEAGUE` (or ``names``) on ``task`` (default
    :func:`digits_task`) with :func:`compare_optimizers`; collect accuracy, time and memory."""
    names = list(LEAGUE if names is None else names)
    task = task or digits_task()
    records: dict[tuple[str, float, int], RunRecord] = {}
    current: dict[str, Any] = {}

    def candidate(name: str) -> Callable:
        cls, kwargs = LEAGUE[name][0]

        def make(params, lr):
            current.update(name=name, lr=lr)
            return cls(params, lr=lr, **kwargs)

        return make

    def objective(make_optimizer: Callable, seed: int) -> float:
        loss, record = task(make_optimizer, seed)
        records[(current["name"], current["lr"], seed)] = record
        return loss

    grids = {n: tuple((lr_grids or {}).get(n, LEAGUE[n][1])) for n in names}
    comparison = compare_optimizers(
        {n: candidate(n) for n in names},
        objective,
        lr_grid=grids,
        seeds=seeds,
        metric="final train loss",
        budget=description,
    )
    extras = {}
    for row in comparison.rows:
        runs = [records[(row["name"], row["best_lr"], s)] for s in comparison.eval_seeds]
        acc = np.array([r.accuracy for r in runs])
        extras[row["name"]] = {
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "step_us": 1e6 * float(np.nanmedian([r.step_seconds for r in runs])),
            "state_bytes": runs[0].state_bytes,
            "state_ratio": runs[0].state_bytes / runs[0].param_bytes,
        }
    return League(comparison, extras, description)


def gpu_task(steps: int = 2000, batch_size: int = 256, device: Any = None) -> Task | str:
    """The second, larger task — or, without CUDA, the sentence saying it was skipped.

    Ten overlapping Gaussian classes in 256 dimensions
    (:func:`course_lib.data.make_classification_data` with spread 8: 20,000 training and 5,000
    held-out points), an MLP 256 → 512 → 512 → 10
    (≈ 400,000 parameters), mini-batches of ``batch_size`` drawn with the seed, ``steps`` steps.
    ``device=None`` means CUDA if present, else the skip message (on a CPU the league would take
    far too long for a lesson); pass a device to run it anyway (the tests run a few steps on CPU).
    """
    if device is None:
        if not torch.cuda.is_available():
            return (
                "Second league task skipped: no CUDA device here. On a GPU, gpu_task() trains an "
                "MLP 256 → 512 → 512 → 10 on 20,000 points of 10 overlapping classes with "
                "mini-batches (the first task's protocol, a larger problem)."
            )
        device = "cuda"
    device = torch.device(device)
    data = make_classification_data(n=25_000, d=256, n_classes=10, seed=0, spread=8.0,
                                    test_size=0.2).to(device)  # fmt: skip
    (X, y), (X_test, y_test) = data.train, data.test

    def model_fn(seed: int) -> nn.Module:
        return make_mlp(X.shape[1], [512, 512], 10, seed=seed).to(device)

    return _training_task(model_fn, X, y, X_test, y_test, steps, batch_size)


def digits_curve(
    make_optimizer: Callable,
    steps: int = 60,
    seed: int = 0,
    batch_size: int = 128,
    scheduler: Callable | None = None,
) -> dict[str, Any]:
    """One run of the league's digits task, step by step: ``{"losses": [...], "lrs": [...],
    "diverged_at": step or None, "accuracy": held-out accuracy, "state_bytes": ...}`` (the
    composer widget draws it). ``scheduler(optimizer)`` makes an lr scheduler, stepped after
    every optimizer step. A run stops at the first non-finite loss."""
    data = load_digits_data(seed=0)
    (X, y), (X_test, y_test) = data.train, data.test
    model = make_mlp(X.shape[1], 32, 10, seed=seed)
    opt = make_optimizer(list(model.parameters()))
    sched = scheduler(opt) if scheduler is not None else None
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    losses, lrs, diverged_at = [], [], None
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(X), (batch_size,), generator=gen)
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        if not torch.isfinite(loss) or loss.item() > 1e6:
            diverged_at = step
            break
        losses.append(loss.item())
        lrs.append(opt.param_groups[0]["lr"])
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    with torch.no_grad():
        out = model(X_test)
        accuracy = (out.argmax(1) == y_test).float().mean().item() if diverged_at is None else 0.0
    return {
        "losses": losses,
        "lrs": lrs,
        "diverged_at": diverged_at,
        "accuracy": accuracy,
        "state_bytes": optimizer_state_bytes(opt),
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
    }


def lockstep_difference(
    make_a: Callable, make_b: Callable, steps: int = 20, seed: int = 0
) -> float:
    """Train two copies of the digits MLP (float64, same init, same batches) with two optimizers
    in lockstep; return the largest absolute difference between their parameters after any step
    (0.0: the two optimizers are the same algorithm, bit for bit)."""
    data = load_digits_data(seed=0, dtype=torch.float64)
    X, y = data.train
    model_a = make_mlp(X.shape[1], 32, 10, seed=seed).double()
    model_b = make_mlp(X.shape[1], 32, 10, seed=seed).double()
    opt_a, opt_b = make_a(list(model_a.parameters())), make_b(list(model_b.parameters()))
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    worst = 0.0
    for _ in range(steps):
        idx = torch.randint(0, len(X), (128,), generator=gen)
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
        diff = max((a - b).abs().max().item()
                   for a, b in zip(model_a.parameters(), model_b.parameters()))  # fmt: skip
        worst = max(worst, diff)
    return worst
