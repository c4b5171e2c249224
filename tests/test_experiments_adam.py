"""Chapter 04's measurements: ``experiments.adam_steps`` and ``experiments.adam_scaling``.

The closed forms the lesson teaches are checked against the real optimizers (steps) and against
autograd and exhaustive enumeration (curvature), on problems small enough to run in seconds.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib import optim
from course_lib.experiments import adam_scaling, adam_steps
from course_lib.landscapes import run_optimizer

D = torch.float64


# --- adam_steps -----------------------------------------------------------------------------


def test_uncorrected_factor_is_adams_step_without_correction():
    """On a constant gradient, m/√v computed by a plain recursion equals the closed form."""
    beta1, beta2 = 0.8, 0.99
    m = v = 0.0
    closed = adam_steps.uncorrected_factor(beta1, beta2, 50)
    for t in range(50):
        m, v = beta1 * m + (1 - beta1), beta2 * v + (1 - beta2)
        assert math.isclose(m / math.sqrt(v), closed[t], rel_tol=1e-12)


@pytest.mark.parametrize(
    "betas, first, peak, at",
    [((0.9, 0.999), 3.1623, 6.5685, 12), ((0.99, 0.999), 0.3162, 2.0890, 136),
     ((0.5, 0.999), 15.8114, 16.7747, 2)],
)
def test_uncorrected_factor_numbers_of_the_issue(betas, first, peak, at):
    factor = adam_steps.uncorrected_factor(*betas, 10_000)
    assert factor[0] == pytest.approx(first, abs=1e-4)
    assert adam_steps.uncorrected_peak(*betas) == (at, pytest.approx(peak, abs=1e-4))


def test_signed_steps_sign_convention_and_shape():
    steps = adam_steps.signed_steps(torch.optim.SGD, [[1.0, -2.0], [0.5, 0.0]], lr=0.1)
    assert steps.shape == (2, 2)
    np.testing.assert_allclose(steps, [[0.1, -0.2], [0.05, 0.0]])
    assert adam_steps.signed_steps(torch.optim.SGD, [3.0], lr=1.0).shape == (1,)


def test_restart_after_silence_follows_the_restart_formula():
    wake = adam_steps.silence_then_constant(silence=300, active=200)
    steps = adam_steps.signed_steps(optim.Adam, wake, lr=1.0, betas=(0.9, 0.98), eps=1e-8)
    np.testing.assert_array_equal(steps[:300], 0.0)  # m = v = 0: the step is 0 / (0 + ε)
    np.testing.assert_allclose(steps[300:], adam_steps.restart_factor(0.9, 0.98, 300, 200), rtol=1e-6)


def test_readaptation_formula_matches_adam_for_several_drops_and_criteria():
    for criterion in (0.5, 0.8):
        drops = [0.1, 0.02]  # large enough drops that the momentum has adapted long before
        measured = adam_steps.measured_readaptation(0.98, drops, criterion=criterion)
        formula = [adam_steps.readaptation_steps(0.98, s, criterion) for s in drops]
        np.testing.assert_allclose(measured, formula, rtol=0.02, atol=2)
    assert adam_steps.readaptation_steps(0.999, 0.1) * (1 - 0.999) == pytest.approx(3.5, abs=0.01)
    with pytest.raises(RuntimeError, match="never fell below"):
        adam_steps.measured_readaptation(0.98, [0.4], criterion=0.5)  # momentum and memory overlap


def test_noisy_gradients_have_the_requested_signal_to_noise_ratio():
    g = adam_steps.noisy_gradients([0.5, 3.0], steps=20_000, copies=2, seed=1)
    assert g.shape == (20_000, 4)
    np.testing.assert_allclose(g.mean(0), [0.5, 0.5, 3.0, 3.0], atol=0.03)
    np.testing.assert_allclose(g.std(0), 1.0, atol=0.03)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        adam_steps.uncorrected_factor(1.0, 0.9, 5)
    with pytest.raises(ValueError):
        adam_steps.readaptation_steps(0.99, 0.6, criterion=0.5)
    with pytest.raises(ValueError):
        adam_steps.silence_then_constant(10, 0)


# --- adam_scaling ---------------------------------------------------------------------------


def test_rotated_start_makes_gradient_descent_rotation_invariant():
    losses = []
    for angle in (0, 20, 45):
        land, start = adam_scaling.rotated_quadratic(50, angle)
        losses.append(run_optimizer(land, torch.optim.SGD, 40, start, lr=1.0).final_loss)
    assert max(losses) / min(losses) - 1 < 1e-9


def test_diagonal_newton_is_exact_when_aligned_and_gradient_descent_at_45_degrees():
    land, start = adam_scaling.rotated_quadratic(100, 0)
    assert np.abs(adam_scaling.diagonal_newton(land, start, 1)[-1]).max() < 1e-15
    land, start = adam_scaling.rotated_quadratic(100, 45)
    lam_min, lam_max = land.hessian_eigenvalues
    gd = run_optimizer(land, torch.optim.SGD, 30, start, lr=2 / (lam_min + lam_max))
    np.testing.assert_allclose(adam_scaling.diagonal_newton(land, start, 30), gd.points, atol=1e-13)


def test_best_final_loss_counts_divergence_as_infinite():
    land, start = adam_scaling.rotated_quadratic(10, 0)
    loss, lr = adam_scaling.best_final_loss(land, torch.optim.SGD, [0.5, 5.0], 20, start)
    assert lr == 0.5 and math.isfinite(loss)
    assert adam_scaling.best_final_loss(land, torch.optim.SGD, [5.0], 20, start)[0] == math.inf


def _tiny_problem(seed=0, n=7, d=3, k=4):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=D)
    X[:, 1] = 0.0  # a constant-zero feature, like the digits' blank pixels
    y = torch.randint(0, k, (n,), generator=gen)
    W = 0.5 * torch.randn(k, d + 1, generator=gen, dtype=D)
    return X, y, W


def _loss(W, X, y, l2):
    Xb = torch.cat([X, torch.ones(X.shape[0], 1, dtype=D)], 1)
    return torch.nn.functional.cross_entropy(Xb @ W.T, y) + 0.5 * l2 * (W**2).sum()


def test_softmax_curvature_matches_autograd():
    X, y, W = _tiny_problem()
    l2 = 0.01
    c = adam_scaling.softmax_curvature(W, X, y, l2=l2)
    hessian = torch.autograd.functional.hessian(lambda w: _loss(w, X, y, l2), W)
    diag = hessian.reshape(W.numel(), W.numel()).diagonal().reshape(W.shape)
    torch.testing.assert_close(c.hessian, diag)
    per_example = torch.stack([
        torch.autograd.functional.jacobian(lambda w, i=i: _loss(w, X[i : i + 1], y[i : i + 1], l2), W)
        for i in range(X.shape[0])
    ])
    torch.testing.assert_close(c.per_example, per_example)
    torch.testing.assert_close(c.fisher, (per_example**2).mean(0))
    torch.testing.assert_close(c.mean_gradient, torch.autograd.functional.jacobian(lambda w: _loss(w, X, y, l2), W))
    assert not c.informative[:, 1].any() and c.informative[:, [0, 2, 3]].all()


def test_minibatch_second_moment_formula_is_exact_over_all_batches():
    X, y, W = _tiny_problem(seed=1)
    c = adam_scaling.softmax_curvature(W, X, y)
    n = X.shape[0]
    for batch in (1, 2, 3, n):
        subsets = list(itertools.combinations(range(n), batch))
        exact = torch.stack([c.per_example[list(s)].mean(0) ** 2 for s in subsets]).mean(0)
        torch.testing.assert_close(adam_scaling.minibatch_second_moment(c, batch), exact)
    with pytest.raises(ValueError):
        adam_scaling.minibatch_second_moment(c, n + 1)


def test_sampled_second_moment_converges_to_the_formula():
    X, y, W = _tiny_problem(seed=2, n=12)
    c = adam_scaling.softmax_curvature(W, X, y)
    sampled = adam_scaling.sampled_minibatch_second_moment(c, 4, draws=4000, seed=0)
    formula = adam_scaling.minibatch_second_moment(c, 4)
    assert ((sampled / formula)[c.informative] - 1).abs().median() < 0.05


def test_softmax_regression_minimum_is_stationary():
    X, y, _ = _tiny_problem(seed=3, n=30)
    W = adam_scaling.softmax_regression_minimum(X, y, n_classes=4, l2=0.1)
    c = adam_scaling.softmax_curvature(W, X, y, l2=0.1)
    assert c.mean_gradient.abs().max() < 1e-7
