"""course_lib.experiments.momentum: iteration matrices, rates, regimes, tuning, the counterexample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.experiments import momentum
from course_lib.experiments.stability import count_sign_changes
from course_lib.optim import SGD
from course_lib.train import make_mlp

RNG = np.random.default_rng(0)
POINTS = [(float(RNG.uniform(0.01, 4.5)), float(RNG.uniform(0.0, 0.98))) for _ in range(40)]


def _simulate(method: str, h: float, mu: float, steps: int) -> np.ndarray:
    """The textbook recursions on w (λ = 1), written independently of the matrices."""
    w_prev, w = 1.0, 1.0
    out = [w]
    for _ in range(steps):
        if method == "heavy_ball":  # w+ = w − h·w + μ(w − w_prev)
            w_next = w - h * w + mu * (w - w_prev)
        else:  # look-ahead y = w + μ(w − w_prev), w+ = y − h·y
            y = w + mu * (w - w_prev)
            w_next = y - h * y
        w_prev, w = w, w_next
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize("method", momentum.METHODS)
@pytest.mark.parametrize("h, mu", POINTS[:12])
def test_matrices_reproduce_the_course_sgd(method, h, mu):
    """Iterating the 2×2 matrix from (v, w) = (0, 1) gives the SGD trajectory, step by step."""
    lam = 2.0
    matrix = {"heavy_ball": momentum.heavy_ball_matrix, "nesterov": momentum.nesterov_matrix}[
        method
    ]
    T = matrix(h / lam, mu, lam)
    state, expected = np.array([0.0, 1.0]), [1.0]
    for _ in range(30):
        state = T @ state
        expected.append(state[1])
    got = momentum.eigen_direction_run(lam, h / lam, mu, 30, nesterov=method == "nesterov")
    n = min(len(got), len(expected))
    assert np.allclose(got[:n], expected[:n], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", momentum.METHODS)
def test_the_matrices_are_the_textbook_recursions(method):
    """Same characteristic polynomial as the two-step recursions: same rate as a long simulation."""
    for h, mu in POINTS[:20]:
        rate = float(momentum.convergence_rate(method, h, mu))
        w = _simulate(method, h, mu, 400)
        if not np.all(np.isfinite(w)) or rate < 0.3:
            continue  # overflowed, or shrank to denormals too fast to measure
        assert momentum.measured_rate(w, skip=50) == pytest.approx(rate, rel=0.03)


def test_closed_form_rate_equals_the_spectral_radius():
    h, mu = np.meshgrid(np.linspace(0.0, 5.0, 301), np.linspace(0.0, 0.99, 100))
    closed = momentum.heavy_ball_rate(h, mu)
    numeric = momentum.convergence_rate("heavy_ball", h, mu)
    assert np.allclose(closed, numeric, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mu", [0.0, 0.1, 0.5, 0.81, 0.95])
def test_regimes_and_their_edges(mu):
    low, high, divergence = momentum.regime_boundaries(mu)
    assert low == pytest.approx((1 - math.sqrt(mu)) ** 2)
    assert high == pytest.approx((1 + math.sqrt(mu)) ** 2)
    assert divergence == pytest.approx(2 * (1 + mu))
    eps = 1e-6
    assert momentum.heavy_ball_regime(low * 0.5, mu) == "monotone"
    assert momentum.heavy_ball_regime(high + eps, mu) == "zig-zag"
    assert momentum.heavy_ball_regime(divergence + eps, mu) == "divergent"
    assert momentum.heavy_ball_regime(divergence, mu) == "divergent"  # a root on −1: no convergence
    assert (
        momentum.heavy_ball_rate(divergence - eps, mu)
        < 1
        < momentum.heavy_ball_rate(divergence + 1e-3, mu)
    )
    if mu > 0:  # the ripple window is not empty
        assert momentum.heavy_ball_regime((low + high) / 2, mu) == "ripples"
        assert momentum.heavy_ball_rate((low + high) / 2, mu) == pytest.approx(math.sqrt(mu))


@pytest.mark.parametrize(
    "h, regime", [(0.05, "monotone"), (0.3, "ripples"), (2.95, "zig-zag"), (3.1, "divergent")]
)
def test_each_regime_shows_its_sign_pattern(h, regime):
    w = momentum.eigen_direction_run(1.0, h, 0.5, 40)
    flips = count_sign_changes(w)
    assert momentum.heavy_ball_regime(h, 0.5) == regime
    if regime == "monotone":
        assert flips <= 1
    elif regime == "ripples":
        assert 2 < flips < 40
    else:
        assert flips == 40


def test_divergent_runs_stop_early():
    w = momentum.eigen_direction_run(1.0, 10.0, 0.5, 10_000)
    assert len(w) < 10_001 and abs(w[-1]) >= 1e100


def test_measured_rate_needs_steps():
    with pytest.raises(ValueError):
        momentum.measured_rate([1.0, 0.5], skip=5)


@pytest.mark.parametrize("method", momentum.METHODS)
def test_worst_case_is_attained_at_the_ends(method):
    """The rate is quasi-convex in h, so the ends of the spectrum are the worst directions."""
    lam_min, lam_max = 0.01, 1.0
    dense = np.geomspace(lam_min, lam_max, 2001)
    for lr in (0.5, 1.3, 3.3, 3.9):
        for mu in (0.0, 0.3, 0.67, 0.8, 0.95):
            ends = momentum.worst_case_rate(method, lr, mu, lam_min, lam_max)
            everywhere = momentum.convergence_rate(method, lr * dense, mu).max()
            assert float(ends) == pytest.approx(float(everywhere), abs=1e-9)


@pytest.mark.parametrize("kappa", [10.0, 100.0, 1000.0])
def test_tuning_recovers_the_closed_forms(kappa):
    """Polyak's heavy ball and the quadratic-optimal Nesterov (Lessard, Recht & Packard 2016)."""
    lrs, mus = np.linspace(0.01, 4.5, 500), np.linspace(0.0, 0.999, 500)
    root = math.sqrt(kappa)
    heavy = momentum.tune("heavy_ball", 1 / kappa, 1.0, lrs, mus)
    assert heavy.rate == pytest.approx((root - 1) / (root + 1), abs=3e-3)
    assert heavy.lr == pytest.approx(4 / (1 + 1 / root) ** 2, rel=0.02)
    assert heavy.momentum == pytest.approx(((root - 1) / (root + 1)) ** 2, abs=0.01)
    nesterov = momentum.tune("nesterov", 1 / kappa, 1.0, lrs, mus)
    assert nesterov.rate == pytest.approx(1 - 2 / math.sqrt(3 * kappa + 1), abs=3e-3)
    assert nesterov.lr == pytest.approx(4 / (3 + 1 / kappa), rel=0.02)
    assert heavy.rate < nesterov.rate


