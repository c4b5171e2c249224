"""Plots for the course: landscapes, trajectories, loss curves, schedules, memory, animations.

Every function returns ``(fig, ax)`` and accepts an existing ``ax`` to draw into, so lessons can
compose panels (``fig, (a, b) = plt.subplots(1, 2)``) and widgets can redraw into their own
figures. Legends state the *full* hyperparameters of every run (they come from
:func:`course_lib.train.optimizer_label`): a plot that says "Adam" without its learning rate
teaches nothing.

Diverged runs are drawn up to their last good point, marked with an ✗, and their legend entry
says "diverged after k steps". Nothing is ever drawn from NaNs.

Animations (:func:`animate_trajectories`) are rendered to self-contained HTML/JavaScript
(``matplotlib.animation.Animation.to_jshtml``), which plays in JupyterLab, Colab and exported
static HTML without a live kernel. They are kept small (few frames, low dpi).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_lib.landscapes import Landscape, Trajectory, get_landscape

__all__ = [
    "animate_trajectories",
    "plot_landscape",
    "plot_losses",
    "plot_schedule",
    "plot_state_memory",
    "plot_surface",
    "plot_trajectories",
    "run_label",
]


def _fig_ax(ax: Axes | None, figsize=(6.0, 4.5), projection: str | None = None):
    """The figure of ``ax``, or a new pyplot figure (shown inline by Jupyter as usual)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    ax = fig.add_subplot(111, projection=projection)
    return fig, ax


def run_label(run: Any) -> str:
    """The legend text of a run: its label, plus "diverged after k steps" when it diverged."""
    label = getattr(run, "label", None) or str(run)
    if getattr(run, "diverged", False):
        label += f" — diverged after {run.diverged_at} steps"
    return label


def _levels(Z: np.ndarray, n: int) -> np.ndarray:
    """Contour levels at quantiles of the values: readable for any range (Rosenbrock: 1e-3..1e3)."""
    finite = Z[np.isfinite(Z)]
    levels = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, n) ** 2))
    if len(levels) < 2:
        levels = np.array([finite.min(), finite.min() + 1.0])
    return levels


