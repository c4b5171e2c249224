"""Experiments of ``course_lib.experiments`` (stability, geometry, noise): each one checked against
a case with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.data import make_regression_data
from course_lib.experiments.geometry import (
    bezier_losses,
    fit_bezier_midpoint,
    flat_parameters,
    interpolation_losses,
    local_minima,
    loss_barrier,
    losses_along_line,
)
from course_lib.experiments.noise import sgd_iterate_variance, sgd_variance_prediction
from course_lib.experiments.stability import (
    bisect_threshold,
    count_sign_changes,
    is_divergent,
    iterations_to_tolerance,
)
from course_lib.landscapes import quadratic, saddle
from course_lib.optim import SGD


def test_bisect_threshold_finds_a_known_switch_point():
    assert bisect_threshold(lambda x: x > math.pi, 0.0, 10.0, rtol=1e-9) == pytest.approx(math.pi)


def test_bisect_threshold_refuses_a_bad_bracket():
    with pytest.raises(ValueError, match="predicate"):
        bisect_threshold(lambda x: True, 0.0, 1.0)
    with pytest.raises(ValueError, match="lo < hi"):
        bisect_threshold(lambda x: x > 0.5, 1.0, 0.0)


@pytest.mark.parametrize("lambda_max", [1.0, 4.0])
def test_gd_divergence_threshold_is_two_over_lambda_max(lambda_max):
    q = quadratic(10, lambda_max=lambda_max)
    assert not is_divergent(q, SGD, steps=300, lr=0.99 * 2 / lambda_max)
    assert is_divergent(q, SGD, steps=300, lr=1.01 * 2 / lambda_max)
    thr = bisect_threshold(lambda lr: is_divergent(q, SGD, steps=300, lr=lr), 0.1, 3.0, rtol=1e-3)
    assert thr == pytest.approx(2 / lambda_max, rel=5e-3)


def test_iterations_to_tolerance_matches_the_contraction_factor():
    # lr = 1 on quadratic(κ=10, λ_max=1): y is solved in one step, x shrinks by 0.9 per step.
    q = quadratic(10)
    k = iterations_to_tolerance(q, SGD, tol=1e-3, start=(1.0, 1.0), lr=1.0)
    assert k == math.ceil(math.log(1e-3) / math.log(0.9))
    assert iterations_to_tolerance(q, SGD, tol=1e-3, max_steps=10, start=(1.0, 1.0), lr=1.0) is None
    assert iterations_to_tolerance(q, SGD, tol=1e-3, start=(1.0, 1.0), lr=2.5) is None  # diverges
    assert iterations_to_tolerance(q, SGD, tol=10.0, lr=0.1) == 0  # already there
    with pytest.raises(ValueError, match="no known minimum"):
        iterations_to_tolerance(saddle(), SGD, lr=0.1)


def test_count_sign_changes():
    assert count_sign_changes([1, -1, 2, -3]) == 3
    assert count_sign_changes([1, 0, 2, 0.5]) == 0
    assert count_sign_changes([1, 0, -1]) == 1


def test_local_minima():
    assert local_minima([3, 1, 2, 0, 5]).tolist() == [1, 3]
    assert local_minima([0, 1, 2]).tolist() == []


def _linear_model():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    return model


def test_losses_along_line_is_the_loss_at_each_point_and_restores_the_model():
    model = _linear_model()
    X = torch.tensor([[1.0], [2.0]])
    y = torch.tensor([[2.0], [4.0]])  # minimised at w = 2
    ts = [0.0, 1.0, 2.0]
    losses = losses_along_line(model, torch.tensor([0.0]), torch.tensor([1.0]), ts, X, y)
    expected = [((w * X - y) ** 2).mean().item() for w in ts]
    assert np.allclose(losses, expected)
    assert model.weight.item() == 0.5


def test_interpolation_and_barrier():
    a, b = _linear_model(), _linear_model()
    with torch.no_grad():
        b.weight.fill_(1.5)
    X, y = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    alphas = np.linspace(0, 1, 11)
    losses = interpolation_losses(a, b, X, y, alphas)
    assert np.allclose(losses, (0.5 + alphas) ** 2)
    # a convex loss lies below its chord: no barrier; a bump in the middle is measured exactly
    assert loss_barrier(alphas, losses) <= 1e-12
    bump = np.zeros(11)
    bump[5] = 0.7
    assert loss_barrier(alphas, bump) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="start at 0"):
        loss_barrier([0.1, 1.0], [0.0, 0.0])
    assert flat_parameters(a).tolist() == [0.5]


def test_bezier_curve_ends_at_the_two_models_and_training_lowers_its_loss():
    torch.manual_seed(0)
    X = torch.randn(64, 3)
    y = (X[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    theta_a = flat_parameters(model)
    theta_b = theta_a + 0.5 * torch.randn_like(theta_a)
    ts = np.linspace(0, 1, 5)
    mid = 0.5 * (theta_a + theta_b)
    before = bezier_losses(model, theta_a, mid, theta_b, X, y, ts)
    assert np.allclose(before, interpolation_losses_via(model, theta_a, theta_b, X, y, ts))
    theta_c = fit_bezier_midpoint(model, theta_a, theta_b, X, y, steps=200, lr=0.05, batch_size=32)
    after = bezier_losses(model, theta_a, theta_c, theta_b, X, y, ts)
    assert after[0] == pytest.approx(before[0]) and after[-1] == pytest.approx(before[-1])
    assert after[1:-1].mean() < before[1:-1].mean()
    assert torch.equal(flat_parameters(model), theta_a)  # the architecture model is untouched


def interpolation_losses_via(model, theta_a, theta_b, X, y, ts):
    """With the bend at the midpoint, the Bézier curve is the straight segment."""
    return losses_along_line(model, theta_a, theta_b - theta_a, ts, X, y)


def test_sgd_iterate_variance_matches_the_small_lr_prediction_and_scales_as_lr_over_b():
    data = make_regression_data(n=400, d=2, noise=1.0, seed=0)
    X, y = data.X_train, data.y_train
    v1 = sgd_iterate_variance(X, y, lr=0.02, batch_size=4, steps=800, burn_in=200, chains=128)
    v2 = sgd_iterate_variance(X, y, lr=0.02, batch_size=16, steps=800, burn_in=200, chains=128)
    assert v1 == pytest.approx(sgd_variance_prediction(X, y, 0.02, 4), rel=0.1)
    assert v1 / v2 == pytest.approx(4.0, rel=0.12)
    assert sgd_variance_prediction(X, y, 0.04, 8) == pytest.approx(
        sgd_variance_prediction(X, y, 0.02, 4)
    )
    with pytest.raises(ValueError, match="burn_in"):
        sgd_iterate_variance(X, y, lr=0.1, batch_size=4, steps=10, burn_in=10)
