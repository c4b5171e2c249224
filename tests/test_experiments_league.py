"""Chapter 11's experiments: the league (fair protocol + time + memory) and FTRL-Proximal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.experiments import ftrl_proximal as F
from course_lib.experiments.league import LEAGUE, digits_task, gpu_task, run_league


def test_league_declares_a_grid_for_every_optimizer_of_the_course():
    course = {"SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "AdamW", "SGDW",
              "AMSGrad", "RAdam", "NAdam", "Adan", "Adai", "AdaiW", "Lion", "PowerSign",
              "AddSign"}  # fmt: skip
    assert course <= set(LEAGUE)
    for name, (_, grid) in LEAGUE.items():
        assert len(grid) >= 3 and list(grid) == sorted(grid), name


def test_small_league_reports_loss_accuracy_time_and_memory():
    league = run_league(["SGD", "Adam", "Lion"], task=digits_task(steps=15), seeds=(0, 1))
    rows = {r["name"]: r for r in league.rows}
    assert set(rows) == {"SGD", "Adam", "Lion"}
    assert rows["SGD"]["state_ratio"] == 0
    assert rows["Adam"]["state_ratio"] == pytest.approx(2.0)
    assert rows["Lion"]["state_ratio"] == pytest.approx(1.0)
    for r in rows.values():
        assert math.isfinite(r["mean"]) and 0 <= r["accuracy_mean"] <= 1 and r["step_us"] > 0
        assert r["best_lr"] in LEAGUE[r["name"]][1]
    assert "held-out loss" in league.table()


def test_the_seed_changes_the_run_and_the_same_seed_repeats_it():
    task = digits_task(steps=10)
    make = lambda params: torch.optim.SGD(params, lr=0.5)  # noqa: E731
    a, b, c = task(make, 0)[0], task(make, 0)[0], task(make, 1)[0]
    assert a == b and a != c


def test_gpu_task_says_why_it_is_skipped_without_cuda():
    result = gpu_task()
    if torch.cuda.is_available():
        assert callable(result)
    else:
        assert isinstance(result, str) and "skipped" in result and "CUDA" in result


def test_ftrl_closed_form_threshold_and_sign():
    w = F.ftrl_weights(np.array([3.0, -3.0, 0.5, -1.0]), np.array([4.0] * 4), 0.1, 1.0, 1.0, 0.0)
    assert w[2] == 0.0 and w[3] == 0.0
    assert w[0] == pytest.approx(-(3.0 - 1.0) / ((1.0 + 2.0) / 0.1)) and w[1] == -w[0]


def test_ftrl_first_step_is_adagrad_like_and_zero_weights_start_at_zero():
    X = np.array([[1.0, 0.0]])
    y = np.array([1.0])
    res = F.ftrl_proximal(X, y, X, y, alpha=0.5, beta=1.0, l1=0.0, l2=0.0)
    # first example: w = 0, p = 1/2, g = -1/2, sigma = (1/2)/alpha, z = g, n = 1/4
    assert res.weights[1] == 0.0
    assert res.weights[0] == pytest.approx(0.5 / ((1.0 + 0.5) / 0.5))


def test_proximal_l1_gives_exact_zeros_the_subgradient_does_not():
    out = F.sparsity_experiment(l1=5.0)
    assert out["FTRL-Proximal, L1"].exact_zeros > 50
    assert out["FTRL-Proximal, no L1"].exact_zeros == 0
    assert out["SGD + L1 subgradient"].exact_zeros == 0
    assert out["AdaGrad + L1 subgradient"].exact_zeros == 0
    assert (out["FTRL-Proximal, L1"].weights[:20] != 0).all()  # the informative ones survive


def test_the_larger_task_runs_a_few_steps_on_any_device():
    task = gpu_task(steps=3, batch_size=32, device="cpu")
    grids = {"SGD": (0.1,), "Adam": (1e-3,)}
    league = run_league(["SGD", "Adam"], task=task, seeds=(0,), lr_grids=grids)
    assert all(math.isfinite(r["mean"]) for r in league.rows)


def test_plot_league_draws_one_row_per_optimizer_with_readable_type():
    from course_lib.plotting import plot_league

    league = run_league(["SGD", "Adam"], task=digits_task(steps=5), seeds=(0, 1),
                        lr_grids={"SGD": (0.3,), "Adam": (0.01,)})  # fmt: skip
    fig, ax = plot_league(league)
    assert len(ax.get_yticklabels()) == 2 and ax.get_xscale() == "log"
    assert fig.dpi >= 100
    assert all(t.get_fontsize() >= 9 for t in ax.get_yticklabels())


def test_lockstep_difference_is_zero_for_the_same_algorithm_only():
    from course_lib.experiments.league import lockstep_difference

    same = lockstep_difference(lambda p: torch.optim.SGD(p, lr=0.1),
                               lambda p: torch.optim.SGD(p, lr=0.1), steps=3)  # fmt: skip
    other = lockstep_difference(lambda p: torch.optim.SGD(p, lr=0.1),
                                lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), steps=3)  # fmt: skip
    assert same == 0.0 and other > 1e-6


def test_digits_curve_steps_the_scheduler_and_reports_divergence():
    from course_lib.experiments.league import digits_curve

    run = digits_curve(lambda p: torch.optim.SGD(p, lr=0.1), steps=4,
                       scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.5))  # fmt: skip
    assert run["lrs"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert run["diverged_at"] is None and len(run["losses"]) == 4
    bad = digits_curve(lambda p: torch.optim.SGD(p, lr=1e4), steps=30)
    assert bad["diverged_at"] is not None and bad["accuracy"] == 0.0


def test_plot_exact_zeros_puts_exact_zeros_on_their_own_tick():
    from course_lib.plotting import plot_exact_zeros

    weights = np.array([1.0] * 20 + [0.0, 0.0, 0.3, 1e-3])
    runs = {"a": F.FTRLResult(weights, 0.5), "b": F.FTRLResult(np.abs(weights) + 1e-4, 0.5)}
    fig, ax = plot_exact_zeros(runs)
    assert ax.get_yticklabels()[0].get_text() == "exactly 0"
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["2 exactly 0", "0 exactly 0"] and fig.dpi >= 100
