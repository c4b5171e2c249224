"""Widgets are tested without a browser: set control values in Python, check the data changed.

Every widget draws through its static twin; the twins are tested for their numbers here too.
"""

from __future__ import annotations

import base64
import doctest
import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import course_lib.widgets as CW  # noqa: E402
from course_lib.plotting import MIN_FONT_PT  # noqa: E402
from course_lib.widgets import (  # noqa: E402
    DEFAULT_SCHEDULES,
    BiasCorrectionExplorer,
    OptimizerPlayground,
    ScheduleExplorer,
    bias_correction_static,
    playground_static,
    schedule_static,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _small_texts(fig) -> list[str]:
    fig.canvas.draw()
    return [
        f"{t.get_text()!r}: {t.get_fontsize():.1f} pt"
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT
    ]


def test_playground_static_draws_runs_and_reports_divergence():
    fig, data = playground_static("quadratic", ["SGD", "Adam"], lr=2.5, steps=50)
    sgd, adam = data["trajectories"]
    assert sgd.diverged and not adam.diverged
    assert data["diverged"] == {"SGD": sgd.diverged_at, "Adam": None}
    assert data["escaped"] == {"SGD": None, "Adam": None}
    assert data["messages"][0] == f"SGD: diverged after {sgd.diverged_at} steps"
    ax_traj, ax_loss = fig.axes
    for line, tr in zip(ax_traj.get_lines(), data["trajectories"]):
        np.testing.assert_array_equal(line.get_xydata(), tr.points)
    # one short legend for both panels, outside them; the hyperparameters in the caption
    legend = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert legend == [f"SGD\n✗ diverged at step {sgd.diverged_at}", "Adam"]
    assert ax_traj.get_legend() is None
    fig.canvas.draw()
    box = ax_loss.get_legend().get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    caption = " ".join(" ".join(t.get_text().split()) for t in fig.texts)
    assert "SGD(lr=2.5, momentum=0, dampening=0, weight_decay=0)" in caption
    assert "Adam(lr=2.5, betas=(0.9, 0.999), eps=1e-08, weight_decay=0)" in caption
    assert _small_texts(fig) == []


def test_playground_static_says_when_every_run_diverged():
    fig, data = playground_static("quadratic", ["SGD", "Nesterov"], lr=30.0, steps=20)
    assert data["messages"] == ["SGD: diverged after 1 step", "Nesterov: diverged after 1 step"]
    ax_loss = fig.axes[1]
    assert ax_loss.get_lines() == []
    said = " ".join(t.get_text() for t in ax_loss.texts)
    assert "Every run diverged within 1 step" in said and "smaller learning rate" in said
    assert list(ax_loss.get_xticks()) == [] and list(ax_loss.get_yticks()) == []
    assert ax_loss.get_legend() is not None  # the names are still there


def test_playground_reports_escapes_not_divergence():
    fig, data = playground_static("saddle", ["SGD", "Momentum"], lr=0.1, steps=100)
    assert data["diverged"] == {"SGD": None, "Momentum": None}
    assert all(step is not None for step in data["escaped"].values())
    assert all(m.endswith("(the loss is unbounded below)") for m in data["messages"])
    assert "Every run" not in " ".join(t.get_text() for t in fig.axes[1].texts)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"optimizers": []}, "at least one"),
        ({"optimizers": ["Nope"]}, "unknown optimizer"),
        ({"lr": 0}, "lr"),
    ],
)
def test_playground_static_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        playground_static("quadratic", **kwargs)


def test_playground_reacts_to_sliders():
    pg = OptimizerPlayground(landscape="quadratic", optimizers=("SGD",), lr=0.5, steps=40)
    first = pg.data["trajectories"][0]
    assert not first.diverged and "diverged" not in pg.status.value
    pg.controls["lr"].value = 1.0
    second = pg.data["trajectories"][0]
    assert second.hyperparameters["lr"] == pytest.approx(1.0)
    assert not np.allclose(first.points, second.points)
    # the figure held by the widget shows the new run
    np.testing.assert_array_equal(pg.figure.axes[0].get_lines()[0].get_xydata(), second.points)
    pg.controls["lr"].value = 3.0  # > 2/λ_max = 2
    assert pg.data["trajectories"][0].diverged
    assert "diverged after" in pg.status.value
    assert "Every run diverged within" in pg.status.value
    pg.controls["optimizers"].value = ("SGD", "Momentum")
    assert len(pg.data["trajectories"]) == 2 and len(pg.figure.axes[0].get_lines()) == 2
    pg.controls["steps"].value = 10
    assert len(pg.data["trajectories"][1].points) <= 11


