"""Plots are tested for their data (line coordinates, legend texts, bar heights), not pixels,
and for the course's standard for figures: short legends outside the axes with the full
hyperparameters in the title, type of at least 9 pt, at least 100 dpi, log scales where values
span decades, and runs that stop early saying why."""

from __future__ import annotations

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.landscapes import get_landscape, run_optimizer  # noqa: E402
from course_lib.plotting import (  # noqa: E402
    MIN_DPI,
    MIN_FONT_PT,
    animate_trajectories,
    plot_landscape,
    plot_losses,
    plot_schedule,
    plot_state_memory,
    plot_surface,
    plot_trajectories,
    short_labels,
)


def small_texts(fig) -> list[str]:
    """Every visible, non-empty text of ``fig`` set in less than MIN_FONT_PT."""
    fig.canvas.draw()
    return [
        f"{t.get_text()!r} at {t.get_fontsize():.1f} pt"
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT
    ]


def legend_outside(ax) -> bool:
    """Whether the axes' legend box lies entirely outside the axes (after a draw)."""
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    box = ax.get_window_extent()
    return not legend.overlaps(box)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def runs():
    land = get_landscape("rosenbrock")
    return land, [
        run_optimizer(land, torch.optim.Adam, steps=60, lr=0.05),
        run_optimizer(land, torch.optim.SGD, steps=60, lr=1e-3, momentum=0.9),
        run_optimizer(land, torch.optim.SGD, steps=60, lr=0.01),  # diverges
    ]


def test_trajectory_lines_carry_the_data_short_legend_and_hyperparameters_in_the_title(runs):
    land, trs = runs
    assert trs[2].diverged and not trs[0].diverged
    fig, ax = plot_trajectories(land, trs)
    lines = ax.get_lines()
    assert len(lines) == 3
    for line, tr in zip(lines, trs):
        np.testing.assert_array_equal(np.asarray(line.get_xydata()), tr.points)
        assert np.all(np.isfinite(line.get_xydata()))
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    # short names; the two SGD runs differ in lr and momentum, and only that is in their names
    assert texts == [
        "Adam",
        "SGD (lr=0.001, momentum=0.9)",
        f"SGD (lr=0.01, momentum=0)\n✗ diverged at step {trs[2].diverged_at}",
    ]
    title = ax.get_title()
    assert title.startswith(land.title + "\n")
    flat = " ".join(title.split())
    assert "Adam(lr=0.05, betas=(0.9, 0.999), eps=1e-08, weight_decay=0)" in flat
    assert "SGD(dampening=0, weight_decay=0)" in flat
    assert ax.get_xlim() == land.xlim and ax.get_ylim() == land.ylim
    assert legend_outside(ax)
    fig.tight_layout()
    assert small_texts(fig) == []
    assert fig.dpi >= MIN_DPI


def test_short_labels_keep_given_names_and_say_what_they_change():
    land = get_landscape("quadratic")
    sgd = run_optimizer(land, torch.optim.SGD, steps=5, lr=0.1, label="SGD")
    hb = run_optimizer(land, torch.optim.SGD, steps=5, lr=0.1, momentum=0.9, label="Momentum")
    adam = run_optimizer(land, torch.optim.Adam, steps=5, lr=0.1, label="Adam")
    names, caption = short_labels([sgd, hb, adam])
    assert names == ["SGD", "Momentum", "Adam"]
    assert caption == [
        "SGD(lr=0.1, dampening=0, weight_decay=0) — SGD: momentum=0 · Momentum: momentum=0.9",
        "Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-08, weight_decay=0)",
    ]
    # a label that already spells out the difference is not repeated in the caption
    a = run_optimizer(land, torch.optim.SGD, steps=5, lr=0.1, label="SGD(lr=0.1)")
    b = run_optimizer(land, torch.optim.SGD, steps=5, lr=0.2, label="SGD(lr=0.2)")
    assert short_labels([a, b]) == (
        ["SGD(lr=0.1)", "SGD(lr=0.2)"],
        ["SGD(momentum=0, dampening=0, weight_decay=0)"],
    )
    # a lone run named differently from its class: "name = spec"
    assert short_labels([run_optimizer(land, torch.optim.SGD, steps=1, lr=0.5, label="GD")])[1] == [
        "GD = SGD(lr=0.5, momentum=0, dampening=0, weight_decay=0)"
    ]


