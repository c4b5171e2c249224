"""A fair comparison of optimizers: same budget, tuned learning rates, several seeds.

"Optimizer A beats B" is a claim about *tuned* optimizers. Comparing Adam at its favourite lr to
SGD at Adam's lr proves nothing; neither does one lucky seed. The protocol here:

1. every optimizer gets the **same budget** (the ``objective`` you pass runs a fixed number of
   steps or epochs, whatever optimizer it is given);
2. each optimizer's **learning rate is tuned** on a grid you declare up front (the grid is part
   of the result, and a warning flags a best lr at the edge of its grid: extend the grid);
3. every run is repeated over **several seeds**, and the result is the **mean ± standard
   deviation** (and min/max) over seeds, never a single number;
4. the table names the **full hyperparameters** of the winning configuration.

Runs that diverge (a NaN/inf metric) count as the worst possible result, so an lr that explodes
on one seed in three is not chosen.

The objective is any function ``objective(make_optimizer, seed) -> float`` where
``make_optimizer(params)`` builds the optimizer. :func:`landscape_objective` and
:func:`training_objective` build the two common ones.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from course_lib.train import optimizer_label

__all__ = [
    "Comparison",
    "compare_optimizers",
    "landscape_objective",
    "training_objective",
]

DEFAULT_LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def _factory_for(spec: Any, lr: float) -> Callable[[Any], torch.optim.Optimizer]:
    """``params -> optimizer`` at learning rate ``lr`` for one candidate spec."""
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], Mapping):
            raise ValueError(
                f"a tuple spec must be (OptimizerClass, {{fixed kwargs}}), got {spec!r}"
            )
        cls, kwargs = spec
        if "lr" in kwargs:
            raise ValueError("the lr is tuned on the grid: do not fix it in the candidate's kwargs")
        if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
            raise ValueError(f"{cls!r} is not a torch.optim.Optimizer subclass")
        return lambda params: cls(params, lr=lr, **kwargs)
    if inspect.isclass(spec):
        if not issubclass(spec, torch.optim.Optimizer):
            raise ValueError(f"{spec.__name__} is not a torch.optim.Optimizer subclass")
        return lambda params: spec(params, lr=lr)
    if callable(spec):
        return lambda params: spec(params, lr)
    raise ValueError(
        f"cannot use {spec!r} as a candidate: give an Optimizer class, (class, kwargs) or a "
        "factory (params, lr) -> optimizer"
    )


@dataclass
class Comparison:
    """The outcome of :func:`compare_optimizers`.

    ``rows``: one dict per optimizer (``name, label, best_lr, mean, std, min, max, seeds,
    values, diverged, at_grid_edge``), sorted best first. ``grid``: ``name -> {lr: [metric per
    seed]}``, all the tuning runs (plot them to see how sensitive each optimizer is to its lr).
    """

    rows: list[dict[str, Any]]
    grid: dict[str, dict[float, list[float]]]
    metric: str
    mode: str
    budget: str
    seeds: list[int]
    eval_seeds: list[int]
    notes: list[str] = field(default_factory=list)

    def best(self) -> dict[str, Any]:
        return self.rows[0]

    def table(self) -> str:
        """A plain-text table (monospace), best first."""
        stat = self.metric + " (mean ± std)"
        head = f"{'optimizer':<14} {'best lr':>9}  {stat:<28} {'min':>10} {'max':>10}"
        lines = [
            f"Fair comparison: {self.budget or 'same budget for all'}; lr tuned on a grid with "
            f"seeds {self.seeds}; reported over seeds {self.eval_seeds}; "
            f"{'lower' if self.mode == 'min' else 'higher'} is better.",
            head,
            "-" * len(head),
        ]
        for r in self.rows:
            ms = f"{r['mean']:.4g} ± {r['std']:.2g}"
            if r["diverged"]:
                ms += f" ({r['diverged']} diverged)"
            lo, hi = r["min"], r["max"]
            lines.append(f"{r['name']:<14} {r['best_lr']:>9.3g}  {ms:<28} {lo:>10.4g} {hi:>10.4g}")
        lines.append("Full hyperparameters:")
        for r in self.rows:
            lines.append(f"  {r['name']}: {r['label']}  (lr grid: {list(r['lr_grid'])})")
        lines.extend(f"Note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def print(self) -> None:
        print(self.table())


def _score(values: Sequence[float], mode: str) -> float:
    """Mean over seeds with diverged runs counted as the worst possible value."""
    worst = math.inf if mode == "min" else -math.inf
    clean = [v if math.isfinite(v) else worst for v in values]
    return float(np.mean(clean))


def compare_optimizers(
    candidates: Mapping[str, Any],
    objective: Callable[[Callable, int], float],
    *,
    lr_grid: Sequence[float] | Mapping[str, Sequence[float]] = DEFAULT_LR_GRID,
    seeds: Sequence[int] = (0, 1, 2),
    eval_seeds: Sequence[int] | None = None,
    mode: str = "min",
    metric: str = "final loss",
    budget: str = "",
    verbose: bool = False,
) -> Comparison:
    """Tune each optimizer's lr on a grid, then report mean ± std over seeds.

    Parameters
    ----------
    candidates
        ``name -> spec`` where a spec is an Optimizer class (``torch.optim.Adam``), a pair
        ``(class, {fixed kwargs})`` such as ``(torch.optim.SGD, {"momentum": 0.9})``, or a
        factory ``(params, lr) -> optimizer``. The lr is never fixed in a spec: it is tuned.
    objective
        ``objective(make_optimizer, seed) -> float``: runs the fixed budget with
        ``make_optimizer(params)`` and returns the metric (NaN/inf for a diverged run).
    lr_grid
        One grid for all, or ``name -> grid``.
    seeds, eval_seeds
        Tuning seeds; the reported numbers use ``eval_seeds`` (default: the tuning runs
        themselves; pass fresh seeds to remove the small optimistic bias of reusing them).
    mode
        ``"min"`` (loss) or ``"max"`` (accuracy).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not candidates:
        raise ValueError("no candidates to compare")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("need at least one seed")
    grids = {
        name: list(lr_grid[name] if isinstance(lr_grid, Mapping) else lr_grid)
        for name in candidates
    }
    for name, grid in grids.items():
        if not grid or any((not isinstance(lr, (int, float))) or lr <= 0 for lr in grid):
            raise ValueError(f"lr grid for {name!r} must be non-empty positive numbers, got {grid}")
    rows, all_runs, notes = [], {}, []
    sign = 1.0 if mode == "min" else -1.0
    for name, spec in candidates.items():
        grid = sorted(grids[name])
        runs: dict[float, list[float]] = {}
        for lr in grid:
            make = _factory_for(spec, lr)
            runs[lr] = [float(objective(make, s)) for s in seeds]
            if verbose:
                print(f"{name} lr={lr:g}: {runs[lr]}")
        all_runs[name] = runs
        scores = {lr: _score(v, mode) for lr, v in runs.items()}
        best_lr = min(grid, key=lambda lr: sign * scores[lr])
        if eval_seeds is None:
            values = runs[best_lr]
        else:
            make = _factory_for(spec, best_lr)
            values = [float(objective(make, s)) for s in eval_seeds]
        finite = np.array([v for v in values if math.isfinite(v)])
        at_edge = len(grid) > 1 and best_lr in (grid[0], grid[-1])
        if at_edge:
            msg = f"{name}: best lr {best_lr:g} is at the edge of its grid; extend the grid"
            notes.append(msg)
            warnings.warn(msg, stacklevel=2)
        if not finite.size:
            notes.append(f"{name}: every run diverged, even at the best lr")
        probe = torch.zeros(1, requires_grad=True)
        rows.append(
            {
                "name": name,
                "label": optimizer_label(_factory_for(spec, best_lr)([probe])),
                "best_lr": best_lr,
                "lr_grid": grid,
                "mean": float(finite.mean()) if finite.size else math.nan,
                "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
                "min": float(finite.min()) if finite.size else math.nan,
                "max": float(finite.max()) if finite.size else math.nan,
                "values": values,
                "seeds": list(eval_seeds) if eval_seeds is not None else seeds,
                "diverged": int(sum(not math.isfinite(v) for v in values)),
                "at_grid_edge": at_edge,
                "_score": _score(values, mode),
            }
        )
    rows.sort(key=lambda r: sign * r["_score"])
    for r in rows:
        del r["_score"]
    return Comparison(
        rows=rows,
        grid=all_runs,
        metric=metric,
        mode=mode,
        budget=budget,
        seeds=seeds,
        eval_seeds=list(eval_seeds) if eval_seeds is not None else seeds,
        notes=notes,
    )


