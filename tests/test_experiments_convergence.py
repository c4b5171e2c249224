"""Experiments of chapters 00–01 (convergence, schedules, batch landscapes, divergence of a real
net, tuning): each checked against a case with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.data import make_regression_data
from course_lib.experiments.convergence import (
    averaged_sgd_on_absolute_value,
    gd_criteria,
    gradient_norm,
    noisy_labels,
    watch_training,
)
from course_lib.experiments.noise import (
    minimise_batch_loss,
    noise_free_distances,
    sgd_schedule_distances,
    sgd_variance_prediction,
)
from course_lib.experiments.sharpness import sharpness_along_gd, top_hessian_eigenvalue
from course_lib.experiments.stability import (
    digits_checkpoint,
    divergence_lr,
    gd_diverges,
)
from course_lib.experiments.tuning import (
    LeastSquaresTuning,
    grid_search,
    lr_sweep,
    random_search,
)
from course_lib.train import make_mlp

D = torch.float64


def _quadratic_bowl(w):
    return 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)


def test_gd_criteria_on_a_quadratic_contract_geometrically():
    c = gd_criteria(_quadratic_bowl, (1.0, 1.0), (0.0, 0.0), lr=0.1, steps=30)
    assert len(c.distance) == len(c.gap) == len(c.grad_norm) == 31
    assert c.distance[0] == pytest.approx(math.sqrt(2))
    assert c.gap[0] == pytest.approx(2.5)
    assert c.grad_norm[0] == pytest.approx(math.sqrt(1 + 16))
    # the slow coordinate shrinks by 1 − 0.1·1 = 0.9 per step and dominates late
    assert c.distance[30] / c.distance[29] == pytest.approx(0.9, rel=1e-6)
    # strong convexity (m = 1, L = 4) ties the criteria at every iterate
    assert np.all(c.grad_norm**2 / (2 * 4) <= c.gap + 1e-15)
    assert np.all(c.gap <= c.grad_norm**2 / (2 * 1) + 1e-15)


def test_gd_criteria_on_w4_decay_at_three_rates():
    c = gd_criteria(lambda w: w[0] ** 4, (1.0,), (0.0,), lr=0.05, steps=4000)
    k = np.arange(1000, 4001)
    slopes = [
        np.polyfit(np.log(k), np.log(v[1000:]), 1)[0] for v in (c.distance, c.gap, c.grad_norm**2)
    ]
    assert slopes == pytest.approx([-0.5, -2.0, -1.5 * 2], abs=0.05)


def test_gradient_norm_is_the_norm_of_autograd_and_leaves_grads_alone():
    model = nn.Linear(3, 2).double()
    X = torch.randn(5, 3, dtype=D)
    y = torch.tensor([0, 1, 1, 0, 1])
    got = gradient_norm(model, X, y)
    nn.functional.cross_entropy(model(X), y).backward()
    want = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    assert got == pytest.approx(want)
    model.zero_grad(set_to_none=True)
    gradient_norm(model, X, y)
    assert all(p.grad is None for p in model.parameters())


def test_noisy_labels_changes_exactly_the_chosen_fraction_to_wrong_classes():
    X = torch.randn(1000, 4)
    y = torch.randint(0, 10, (1000,))
    Xn, yn = noisy_labels(X, y, 800, 0.25, seed=1)
    assert torch.equal(Xn, X[:800])
    changed = (yn != y[:800]).double().mean().item()
    assert 0.2 < changed < 0.3
    assert int(yn.min()) >= 0 and int(yn.max()) <= 9
    with pytest.raises(ValueError):
        noisy_labels(X, y, 10, 1.5)


def test_watch_training_records_one_row_per_epoch_and_the_best_epoch():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=gen)
    y = (X[:, 0] > 0).long()
    watch = watch_training(make_mlp(4, 8, 2, seed=0), (X, y), (X, y), lr=0.5, epochs=5)
    for series in (watch.minibatch_grad_norm, watch.full_grad_norm, watch.val_loss):
        assert series.shape == (5,) and np.all(np.isfinite(series))
    assert watch.train_loss[-1] < watch.train_loss[0]
    assert watch.best_epoch == int(np.argmin(watch.val_loss))


def test_averaged_sgd_on_abs_stays_below_the_guarantee_and_decays_like_one_over_root_t():
    r = averaged_sgd_on_absolute_value([16, 256, 4096], distance=1.0, noise=1.0, chains=400)
    assert np.allclose(r.bound, math.sqrt(2) / np.sqrt([16, 256, 4096]))
    assert np.all(r.gap + 3 * r.std_error <= r.bound)
    slope = np.polyfit(np.log(r.horizons), np.log(r.gap), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.1)


def test_schedules_constant_floor_decaying_reaches_summable_stalls():
    data = make_regression_data(n=400, d=2, noise=1.0, seed=0)
    X, y = data.X_train, data.y_train
    schedules = {
        "constant": lambda t: 0.1,
        "1/t": lambda t: 0.1 / (1 + t / 20),
        "1/t^2": lambda t: 0.1 / (1 + t / 10) ** 2,
    }
    d = sgd_schedule_distances(X, y, schedules, batch_size=4, steps=1000, chains=128)
    assert all(v.shape == (1001,) and v[0] == pytest.approx(2 * 3.0**2) for v in d.values())
    floor = sgd_variance_prediction(X, y, 0.1, 4)
    assert d["constant"][500:].mean() == pytest.approx(floor, rel=0.25)
    assert d["1/t"][-1] < floor / 5
    stall = noise_free_distances(X, y, schedules["1/t^2"], 1000)
    assert d["1/t^2"][-1] == pytest.approx(stall[-1], rel=0.1) and stall[-1] > 1.0


def test_noise_free_distances_is_gradient_descent_with_the_schedule():
    data = make_regression_data(n=50, d=3, noise=0.5, seed=2)
    X, y = data.X_train.double(), data.y_train.double()
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    w = w_star + 3.0
    for t in range(5):
        w = w - (0.1 / (t + 1)) * X.T @ (X @ w - y) / len(X)
    got = noise_free_distances(X, y, lambda t: 0.1 / (t + 1), 5)
    assert got[-1] == pytest.approx(float((w - w_star).pow(2).sum()), rel=1e-9)


def test_a_point_critical_for_one_batch_is_not_critical_for_the_others():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    model = make_mlp(5, 16, 3, seed=0)
    batch = slice(0, 8)
    fitted = minimise_batch_loss(model, X[batch], y[batch], lr=1.0, steps=300)
    own = gradient_norm(fitted, X[batch], y[batch])
    others = [gradient_norm(fitted, X[i : i + 8], y[i : i + 8]) for i in range(8, 64, 8)]
    assert own < 0.01 * np.median(others)
    assert gradient_norm(model, X[batch], y[batch]) > 10 * own  # the original was not touched


def test_gd_diverges_and_divergence_lr_on_a_linear_least_squares_model():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=gen, dtype=D) * torch.tensor([1.0, 0.5, 0.2], dtype=D)
    y = torch.randn(200, generator=gen, dtype=D)
    model = nn.Linear(3, 1, bias=False).double()
    loss = lambda out, target: 0.5 * (out.squeeze(1) - target).pow(2).mean()  # noqa: E731
    lam_max = float(torch.linalg.eigvalsh(X.T @ X / len(X)).max())
    assert not gd_diverges(model, X, y, 1.9 / lam_max, steps=200, loss_fn=loss)
    assert gd_diverges(model, X, y, 2.1 / lam_max, steps=200, loss_fn=loss)
    before = [p.detach().clone() for p in model.parameters()]
    gd_diverges(model, X, y, 1.0, steps=5, loss_fn=loss)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_digits_checkpoint_and_its_divergence_lr_are_reproducible():
    model, X, y = digits_checkpoint(seed=1, epochs=3)
    again, _, _ = digits_checkpoint(seed=1, epochs=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert X.shape == (1347, 64) and y.shape == (1347,)
    lam = top_hessian_eigenvalue(model, nn.functional.cross_entropy, (X, y)).eigenvalue
    threshold = divergence_lr(model, X, y, 0.5 * 2 / lam, 8 * 2 / lam, rtol=1e-2)
    assert gd_diverges(model, X, y, threshold * 1.02) and not gd_diverges(
        model, X, y, threshold / 1.02
    )


def test_sharpness_along_gd_starts_at_the_models_sharpness():
    model, X, y = digits_checkpoint(seed=0, epochs=0)
    loss = nn.functional.cross_entropy
    eigs, losses = sharpness_along_gd(model, loss, (X, y), lr=0.5, record_at=[0, 3])
    direct = top_hessian_eigenvalue(model, loss, (X, y), iters=300, tol=1e-6).eigenvalue
    assert eigs[0] == pytest.approx(direct, rel=1e-4)
    assert losses[1] < losses[0]


def test_lr_sweep_update_ratio_is_lr_times_gradient_over_weights_and_divergence_is_cut():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 4, generator=gen)
    y = (X[:, 0] > 0).long()
    runs = lr_sweep(lambda: make_mlp(4, 8, 2, seed=0), X, y, [0.01, 0.1, 1e8], epochs=6)
    small, large, huge = runs
    # same start, same first batch: the first ratio is proportional to the learning rate
    for name in small.update_ratio:
        assert large.update_ratio[name][0] == pytest.approx(
            10 * small.update_ratio[name][0], rel=1e-4
        )
    assert small.diverged_at is None and len(small.losses) == 6 * 2
    assert huge.diverged_at is not None and len(huge.losses) == huge.diverged_at


def test_least_squares_tuning_matches_gradient_descent_and_flags_divergence():
    problem = LeastSquaresTuning(n_train=50, n_val=20, d=4, steps=30, seed=1)
    lr, wd = 0.7, 1e-3
    w = np.zeros(4)
    X, y = problem.X_train, problem.y_train
    for _ in range(30):
        w = w - lr * (X.T @ (X @ w - y) / len(X) + wd * w)
    want = 0.5 * np.mean((problem.X_val @ w - problem.y_val) ** 2)
    assert problem.validation_loss(lr, wd) == pytest.approx(want, rel=1e-9)
    too_big = 2.1 / (problem.curvatures.max() + wd)
    assert problem.validation_loss(too_big, wd) == np.inf
    assert problem.validation_loss([lr, too_big], wd).shape == (2,)


def test_random_beats_grid_when_one_of_two_hyperparameters_matters_but_not_in_one_dimension():
    problem = LeastSquaresTuning()
    lr_range, wd_range = (1e-2, 10.0), (1e-5, 1e-2)
    grid_2d, lrs, wds = grid_search(problem, lr_range, wd_range, 3)
    assert len(set(np.round(lrs, 12))) == 3 and len(lrs) == 9
    random_2d = random_search(problem, lr_range, wd_range, trials=9, repeats=500)
    assert np.mean(random_2d < grid_2d) > 0.6
    grid_1d, _, _ = grid_search(problem, lr_range, None, 9)
    random_1d = random_search(problem, lr_range, None, trials=9, repeats=500)
    assert np.mean(random_1d < grid_1d) < 0.4