def test_escaped_runs_are_marked_as_escapes_not_divergence():
    land = get_landscape("saddle")
    tr = run_optimizer(land, torch.optim.SGD, steps=100, lr=0.1, label="GD")
    assert tr.escaped
    fig, ax = plot_trajectories(land, [tr])
    label = ax.get_legend().get_texts()[0].get_text()
    assert label == f"GD\n▶ escaped at step {tr.escaped_at}" and "diverged" not in label
    ends = [c for c in ax.collections if c.get_gid() == "end"]
    assert len(ends) == 1


@pytest.mark.parametrize("where", ["right", "below"])
def test_legends_can_sit_right_or_below_but_never_on_the_data(where, runs):
    land, trs = runs
    fig, ax = plot_trajectories(land, trs, legend=where)
    fig.tight_layout()
    assert legend_outside(ax)
    fig, ax = plot_losses(trs, legend=where)
    fig.tight_layout()
    assert legend_outside(ax)
    with pytest.raises(ValueError, match="legend"):
        plot_losses(trs, legend="top-ish")


def test_landscape_marks_critical_points():
    land = get_landscape("himmelblau")
    fig, ax = plot_landscape(land)
    offsets = [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets")]
    pts = np.concatenate([o for o in offsets if len(o)])
    for m in land.minima + land.saddles:
        assert np.min(np.linalg.norm(pts - np.asarray(m), axis=1)) < 1e-9
    assert ax.get_title() == "himmelblau"


def test_bad_levels():
    with pytest.raises(ValueError, match="levels"):
        plot_landscape("beale", levels=1)


def test_one_dimensional_problem_plots_x_over_steps():
    tr = run_optimizer("reddi", torch.optim.Adam, steps=30, lr=0.1, betas=(0.0, 0.1))
    fig, ax = plot_trajectories("reddi", [tr])
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(31))
    np.testing.assert_array_equal(line.get_ydata(), tr.points[:, 0])
    fig, ax = plot_landscape("reddi")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["f_1(x)", "f_2(x)"]


def test_surface_has_trajectory(runs):
    land, trs = runs
    fig, ax = plot_surface(land, trs[:1])
    assert ax.name == "3d"
    x, y, _ = ax.get_lines()[0].get_data_3d()
    np.testing.assert_array_equal(x, trs[0].points[:, 0])


def test_losses_auto_log_scale_and_labels():
    trs = [run_optimizer("quadratic", torch.optim.SGD, steps=80, lr=lr) for lr in (0.5, 1.0)]
    fig, ax = plot_losses(trs)
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), trs[0].losses)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SGD (lr=0.5)", "SGD (lr=1)"]
    assert small_texts(fig) == []
    fig, ax = plot_losses({"flat": [1.0, 1.5, 2.0]})
    assert ax.get_yscale() == "linear"
    fig, ax = plot_losses({"a": [4.0, 2.0, 1.0]}, subtract=1.0, log=False)
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [3.0, 1.0, 0.0])
    fig, ax = plot_losses([1.0, 2.0, 3.0, 4.0], smooth=2)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.5, 2.5, 3.5])


def test_losses_drop_nonfinite_values():
    fig, ax = plot_losses({"x": [1.0, float("nan"), 3.0]})
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 2])


def test_a_diverged_loss_curve_ends_in_a_cross(runs):
    _, trs = runs
    fig, ax = plot_losses(trs)
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "X"]
    assert len(crosses) == 1  # the diverged run
    assert crosses[0].get_xdata()[0] == len(trs[2].losses) - 1
    assert len(ax.get_legend().get_texts()) == 3  # the cross has no legend entry of its own


def test_schedule_uses_a_log_scale_when_the_rates_span_decades():
    fig, ax = plot_schedule(lambda t: 0.1 * 0.5**t, steps=20)
    assert ax.get_yscale() == "log"
    fig, ax = plot_schedule(lambda t: 0.1 - 0.001 * t, steps=20)
    assert ax.get_yscale() == "linear"