def test_playground_status_keeps_numbers_whole_and_colours_runs():
    pg = OptimizerPlayground(landscape="quadratic", optimizers=("SGD", "Adam"), lr=0.5, steps=60)
    status = pg.status.value
    # every number sits in a span the browser never breaks ("5.493e-" / "10" cannot happen)
    for number in re.findall(r"\d\.\d+e-\d+", status):
        assert f"<span style='white-space:nowrap'>{number}</span>" in status
    assert re.search(r"white-space:nowrap'>-?\d", status)
    colors = [matplotlib.colors.to_hex(ln.get_color()) for ln in pg.figure.axes[0].get_lines()]
    assert all(f"color:{c}" in status for c in colors)
    assert "Every run" not in status
    pg.controls["landscape"].value = "saddle"
    assert "escaped after" in pg.status.value and "diverged" not in pg.status.value


def test_widgets_show_a_picture_without_a_kernel():
    """The stored output of a widget cell: the live view, a PNG of its figure and one sentence."""
    for widget in (
        OptimizerPlayground(landscape="quadratic", optimizers=("SGD",), lr=0.5, steps=5),
        ScheduleExplorer("cosine", 50),
        BiasCorrectionExplorer(steps=5),
    ):
        bundle = widget._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
        png = base64.b64decode(bundle["image/png"])
        assert png.startswith(b"\x89PNG") and len(png) < 150_000
        assert "need a running kernel" in bundle["text/plain"]
        assert "children=" not in bundle["text/plain"]


def test_playground_start_point_and_landscape_switch():
    pg = OptimizerPlayground(landscape="quadratic", optimizers=("Adam",), lr=0.1, steps=5)
    pg.controls["x0"].value = 0.5
    pg.controls["y0"].value = -0.25
    np.testing.assert_allclose(pg.data["trajectories"][0].points[0], [0.5, -0.25])
    pg.controls["landscape"].value = "himmelblau"
    land = CW.get_landscape("himmelblau")
    assert (pg.controls["x0"].min, pg.controls["x0"].max) == land.xlim
    np.testing.assert_allclose(pg.data["trajectories"][0].points[0], land.start)
    assert pg.data["trajectories"][0].landscape == "himmelblau"


def test_playground_shows_errors_instead_of_raising():
    pg = OptimizerPlayground(landscape="quadratic", optimizers=("SGD",), lr=0.1, steps=5)
    before = pg.data
    pg.controls["optimizers"].value = ()
    assert pg.error is not None and "Cannot run" in pg.status.value
    assert pg.data is before  # the last good result is kept


def test_playground_accepts_custom_optimizers():
    factories = {
        "heavy": lambda p, lr, momentum, beta1, beta2: torch.optim.SGD(p, lr=lr, momentum=0.5)
    }
    pg = OptimizerPlayground(
        landscape="quadratic", optimizers=("heavy",), lr=0.1, optimizer_factories=factories
    )
    assert pg.data["trajectories"][0].hyperparameters["momentum"] == 0.5
    assert list(pg.controls["optimizers"].options) == ["heavy"]
    with pytest.raises(ValueError, match="landscape"):
        OptimizerPlayground(landscape="nope")


def test_schedule_static_default_schedules_have_closed_forms():
    _, lrs = schedule_static("cosine", 101, lr=1.0, lr_min=0.0, T_max=100)
    np.testing.assert_allclose(lrs[[0, 50, 100]], [1.0, 0.5, 0.0], atol=1e-12)
    _, lrs = schedule_static("step decay", 7, lr=0.1, step_size=3, gamma=0.5)
    np.testing.assert_allclose(lrs, [0.1] * 3 + [0.05] * 3 + [0.025])
    _, lrs = schedule_static("cosine restarts (SGDR)", 70, lr=1.0, lr_min=0.0, T_0=10, T_mult=2)
    assert lrs[0] == lrs[10] == lrs[30] == 1.0  # restarts at 10 and 10 + 20
    assert lrs[9] < 0.05 and lrs[29] < 0.05
    _, lrs = schedule_static("transformer (Noam)", 20000, d_model=512, warmup=4000)
    assert int(np.argmax(lrs)) == 3999  # the peak is at the end of warmup (step t + 1 = 4000)
    assert lrs.max() == pytest.approx(512**-0.5 * 4000**-0.5)
    _, lrs = schedule_static("warmup + cosine", 121, lr=1.0, warmup_steps=20, total_steps=120)
    assert np.all(np.diff(lrs[:21]) > 0) and lrs[20] == pytest.approx(1.0) and lrs[120] == 0.0
    for name in DEFAULT_SCHEDULES:  # every default builds and is finite and positive-ish
        _, lrs = schedule_static(name, 50)
        assert np.all(np.isfinite(lrs)) and np.all(lrs >= 0)


