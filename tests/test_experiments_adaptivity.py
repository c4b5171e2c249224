"""Experiments of the adaptive-methods lessons (chapters 03 and 04): effective learning rates, EMA
bias, sparse logistic regression; and the code listings of ``course_lib.listing``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import optim
from course_lib.experiments import adaptivity, sparse
from course_lib.listing import HEADER, qualified_name, resolve, show_source, source_text

DTYPE = torch.float64


# --------------------------------------------------------------------------- effective lrs


def test_spike_gradients():
    g = adaptivity.spike_gradients(10, 3, spike=50.0, base=2.0)
    assert g.tolist() == [2.0, 2.0, 2.0, 50.0] + [2.0] * 6
    noisy = adaptivity.spike_gradients(1000, noise=0.5, seed=1)
    assert np.array_equal(noisy, adaptivity.spike_gradients(1000, noise=0.5, seed=1))
    assert abs(noisy.mean() - 1) < 0.1 and abs(noisy.std() - 0.5) < 0.05
    with pytest.raises(ValueError):
        adaptivity.spike_gradients(0)
    with pytest.raises(ValueError):
        adaptivity.spike_gradients(10, 10)


def test_effective_lr_of_sgd_is_the_lr_and_of_adagrad_is_lr_over_sqrt_t():
    g = adaptivity.spike_gradients(50, noise=0.3, seed=0)
    assert np.allclose(adaptivity.effective_lrs(torch.optim.SGD, g, lr=0.1), 0.1)
    t = np.arange(1, 51)
    ada = adaptivity.effective_lrs(optim.Adagrad, adaptivity.spike_gradients(50), lr=0.1, eps=0.0)
    assert np.allclose(ada, 0.1 / np.sqrt(t), rtol=1e-12)


def test_effective_lrs_shapes_zero_gradients_and_factories():
    g = np.array([[1.0, 0.0], [2.0, -1.0]])
    out = adaptivity.effective_lrs(lambda p: torch.optim.SGD(p, lr=0.5), g)
    assert out.shape == (2, 2)
    assert np.isnan(out[0, 1]) and np.allclose(out[[0, 1, 1], [0, 0, 1]], 0.5)
    with pytest.raises(ValueError):
        adaptivity.effective_lrs(torch.optim.SGD, np.zeros((2, 2, 2)), lr=0.1)


def test_spike_shrinks_adagrad_for_good_but_not_rmsprop():
    spiked, clean = adaptivity.spike_gradients(1000, 50, 100.0), adaptivity.spike_gradients(1000)
    ada = (
        adaptivity.effective_lrs(optim.Adagrad, spiked, lr=0.1)[-1]
        / adaptivity.effective_lrs(optim.Adagrad, clean, lr=0.1)[-1]
    )
    rms = (
        adaptivity.effective_lrs(optim.RMSprop, spiked, lr=0.01)[-1]
        / adaptivity.effective_lrs(optim.RMSprop, clean, lr=0.01)[-1]
    )
    assert ada == pytest.approx(math.sqrt(1000 / (999 + 100**2)), rel=1e-6)
    assert rms > 0.99


def test_scheduler_is_stepped_after_every_step():
    def halve(opt):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5**k)

    out = adaptivity.effective_lrs(torch.optim.SGD, np.ones(4), lr=1.0, scheduler=halve)
    assert np.allclose(out, [1.0, 0.5, 0.25, 0.125])


# --------------------------------------------------------------------------- forgetting a spike


@pytest.mark.parametrize("beta", [0.9, 0.99])
@pytest.mark.parametrize("tolerance", [0.01, 0.1])
def test_rmsprop_recovers_exactly_when_the_formula_says(beta, tolerance):
    ratios = [2.0, 10.0, 100.0, 1000.0]
    at = round(10 / (1 - beta))
    grads = np.ones((at + round(16 / (1 - beta)), len(ratios) + 1))
    grads[at, :-1] = ratios
    eff = adaptivity.effective_lrs(optim.RMSprop, grads, lr=1e-3, alpha=beta)
    for j, r in enumerate(ratios):
        measured = adaptivity.recovery_steps(eff[:, j], eff[:, -1], at, tolerance)
        assert measured == adaptivity.spike_recovery_steps(beta, r, tolerance), (beta, r)


def test_spike_recovery_steps_edge_cases_and_the_horizon_approximation():
    assert adaptivity.spike_recovery_steps(0.99, 1.0) == 0  # no spike at all
    assert adaptivity.spike_recovery_steps(0.99, 3.0, 0.1) == 0  # never leaves a 10 % band
    n = adaptivity.spike_recovery_steps(0.999, 100.0, 0.01)
    approx = 1000 * math.log(0.001 * (100**2 - 1) / (0.99**-2 - 1))
    assert abs(n - approx) / n < 0.01  # n* ≈ ln(...) / (1 − β) for β close to 1
    for bad in [
        dict(beta=1.0, spike_ratio=10),
        dict(beta=0.9, spike_ratio=0.5),
        dict(beta=0.9, spike_ratio=10, tolerance=0.0),
    ]:
        with pytest.raises(ValueError):
            adaptivity.spike_recovery_steps(**bad)


def test_recovery_steps_of_adagrad_is_none_and_checks_its_input():
    spiked, clean = adaptivity.spike_gradients(500, 10, 100.0), adaptivity.spike_gradients(500)
    ada = [adaptivity.effective_lrs(optim.Adagrad, g, lr=0.1) for g in (spiked, clean)]
    assert adaptivity.recovery_steps(*ada, spike_at=10) is None
    assert adaptivity.recovery_steps(ada[1], ada[1], spike_at=10) == 0
    with pytest.raises(ValueError):
        adaptivity.recovery_steps(ada[0], ada[1][:-1], spike_at=10)
    with pytest.raises(ValueError):
        adaptivity.recovery_steps(ada[0], ada[1], spike_at=500)


def test_average_weights_of_rmsprop_adagrad_and_online_rmsprop():
    T = 60
    rms = adaptivity.average_weights(optim.RMSprop, T, "v", lr=1e-3, alpha=0.9)
    assert np.allclose(rms, 0.1 * 0.9 ** np.arange(T - 1, -1, -1), rtol=1e-12)
    assert np.allclose(adaptivity.average_weights(optim.Adagrad, T, "G", lr=0.1), 1.0)
    assert np.allclose(adaptivity.average_weights(optim.OnlineRMSprop, T, "v", gamma=1.0), 1 / T)
    half = adaptivity.average_weights(optim.OnlineRMSprop, T, "v", gamma=0.5)
    assert np.all(np.diff(half) < 0)  # γ < 1: the older the gradient, the larger its weight
    t = np.arange(1, T + 1)  # exact: a_s = (γ/s) Π_{k=s+1}^{T} (1 − γ/k)
    exact = [0.5 / s * np.prod(1 - 0.5 / t[s:]) for s in t]
    assert np.allclose(half, exact, rtol=1e-12)
    with pytest.raises(KeyError):
        adaptivity.average_weights(optim.RMSprop, 3, "G", lr=1e-3)
    with pytest.raises(ValueError):
        adaptivity.average_weights(optim.RMSprop, 0, "v", lr=1e-3)


def test_online_rmsprop_effective_lr_never_grows_but_rmsprop_does():
    g = np.random.default_rng(1).standard_t(2, size=400)
    for gamma in (0.3, 0.7, 1.0):
        eff = adaptivity.effective_lrs(optim.OnlineRMSprop, g, lr=0.1, gamma=gamma)
        assert np.all(np.diff(eff) <= 1e-12 * eff[:-1]), gamma
    rms = adaptivity.effective_lrs(optim.RMSprop, g, lr=0.01)
    assert np.sum(np.diff(rms) > 0) > 100


# --------------------------------------------------------------------------- EMA bias


@pytest.mark.parametrize("square", [True, False])
def test_simulated_ema_matches_one_minus_beta_t(square):
    sim = adaptivity.simulate_ema(0.99, 300, runs=2000, mean=0.5, std=1.0, square=square, seed=3)
    target = 1.25 if square else 0.5
    assert sim.target == target
    assert np.allclose(sim.expected, (1 - 0.99 ** np.arange(1, 301)) * target)
    assert np.abs(sim.z).max() < 5
    assert np.allclose(sim.corrected, target, atol=6 * (sim.sem / sim.expected * target).max())


def test_simulate_ema_rejects_bad_arguments():
    with pytest.raises(ValueError):
        adaptivity.simulate_ema(1.0, 10)
    with pytest.raises(ValueError):
        adaptivity.simulate_ema(0.9, 10, runs=1)


# --------------------------------------------------------------------------- sparse logistic


@pytest.fixture(scope="module")
def problem():
    return sparse.sparse_logistic_problem(seed=0, n=600, d=30)


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
        sparse.sparse_logistic_problem(l2=0.0)


def test_train_sparse_logistic_is_deterministic_and_converges(problem):
    w1 = sparse.train_sparse_logistic(problem, optim.Adagrad, epochs=20, lr=0.3, seed=1)
    w2 = sparse.train_sparse_logistic(problem, optim.Adagrad, epochs=20, lr=0.3, seed=1)
    assert torch.equal(w1, w2)
    assert problem.loss(w1) - problem.f_star < 0.02
    with pytest.raises(ValueError):
        sparse.train_sparse_logistic(problem, optim.Adagrad, epochs=0, lr=0.3)


def test_sparse_logistic_objective_returns_the_suboptimality():
    objective = sparse.sparse_logistic_objective(epochs=2, n=400, d=20)
    gap = objective(lambda ps: optim.Adagrad(ps, lr=0.3), 0)
    assert 0 < gap < 0.1 and 0 in objective.problems
    assert objective(lambda ps: optim.Adagrad(ps, lr=0.3), 0) == gap  # same seed, same run


def test_hessian_matches_autograd(problem):
    H = problem.hessian()
    assert torch.allclose(H, H.T)
    w = problem.w_star + 0.1

    def loss(v):
        logits = problem.X @ v
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, problem.y)
        return bce + 0.5 * problem.l2 * (v @ v)

    assert torch.allclose(
        problem.hessian(w), torch.autograd.functional.hessian(loss, w), atol=1e-12
    )
    # curvature along a weight grows with the feature's frequency (≈ p(1−p)·frequency)
    diag = H.diagonal()[:-1].numpy()
    assert np.corrcoef(diag, problem.frequency)[0, 1] > 0.9


def test_feature_groups_exclude_the_bias(problem):
    groups = sparse.feature_groups(problem, common_above=0.1, rare_below=0.02)
    assert not groups["common"][-1] and not groups["rare"][-1]
    assert not np.any(groups["common"] & groups["rare"])
    assert groups["common"].sum() >= 1 and groups["rare"].sum() >= 1
    with pytest.raises(ValueError):
        sparse.feature_groups(problem, common_above=0.01, rare_below=0.1)


def test_lr_sweep_matches_single_runs_and_finds_the_best(problem):
    groups = sparse.feature_groups(problem, rare_below=0.02)
    sweep = sparse.lr_sweep(problem, optim.SGD, [1.0, 3.0], groups, epochs=3, seed=2)
    w = sparse.train_sparse_logistic(problem, optim.SGD, epochs=3, seed=2, lr=3.0)
    err = (w - problem.w_star).abs().numpy()
    assert sweep.at(3.0, "rare") == pytest.approx(err[groups["rare"]].mean(), rel=1e-12)
    assert sweep.at(3.0) == pytest.approx(problem.loss(w) - problem.f_star, rel=1e-12)
    assert sweep.best() == (3.0 if sweep.gap[1] < sweep.gap[0] else 1.0)
    with pytest.raises(KeyError):
        sweep.at(2.0)
    with pytest.raises(ValueError):
        sparse.lr_sweep(problem, optim.SGD, [], groups)


# --------------------------------------------------------------------------- code listings


def test_source_text_drops_the_docstring():
    src = source_text(adaptivity.spike_gradients)
    assert src.startswith("def spike_gradients(") and '"""' not in src
    assert "rng = np.random.default_rng(seed)" in src
    full = source_text(adaptivity.spike_gradients, docstring=True)
    assert '"""A gradient sequence' in full
    method = source_text(optim.Adam.update)
    assert method.startswith("def update(") and "blocks.bias_correction" in method


def test_show_source_names_what_it_shows(capsys):
    show_source(optim.Adam.update, optim.blocks.ema)
    out = capsys.readouterr().out
    first, second = out.split("\n\n" + HEADER)
    assert first.startswith(HEADER + "course_lib.optim.adam.Adam.update\n")
    assert second.startswith("course_lib.optim.blocks.moments.ema\n")
    assert resolve("course_lib.optim.adam.Adam.update") is optim.Adam.update
    assert qualified_name(optim.blocks.ema) == "course_lib.optim.blocks.moments.ema"
