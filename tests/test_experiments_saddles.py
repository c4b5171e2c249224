"""course_lib.experiments.saddles: the vectorised runs equal single runs, the noise has the model's
covariance, the landscape's closed forms match autograd, the Wilson interval, the measurements."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.experiments import saddles
from course_lib.optim import SGD, Adai, Adam


def _rowwise(name, steps=30, chains=4, seed=0):
    """Run ``name`` on ``chains`` rows at once; return the rows and the gradients fed to them."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(chains, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    start = w.detach().clone()
    opt = saddles.chains_optimizer(name, w, lr=0.3)
    grads = []
    for _ in range(steps):
        g = torch.randn(chains, 3, generator=gen, dtype=torch.float64) * torch.tensor(
            [0.1, 1.0, 5.0], dtype=torch.float64
        )
        grads.append(g)
        w.grad = g.clone()
        opt.step()
    return start, grads, w.detach()


@pytest.mark.parametrize(
    "name, single",
    [
        ("SGD", lambda p: SGD([p], lr=0.3)),
        ("Momentum", lambda p: SGD([p], lr=0.03, momentum=0.9)),
        ("Adam", lambda p: Adam([p], lr=0.03)),
        ("Adai", lambda p: Adai([p], lr=0.3)),
    ],
)
def test_every_row_follows_the_optimizer_run_on_that_row_alone(name, single):
    start, grads, rows = _rowwise(name)
    for c in range(rows.shape[0]):
        p = start[c].clone().requires_grad_(True)
        opt = single(p)
        for g in grads:
            p.grad = g[c].clone()
            opt.step()
        torch.testing.assert_close(p.detach(), rows[c], rtol=1e-12, atol=1e-12)


def test_chains_adai_differs_from_adai_on_the_whole_tensor():
    """Adai on the (chains, d) tensor would share one mean between the runs: not independent."""
    start, grads, rows = _rowwise("Adai")
    p = start.clone().requires_grad_(True)
    opt = Adai([p], lr=0.3)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    assert not torch.allclose(p.detach(), rows)


def test_chains_optimizer_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown optimizer"):
        saddles.chains_optimizer("Lion", torch.zeros(2, 2, requires_grad=True), lr=0.1)


def test_saddle_gradient_has_the_covariance_of_the_model():
    gen = torch.Generator().manual_seed(0)
    w = torch.zeros(200_000, 2, dtype=torch.float64)
    g = saddles.saddle_gradient(w, 0.04, stiffness=2.0, batch_size=4, generator=gen)
    torch.testing.assert_close(
        g.var(0), torch.tensor([0.5, 0.01], dtype=torch.float64), rtol=0.02, atol=0
    )
    w = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    mean = torch.stack(
        [saddles.saddle_gradient(w, 0.04, generator=gen)[0] for _ in range(20_000)]
    ).mean(0)
    torch.testing.assert_close(
        mean, torch.tensor([1.0, -0.08], dtype=torch.float64), rtol=0, atol=0.02
    )


def test_escape_steps_without_noise_along_y_never_leave():
    """Only the noise moves a run off the saddle: with a tiny curvature it takes long."""
    steps = saddles.escape_steps("SGD", 1e-4, chains=50, max_steps=200)
    assert torch.isinf(steps).all()


def test_escape_steps_are_the_first_crossing_and_scale_like_one_over_h():
    fast = saddles.escape_steps("SGD", 0.1, chains=300, max_steps=2000)
    slow = saddles.escape_steps("SGD", 0.01, chains=300, max_steps=2000)
    assert (fast >= 1).all() and torch.isfinite(fast).all()
    assert 6 < slow.median() / fast.median() < 14


def test_escape_steps_report_divergence():
    with pytest.raises(ValueError, match="diverged"):
        saddles.escape_steps("SGD", 0.01, lr=2.5, chains=10, max_steps=500)


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (37, 100), (500, 1000)])
def test_wilson_interval_contains_the_estimate_and_matches_the_formula(k, n):
    lo, hi = saddles.wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert lo == pytest.approx(max(0, centre - half)) and hi == pytest.approx(min(1, centre + half))


def test_wilson_interval_covers_the_truth_about_95_percent_of_the_time():
    gen = torch.Generator().manual_seed(0)
    p, n, trials = 0.2, 40, 4000
    k = torch.binomial(torch.full((trials,), float(n)), torch.full((trials,), p), generator=gen)
    covered = sum(lo <= p <= hi for lo, hi in (saddles.wilson_interval(int(x), n) for x in k))
    assert 0.93 < covered / trials < 0.97


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError):
        saddles.wilson_interval(5, 4)


def test_two_basins_gradient_and_hessian_match_autograd_of_the_shared_landscape():
    basins = saddles.TwoBasins()
    gen = torch.Generator().manual_seed(1)
    pts = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    for w in pts:
        x = w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(basins.landscape(x), x)
        torch.testing.assert_close(basins.gradient(w[None])[0], g)
        H = torch.autograd.functional.hessian(basins.landscape, w)
        torch.testing.assert_close(basins.hessian(w[None])[0], H)


def test_two_basins_noise_has_covariance_abs_hessian_over_b():
    basins = saddles.TwoBasins()
    w = torch.tensor([[-0.9, 0.1]], dtype=torch.float64).expand(100_000, 2)
    g = basins.noisy_gradient(w, batch_size=2, generator=torch.Generator().manual_seed(0))
    lam, Q = torch.linalg.eigh(basins.hessian(w[:1])[0])
    want = Q @ torch.diag(lam.abs()) @ Q.T / 2
    torch.testing.assert_close(torch.cov(g.T), want, rtol=0.03, atol=0.03 * want.abs().max().item())


def test_basin_fractions_without_enough_noise_keep_every_run_where_it_started():
    r = saddles.basin_fractions("SGD", lr=0.005, chains=40, steps=100)
    assert r.flat == 20 and r.n == 40 and r.low < 0.5 < r.high


def test_basin_fractions_sgd_prefers_the_flat_basin():
    r = saddles.basin_fractions("SGD", lr=0.03, chains=100, steps=400)
    assert r.fraction > 0.9


def test_fisher_to_hessian_ratio_is_below_one_on_the_digits():
    assert 0.01 < saddles.fisher_to_hessian_ratio(1e-2) < 0.5


def test_rescaled_copy_is_the_same_function_with_another_sharpness():
    from course_lib.train import make_mlp

    model = make_mlp(64, 8, 10, seed=0)
    X = torch.randn(50, 64)
    twin = saddles.rescaled_copy(model, 3.0)
    torch.testing.assert_close(twin(X), model(X), rtol=1e-5, atol=1e-5)
    assert not torch.equal(twin[0].weight, model[0].weight)
    with pytest.raises(ValueError):
        saddles.rescaled_copy(model, 0.0)


def test_train_to_loss_stops_at_the_first_epoch_below_the_target():
    run = saddles.train_to_loss("SGD", {"lr": 0.1}, target=0.3, seed=0)
    assert run.reached and run.loss < 0.3
    again = saddles.train_to_loss("SGD", {"lr": 0.1}, target=0.3, max_epochs=run.epochs - 1)
    assert not again.reached and again.loss >= 0.3
    assert saddles.digits_sharpness(run.model) > 0