def landscape_objective(
    landscape: Any, steps: int = 100, *, noise: float = 0.0, start: Sequence[float] | None = None
) -> Callable[[Callable, int], float]:
    """Objective: final loss after ``steps`` steps on a 2-D landscape (inf if the run diverged).

    The seed drives the gradient noise, so use ``noise > 0`` for seeds to differ.
    """
    from course_lib.landscapes import get_landscape, run_optimizer

    land = get_landscape(landscape)

    def objective(make_optimizer: Callable, seed: int) -> float:
        tr = run_optimizer(land, make_optimizer, steps=steps, start=start, noise=noise, seed=seed)
        return math.inf if tr.diverged else tr.final_loss

    return objective


def training_objective(
    model_fn: Callable[[int], torch.nn.Module],
    data: Any,
    epochs: int = 3,
    *,
    metric: str = "test_accuracy",
    batch_size: int = 64,
    device: Any = None,
) -> Callable[[Callable, int], float]:
    """Objective: train ``model_fn(seed)`` with :func:`course_lib.train.train`, return a metric.

    ``metric``: ``"test_accuracy"`` / ``"test_loss"`` (last epoch, needs test data: pass a
    Dataset) or ``"train_loss"`` (mean loss of the last epoch). A diverged run returns NaN.
    Use ``mode="max"`` with accuracy.
    """
    from course_lib.train import train

    if metric not in ("test_accuracy", "test_loss", "train_loss"):
        raise ValueError(f"metric must be test_accuracy, test_loss or train_loss, got {metric!r}")

    def objective(make_optimizer: Callable, seed: int) -> float:
        model = model_fn(seed)
        hist = train(
            model,
            make_optimizer,
            data,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            device=device,
            progress=False,
        )
        if hist.diverged:
            return math.nan
        if metric == "train_loss":
            return hist.epoch_loss[-1]
        values = hist.test_accuracy if metric == "test_accuracy" else hist.test_loss
        if not values:
            raise ValueError(f"{metric} needs test data: pass a Dataset with a test split")
        return values[-1]

    return objective
