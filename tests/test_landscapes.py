"""Landscapes: critical points are where they are said to be; runs detect divergence honestly."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import course_lib.landscapes as L
from course_lib.landscapes import (
    LANDSCAPES,
    get_landscape,
    quadratic,
    reddi,
    run_optimizer,
    sharp_flat,
)

STATIC = [name for name in LANDSCAPES if name != "reddi"]


@pytest.mark.parametrize("name", STATIC)
def test_minima_are_minima_and_saddles_are_saddles(name):
    land = get_landscape(name)
    assert land.minima or land.saddles
    for m in land.minima:
        assert np.linalg.norm(land.gradient(m)) < 1e-8, (name, m)
        eig = np.linalg.eigvalsh(land.hessian(m))
        assert eig.min() > 0, (name, m, eig)
        # a local minimum: small perturbations increase f
        for d in [(1e-3, 0), (0, 1e-3), (-1e-3, 1e-3)]:
            assert land(np.add(m, d)) > land(m)
    for s in land.saddles:
        assert np.linalg.norm(land.gradient(s)) < 1e-8, (name, s)
        eig = np.linalg.eigvalsh(land.hessian(s))
        # indefinite (a true saddle) or degenerate (the flat inflection point)
        assert eig.min() < 1e-9 and eig.max() > 0, (name, s, eig)


@pytest.mark.parametrize("name", STATIC)
def test_plot_window_contains_critical_points_and_start(name):
    land = get_landscape(name)
    for p in [*land.minima, *land.saddles, land.start]:
        assert land.xlim[0] <= p[0] <= land.xlim[1]
        assert land.ylim[0] <= p[1] <= land.ylim[1]
    X, Y, Z = land.grid(20)
    assert X.shape == Y.shape == Z.shape == (20, 20)
    assert np.all(np.isfinite(Z))
    # the grid values are the function values
    assert Z[3, 5] == pytest.approx(float(land([X[3, 5], Y[3, 5]])))


def test_known_values():
    assert float(get_landscape("rosenbrock")([1.0, 1.0])) == 0.0
    assert float(get_landscape("beale")([3.0, 0.5])) == pytest.approx(0.0, abs=1e-12)
    assert float(get_landscape("rastrigin")([0.0, 0.0])) == pytest.approx(0.0, abs=1e-12)
    assert float(get_landscape("saddle")([1.0, 2.0])) == -3.0
    assert float(get_landscape("inflection")([2.0, 1.0])) == 9.0
    np.testing.assert_allclose(get_landscape("saddle").hessian([0.0, 0.0]), [[2, 0], [0, -2]])


@pytest.mark.parametrize("kappa,angle", [(1.0, 0.0), (10.0, 0.0), (100.0, 30.0)])
def test_quadratic_hessian_eigenvalues(kappa, angle):
    q = quadratic(kappa, lambda_max=2.0, angle=angle)
    eig = np.linalg.eigvalsh(q.hessian([0.3, -0.7]))
    np.testing.assert_allclose(eig, sorted(q.hessian_eigenvalues), rtol=1e-12)
    assert max(q.hessian_eigenvalues) / min(q.hessian_eigenvalues) == pytest.approx(kappa)


def test_quadratic_stability_threshold_is_two_over_lambda_max():
    q = quadratic(10.0, lambda_max=4.0)
    lr_crit = 2 / max(q.hessian_eigenvalues)
    below = run_optimizer(q, torch.optim.SGD, steps=300, lr=0.95 * lr_crit)
    above = run_optimizer(q, torch.optim.SGD, steps=300, lr=1.05 * lr_crit)
    assert not below.diverged and below.final_loss < 1e-3
    assert above.diverged and above.diverged_at is not None


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="condition_number"):
        quadratic(0.5)
    with pytest.raises(ValueError, match="C > 2"):
        reddi(C=1.5)
    with pytest.raises(ValueError, match="unknown landscape"):
        get_landscape("nope")
    with pytest.raises(ValueError, match="sharp_width"):
        sharp_flat(sharp_width=1.0, flat_width=0.5)
    with pytest.raises(ValueError, match="last dimension"):
        get_landscape("beale")([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="start"):
        run_optimizer("beale", torch.optim.SGD, start=(1.0,), lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        run_optimizer("beale", torch.optim.SGD, steps=-1, lr=0.1)


def test_run_matches_hand_written_gradient_descent():
    q = quadratic(5.0, angle=20.0)
    lr, x = 0.3, np.array(q.start)
    H = q.hessian([0.0, 0.0])
    expected = [x.copy()]
    for _ in range(20):
        x = x - lr * H @ x
        expected.append(x.copy())
    tr = run_optimizer(q, torch.optim.SGD, steps=20, lr=lr)
    assert tr.points.shape == (21, 2)
    np.testing.assert_allclose(tr.points, np.array(expected), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr.losses, [0.5 * p @ H @ p for p in expected], rtol=1e-10)


def test_class_kwargs_and_factory_agree_and_label_has_hyperparameters():
    land = get_landscape("rosenbrock")
    a = run_optimizer(land, torch.optim.Adam, steps=30, lr=0.05, betas=(0.8, 0.99))
    b = run_optimizer(land, lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99)), steps=30)
    np.testing.assert_array_equal(a.points, b.points)
    assert a.label == b.label
    assert a.label.startswith("Adam(") and "lr=0.05" in a.label and "betas=(0.8, 0.99)" in a.label
    assert a.hyperparameters["lr"] == 0.05
    with pytest.raises(ValueError, match="factory"):
        run_optimizer(land, lambda p: torch.optim.Adam(p), steps=3, lr=0.1)


def test_divergence_is_detected_and_trajectory_is_truncated():
    tr = run_optimizer("rosenbrock", torch.optim.SGD, steps=200, lr=0.01)
    assert tr.diverged
    assert 1 <= tr.diverged_at <= 200
    assert len(tr.points) == tr.diverged_at  # start + (diverged_at - 1) good points
    assert np.all(np.isfinite(tr.points)) and np.all(np.isfinite(tr.losses))
    assert len(tr.losses) == len(tr.points)
    assert f"diverged after {tr.diverged_at} steps" in tr.message
    low, high = get_landscape("rosenbrock").escape_box()
    assert np.all(tr.points >= low) and np.all(tr.points <= high)


def test_nan_gradient_counts_as_divergence():
    land = L.Landscape(name="nan", f=lambda w: (w**2).sum(-1) * float("nan"), minima=[(0, 0)])
    tr = run_optimizer(land, torch.optim.SGD, steps=10, lr=0.1)
    assert tr.diverged and tr.diverged_at == 1
    assert tr.points.shape == (1, 2)


def test_convergent_run_reports_no_divergence():
    tr = run_optimizer("himmelblau", torch.optim.Adam, steps=400, lr=0.05)
    assert not tr.diverged and tr.diverged_at is None
    land = get_landscape("himmelblau")
    i = land.nearest_minimum(tr.final)
    assert tr.first_within(land.minima[i], 1e-2) is not None
    assert tr.final_loss < 1e-6


def test_noise_is_seeded():
    a = run_optimizer("quadratic", torch.optim.SGD, steps=20, lr=0.1, noise=0.5, seed=1)
    b = run_optimizer("quadratic", torch.optim.SGD, steps=20, lr=0.1, noise=0.5, seed=1)
    c = run_optimizer("quadratic", torch.optim.SGD, steps=20, lr=0.1, noise=0.5, seed=2)
    d = run_optimizer("quadratic", torch.optim.SGD, steps=20, lr=0.1)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.allclose(a.points, c.points)
    assert not np.allclose(a.points, d.points)


def test_saddle_escape_helpers():
    tr = run_optimizer("saddle", torch.optim.SGD, steps=100, lr=0.1, start=(1.0, 1e-4))
    k = tr.first_outside((0.0, 0.0), 1.5)
    assert k is not None
    # y grows by (1 + 2 lr) per step from 1e-4: it passes 1.5 after about log(1.5e4)/log(1.2) steps
    assert abs(k - math.log(1.5e4) / math.log(1.2)) <= 2


def test_reddi_adam_fails_amsgrad_succeeds():
    """Reddi et al. (2018): with β1 = 0, β2 = 1/(1 + C²) Adam drifts to +1, AMSGrad to −1."""
    C = 3.0
    betas = (0.0, 1 / (1 + C**2))
    land = reddi(C)
    adam = run_optimizer(land, torch.optim.Adam, steps=3000, lr=0.1, betas=betas)
    ams = run_optimizer(land, torch.optim.Adam, steps=3000, lr=0.1, betas=betas, amsgrad=True)
    assert adam.points.shape == (3001, 1)
    assert np.all(np.abs(adam.points) <= 1.0)  # projection onto [-1, 1]
    assert adam.final[0] == pytest.approx(1.0)
    assert ams.final[0] < -0.5
    # online losses follow the schedule C, -1, -1, C, ...
    assert float(land([0.5], 1)) == 1.5 and float(land([0.5], 2)) == -0.5
    with pytest.raises(ValueError, match="online"):
        land([0.5])


def test_sharp_flat_basins():
    land = sharp_flat()
    sharp, flat = land.minima
    hs = np.linalg.eigvalsh(land.hessian(sharp)).max()
    hf = np.linalg.eigvalsh(land.hessian(flat)).max()
    assert hs > 10 * hf
    assert land.nearest_minimum((sharp[0] + 0.05, 0.1)) == 0
    assert land.nearest_minimum((flat[0] - 0.3, 0.2)) == 1


def test_scheduler_is_applied():
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.0)  # noqa: E731
    tr = run_optimizer("quadratic", torch.optim.SGD, steps=20, lr=0.3, scheduler=sched)
    # the lr becomes 0 after 5 steps, so the iterate freezes
    np.testing.assert_array_equal(tr.points[5], tr.points[-1])
    assert not np.allclose(tr.points[0], tr.points[5])


def test_docstring_examples():
    assert doctest.testmod(L, optionflags=doctest.ELLIPSIS).failed == 0


def test_escaping_downhill_is_not_divergence():
    """x² − y² is unbounded below: leaving the window downhill is an escape, reported as such."""
    tr = run_optimizer("saddle", torch.optim.SGD, steps=100, lr=0.1, label="GD")
    assert tr.escaped and not tr.diverged and tr.outcome == "escaped"
    assert tr.escaped_at == tr.stopped_at == len(tr.points)
    assert tr.diverged_at is None
    assert tr.message == f"GD: escaped after {tr.escaped_at} steps (the loss is unbounded below)"
    assert np.all(np.diff(tr.losses[-10:]) < 0)  # still going downhill when it left
    # x³ + y²: momentum carries the run past the flat point into x < 0, where f falls forever
    flat = run_optimizer("inflection", torch.optim.SGD, steps=300, lr=0.1, momentum=0.9)
    assert flat.escaped and not flat.diverged


def test_growing_loss_on_an_unbounded_landscape_is_still_divergence():
    # lr far above 2/λ: y² oscillates and grows on the saddle, the loss goes up, not down
    tr = run_optimizer("saddle", torch.optim.SGD, steps=50, lr=1.5, start=(1.5, 0.0))
    assert tr.diverged and not tr.escaped and tr.outcome == "diverged"


def test_messages_use_the_right_number():
    one = run_optimizer("quadratic", torch.optim.SGD, steps=50, lr=25.0)
    assert one.diverged_at == 1 and one.message.endswith("diverged after 1 step")
    assert ": after 1 step at (" in run_optimizer("quadratic", torch.optim.SGD, steps=1, lr=0.1).message
    assert L.plural(1, "step") == "1 step" and L.plural(0, "step") == "0 steps"


def test_named_runs_keep_their_spec():
    auto = run_optimizer("quadratic", torch.optim.SGD, steps=3, lr=0.1)
    named = run_optimizer("quadratic", torch.optim.SGD, steps=3, lr=0.1, label="plain GD")
    assert not auto.named and auto.label == auto.spec
    assert named.named and named.label == "plain GD" and named.spec == auto.spec
    assert named.spec.startswith("SGD(lr=0.1")