def test_schedule_static_bad_input():
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_static("nope")
    with pytest.raises(ValueError, match="unknown schedule parameter"):
        schedule_static("cosine", 10, warmup=3)
    with pytest.raises(ValueError, match="steps"):
        schedule_static("cosine", 0)
    fig, lrs = schedule_static(lambda t: 0.1 / (t + 1), 4)
    np.testing.assert_allclose(lrs, [0.1, 0.05, 0.1 / 3, 0.025])


def test_schedule_explorer_builds_sliders_from_factories():
    def warm(lr, warmup=5):  # `lr` has no default: must come from `defaults`
        return lambda t: lr * min(1.0, (t + 1) / warmup)

    table = {"warm": warm, "const": lambda lr=0.3: lambda t: lr}
    with pytest.raises(ValueError, match="no default"):
        ScheduleExplorer("warm", 50, schedules=table)
    ex = ScheduleExplorer("warm", 50, schedules=table, defaults={"warm": {"lr": 0.2}})
    assert set(ex.param_controls) == {"lr", "warmup"}
    assert ex.data["lrs"][0] == pytest.approx(0.2 / 5) and ex.data["lrs"][-1] == pytest.approx(0.2)
    ex.param_controls["warmup"].value = 10
    assert ex.data["lrs"][8] == pytest.approx(0.2 * 9 / 10)
    np.testing.assert_allclose(ex.figure.axes[0].get_lines()[0].get_ydata(), ex.data["lrs"])
    ex.controls["schedule"].value = "const"
    assert set(ex.param_controls) == {"lr"} and np.all(ex.data["lrs"] == 0.3)
    assert list(ex.param_box.children) == list(ex.param_controls.values())
    ex.controls["steps"].value = 20
    assert len(ex.data["lrs"]) == 20


def test_schedule_explorer_works_with_course_schedules():
    from course_lib.optim import schedules

    ex = ScheduleExplorer(
        "step",
        30,
        schedules={"step": schedules.StepDecay},
        defaults={"step": {"lr": 0.1, "step_size": 10}},
    )
    np.testing.assert_allclose(ex.data["lrs"][[0, 10, 20]], [0.1, 0.01, 0.001])


def test_bias_correction_numbers():
    b1, b2, lr = 0.9, 0.999, 1e-3
    _, d = bias_correction_static(b1, b2, steps=10, lr=lr)
    t = np.arange(1, 11)
    np.testing.assert_allclose(d["correction1"], 1 / (1 - b1**t))
    np.testing.assert_allclose(d["correction2"], 1 / (1 - b2**t))
    # constant gradient 1: m̂ = v̂ = 1 exactly, so the corrected update is lr at every step
    np.testing.assert_allclose(d["m_hat"], 1.0)
    np.testing.assert_allclose(d["update_corrected"], lr, rtol=1e-6)
    np.testing.assert_allclose(
        d["update_uncorrected"], lr * (1 - b1**t) / np.sqrt(1 - b2**t), rtol=1e-6
    )
    assert d["update_uncorrected"][0] == pytest.approx(lr * 0.1 / math.sqrt(0.001), rel=1e-6)
    g = [1.0, -2.0, 0.5]
    _, d = bias_correction_static(0.5, 0.5, steps=3, grads=g, lr=1.0, eps=0.0)
    m = [0.5, -0.75, -0.125]
    np.testing.assert_allclose(d["m"], m)
    with pytest.raises(ValueError, match="betas"):
        bias_correction_static(1.0, 0.9)
    with pytest.raises(ValueError, match="at least"):
        bias_correction_static(steps=5, grads=[1.0])


