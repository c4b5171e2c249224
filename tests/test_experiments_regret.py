"""Regret of online gradient descent (course_lib.experiments.regret)."""

import numpy as np
import pytest

from course_lib.experiments.regret import ogd_regret


def _brute_force_regret(z: np.ndarray) -> np.ndarray:
    """R_t by definition: replay the algorithm, minimise Σ f_s over a fine grid of fixed points."""
    w, paid, out = 0.0, 0.0, []
    grid = np.linspace(-1, 1, 4001)
    fixed = np.zeros_like(grid)
    for t, zt in enumerate(z, start=1):
        paid += 0.5 * (w - zt) ** 2
        fixed += 0.5 * (grid - zt) ** 2
        out.append(paid - fixed.min())
        w = float(np.clip(w - (w - zt) / np.sqrt(t), -1, 1))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1])
def test_regret_matches_its_definition(seed):
    z = np.random.default_rng(seed).uniform(-1, 1, 300)
    run = ogd_regret(z)
    gap = run.regret - _brute_force_regret(z)  # a grid's minimum is never below the true one
    assert (gap >= -1e-12).all() and gap.max() < 1e-4
    np.testing.assert_allclose(run.regret, run.learner_loss - run.best_fixed_loss)


@pytest.mark.parametrize(
    "z",
    [
        np.tile([1.0, -1.0], 2000),
        np.r_[np.ones(2000), -np.ones(2000)],
        np.random.default_rng(3).choice([-1.0, 1.0], 4000),
        np.sin(np.arange(4000) / 50),
    ],
    ids=["alternating", "switch", "random-signs", "drift"],
)
def test_the_guarantee_holds_on_every_stream(z):
    run = ogd_regret(z)
    assert (run.regret <= run.bound).all()
    assert run.bound[-1] == pytest.approx(1.5 * 2 * 2 * np.sqrt(len(z)))


def test_alternating_targets_cost_order_sqrt_t_and_random_ones_vanish_on_average():
    alternating = ogd_regret(np.tile([1.0, -1.0], 5000)).regret
    ratio = alternating[[999, 9999]] / np.sqrt([1000, 10000])
    assert 0.5 < ratio.min() and ratio.max() < 3 and ratio[1] == pytest.approx(ratio[0], rel=0.2)
    random = ogd_regret(np.random.default_rng(0).uniform(-1, 1, 10000)).regret
    assert abs(random[-1]) / 10000 < 0.01


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ogd_regret(np.array([0.5, 2.0]))
    with pytest.raises(ValueError):
        ogd_regret(np.array([]))
