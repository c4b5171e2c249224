"""course_lib.experiments.rectification against its definitions and against torch.optim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import optim
from course_lib.data import load_digits_data
from course_lib.experiments import rectification as R
from course_lib.optim.blocks import radam_rectification
from course_lib.optim.blocks.rectification import radam_rho


def test_rho_starts_at_one_increases_and_tends_to_rho_inf():
    for beta2 in (0.8, 0.99, 0.999):
        rho = R.rho(np.arange(1, 20_001), beta2)
        assert rho[0] == pytest.approx(1.0)
        assert np.all(np.diff(rho) >= 0) and np.all(np.diff(rho[:50]) > 0)
        assert rho[-1] == pytest.approx(R.rho_inf(beta2), rel=1e-3)
    assert R.rho_inf(0.999) == pytest.approx(1999.0)


def test_switch_steps_under_the_three_rules():
    rules = list(R.THRESHOLDS.values())
    assert [R.switch_step(0.999, thr, inc) for thr, inc in rules] == [5, 6, 6]
    assert R.switch_step(0.7) == 10 and R.switch_step(0.6) is None
    with pytest.raises(ValueError):
        R.switch_step(1.0)


def test_switch_step_is_where_torch_radam_stops_taking_momentum_steps():
    for beta2 in (0.7, 0.75, 0.9, 0.999):
        steps = R.step_sizes(torch.optim.RAdam, np.ones(15), lr=1.0, betas=(0.9, beta2), eps=0.0)
        assert int(np.argmax(~np.isclose(steps, 1.0))) + 1 == R.switch_step(beta2)


def test_rectifier_matches_the_block_and_is_nan_where_undefined():
    t = np.arange(1, 300)
    r = R.rectifier(t, 0.99)
    block = radam_rectification(list(t), 0.99)
    for got, want, s in zip(r, block, t):
        if want is not None:
            assert got == pytest.approx(want, rel=1e-12)
        if radam_rho(int(s), 0.99) <= 4:
            assert math.isnan(got)


def test_exact_variance_matches_sampling_the_scaled_inverse_chi_square():
    gen = np.random.default_rng(0)
    for rho in (6.0, 12.0, 40.0):
        x = gen.chisquare(rho, size=2_000_000)
        psi = np.sqrt(rho / x)  # ψ² ~ scaled inverse χ² with ρ degrees of freedom, σ = 1
        assert psi.var() == pytest.approx(R.psi_variance_exact(rho)[0], rel=0.03)
    assert np.isinf(R.psi_variance_exact([1.0, 2.0])).all()


def test_the_approximation_exists_above_four_and_agrees_in_the_limit():
    assert np.isnan(R.psi_variance_approx([3.0, 4.0])).all()
    big = 1e5
    assert R.psi_variance_approx(big)[0] == pytest.approx(R.psi_variance_exact(big)[0], rel=1e-4)
    assert R.psi_variance_approx(6.0)[0] > 2 * R.psi_variance_exact(6.0)[0]


def test_simulated_spread_is_deterministic_and_rectified_only_after_the_switch():
    a = R.simulate_adaptive_lr(0.999, steps=40, runs=2_000, seed=3)
    b = R.simulate_adaptive_lr(0.999, steps=40, runs=2_000, seed=3)
    np.testing.assert_array_equal(a.var_adam, b.var_adam)
    assert np.isnan(a.var_rectified[:5]).all() and np.isfinite(a.var_rectified[5:]).all()
    assert a.var_adam[2] > a.var_adam[-1]
    np.testing.assert_allclose(
        a.var_rectified[5:], R.rectifier(a.t[5:], 0.999) ** 2 * a.var_adam[5:], rtol=1e-12
    )


def test_nadam_mu_is_torch_nadams_schedule():
    # torch's NAdam on a constant gradient: the first step is η·((1−μ1)/(1−μ1) + μ2/(1−μ1μ2))·…;
    # simpler: compare the formula with the one in course_lib's block, which is parity-tested.
    mu = R.nadam_mu(np.array([1, 2, 1000]), beta1=0.9, momentum_decay=4e-3)
    assert mu[0] == pytest.approx(0.9 * (1 - 0.5 * 0.96**0.004))
    assert mu[2] == pytest.approx(0.9 * (1 - 0.5 * 0.96**4))


def test_step_sizes_of_adam_on_a_constant_gradient_are_the_learning_rate():
    steps = R.step_sizes(optim.Adam, np.full(5, 3.0), lr=0.1, eps=0.0)
    np.testing.assert_allclose(steps, 0.1, rtol=1e-12)


def test_train_grid_runs_every_method_lr_and_seed_on_the_same_budget():
    data = load_digits_data()
    grid = R.train_grid(
        {"Adam": (optim.Adam, {}, None), "RAdam": (optim.RAdam, {}, None)},
        {"Adam": [1e-2, 1e4], "RAdam": [1e-2]},
        data,
        hidden=8,
        epochs=1,
        seeds=(0, 1),
    )
    assert grid.loss["Adam"].shape == (2, 2) and grid.loss["RAdam"].shape == (1, 2)
    assert np.isfinite(grid.loss["Adam"][0]).all()
    assert grid.steps == math.ceil(len(data.y_train) / 64)
    assert grid.best("Adam")[0] == 1e-2
