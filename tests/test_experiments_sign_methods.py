"""course_lib.experiments.sign_methods and the restart sign decay (chapter 10)."""

from __future__ import annotations

import lion_pytorch
import numpy as np
import pytest
import torch

from course_lib import optim
from course_lib.experiments import sign_methods
from course_lib.landscapes import quadratic, run_optimizer
from course_lib.optim import blocks


def test_lion_moves_every_element_by_lr_or_not_at_all():
    sizes = sign_methods.update_sizes(optim.Lion, steps=5, lr=1e-3) / 1e-3
    moved = sizes[sizes > 0]
    assert np.abs(moved - 1).max() < 1e-4
    assert (sizes == 0).sum(axis=1).tolist() == [4 * 32] * 5  # 4 constant pixels × 32 units


def test_adam_moves_elements_by_different_amounts():
    sizes = sign_methods.update_sizes(optim.Adam, steps=5, lr=1e-3) / 1e-3
    assert sizes.std() > 0.1


@pytest.mark.parametrize(
    "cls, lr, wd",
    [(optim.Lion, 1e-4, 0.1), (optim.AdamW, 1e-3, 0.01), (lion_pytorch.Lion, 3e-4, 0.5)],
)
def test_decay_per_step_is_lr_times_weight_decay(cls, lr, wd):
    assert sign_methods.decay_per_step(cls, lr=lr, weight_decay=wd) == pytest.approx(lr * wd, 1e-6)


def test_reference_gap_is_zero_for_lion_and_not_for_another_optimizer():
    def ours(p):
        return optim.Lion(p, lr=1e-3, weight_decay=0.1)

    def reference(p):
        return lion_pytorch.Lion(p, lr=1e-3, weight_decay=0.1)

    params, state = sign_methods.reference_gap(ours, reference, steps=20, dtype=torch.float64)
    assert params.max() == 0.0 and state.max() < 1e-15
    other, _ = sign_methods.reference_gap(
        lambda p: optim.Lion(p, lr=2e-3), reference, steps=5, dtype=torch.float64
    )
    assert other[-1] > 0


def test_step_times_are_positive_and_keyed_by_name():
    times = sign_methods.step_times(
        {"lion": lambda p: optim.Lion(p, lr=1e-4)}, shapes=((10, 10),), steps=2, repeats=1
    )
    assert set(times) == {"lion"} and times["lion"] > 0


def test_sign_descent_equals_lion_with_zero_betas_and_signum_with_equal_betas():
    land = quadratic(10)
    plain = sign_methods.sign_descent(land, 0.05, 30)
    signum = sign_methods.sign_descent(land, 0.05, 30, beta=0.8)
    lion_00 = run_optimizer(land, optim.Lion, steps=30, lr=0.05, betas=(0.0, 0.0)).points
    lion_88 = run_optimizer(land, optim.Lion, steps=30, lr=0.05, betas=(0.8, 0.8)).points
    assert np.abs(plain - lion_00).max() < 1e-12
    assert np.abs(signum - lion_88).max() < 1e-12
    assert np.abs(plain - signum).max() > 1e-3


def test_learned_optimizer_cost_counts_the_lstm():
    cost = sign_methods.learned_optimizer_cost(hidden=20, layers=2)
    assert cost["state_per_coordinate"] == 80
    # layer 1: 4·20·(1 + 20), layer 2: 4·20·(20 + 20), output 20 weights
    assert cost["macs_per_coordinate"] == 4 * 20 * 21 + 4 * 20 * 40 + 20
    assert cost["weights"] == cost["macs_per_coordinate"] + 2 * (2 * 4 * 20) + 1


def test_digits_comparison_returns_rows_and_accuracies():
    candidates = {"Lion": (optim.Lion, {"weight_decay": 0.1})}
    comparison, accuracy = sign_methods.digits_comparison(
        candidates, {"Lion": [1e-3, 3e-3]}, schedule=True, epochs=1, seeds=(0,), eval_seeds=(1,)
    )
    row = comparison.rows[0]
    assert row["name"] == "Lion" and row["best_lr"] in (1e-3, 3e-3)
    assert ("Lion", row["best_lr"], 1) in accuracy
    assert 0 < accuracy["Lion", row["best_lr"], 1] <= 1


def test_restart_sign_decay_restarts_every_T_over_n_steps():
    T, n = 900, 3
    values = [blocks.restart_sign_decay(t, T, n) for t in range(T + 1)]
    assert values[0] == 1.0
    assert values[T // n] == pytest.approx(1.0)
    assert values[T // n - 1] < 0.001
    assert values[T // (2 * n)] == pytest.approx(0.5)