def test_bias_correction_explorer():
    ex = BiasCorrectionExplorer(steps=10)
    assert "update 0.001 with" in ex.status.value
    before = ex.data["update_uncorrected"][0]
    ex.controls["beta2"].value = 0.99
    assert ex.data["update_uncorrected"][0] == pytest.approx(1e-3 * 0.1 / math.sqrt(0.01), rel=1e-6)
    assert ex.data["update_uncorrected"][0] != before
    ex.controls["steps"].value = 25
    assert len(ex.data["t"]) == 25 and len(ex.figure.axes[1].get_lines()[0].get_xdata()) == 25


def test_widgets_are_boxes_with_output():
    import ipywidgets as W

    ex = BiasCorrectionExplorer(steps=3)
    assert isinstance(ex, W.VBox) and isinstance(ex.output, W.Output)
    assert ex.output in ex.children and ex.status in ex.children


def test_docstring_examples():
    assert doctest.testmod(CW, optionflags=doctest.ELLIPSIS).failed == 0


def test_figures_are_shipped_as_png_bytes():
    """Widgets render PNGs themselves: a bare Figure would show as text without pyplot's hooks."""
    ex = BiasCorrectionExplorer(steps=3)
    png = CW._png(ex.figure)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@pytest.mark.parametrize(
    "make",
    [
        lambda: playground_static("rosenbrock", steps=30)[0],
        lambda: schedule_static("warmup + cosine")[0],
        lambda: bias_correction_static(steps=30)[0],
    ],
    ids=["playground", "schedule", "bias correction"],
)
def test_widget_figures_use_readable_type(make):
    fig = make()
    assert fig.dpi >= 100
    assert _small_texts(fig) == []


def test_schedule_static_picks_a_log_scale_when_rates_span_decades():
    fig, _ = schedule_static("transformer (Noam)")
    assert fig.axes[0].get_yscale() == "log"
    fig, _ = schedule_static("cosine", 100, lr=1.0, lr_min=0.5)
    assert fig.axes[0].get_yscale() == "linear"


# --- chapter 05 ---------------------------------------------------------------------------------


def test_weight_decay_static_numbers():
    s = np.array([1e-5, 1e-3, 1.0])
    fig, d = CW.weight_decay_static(lr=1e-3, weight_decay=0.1, eps=1e-8, steps=100, sqrt_v_hat=s)
    assert np.allclose(d["decay_adamw"], 1e-4)
    assert np.allclose(d["decay_l2"], 1e-4 / (s + 1e-8))
    assert d["diverged"].tolist() == [True, False, False]  # 1e-4/1e-5 = 10 > 2
    assert np.isnan(d["left_l2"][0]) and d["left_l2"][1] == pytest.approx((1 - 1e-4 / (1e-3 + 1e-8)) ** 100)
    assert d["left_adamw"][0] == pytest.approx((1 - 1e-4) ** 100)
    plt.close(fig)


def test_weight_decay_static_never_plots_nans_and_says_diverged():
    fig, d = CW.weight_decay_static(lr=1e-2, weight_decay=1.0, steps=10)
    assert d["diverged"].any()
    ax = fig.axes[1]
    for line in ax.get_lines():
        y = np.asarray(line.get_ydata(), float)
        assert np.isfinite(y[~np.isnan(y)]).all()
    assert any("diverged" in t.get_text() for t in ax.texts)
    plt.close(fig)


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"weight_decay": -1.0}, {"steps": 0}])
def test_weight_decay_static_bad_input(kwargs):
    with pytest.raises(ValueError):
        CW.weight_decay_static(**kwargs)


def test_weight_decay_explorer_follows_its_sliders():
    ex = CW.WeightDecayExplorer(lr=1e-3, weight_decay=0.1, steps=100)
    assert ex.data["decay_adamw"][0] == pytest.approx(1e-4)
    assert "AdamW decays every coordinate by 0.0001" in ex.status.value
    ex.controls["weight_decay"].value = 1e-3
    assert ex.data["decay_adamw"][0] == pytest.approx(1e-6)
    assert not ex.data["diverged"].any() and "diverges" not in ex.status.value
    ex.controls["lr"].value = 1e-1
    ex.controls["weight_decay"].value = 1.0
    assert ex.data["diverged"].any() and "diverges where" in ex.status.value


# --- chapter 10 ---------------------------------------------------------------------------------


def test_sign_steps_static_lion_steps_are_plus_minus_lr():
    from course_lib.widgets import sign_steps_static

    fig, data = sign_steps_static(snr=0.3, beta1=0.9, beta2=0.99, steps=200)
    assert np.allclose(np.abs(data["lion"]), 1.0)
    assert 0.5 < data["lion_right"] <= 1.0
    assert data["lion_mean"] > data["adam_mean"]
    assert len(fig.axes) == 2