def plot_landscape(
    landscape: Landscape | str,
    ax: Axes | None = None,
    *,
    levels: int = 30,
    resolution: int = 150,
    filled: bool = True,
    show_critical: bool = True,
    cmap: str = "viridis",
) -> tuple[Figure, Axes]:
    """Contour plot of a 2-D landscape with its minima (★) and saddles (+) marked.

    Levels sit at quantiles of the function values on the grid, so both the deep valley and the
    steep walls show. 1-D (online) problems are drawn as the functions f_1 and f_2 over x.
    """
    land = get_landscape(landscape)
    if not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an int >= 2, got {levels!r}")
    fig, ax = _fig_ax(ax)
    if land.dim == 1:
        xs = np.linspace(*land.xlim, resolution)
        for t in (1, 2) if land.online else (None,):
            ys = land(xs[:, None], t).numpy()
            ax.plot(xs, ys, label=f"f_{t}(x)" if t else "f(x)")
        ax.set_xlabel("x")
        ax.set_title(land.title)
        ax.legend(loc="best", fontsize="small")
        return fig, ax
    X, Y, Z = land.grid(resolution)
    lv = _levels(Z, levels)
    if filled:
        ax.contourf(X, Y, Z, levels=lv, cmap=cmap, alpha=0.75)
    ax.contour(X, Y, Z, levels=lv, colors="k", linewidths=0.4, alpha=0.5)
    if show_critical:
        if land.minima:
            m = np.asarray(land.minima)
            ax.scatter(m[:, 0], m[:, 1], marker="*", s=120, c="gold", edgecolors="k", zorder=5)
        if land.saddles:
            s = np.asarray(land.saddles)
            ax.scatter(s[:, 0], s[:, 1], marker="P", s=70, c="w", edgecolors="k", zorder=5)
    ax.set_xlim(*land.xlim)
    ax.set_ylim(*land.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(land.title)
    return fig, ax


def plot_surface(
    landscape: Landscape | str,
    trajectories: Trajectory | Sequence[Trajectory] = (),
    ax: Axes | None = None,
    *,
    resolution: int = 60,
    cmap: str = "viridis",
    clip_quantile: float = 0.95,
) -> tuple[Figure, Axes]:
    """3-D surface of a 2-D landscape, optionally with trajectories drawn on it.

    Values above the ``clip_quantile`` quantile are clipped so steep walls do not flatten the
    interesting part of the picture.
    """
    land = get_landscape(landscape)
    if land.dim != 2:
        raise ValueError(f"{land.name} is {land.dim}-D; surfaces need a 2-D landscape")
    fig, ax = _fig_ax(ax, projection="3d")
    X, Y, Z = land.grid(resolution)
    top = np.quantile(Z, clip_quantile)
    ax.plot_surface(X, Y, np.minimum(Z, top), cmap=cmap, alpha=0.8, linewidth=0)
    for tr in _as_list(trajectories):
        z = np.minimum(tr.losses[: len(tr.points)], top)
        ax.plot(tr.points[:, 0], tr.points[:, 1], z, marker=".", ms=3, label=run_label(tr))
    if trajectories:
        ax.legend(loc="upper left", fontsize="x-small")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(land.title)
    return fig, ax


def _as_list(runs: Any) -> list:
    if runs is None:
        return []
    if isinstance(runs, Trajectory):
        return [runs]
    return list(runs)


def plot_trajectories(
    landscape: Landscape | str,
    trajectories: Trajectory | Sequence[Trajectory],
    ax: Axes | None = None,
    *,
    levels: int = 30,
    resolution: int = 150,
    legend: bool = True,
    markers: bool = True,
    title: str | None = None,
) -> tuple[Figure, Axes]:
    """Trajectories on top of the landscape's contour plot, one legend entry per run.

    ``ax.get_lines()`` are the trajectories, in order (start/end markers are scatter points, not
    lines). 1-D problems are drawn as x over steps.
    """
    land = get_landscape(landscape)
    runs = _as_list(trajectories)
    if land.dim == 1:
        fig, ax = _fig_ax(ax)
        for tr in runs:
            ax.plot(np.arange(len(tr.points)), tr.points[:, 0], label=run_label(tr), lw=1.2)
        for m in land.minima:
            ax.axhline(m[0], color="k", ls=":", lw=1)
        ax.set_ylim(land.xlim[0] - 0.05, land.xlim[1] + 0.05)
        ax.set_xlabel("step")
        ax.set_ylabel("x")
    else:
        fig, ax = plot_landscape(land, ax, levels=levels, resolution=resolution)
        for tr in runs:
            (line,) = ax.plot(
                tr.points[:, 0], tr.points[:, 1], "-", lw=1.5, marker=".", ms=3, label=run_label(tr)
            )
            if markers:
                c = line.get_color()
                ax.scatter(*tr.points[0], marker="o", s=30, color=c, edgecolors="k", zorder=6)
                end = "X" if tr.diverged else "s"
                ax.scatter(*tr.points[-1], marker=end, s=40, color=c, edgecolors="k", zorder=6)
    if title is not None:
        ax.set_title(title)
    if legend and runs:
        ax.legend(loc="best", fontsize="x-small", framealpha=0.85)
    return fig, ax


def _series(runs: Any, attr: str) -> list[tuple[str, np.ndarray]]:
    """Normalise "some loss curves" into [(label, values)]."""
    if isinstance(runs, Mapping):
        items = [(str(k), v) for k, v in runs.items()]
    elif isinstance(runs, Trajectory) or hasattr(runs, attr):
        items = [(None, runs)]
    elif isinstance(runs, np.ndarray) or (
        isinstance(runs, Sequence) and runs and isinstance(runs[0], (int, float, np.number))
    ):
        items = [(None, runs)]
    else:
        items = [(None, r) for r in runs]
    out = []
    for label, r in items:
        if hasattr(r, attr) and not isinstance(r, np.ndarray):
            values = np.asarray(getattr(r, attr), dtype=float)
            label = label or run_label(r)
        else:
            values = np.asarray(r, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"a curve must be 1-D, got shape {values.shape}")
        out.append((label or f"run {len(out)}", values))
    return out


def plot_losses(
    runs: Any,
    ax: Axes | None = None,
    *,
    log: bool | None = None,
    attr: str = "losses",
    xlabel: str = "step",
    ylabel: str = "loss",
    subtract: float | None = None,
    smooth: int = 1,
) -> tuple[Figure, Axes]:
    """Loss (or any metric) against step, one line per run.

    ``runs``: a Trajectory / training History, a list of them, a dict ``label -> values`` or a
    plain sequence. ``attr`` picks the attribute of run objects (``"losses"`` for trajectories;
    use ``"loss"`` or ``"test_accuracy"`` for a ``History``). ``subtract`` plots
    ``loss − subtract`` (e.g. f* to show the gap). ``smooth`` > 1 applies a running mean.
    ``log=None`` chooses a log scale when all values are positive and span > 2 decades.
    """
    if not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be a positive int, got {smooth!r}")
    curves = _series(runs, "loss" if attr == "losses" and _is_history(runs) else attr)
    fig, ax = _fig_ax(ax)
    shown = []
    for label, y in curves:
        y = y - subtract if subtract is not None else y
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        finite = np.isfinite(y)
        x = np.arange(len(y))
        ax.plot(x[finite], y[finite], label=label, lw=1.3)
        shown.append(y[finite])
    if log is None:
        allv = np.concatenate(shown) if shown else np.array([1.0])
        log = bool(allv.size and np.all(allv > 0) and allv.max() / allv.min() > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel if subtract is None else f"{ylabel} − {subtract:g}")
    ax.legend(loc="best", fontsize="x-small")
    ax.grid(alpha=0.3)
    return fig, ax


def _is_history(runs: Any) -> bool:
    first = runs[0] if isinstance(runs, (list, tuple)) and runs else runs
    return hasattr(first, "loss") and hasattr(first, "step_time")


def plot_schedule(
    schedules: Callable[[int], float] | Sequence[float] | Mapping[str, Any],
    steps: int | None = None,
    ax: Axes | None = None,
    *,
    log: bool = False,
) -> tuple[Figure, Axes]:
    """Learning rate against step for one or several schedules.

    A schedule is a callable ``step -> lr`` (evaluated at steps ``0 .. steps-1``) or a list of
    learning rates; pass a dict ``label -> schedule`` for several.
    """
    items = list(schedules.items()) if isinstance(schedules, Mapping) else [("schedule", schedules)]
    fig, ax = _fig_ax(ax, figsize=(6.0, 3.5))
    for label, s in items:
        if callable(s):
            if not isinstance(steps, int) or steps < 1:
                raise ValueError("steps (a positive int) is needed to evaluate a callable schedule")
            lrs = np.array([float(s(t)) for t in range(steps)])
        else:
            lrs = np.asarray(s, dtype=float)
        ax.plot(np.arange(len(lrs)), lrs, label=label, lw=1.5)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if len(items) > 1 or items[0][0] != "schedule":
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return fig, ax


def plot_state_memory(
    reports: Mapping[str, Any], ax: Axes | None = None, *, relative: bool = True
) -> tuple[Figure, Axes]:
    """Bar chart of optimizer state memory, one bar per optimizer.

    ``reports``: ``name -> MemoryReport`` (from :mod:`course_lib.experiments.memory`) or
    ``name -> bytes``.
    With ``relative=True`` and reports, bars show the state size in multiples of the parameters
    (momentum: 1×, Adam: 2×, ...); otherwise bytes. Each bar is annotated with its value.
    """
    if not reports:
        raise ValueError("reports is empty")
    names = list(reports)
    have_ratio = all(hasattr(r, "state_per_param") for r in reports.values())
    if relative and have_ratio:
        values = [float(reports[n].state_per_param) for n in names]
        ylabel, fmt = "optimizer state (× parameter memory)", "{:.2f}×"
    else:
        values = [float(getattr(reports[n], "state_bytes", reports[n])) for n in names]
        ylabel, fmt = "optimizer state (bytes)", "{:,.0f} B"
    fig, ax = _fig_ax(ax, figsize=(max(4.0, 0.9 * len(names) + 2), 3.5))
    bars = ax.bar(names, values, color="tab:blue")
    for b, v in zip(bars, values):
        ax.annotate(
            fmt.format(v),
            (b.get_x() + b.get_width() / 2, v),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(values) * 1.15 if max(values) > 0 else 1)
    ax.tick_params(axis="x", labelrotation=30)
    return fig, ax


# Anti-aliased lines make PNG frames 4x larger (every edge pixel a new colour); animations are
# small and brief, so crisp pixel lines are the better trade.
_SMALL_FRAMES = {
    "lines.antialiased": False,
    "patch.antialiased": False,
    "savefig.facecolor": "white",
    "savefig.transparent": False,
}


def animate_trajectories(
    landscape: Landscape | str,
    trajectories: Trajectory | Sequence[Trajectory],
    *,
    frames: int = 15,
    dpi: int = 60,
    figsize: tuple[float, float] = (4.2, 3.4),
    interval: int = 120,
    max_bytes: int = 300_000,
    levels: int = 15,
):
    """A small JavaScript animation of runs moving over the landscape (an ``IPython.display.HTML``).

    The runs are subsampled to ``frames`` frames (all runs advance together; shorter or diverged
    runs stop at their last point). If the HTML comes out larger than ``max_bytes``, it is
    re-rendered with fewer frames, so notebooks stay light. The figure is closed afterwards.
    """
    from IPython.display import HTML
    from matplotlib import animation

    land = get_landscape(landscape)
    runs = _as_list(trajectories)
    if not runs:
        raise ValueError("need at least one trajectory to animate")
    if land.dim != 2:
        raise ValueError("animations need a 2-D landscape")
    if not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2, got {frames!r}")
    longest = max(len(tr.points) for tr in runs)
    html = ""
    n_frames = min(frames, longest)
    while True:
        idx = np.unique(np.linspace(0, longest - 1, n_frames).round().astype(int))
        with matplotlib.rc_context(_SMALL_FRAMES):
            fig = Figure(figsize=figsize, dpi=dpi)
            ax = fig.add_subplot(111)
            plot_landscape(land, ax, levels=levels, resolution=80, filled=False)
            lines = []
            for tr in runs:
                (ln,) = ax.plot([], [], "-", lw=1.5, label=run_label(tr))
                lines.append(ln)
            ax.legend(loc="upper left", fontsize=5, framealpha=1.0)
            fig.tight_layout()

        def update(i, lines=lines):
            for ln, tr in zip(lines, runs):
                k = min(i, len(tr.points) - 1) + 1
                ln.set_data(tr.points[:k, 0], tr.points[:k, 1])
            return lines

        anim = animation.FuncAnimation(fig, update, frames=list(idx), interval=interval, blit=False)
        with matplotlib.rc_context(
            _SMALL_FRAMES | {"animation.embed_limit": 4 * max_bytes / 2**20}
        ):
            html = anim.to_jshtml(default_mode="once")
        if len(html.encode()) <= max_bytes or n_frames <= 5:
            break
        n_frames = max(5, math.floor(n_frames * 0.6))
    out = HTML(html)
    out.frames = len(idx)  # for tests and curious readers
    return out


# ---------------------------------------------------------------------------------------------
# Chapter 04 (Adam): step factors, sweeps, step vs signal-to-noise, empirical Fisher vs Hessian
# ---------------------------------------------------------------------------------------------


def plot_step_factors(
    t: np.ndarray,
    factors: Mapping[str, np.ndarray],
    ax: Axes | None = None,
    *,
    title: str = "",
    reference: float = 1.0,
    logy: bool = True,
) -> tuple[Figure, Axes]:
    """Adam's step in units of η over the step t (log x), one curve per setting, each with its
    peak marked and labelled next to it (on a white box, so no curve hides the text and no
    legend covers a curve; a curve that never exceeds ``reference`` says so); a dotted line at
    ``reference`` (the corrected step)."""
    fig, ax = _fig_ax(ax, figsize=(6.0, 3.6))
    top = 0.0
    for label, values in factors.items():
        values = np.asarray(values, dtype=float)
        (line,) = ax.plot(t, values, lw=1.8)
        k = int(np.argmax(values))
        top = max(top, float(values[k]))
        style = {"fontsize": 9, "color": line.get_color(), "textcoords": "offset points"}
        style["bbox"] = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}
        if values[k] > reference * (1 + 1e-6):
            ax.plot(t[k], values[k], "o", ms=5, color=line.get_color())
            text = f"{label}: peak {values[k]:.2f} at t = {t[k]}"
            ax.annotate(text, (t[k], values[k]), xytext=(8, 6), **style)
        else:  # rises to the reference from below: no peak to mark; label it at its right end
            text = f"{label}: never above {reference:g}"
            ax.annotate(text, (t[-1], values[-1]), xytext=(-4, -16), ha="right", **style)
    ax.axhline(reference, color="k", ls=":", lw=1)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
        ax.set_ylim(top=top * 2.5)
    else:
        ax.set_ylim(top=top * 1.2)
    ax.set_xlabel("step t")
    ax.set_ylabel("|Δw| / η")
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=10)
    return fig, ax