def test_quadratic_errors_follow_the_optimizer():
    errors = momentum.quadratic_errors([0.5, 2.0], 5, lr=0.1, momentum=0.9)
    w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    expected = [float(w.detach().norm())]
    for _ in range(5):
        opt.zero_grad()
        (0.5 * (torch.tensor([0.5, 2.0], dtype=torch.float64) * w * w).sum()).backward()
        opt.step()
        expected.append(float(w.detach().norm()))
    assert np.allclose(errors, expected, rtol=1e-12)
    stopped = momentum.quadratic_errors([1.0], 100, tol=1e-3, lr=0.5)
    assert stopped[-1] <= 1e-3 * stopped[0] < stopped[-2]
    start = momentum.quadratic_errors([1.0, 1.0], 0, start=(3.0, 4.0), lr=0.1)
    assert start.tolist() == [5.0]


def test_noisy_losses_are_the_mean_of_separate_runs():
    kw = {"lr": 0.05, "momentum": 0.9}
    together = momentum.noisy_quadratic_losses([0.1, 1.0], 30, noise=0.3, runs=4, seed=3, **kw)
    assert together.shape == (31,) and together[0] == pytest.approx(0.55)
    # the same noise, drawn as one (runs, dim) block per step, fed to 4 separate optimizers
    gen = torch.Generator().manual_seed(3)
    lam = torch.tensor([0.1, 1.0], dtype=torch.float64)
    params = [torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    opts = [SGD([p], **kw) for p in params]
    losses = [0.55]
    for _ in range(30):
        noise = torch.randn(4, 2, generator=gen, dtype=torch.float64)
        for i, (p, opt) in enumerate(zip(params, opts)):
            p.grad = lam * p.detach() + 0.3 * noise[i]
            opt.step()
        losses.append(float(np.mean([(0.5 * lam * p.detach() ** 2).sum() for p in params])))
    assert np.allclose(together, losses, rtol=1e-12)
    zero_noise = momentum.noisy_quadratic_losses([1.0], 10, noise=0.0, runs=3, lr=0.5)
    assert zero_noise[-1] == pytest.approx(0.5 * 0.5**20)


def test_lessard_function_is_smooth_strongly_convex_with_m1_L25():
    x = torch.linspace(-4, 5, 9001, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(momentum.lessard_function(x).sum(), x)
    slopes = (grad[1:] - grad[:-1]) / (x[1:] - x[:-1]).detach()
    assert slopes.min() >= 1 - 1e-9 and slopes.max() <= 25 + 1e-9
    assert float(momentum.lessard_function(torch.tensor(0.0))) == 0.0
    for knot in (1.0, 2.0):  # continuous value and derivative at the knots
        left, right = torch.tensor(knot - 1e-9), torch.tensor(knot)
        assert float(momentum.lessard_function(left)) == pytest.approx(
            float(momentum.lessard_function(right)), abs=1e-6
        )


def test_tuned_heavy_ball_cycles_on_the_counterexample_and_nesterov_does_not():
    m, L = momentum.LESSARD_STRONG_CONVEXITY, momentum.LESSARD_SMOOTHNESS
    root = math.sqrt(L / m)
    polyak = {
        "lr": 4 / (math.sqrt(L) + math.sqrt(m)) ** 2,
        "momentum": ((root - 1) / (root + 1)) ** 2,
    }
    x = momentum.run_1d(momentum.lessard_function, 3.3, 300, SGD, **polyak)
    assert x.shape == (301,)
    assert np.allclose(x[-3:], x[-6:-3], atol=1e-12) and np.abs(x[-3:]).min() > 0.5
    assert sorted(np.round(x[-3:], 4)) == [-1.8024, 0.6465, 2.1159]
    nesterov = {"lr": 1 / L, "momentum": (root - 1) / (root + 1), "nesterov": True}
    starts = np.linspace(-5, 5, 41)
    y = momentum.run_1d(momentum.lessard_function, starts, 300, SGD, **nesterov)
    assert y.shape == (301, 41) and np.abs(y[-1]).max() < 1e-9


def test_run_1d_runs_starts_independently():
    starts = [0.5, 1.5, 2.5]
    together = momentum.run_1d(momentum.lessard_function, starts, 20, lr=0.01, momentum=0.5)
    for i, x0 in enumerate(starts):
        alone = momentum.run_1d(momentum.lessard_function, x0, 20, lr=0.01, momentum=0.5)
        assert np.array_equal(together[:, i], alone)


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
def test_velocity_weights_are_heavy_balls_position(mu):
    gen = torch.Generator().manual_seed(1)
    grads = torch.randn(25, 3, generator=gen, dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=mu)
    for t in range(1, 26):
        w.grad = grads[t - 1].clone()
        opt.step()
        c = torch.as_tensor(momentum.velocity_weights(mu, t - np.arange(t)))
        assert torch.allclose(w.detach(), -0.1 * (c[:, None] * grads[:t]).sum(0), atol=1e-13)
    assert momentum.velocity_weights(mu, 0) == 0.0
    assert np.allclose(momentum.velocity_weights(1.0, [0, 3]), [0, 3])


def test_training_memory_counts_parameters_gradients_and_state():
    model = make_mlp(8, 16, 3, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    n_bytes = sum(p.numel() * 4 for p in model.parameters())
    plain = momentum.training_memory(model, torch.optim.SGD, torch.randn(5, 8), lr=0.1)
    heavy = momentum.training_memory(
        model, SGD, torch.randn(5, 8), label="hb", lr=0.1, momentum=0.9
    )
    adam = momentum.training_memory(model, torch.optim.Adam, torch.randn(5, 8), lr=0.1)
    assert (plain.params, plain.grads, plain.state) == (n_bytes, n_bytes, 0)
    assert (heavy.state, heavy.total, heavy.label) == (n_bytes, 3 * n_bytes, "hb")
    assert adam.state >= 2 * n_bytes and adam.label == "Adam"
    assert "3.00× the parameters" in str(heavy)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # a copy was used