def test_sign_steps_static_rejects_bad_betas():
    from course_lib.widgets import sign_steps_static

    with pytest.raises(ValueError):
        sign_steps_static(beta1=1.0)


def test_sign_step_explorer_recomputes_on_a_slider_change():
    from course_lib.widgets import SignStepExplorer

    widget = SignStepExplorer(snr=0.03)
    low = widget.data["lion_right"]
    widget.controls["snr"].value = 1.0
    assert widget.data["lion_right"] > low
    assert "downhill" in widget.status.value


# --- chapter 06 -------------------------------------------------------------------------------


def test_reddi_static_adam_fails_amsgrad_succeeds_with_the_papers_betas():
    from course_lib.widgets import REDDI_VARIANTS, reddi_static

    _, adam = reddi_static(C=3.0, variant="Adam", steps=900)
    assert adam["beta2"] == pytest.approx(0.1) and adam["final_x"] > 0.9
    for variant in list(REDDI_VARIANTS)[1:]:
        _, ams = reddi_static(C=3.0, variant=variant, steps=900)
        assert ams["final_x"] < -0.9, variant
        assert not ams["diverged"]


def test_reddi_static_bad_input():
    from course_lib.widgets import reddi_static

    with pytest.raises(ValueError, match="C > 2"):
        reddi_static(C=2.0)
    with pytest.raises(ValueError, match="unknown variant"):
        reddi_static(variant="SGD")


def test_reddi_explorer_reacts_and_shows_a_picture_without_a_kernel():
    from course_lib.widgets import ReddiExplorer

    ex = ReddiExplorer(steps=300)
    assert "worst point" in ex.status.value
    ex.controls["variant"].value = "AMSGrad (PyTorch: max of raw v)"
    assert "the optimum" in ex.status.value
    ex.controls["C"].value = 2.5  # β2 slider unchanged: still a valid problem
    assert ex.error is None
    bundle = ex._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert all(t.get_fontsize() >= MIN_FONT_PT for t in ex.figure.findobj(matplotlib.text.Text)
               if t.get_text())


# --- chapter 09 ---


def test_escape_static_compares_with_sgd_and_reports_basins():
    fig, d = CW.escape_static("Adai", curvature=0.05, chains=40, max_steps=400, basin_steps=100)
    assert set(d["steps"]) == {"SGD", "Adai"} and set(d["basins"]) == {"SGD", "Adai"}
    assert not d["diverged"] and len(fig.axes) == 2
    assert all(0 <= r.fraction <= 1 for r in d["basins"].values())
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "lr 0.5" in titles and "h = 0.05" in titles
    assert not _small_texts(fig)


def test_escape_static_says_diverged_and_plots_no_nan():
    fig, d = CW.escape_static(
        "SGD", saddle_lr=2.5, basin_lr=30.0, chains=20, max_steps=300, basin_steps=100
    )
    assert d["diverged"] == ["SGD (saddle)", "SGD (basins)"]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("diverged") == 2


def test_escape_static_names_the_learning_rates_it_uses():
    fig, _ = CW.escape_static("Adam", chains=20, max_steps=200, basin_steps=50)
    assert "Adam lr 0.05" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="optimizer must be one of"):
        CW.escape_static("Lion")


def test_escape_explorer_recomputes_on_change(monkeypatch):
    calls = []
    real = CW.escape_static

    def small(*args, **kwargs):
        calls.append(args)
        return real(*args, chains=20, max_steps=200, basin_steps=50, fig=kwargs["fig"])

    monkeypatch.setattr(CW, "escape_static", small)
    ex = CW.EscapeExplorer()
    assert "Adai: median" in ex.status.value and "flat basin" in ex.status.value
    ex.controls["optimizer"].value = "Momentum"
    assert calls[-1][0] == "Momentum" and "Momentum: median" in ex.status.value
    ex.controls["batch_size"].value = 4
    assert calls[-1][2] == 4


# --- chapter 08 ---


