"""The fair-comparison protocol: lr tuned per optimizer, seeds aggregated, divergence penalised."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.data import make_classification_data
from course_lib.experiments.comparison import (
    compare_optimizers,
    landscape_objective,
    training_objective,
)
from course_lib.train import make_mlp


def fake_objective(make, seed):
    """Loss = (log10 lr + 2)^2 + seed noise: the best lr is 1e-2 for every optimizer; lr 1 diverges."""
    opt = make([torch.zeros(1, requires_grad=True)])
    lr = opt.param_groups[0]["lr"]
    if lr >= 1.0:
        return math.nan
    bonus = 0.5 if opt.param_groups[0].get("momentum", 0) else 0.0
    return (math.log10(lr) + 2) ** 2 + 0.01 * seed - bonus


def test_lr_is_tuned_and_table_reports_everything():
    grid = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    res = compare_optimizers(
        {"SGD": torch.optim.SGD, "Momentum": (torch.optim.SGD, {"momentum": 0.9})},
        fake_objective,
        lr_grid=grid,
        seeds=[0, 1, 2],
        budget="fake budget",
    )
    assert [r["name"] for r in res.rows] == ["Momentum", "SGD"]  # best first
    for r in res.rows:
        assert r["best_lr"] == 1e-2
        assert r["values"] == pytest.approx(
            [0.0 - (r["name"] == "Momentum") * 0.5 + 0.01 * s for s in range(3)]
        )
        assert r["mean"] == pytest.approx(np.mean(r["values"]))
        assert r["std"] == pytest.approx(np.std(r["values"], ddof=1))
        assert not r["at_grid_edge"]
    assert res.rows[0]["label"] == "SGD(lr=0.01, momentum=0.9, dampening=0, weight_decay=0)"
    assert sorted(res.grid["SGD"]) == grid and all(math.isnan(v) for v in res.grid["SGD"][1.0])
    text = res.table()
    assert "fake budget" in text and "Momentum" in text and "momentum=0.9" in text
    assert "0.01" in text and "seeds [0, 1, 2]" in text


def test_diverging_lr_is_never_chosen_and_edges_warn():
    def obj(make, seed):
        lr = make([torch.zeros(1, requires_grad=True)]).param_groups[0]["lr"]
        # the largest lr is best on average *except* it diverges on seed 2
        if lr == 0.1:
            return math.inf if seed == 2 else 0.0
        return 1.0 / lr / 100

    res = compare_optimizers(
        {"SGD": torch.optim.SGD}, obj, lr_grid=[0.01, 0.03, 0.1], seeds=[0, 1, 2]
    )
    assert res.best()["best_lr"] == 0.03
    assert not res.best()["at_grid_edge"] and res.notes == []
    assert res.grid["SGD"][0.1] == [0.0, 0.0, math.inf]

    with pytest.warns(UserWarning, match="edge of its grid"):
        res = compare_optimizers(
            {"SGD": torch.optim.SGD}, obj, lr_grid=[0.01, 0.02, 0.03], seeds=[0]
        )
    assert res.best()["best_lr"] == 0.03 and res.best()["at_grid_edge"]
    assert "extend the grid" in res.table()


def test_factory_spec_and_max_mode_and_eval_seeds():
    calls = []

    def obj(make, seed):
        opt = make([torch.zeros(1, requires_grad=True)])
        calls.append(seed)
        return -abs(opt.param_groups[0]["lr"] - 0.1)  # accuracy-like: best at 0.1

    res = compare_optimizers(
        {"adam": lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(0.8, 0.9))},
        obj,
        lr_grid={"adam": [0.01, 0.1, 1.0]},
        seeds=[0],
        eval_seeds=[10, 11],
        mode="max",
    )
    assert res.best()["best_lr"] == 0.1
    assert res.best()["seeds"] == [10, 11] and calls[-2:] == [10, 11]
    assert "betas=(0.8, 0.9)" in res.best()["label"]


def test_bad_input():
    with pytest.raises(ValueError, match="mode"):
        compare_optimizers({"a": torch.optim.SGD}, fake_objective, mode="best")
    with pytest.raises(ValueError, match="tuned"):
        compare_optimizers({"a": (torch.optim.SGD, {"lr": 0.1})}, fake_objective)
    with pytest.raises(ValueError, match="grid"):
        compare_optimizers({"a": torch.optim.SGD}, fake_objective, lr_grid=[])
    with pytest.raises(ValueError, match="candidate"):
        compare_optimizers({"a": 3}, fake_objective)
    with pytest.raises(ValueError, match="no candidates"):
        compare_optimizers({}, fake_objective)


def test_landscape_objective_end_to_end(capsys):
    obj = landscape_objective("quadratic", steps=50, noise=0.01)
    res = compare_optimizers(
        {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam},
        obj,
        lr_grid=[0.01, 0.1, 1.0, 3.0],
        seeds=[0, 1],
    )
    sgd = next(r for r in res.rows if r["name"] == "SGD")
    assert sgd["best_lr"] == 1.0  # 3.0 > 2/λ_max = 2 diverges; 1.0 converges fastest
    assert all(math.isinf(v) for v in res.grid["SGD"][3.0])
    res.print()
    assert "Full hyperparameters" in capsys.readouterr().out


def test_training_objective():
    ds = make_classification_data(n=200, d=2, n_classes=3, seed=0)
    obj = training_objective(lambda seed: make_mlp(2, 8, 3, seed=seed), ds, epochs=2)
    acc = obj(lambda p: torch.optim.Adam(p, lr=0.05), 0)
    assert 0.5 < acc <= 1.0
    with pytest.raises(ValueError, match="metric"):
        training_objective(lambda s: make_mlp(2, 8, 3), ds, metric="f1")