def plot_sweep(
    x: Sequence[float],
    series: Mapping[str, np.ndarray],
    ax: Axes | None = None,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = True,
    logy: bool = True,
    mark: str = "min",
) -> tuple[Figure, Axes]:
    """A measured quantity against a hyperparameter, one line per setting.

    ``series[label]`` has shape ``(len(x),)`` or ``(seeds, len(x))``: with seeds the line is the
    mean and a band spans min to max. ``mark="min"`` rings the best (lowest mean) point of every
    line. The legend sits outside the axes, on the right."""
    fig, ax = _fig_ax(ax, figsize=(6.4, 3.6))
    xs = np.asarray(x, dtype=float)
    for label, values in series.items():
        values = np.atleast_2d(np.asarray(values, dtype=float))
        mean = values.mean(0)
        (line,) = ax.plot(xs, mean, "o-", ms=4, lw=1.6, label=label)
        if values.shape[0] > 1:
            ax.fill_between(xs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
        if mark == "min":
            k = int(np.nanargmin(mean))
            ax.plot(xs[k], mean[k], "o", ms=11, mfc="none", mec=line.get_color(), mew=1.6)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig, ax


def plot_step_vs_snr(
    snr: np.ndarray,
    measured: np.ndarray,
    predicted: np.ndarray,
    ax: Axes | None = None,
    *,
    title: str = "",
) -> tuple[Figure, Axes]:
    """Adam's mean step (units of η) against the gradient's signal-to-noise ratio: measured
    points, the formula as a line, and the two limits (sign descent, step ∝ SNR) as guides."""
    fig, ax = _fig_ax(ax, figsize=(6.0, 3.6))
    snr = np.asarray(snr, dtype=float)
    ax.plot(snr, predicted, "-", lw=1.8, color="tab:blue", label="SNR / √(1 + SNR²)")
    ax.plot(snr, measured, "o", ms=6, color="tab:orange", label="measured (mean step / η)")
    ax.plot(snr, np.ones_like(snr), ":", color="k", lw=1, label="1: sign descent")
    ax.plot(snr, snr, "--", color="0.5", lw=1, label="SNR")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(min(float(np.min(predicted)), float(np.min(measured))) * 0.7, 2.0)
    ax.set_xlabel("signal-to-noise ratio |E g| / std g")
    ax.set_ylabel("mean step / η")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return fig, ax


def plot_fisher_vs_hessian(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]], axes: Sequence[Axes] | None = None
) -> tuple[Figure, Sequence[Axes]]:
    """One log-log scatter per panel: the empirical Fisher's diagonal against the Hessian's,
    coordinate by coordinate, with the line F = H. ``panels[title] = (hessian, fisher)``."""
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True)
        axes = np.atleast_1d(axes)
    fig = axes[0].figure
    all_values = np.concatenate([np.r_[h, f] for h, f in panels.values()])
    positive = all_values[all_values > 0]
    low, high = positive.min() / 2, positive.max() * 2
    for ax, (title, (h, f)) in zip(axes, panels.items()):
        h, f = np.asarray(h, dtype=float), np.asarray(f, dtype=float)
        ax.loglog(h, np.clip(f, low, None), ".", ms=3, alpha=0.5, color="tab:blue")
        ax.plot([low, high], [low, high], "k--", lw=1, label="F = H")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel("Hessian diagonal H")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper left", fontsize=9)
    axes[0].set_ylabel("empirical Fisher diagonal F")
    fig.tight_layout()
    return fig, axes


__all__ += ["plot_fisher_vs_hessian", "plot_step_factors", "plot_step_vs_snr", "plot_sweep"]