def test_rectification_static_numbers():
    from course_lib.experiments.rectification import rectifier, switch_step
    from course_lib.widgets import rectification_static

    _, d = rectification_static(beta2=0.999, threshold=5.0, steps=50)
    assert d["switch"] == 6 == switch_step(0.999, 5.0)
    assert np.isnan(d["rectifier"][:5]).all()
    np.testing.assert_allclose(d["rectifier"][5:], rectifier(d["t"][5:], 0.999), rtol=1e-12)
    assert np.isinf(d["var_adam"][:2]).all() and np.isfinite(d["var_adam"][2:]).all()
    np.testing.assert_allclose(d["var_rectified"][5:], d["rectifier"][5:] ** 2 * d["var_adam"][5:])
    _, d4 = rectification_static(beta2=0.999, threshold=4.0, steps=50)
    assert d4["switch"] == 5
    _, never = rectification_static(beta2=0.6, threshold=5.0, steps=50)
    assert never["switch"] is None and np.isnan(never["var_rectified"]).all()
    for bad in ({"beta2": 1.0}, {"threshold": 3.0}, {"steps": 5}):
        with pytest.raises(ValueError):
            rectification_static(**bad)


def test_rectification_explorer():
    from course_lib.widgets import RectificationExplorer

    ex = RectificationExplorer(steps=100)
    assert "first rectified step 6" in ex.status.value
    ex.controls["beta2"].value = 0.7
    assert "first rectified step 10" in ex.status.value
    ex.controls["threshold"].value = 4.0
    assert "first rectified step 6" in ex.status.value
    bundle = ex._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


# --- chapter 07 ---


def test_schedule_explorer_has_one_cycle_with_sliders_only():
    from course_lib.optim.schedules import OneCycle
    from course_lib.widgets import restart_steps

    ex = ScheduleExplorer("one-cycle")
    assert set(ex.param_controls) == {
        "max_lr", "total_steps", "pct_start", "div_factor", "final_div_factor"
    }
    np.testing.assert_allclose(ex.data["lrs"], [OneCycle(0.1, 300)(t) for t in range(300)])
    ex.param_controls["pct_start"].value = 0.5
    assert int(np.argmax(ex.data["lrs"])) == 149
    assert restart_steps(ex.data["lrs"]) == []


def test_schedule_explorer_marks_sgdr_restarts_but_not_warmup():
    from course_lib.widgets import restart_steps

    ex = ScheduleExplorer("cosine restarts (SGDR)")
    assert "restarts at steps 20, 60, 140" in ex.status.value
    ex.param_controls["T_mult"].value = 1
    assert restart_steps(ex.data["lrs"]) == list(range(20, 300, 20))
    ex.controls["schedule"].value = "warmup + cosine"
    assert "restarts" not in ex.status.value
    assert restart_steps([]) == [] and restart_steps([0.1, 0.1]) == []


# --- chapter 11 ---


def test_composer_static_names_known_optimizers_and_counts_their_state():
    from course_lib.widgets import composer_static

    fig, data = composer_static("lion", "none", False, "decoupled", False, "sign", lr=3e-3,
                                weight_decay=0.1, landscape_steps=20, digits_steps=5)  # fmt: skip
    assert data["name"] == "Lion" and data["buffers"] == 1
    assert data["digits"]["state_bytes"] == data["digits"]["param_bytes"]
    assert len(data["code"].splitlines()) == 3
    assert fig.dpi >= 100 and _small_texts(fig) == []
    _, data = composer_static("ema", "ema", True, "none", False, "plain", landscape_steps=5,
                              digits_steps=5)  # fmt: skip
    assert data["name"] is None  # Adam's concepts without weight decay: not a named composition


def test_composer_static_says_diverged_instead_of_plotting_nans():
    from course_lib.widgets import composer_static

    fig, data = composer_static("heavy_ball", "none", False, "none", False, "plain", lr=3.0,
                                landscape_lr=3.0, landscape_steps=50, digits_steps=30)  # fmt: skip
    assert data["digits"]["diverged_at"] is not None
    assert data["trajectory"].diverged
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("diverged" in t for t in texts)
    for ax in fig.axes:
        for line in ax.get_lines():
            assert np.isfinite(np.asarray(line.get_ydata(), dtype=float)).all()


def test_optimizer_composer_reacts_and_refuses_nonsense():
    from course_lib.widgets import OptimizerComposer

    w = OptimizerComposer()
    assert w.data["name"] == "AdamW" and "AdamW" in w.status.value
    assert "Composition(" in w.code.value
    w.controls["momentum"].value = "lion"
    w.controls["scaling"].value = "none"
    w.controls["bias_correction"].value = False
    w.controls["update"].value = "sign"
    assert w.data["name"] == "Lion" and w.data["buffers"] == 1
    w.controls["rectify"].value = True
    assert w.error is not None and "rectification" in w.status.value