def test_schedule_from_callable_list_and_dict():
    fig, ax = plot_schedule(lambda t: 0.1 * 0.5 ** (t // 2), steps=6)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    fig, ax = plot_schedule({"const": [0.1] * 3, "half": lambda t: 0.05}, steps=3)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["const", "half"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.05] * 3)
    with pytest.raises(ValueError, match="steps"):
        plot_schedule(lambda t: 0.1)


def test_state_memory_bars():
    class Report:
        def __init__(self, ratio):
            self.state_per_param = ratio
            self.state_bytes = int(ratio * 400)

    fig, ax = plot_state_memory({"SGD": Report(0.0), "Momentum": Report(1.0), "Adam": Report(2.0)})
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.0, 1.0, 2.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SGD", "Momentum", "Adam"]
    fig, ax = plot_state_memory({"a": 100, "b": 300})
    assert [p.get_height() for p in ax.patches] == [100, 300]
    with pytest.raises(ValueError, match="empty"):
        plot_state_memory({})


def test_animation_is_a_small_offline_player_with_a_still_fallback(runs):
    land, trs = runs
    anim = animate_trajectories(land, trs, frames=8)
    html = anim.data
    assert len(html.encode()) < 400_000
    assert 2 <= anim.frames <= 8
    # offline: no web font, no stylesheet, nothing fetched (the SVG namespace is only a name)
    assert "<link" not in html and "font-awesome" not in html
    assert not [u for u in re.findall(r"https?://[^\s\"')]+", html) if "w3.org/2000/svg" not in u]
    # the <img> shows the complete figure until the script swaps in the background
    assert html.count("data:image/png;base64,") == 2
    still = base64.b64encode(anim.png).decode()
    assert f'src="data:image/png;base64,{still}"' in html
    assert "<polyline" in html and "<script>" in html
    bundle = anim._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert plt.get_fignums() == []  # no pyplot figures left behind
    # the same input gives the same HTML (notebooks do not change when re-executed)
    assert animate_trajectories(land, trs, frames=8).data == html
    with pytest.raises(ValueError, match="frames"):
        animate_trajectories(land, trs, frames=1)


def test_animation_frames_reveal_the_paths_step_by_step(runs):
    land, trs = runs
    anim = animate_trajectories(land, trs, frames=6)
    data = json.loads(re.search(r"var data = (\{.*?\});", anim.data).group(1))
    assert data["steps"] == sorted(set(data["steps"])) and data["steps"][0] == 0
    assert data["steps"][-1] == max(len(tr.points) for tr in trs) - 1
    assert [len(p) for p in data["paths"]] == [len(tr.points) for tr in trs]
    assert anim.frames == len(data["steps"]) == 6


def test_losses_from_training_history():
    from course_lib.train import History

    h = History(loss=[2.0, 1.0, 0.5], label="SGD(lr=0.1)")
    fig, ax = plot_losses([h])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [2.0, 1.0, 0.5])
    assert ax.get_legend().get_texts()[0].get_text() == "SGD(lr=0.1)"


def test_animation_shrinks_to_fit_the_byte_budget(runs):
    land, trs = runs
    big = animate_trajectories(land, trs, frames=12)
    small = animate_trajectories(land, trs, frames=12, max_bytes=len(big.data) // 2)
    assert len(small.data) < len(big.data) and small.dpi < big.dpi == MIN_DPI
    assert len(small.data.encode()) <= len(big.data) // 2 or small.dpi == 72


def test_library_figures_use_readable_type(runs):
    land, trs = runs
    figures = [
        plot_landscape("reddi")[0],
        plot_surface(land, trs[:1])[0],
        plot_schedule({"a": [0.1, 0.05], "b": [0.2, 0.1]})[0],
        plot_state_memory({"SGD": 0, "Adam": 800})[0],
    ]
    for fig in figures:
        assert fig.dpi >= MIN_DPI
        assert small_texts(fig) == []


def test_palette_keeps_colours_seen_only_in_the_legend(runs, monkeypatch):
    """The animation's background shows the legend but not the paths. Median cut alone gave
    those few legend pixels a neighbour's colour (a red line turned orange); figure_png keeps
    each line colour."""
    import io

    from PIL import Image

    from course_lib import plotting
    from course_lib.plotting import _animation_figure, figure_png

    land = get_landscape("quadratic")
    trs = [
        run_optimizer(land, torch.optim.SGD, steps=40, lr=lr, momentum=mu, start=(-1.8, 0.2))
        for lr, mu in ((1.8, 0.0), (2.7, 0.5), (3.5, 0.95), (2.3, 0.0))
    ]
    fig, ax = _animation_figure(land, trs, (7.0, 4.6), MIN_DPI, 30, None)
    paths = [line for line in ax.get_lines() if line.get_gid() == "path"]
    colors = [np.round(255 * np.array(matplotlib.colors.to_rgb(p.get_color()))) for p in paths]
    for artist in ax.get_children():
        if artist.get_gid() in ("path", "end"):
            artist.set_visible(False)

    def worst_match(png: bytes) -> float:
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
        return max(float(np.abs(pixels - c).max(axis=-1).min()) for c in colors)

    assert worst_match(figure_png(fig)) <= 4, "a legend colour lost its palette entry"
    monkeypatch.setattr(plotting, "_line_colors", lambda fig: [])
    assert worst_match(figure_png(fig)) > 20  # what median cut alone does to it


def test_animation_title_is_one_line_and_the_hyperparameters_sit_under_the_axes(runs):
    from course_lib.plotting import _animation_figure

    land, trs = runs
    fig, ax = _animation_figure(land, trs, (7.0, 4.6), MIN_DPI, 15, None)
    assert "\n" not in ax.get_title() and ax.title.get_fontsize() >= MIN_FONT_PT
    (caption,) = fig.texts
    assert "lr=" in caption.get_text() and caption.get_fontsize() >= MIN_FONT_PT
    fig.canvas.draw()
    box = caption.get_window_extent()
    assert box.x1 <= fig.bbox.x1 and box.y0 >= 0, "the caption runs off the figure"
    assert box.y1 < ax.get_tightbbox().y0, "the caption overlaps the axes"


# --- chapter 07: the lr range test -------------------------------------------------------------


def test_plot_lr_range_shows_raw_smoothed_and_pick_and_clips_the_blow_up():
    from course_lib.experiments.lr_range import LRRangeResult

    lrs = np.logspace(-4, 1, 50)
    losses = np.r_[np.full(40, 2.3), np.linspace(2.3, 50.0, 10)]
    result = LRRangeResult(lrs=lrs, losses=losses, smoothed=losses.copy(), stopped_early=True)
    from course_lib.plotting import plot_lr_range

    fig, ax = plot_lr_range(result, picked=0.05, title="range test")
    assert ax.get_xscale() == "log"
    assert ax.get_ylim() == pytest.approx((0.0, 1.5 * 2.3))
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["loss per batch", "smoothed (EMA, bias-corrected)", "picked lr = 0.05"]
    assert ax.get_lines()[2].get_xdata()[0] == pytest.approx(0.05)
    plt.close(fig)


def test_plot_comparison_grids_one_panel_per_comparison_mean_and_seed_range():
    from types import SimpleNamespace

    from course_lib.plotting import plot_comparison_grids

    grid = {"A": {0.1: [1.0, 3.0], 0.01: [0.5, 0.7]}, "B": {0.3: [2.0, 2.0]}}
    panels = {"constant": SimpleNamespace(grid=grid), "cosine": SimpleNamespace(grid=grid)}
    fig, axes = plot_comparison_grids(panels, ylabel="loss", suptitle="A vs B")
    assert [ax.get_title() for ax in axes] == ["constant", "cosine"]
    assert axes[0].get_xscale() == "log" and axes[0].get_yscale() == "log"
    xs, ys = axes[0].get_lines()[0].get_data()  # A's means, sorted by lr
    assert list(xs) == [0.01, 0.1] and list(ys) == pytest.approx([0.6, 2.0])
    legend = axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B"]
    plt.close(fig)
