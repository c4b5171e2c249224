"""Helpers of the adaptive-methods lessons (chapters 03 and 04): course_lib.adaptive_lessons."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import adaptive_lessons as AL
from course_lib import optim as O

DTYPE = torch.float64


# --------------------------------------------------------------------------- effective lrs


def test_spike_gradients():
    g = AL.spike_gradients(10, 3, spike=50.0, base=2.0)
    assert g.tolist() == [2.0, 2.0, 2.0, 50.0] + [2.0] * 6
    noisy = AL.spike_gradients(1000, noise=0.5, seed=1)
    assert np.array_equal(noisy, AL.spike_gradients(1000, noise=0.5, seed=1))
    assert abs(noisy.mean() - 1) < 0.1 and abs(noisy.std() - 0.5) < 0.05
    with pytest.raises(ValueError):
        AL.spike_gradients(0)
    with pytest.raises(ValueError):
        AL.spike_gradients(10, 10)


def test_effective_lr_of_sgd_is_the_lr_and_of_adagrad_is_lr_over_sqrt_t():
    g = AL.spike_gradients(50, noise=0.3, seed=0)
    assert np.allclose(AL.effective_lrs(torch.optim.SGD, g, lr=0.1), 0.1)
    t = np.arange(1, 51)
    ada = AL.effective_lrs(O.Adagrad, AL.spike_gradients(50), lr=0.1, eps=0.0)
    assert np.allclose(ada, 0.1 / np.sqrt(t), rtol=1e-12)


def test_effective_lrs_shapes_zero_gradients_and_factories():
    g = np.array([[1.0, 0.0], [2.0, -1.0]])
    out = AL.effective_lrs(lambda p: torch.optim.SGD(p, lr=0.5), g)
    assert out.shape == (2, 2)
    assert np.isnan(out[0, 1]) and np.allclose(out[[0, 1, 1], [0, 0, 1]], 0.5)
    with pytest.raises(ValueError):
        AL.effective_lrs(torch.optim.SGD, np.zeros((2, 2, 2)), lr=0.1)


def test_spike_shrinks_adagrad_for_good_but_not_rmsprop():
    spiked, clean = AL.spike_gradients(1000, 50, 100.0), AL.spike_gradients(1000)
    ada = (
        AL.effective_lrs(O.Adagrad, spiked, lr=0.1)[-1]
        / AL.effective_lrs(O.Adagrad, clean, lr=0.1)[-1]
    )
    rms = (
        AL.effective_lrs(O.RMSprop, spiked, lr=0.01)[-1]
        / AL.effective_lrs(O.RMSprop, clean, lr=0.01)[-1]
    )
    assert ada == pytest.approx(math.sqrt(1000 / (999 + 100**2)), rel=1e-6)
    assert rms > 0.99


def test_scheduler_is_stepped_after_every_step():
    def halve(opt):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5**k)

    out = AL.effective_lrs(torch.optim.SGD, np.ones(4), lr=1.0, scheduler=halve)
    assert np.allclose(out, [1.0, 0.5, 0.25, 0.125])


# --------------------------------------------------------------------------- EMA bias


@pytest.mark.parametrize("square", [True, False])
def test_simulated_ema_matches_one_minus_beta_t(square):
    sim = AL.simulate_ema(0.99, 300, runs=2000, mean=0.5, std=1.0, square=square, seed=3)
    target = 1.25 if square else 0.5
    assert sim.target == target
    assert np.allclose(sim.expected, (1 - 0.99 ** np.arange(1, 301)) * target)
    assert np.abs(sim.z).max() < 5
    assert np.allclose(sim.corrected, target, atol=6 * (sim.sem / sim.expected * target).max())


def test_simulate_ema_rejects_bad_arguments():
    with pytest.raises(ValueError):
        AL.simulate_ema(1.0, 10)
    with pytest.raises(ValueError):
        AL.simulate_ema(0.9, 10, runs=1)


# --------------------------------------------------------------------------- sparse logistic


@pytest.fixture(scope="module")
def problem():
    return AL.sparse_logistic_problem(seed=0, n=600, d=30)


def test_sparse_logistic_optimum_is_exact(problem):
    assert problem.gradient(problem.w_star).abs().max() < 1e-10
    assert problem.loss(problem.w_star) == pytest.approx(problem.f_star, abs=1e-14)
    w = problem.w_star.clone().requires_grad_(True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(problem.X @ w, problem.y)
    (loss + 0.5 * problem.l2 * (w @ w)).backward()
    assert torch.allclose(w.grad, problem.gradient(problem.w_star), atol=1e-12)
    assert problem.frequency[0] > 5 * problem.frequency[-1]  # common vs rare features
    assert problem.X.shape[1] == 31 and torch.all(problem.X[:, -1] == 1)  # the bias column
    with pytest.raises(ValueError):
        AL.sparse_logistic_problem(l2=0.0)


def test_train_sparse_logistic_is_deterministic_and_converges(problem):
    w1 = AL.train_sparse_logistic(problem, O.Adagrad, epochs=20, lr=0.3, seed=1)
    w2 = AL.train_sparse_logistic(problem, O.Adagrad, epochs=20, lr=0.3, seed=1)
    assert torch.equal(w1, w2)
    assert problem.loss(w1) - problem.f_star < 0.02
    with pytest.raises(ValueError):
        AL.train_sparse_logistic(problem, O.Adagrad, epochs=0, lr=0.3)


def test_sparse_logistic_objective_returns_the_suboptimality():
    objective = AL.sparse_logistic_objective(epochs=2, n=400, d=20)
    gap = objective(lambda ps: O.Adagrad(ps, lr=0.3), 0)
    assert 0 < gap < 0.1 and 0 in objective.problems
    assert objective(lambda ps: O.Adagrad(ps, lr=0.3), 0) == gap  # same seed, same run


# --------------------------------------------------------------------------- source excerpts


def test_source_excerpt_drops_the_docstring():
    src = AL.source_excerpt(AL.spike_gradients)
    assert src.startswith("def spike_gradients(") and '"""' not in src
    assert "rng = np.random.default_rng(seed)" in src
    full = AL.source_excerpt(AL.spike_gradients, drop_docstring=False)
    assert '"""A gradient sequence' in full
    method = AL.source_excerpt(O.Adam.update)
    assert method.startswith("def update(") and "B.bias_correction" in method
