"""course_lib.experiments.weight_decay: each grid update rule equals its reference optimizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import optim
from course_lib.data import load_digits_data
from course_lib.experiments import weight_decay as wd
from course_lib.train import make_mlp

REFERENCES = {
    "sgd_l2": lambda p, lr, lam: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=lam),
    "sgdw": lambda p, lr, lam: optim.SGDW(p, lr=lr, momentum=0.9, weight_decay=lam),
    "adam_l2": lambda p, lr, lam: torch.optim.Adam(p, lr=lr, weight_decay=lam),
    "adamw": lambda p, lr, lam: torch.optim.AdamW(p, lr=lr, weight_decay=lam),
}


def _reference_run(method, data, lr, lam, seed, epochs, batch_size):
    """One ordinary training run with the reference optimizer, same order of mini-batches."""
    model = make_mlp(64, 8, 10, seed=seed).double()
    opt = REFERENCES[method](model.parameters(), lr, lam)
    gen = torch.Generator().manual_seed(seed)
    X, y = data.X_train.double(), data.y_train
    for _ in range(epochs):
        order = torch.randperm(X.shape[0], generator=gen)
        for start in range(0, X.shape[0], batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(data.X_test.double()), data.y_test).item()


@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_grid_cells_equal_runs_of_the_reference_optimizer(method):
    data = load_digits_data()
    lrs, lams, seeds = [1e-2, 3e-2], [1e-3, 0.3], (0, 1)
    grid = wd.train_grid(method, lrs, lams, seeds, data=data, epochs=2, hidden=8,
                         batch_size=256, dtype=torch.float64)  # fmt: skip
    for s, seed in enumerate(seeds):
        for i, lr in enumerate(lrs):
            for j, lam in enumerate(lams):
                want = _reference_run(method, data, lr, lam, seed, 2, 256)
                assert math.isclose(grid.test_loss[s, i, j], want, rel_tol=1e-9), (seed, lr, lam)


def test_proximal_decay_divides_by_one_plus_lr_lambda():
    data = load_digits_data()
    common = dict(data=data, epochs=1, hidden=4, batch_size=2000, dtype=torch.float64)
    zero = wd.train_grid("adamw_proximal", [0.01], [0.0], (0,), **common)
    plain = wd.train_grid("adamw", [0.01], [0.0], (0,), **common)
    assert zero.test_loss[0, 0, 0] == plain.test_loss[0, 0, 0]
    # one full-batch step from the same start: proximal = multiplicative-free step / (1 + ηλ)
    one = wd.train_grid("adamw_proximal", [0.01], [5.0], (0,), **common)
    ratio = one.weight_norm[0, 0, 0] / plain.weight_norm[0, 0, 0]
    assert math.isclose(ratio, 1 / 1.05, rel_tol=1e-12)


def test_a_diverging_cell_is_nan_not_a_number():
    grid = wd.train_grid("sgd_l2", [50.0], [0.0], (0,), epochs=1, hidden=4)
    assert np.isnan(grid.test_loss).all() and np.isnan(grid.mean()).all()
    assert wd.best_per_row(grid.mean()).tolist() == [-1]


def test_paper_adamw_equals_torch_adamw_with_lambda_over_alpha():
    data = load_digits_data(dtype=torch.float64)
    X, y = data.X_train[:200], data.y_train[:200]
    mult = lambda t: 1.0 / t  # noqa: E731
    paper = wd.paper_adamw_trajectory(make_mlp(64, 8, 10, seed=1).double(), X, y, 6, 0.02, 1e-3,
                                      multiplier=mult)  # fmt: skip
    model = make_mlp(64, 8, 10, seed=1).double()
    opt = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=1e-3 / 0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: mult(k + 1))
    rows = [wd.flat_parameters(model)]
    for _ in range(6):
        rows.append(wd.parameter_trajectory(model, opt, X, y, 1)[-1])
        sched.step()
    assert torch.allclose(paper, torch.stack(rows), rtol=0, atol=1e-13)
    # and with λ not divided by α the runs differ: the conventions are not interchangeable
    model = make_mlp(64, 8, 10, seed=1).double()
    same_number = wd.parameter_trajectory(
        model, torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=1e-3), X, y, 6
    )
    assert (paper[-1] - same_number[-1]).abs().max() > 1e-6


def test_l2_in_the_loss_is_sgd_weight_decay_and_decay_only_is_exponential():
    data = load_digits_data(dtype=torch.float64)
    X, y = data.X_train[:100], data.y_train[:100]
    m1, m2 = make_mlp(64, 8, 10, seed=0).double(), make_mlp(64, 8, 10, seed=0).double()
    a = wd.parameter_trajectory(m1, torch.optim.SGD(m1.parameters(), lr=0.1), X, y, 5, l2=0.3)
    b = wd.parameter_trajectory(m2, torch.optim.SGD(m2.parameters(), lr=0.1, weight_decay=0.3),
                                X, y, 5)  # fmt: skip
    assert torch.allclose(a, b, rtol=0, atol=1e-14)
    w = wd.decay_only(optim.SGDW, 10, w0=2.0, lr=0.1, weight_decay=0.5)
    assert np.allclose(w, 2.0 * 0.95 ** np.arange(11), rtol=1e-14)


def test_effective_decay_and_good_band():
    d_l2, d_w = wd.effective_decay(torch.tensor([1e-4, 1.0]), lr=1e-3, weight_decay=0.1, eps=0.0)
    assert np.allclose(d_l2, [1e-2, 1e-4]) and d_w == pytest.approx(1e-4)
    scores = np.array([[1.0, 1.05, 2.0, np.nan], [np.nan] * 4, [3.0, 1.0, 1.09, 1.5]])
    band = wd.good_band(scores, [1e-4, 1e-3, 1e-2, 1e-1], within=0.1)
    assert band[0] == pytest.approx(1.0) and np.isnan(band[1]) and band[2] == pytest.approx(1.0)
    assert wd.best_per_row(scores).tolist() == [0, -1, 1]


def test_heat_maps_share_one_scale_mark_the_best_cell_and_never_colour_a_nan():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.plotting import MIN_FONT_PT, plot_lr_wd_grids

    a = wd.GridResult("adamw", np.array([1e-3, 1e-2]), np.array([1e-4, 1e-2, 1.0]), (0,),
                      test_loss=np.array([[[0.5, 0.4, 0.9], [0.2, 0.1, np.nan]]]),
                      test_error=np.zeros((1, 2, 3)), train_loss=np.zeros((1, 2, 3)),
                      weight_norm=np.ones((1, 2, 3)))  # fmt: skip
    b = wd.GridResult("adam_l2", a.lrs, a.wds, (0,), test_loss=a.test_loss * 3,
                      test_error=a.test_error, train_loss=a.train_loss, weight_norm=a.weight_norm)
    fig, axes = plot_lr_wd_grids([a, b])
    images = [ax.get_images()[0] for ax in axes.flat]
    assert images[0].norm is images[1].norm or (
        images[0].norm.vmin == images[1].norm.vmin and images[0].norm.vmax == images[1].norm.vmax
    )
    assert images[0].norm.vmin == pytest.approx(0.1) and images[0].norm.vmax == pytest.approx(2.7)
    texts = [t.get_text() for t in axes.flat[0].texts]
    assert "div." in texts and "nan" not in " ".join(texts).lower()
    stars = [ln for ln in axes.flat[0].get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_xdata()[0] == 1 and stars[0].get_ydata()[0] == 1
    sizes = [t.get_fontsize() for ax in axes.flat for t in ax.texts]
    assert min(sizes) >= MIN_FONT_PT
    plt.close(fig)
