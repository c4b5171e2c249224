"""Plots for the course: landscapes, trajectories, loss curves, schedules, memory, animations.

Every function returns ``(fig, ax)`` and accepts an existing ``ax`` to draw into, so lessons can
compose panels (``fig, (a, b) = plt.subplots(1, 2)``) and widgets can redraw into their own
figures.

How the figures are meant to read (the course's standard for figures):

- **Short legends, full hyperparameters in the title.** A legend entry is a short name ("SGD",
  "Momentum", or the label you gave the run); when runs of one optimizer class differ, the name
  adds only what differs ("SGD (momentum=0.9)"). The full hyperparameters of every run go into a
  caption line under the title (:func:`short_labels` computes both), because a plot that says
  "Adam" without its learning rate teaches nothing, and a legend that lists every argument
  covers the data.
- **Legends outside the axes** (``legend="right"``, the default, or ``"below"``), never on top
  of the curves; ``legend="inside"`` puts a short legend in the emptiest corner.
- **Readable type**: nothing smaller than 9 pt (:data:`MIN_FONT_PT`); new figures get at least
  100 dpi.
- **Log scales where values span decades** (``plot_losses`` and ``plot_schedule`` choose one
  when the positive values span more than two decades).
- **Runs that stop early say why.** A diverged run is drawn up to its last good point and ends
  in a ✗; a run that *escaped* downhill on a landscape that is unbounded below ends in a ▶ and
  is not called diverged (see :class:`course_lib.landscapes.Trajectory`). Nothing is ever drawn
  from NaNs. Overlapping paths stay visible: every path has a white halo, and the runs cycle
  through solid, dashed, dash-dotted and dotted lines.

Animations (:func:`animate_trajectories`) are self-contained HTML: one background image and the
paths as vector graphics that a few lines of JavaScript reveal step by step. They play in
JupyterLab, Colab and exported HTML without a live kernel or a network connection, and where
JavaScript does not run (an untrusted notebook, GitHub's viewer) the same HTML shows the complete
paths as a still figure.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import io
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_lib.landscapes import Landscape, Trajectory, get_landscape
from course_lib.train import format_value

__all__ = [
    "MIN_DPI",
    "MIN_FONT_PT",
    "add_legend",
    "animate_trajectories",
    "caption_text",
    "figure_png",
    "plot_landscape",
    "plot_losses",
    "plot_schedule",
    "plot_state_memory",
    "plot_surface",
    "plot_trajectories",
    "run_label",
    "short_labels",
]

MIN_FONT_PT = 9  # the smallest type on any course figure
MIN_DPI = 100  # the lowest resolution of a new figure
LINESTYLES = ("-", "--", "-.", ":")  # cycled, so a path drawn over another still shows


def _fig_ax(ax: Axes | None, figsize=(6.0, 4.5), projection: str | None = None):
    """The figure of ``ax``, or a new pyplot figure (shown inline by Jupyter as usual)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, dpi=max(MIN_DPI, matplotlib.rcParams["figure.dpi"]))
    ax = fig.add_subplot(111, projection=projection)
    return fig, ax


# --------------------------------------------------------------------------- names and captions


def run_label(run: Any) -> str:
    """The legend text of a run: its label, plus how it ended when it stopped early.

    ``"SGD(lr=2.5) — diverged after 8 steps"``; for a whole legend prefer :func:`short_labels`.
    """
    label = getattr(run, "label", None) or str(run)
    ending = getattr(run, "ending", "")
    return f"{label} — {ending}" if ending else label


def _short_ending(run: Any) -> str:
    if getattr(run, "diverged", False):
        return f"diverged at step {run.diverged_at}"
    if getattr(run, "escaped", False):
        return f"escaped at step {run.escaped_at}"
    return ""


def short_labels(runs: Sequence[Any]) -> tuple[list[str], list[str]]:
    """Short legend names for ``runs`` and the caption lines that give their hyperparameters.

    A run with a label of its own keeps it. A run labelled only by its optimizer (``run_optimizer``
    without ``label=``) is named by its class; when several such runs share a class, each name adds
    the hyperparameters that differ between them, so names stay distinct::

        names    SGD (momentum=0), SGD (momentum=0.9)
        caption  SGD(lr=0.1, dampening=0, weight_decay=0)

    The caption has one line per optimizer class: the hyperparameters its runs share, then, for
    runs with labels of their own, what each changes (``"... — Momentum: momentum=0.9"``).
    Names of runs that stopped early get a second line, ``"✗ diverged at step k"`` or
    ``"▶ escaped at step k"``. Objects without ``spec``/``hyperparameters`` (plain curves) keep
    their label and add nothing to the caption.
    """
    runs = list(runs)
    names = [getattr(r, "label", None) or f"run {i}" for i, r in enumerate(runs)]
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        if getattr(run, "spec", "") and isinstance(getattr(run, "hyperparameters", None), dict):
            groups.setdefault(run.optimizer, []).append(i)
    caption: list[str] = []
    for cls, members in groups.items():
        hps = [runs[i].hyperparameters for i in members]
        keys = list(dict.fromkeys(k for hp in hps for k in hp))
        common = [k for k in keys if all(k in hp and hp[k] == hps[0][k] for hp in hps)]
        shared = f"{cls}(" + ", ".join(f"{k}={format_value(hps[0][k])}" for k in common) + ")"
        if len(members) == 1:
            i = members[0]
            if not runs[i].named:
                names[i] = cls
            caption.append(f"{names[i]} = {shared}" if names[i] != cls else shared)
            continue
        parts = []
        for i, hp in zip(members, hps):
            diffs = [f"{k}={format_value(hp[k])}" for k in keys if k not in common and k in hp]
            if not runs[i].named:
                names[i] = f"{cls} ({', '.join(diffs)})" if diffs else cls
            elif diffs and not all(d in names[i] for d in diffs):
                parts.append(f"{names[i]}: {', '.join(diffs)}")
        caption.append(shared + (" — " + " · ".join(parts) if parts else ""))
    for i, run in enumerate(runs):
        ending = _short_ending(run)
        if ending:
            names[i] += ("\n✗ " if run.diverged else "\n▶ ") + ending
    return names, caption


def caption_text(lines: Sequence[str], width_inches: float, fontsize: float = MIN_FONT_PT) -> str:
    """``lines`` wrapped to fit ``width_inches`` at ``fontsize`` (about 0.6 em per character)."""
    chars = max(20, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(
        "\n".join(textwrap.wrap(line, chars, subsequent_indent="    ")) for line in lines
    )


def add_legend(
    ax: Axes, where: bool | str = "right", handles: list | None = None, labels=None, **kw
):
    """A legend that does not cover the data: ``"right"`` or ``"below"`` (outside the axes),
    ``"inside"`` (the emptiest corner; only for short legends), ``False``/``None`` for none.

    Returns the legend (or ``None``). Font size: :data:`MIN_FONT_PT`.
    """
    if where is False or where is None:
        return None
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    kw.setdefault("fontsize", MIN_FONT_PT)
    if where is True or where == "right":
        kw.update(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    elif where == "below":
        from matplotlib.transforms import ScaledTranslation

        offset = ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans)  # below the x label
        kw.update(
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            bbox_transform=ax.transAxes + offset,
            ncol=min(3, len(handles)),
            frameon=False,
        )
    elif where == "inside":
        kw.update(loc="best", framealpha=0.85)
    else:
        raise ValueError(f"legend must be 'right', 'below', 'inside' or False, got {where!r}")
    return ax.legend(handles, labels, **kw)


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
        ax.legend(loc="best", fontsize=MIN_FONT_PT)
        return fig, ax
    X, Y, Z = land.grid(resolution)
    lv = _levels(Z, levels)
    if filled:
        ax.contourf(X, Y, Z, levels=lv, cmap=cmap, alpha=0.6)
    ax.contour(X, Y, Z, levels=lv, colors="k", linewidths=0.4, alpha=0.45)
    if show_critical:
        if land.minima:
            m = np.asarray(land.minima)
            ax.scatter(m[:, 0], m[:, 1], marker="*", s=140, c="gold", edgecolors="k", zorder=5)
        if land.saddles:
            s = np.asarray(land.saddles)
            ax.scatter(s[:, 0], s[:, 1], marker="P", s=80, c="w", edgecolors="k", zorder=5)
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
    legend: bool | str = "right",
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
    runs = _as_list(trajectories)
    names, _ = short_labels(runs)
    for tr, name in zip(runs, names):
        z = np.minimum(tr.losses[: len(tr.points)], top)
        ax.plot(tr.points[:, 0], tr.points[:, 1], z, marker=".", ms=3, label=name)
    if runs:
        add_legend(ax, legend)
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


def _halo(lw: float) -> list:
    """A white outline under a line, so a path stays visible on any background."""
    return [patheffects.withStroke(linewidth=lw + 1.5, foreground="white", alpha=0.7)]


def _set_title(ax: Axes, title: str, caption: list[str], legend_chars: int = 0) -> None:
    """``title`` on top, the caption lines (hyperparameters) under it, wrapped to the width the
    axes will have once a legend of ``legend_chars`` characters sits on its right."""
    if not caption:
        ax.set_title(title)
        return
    size = MIN_FONT_PT + 1
    width = ax.get_position().width * ax.figure.get_figwidth()
    width -= legend_chars * 0.55 * MIN_FONT_PT / 72 + 0.5  # the legend's text and handles
    ax.set_title(f"{title}\n{caption_text(caption, max(width, 2.0), size)}", fontsize=size)


def plot_trajectories(
    landscape: Landscape | str,
    trajectories: Trajectory | Sequence[Trajectory],
    ax: Axes | None = None,
    *,
    levels: int = 30,
    resolution: int = 150,
    legend: bool | str = "right",
    markers: bool = True,
    title: str | None = None,
    caption: bool = True,
) -> tuple[Figure, Axes]:
    """Trajectories on top of the landscape's contour plot, one legend entry per run.

    Legend names are short (:func:`short_labels`), the legend sits outside the axes
    (``legend="right"``, ``"below"``, ``"inside"`` or ``False``: see :func:`add_legend`) and, with
    ``caption=True``, the full hyperparameters go under the title. Each path starts at a ● and
    ends at a ■, a ✗ if the run diverged, or a ▶ if it escaped downhill.

    ``ax.get_lines()`` are the trajectories, in order (the markers are scatter points, not
    lines). 1-D problems are drawn as x over steps.
    """
    land = get_landscape(landscape)
    runs = _as_list(trajectories)
    names, caption_lines = short_labels(runs)
    if land.dim == 1:
        fig, ax = _fig_ax(ax)
        for i, (tr, name) in enumerate(zip(runs, names)):
            ax.plot(
                np.arange(len(tr.points)), tr.points[:, 0], label=name, lw=1.6,
                ls=LINESTYLES[i % len(LINESTYLES)],
            )  # fmt: skip
        for m in land.minima:
            ax.axhline(m[0], color="k", ls=":", lw=1)
        ax.set_ylim(land.xlim[0] - 0.05, land.xlim[1] + 0.05)
        ax.set_xlabel("step")
        ax.set_ylabel("x")
        ax.set_title(land.title)
    else:
        fig, ax = plot_landscape(land, ax, levels=levels, resolution=resolution)
        for i, (tr, name) in enumerate(zip(runs, names)):
            (line,) = ax.plot(
                tr.points[:, 0], tr.points[:, 1], lw=1.8, label=name,
                ls=LINESTYLES[i % len(LINESTYLES)], path_effects=_halo(1.8), gid="path",
            )  # fmt: skip
            if markers:
                c = line.get_color()
                ax.scatter(*tr.points[0], marker="o", s=36, color=c, edgecolors="k", zorder=6)
                end = "X" if tr.diverged else ">" if tr.escaped else "s"
                size = 90 if end != "s" else 40
                ax.scatter(
                    *tr.points[-1], marker=end, s=size, color=c, edgecolors="k", zorder=6, gid="end"
                )
    if runs and caption or title is not None:
        wide = max((len(line) for n in names for line in n.splitlines()), default=0)
        _set_title(
            ax,
            title if title is not None else land.title,
            caption_lines if caption else [],
            legend_chars=wide if legend in (True, "right") and runs else 0,
        )
    if runs:
        add_legend(ax, legend)
    return fig, ax


def _series(runs: Any, attr: str) -> list[tuple[str, np.ndarray, Any]]:
    """Normalise "some loss curves" into [(label, values, run object or None)]."""
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
    run_objects = [r for label, r in items if label is None and hasattr(r, attr)]
    short = dict(zip(map(id, run_objects), short_labels(run_objects)[0]))
    for label, r in items:
        obj = None
        if hasattr(r, attr) and not isinstance(r, np.ndarray):
            values = np.asarray(getattr(r, attr), dtype=float)
            label, obj = label or short.get(id(r)) or run_label(r), r
        else:
            values = np.asarray(r, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"a curve must be 1-D, got shape {values.shape}")
        out.append((label or f"run {len(out)}", values, obj))
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
    legend: bool | str = "right",
) -> tuple[Figure, Axes]:
    """Loss (or any metric) against step, one line per run.

    ``runs``: a Trajectory / training History, a list of them, a dict ``label -> values`` or a
    plain sequence. ``attr`` picks the attribute of run objects (``"losses"`` for trajectories;
    use ``"loss"`` or ``"test_accuracy"`` for a ``History``). ``subtract`` plots
    ``loss − subtract`` (e.g. f* to show the gap). ``smooth`` > 1 applies a running mean.
    ``log=None`` chooses a log scale when all values are positive and span > 2 decades. A run
    that diverged ends in a ✗ at its last finite value. The legend goes outside the axes
    (:func:`add_legend`).
    """
    if not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be a positive int, got {smooth!r}")
    curves = _series(runs, "loss" if attr == "losses" and _is_history(runs) else attr)
    fig, ax = _fig_ax(ax)
    shown = []
    for i, (label, y, obj) in enumerate(curves):
        y = y - subtract if subtract is not None else y
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        finite = np.isfinite(y)
        x = np.arange(len(y))
        (line,) = ax.plot(
            x[finite], y[finite], label=label, lw=1.5, ls=LINESTYLES[i % len(LINESTYLES)]
        )
        if getattr(obj, "diverged", False) and finite.any():
            ax.plot(x[finite][-1], y[finite][-1], "X", ms=9, color=line.get_color(), mec="k")
        shown.append(y[finite])
    if log is None:
        allv = np.concatenate(shown) if shown else np.array([1.0])
        log = bool(allv.size and np.all(allv > 0) and allv.max() / allv.min() > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel if subtract is None else f"{ylabel} − {subtract:g}")
    add_legend(ax, legend, *_line_handles(ax))
    ax.grid(alpha=0.3)
    return fig, ax


def _line_handles(ax: Axes) -> tuple[list, list]:
    """The labelled lines of ``ax`` (markers drawn as extra lines have no label)."""
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    return lines, [ln.get_label() for ln in lines]


def _is_history(runs: Any) -> bool:
    first = runs[0] if isinstance(runs, (list, tuple)) and runs else runs
    return hasattr(first, "loss") and hasattr(first, "step_time")


def plot_schedule(
    schedules: Callable[[int], float] | Sequence[float] | Mapping[str, Any],
    steps: int | None = None,
    ax: Axes | None = None,
    *,
    log: bool | None = None,
    legend: bool | str = "right",
) -> tuple[Figure, Axes]:
    """Learning rate against step for one or several schedules.

    A schedule is a callable ``step -> lr`` (evaluated at steps ``0 .. steps-1``) or a list of
    learning rates; pass a dict ``label -> schedule`` for several. ``log=None`` picks a log scale
    when the positive learning rates span more than two decades.
    """
    items = list(schedules.items()) if isinstance(schedules, Mapping) else [("schedule", schedules)]
    fig, ax = _fig_ax(ax, figsize=(6.0, 3.5))
    values = []
    for i, (label, s) in enumerate(items):
        if callable(s):
            if not isinstance(steps, int) or steps < 1:
                raise ValueError("steps (a positive int) is needed to evaluate a callable schedule")
            lrs = np.array([float(s(t)) for t in range(steps)])
        else:
            lrs = np.asarray(s, dtype=float)
        ax.plot(np.arange(len(lrs)), lrs, label=label, lw=1.6, ls=LINESTYLES[i % len(LINESTYLES)])
        values.append(lrs)
    if log is None:
        positive = np.concatenate(values)
        positive = positive[np.isfinite(positive) & (positive > 0)]
        log = bool(positive.size and positive.max() / positive.min() > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if len(items) > 1 or items[0][0] != "schedule":
        add_legend(ax, legend)
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
            fontsize=MIN_FONT_PT,
        )
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(values) * 1.15 if max(values) > 0 else 1)
    ax.tick_params(axis="x", labelrotation=30)
    return fig, ax


# --------------------------------------------------------------------------- animations


class TrajectoryAnimation:
    """What :func:`animate_trajectories` returns: an HTML animation with a still fallback.

    Jupyter shows it through :meth:`_repr_mimebundle_`: ``text/html`` (the player),
    ``image/png`` (the complete figure, for front ends that cannot run the player) and a short
    ``text/plain``. ``data`` is the HTML, ``frames`` the number of frames, ``png`` the still,
    ``dpi`` the resolution its images were rendered at.
    """

    def __init__(self, html: str, png: bytes, frames: int, title: str, dpi: float):
        self.data = html
        self.png = png
        self.frames = frames
        self.title = title
        self.dpi = dpi

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {
            "text/html": self.data,
            "image/png": base64.b64encode(self.png).decode("ascii"),
            "text/plain": f"<animation of {self.title}: {self.frames} frames>",
        }


_PLAYER_CSS = """
#{id} .ctl {{display:flex; align-items:center; gap:6px; font:13px sans-serif; margin:4px 0;}}
#{id} .ctl button {{font-size:14px; min-width:2.2em; padding:1px 6px; cursor:pointer;}}
#{id} .ctl input[type=range] {{flex:1; max-width:360px;}}
"""

# The player: the paths are SVG polylines over the background image; a frame shows each path up
# to a step. Written without any library or web font, so it runs offline.
_PLAYER_JS = """
(function() {{
  var here = document.currentScript;
  var root = (here && here.parentNode) || document.getElementById("{id}");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var data = {data};
  var img = root.querySelector("img"), svg = root.querySelector("svg");
  img.src = img.getAttribute("data-background");
  svg.style.display = "";
  var lines = svg.querySelectorAll("polyline.p"), halos = svg.querySelectorAll("polyline.h");
  var heads = svg.querySelectorAll("circle"), ends = svg.querySelectorAll(".end");
  var ctl = document.createElement("div"); ctl.className = "ctl";
  function button(label, title, fn) {{
    var b = document.createElement("button"); b.textContent = label; b.title = title;
    b.onclick = fn; ctl.appendChild(b); return b;
  }}
  var frame = 0, timer = null, n = data.steps.length, play;
  var slider = document.createElement("input");
  slider.type = "range"; slider.min = 0; slider.max = n - 1; slider.value = 0;
  var text = document.createElement("span");
  function show(k) {{
    frame = Math.max(0, Math.min(n - 1, k)); slider.value = frame;
    var step = data.steps[frame];
    for (var r = 0; r < lines.length; r++) {{
      var pts = data.paths[r], m = Math.min(step + 1, pts.length), s = pts.slice(0, m).join(" ");
      lines[r].setAttribute("points", s); halos[r].setAttribute("points", s);
      var last = pts[m - 1].split(",");
      heads[r].setAttribute("cx", last[0]); heads[r].setAttribute("cy", last[1]);
      heads[r].style.display = (frame === n - 1) ? "none" : "";
      ends[r].style.display = (frame === n - 1) ? "" : "none";
    }}
    text.textContent = "step " + step + " of " + data.steps[n - 1];
  }}
  function stop() {{
    if (timer) {{ clearInterval(timer); timer = null; }}
    play.textContent = "\\u25B6 play";
  }}
  function start() {{
    if (frame >= n - 1) show(0);
    play.textContent = "|| pause";
    timer = setInterval(function() {{ if (frame >= n - 1) stop(); else show(frame + 1); }},
                        {interval});
  }}
  button("|\\u25C0", "first frame", function() {{ stop(); show(0); }});
  button("\\u25C0", "one frame back", function() {{ stop(); show(frame - 1); }});
  play = button("\\u25B6 play", "play / pause", function() {{ if (timer) stop(); else start(); }});
  button("\\u25B6", "one frame forward", function() {{ stop(); show(frame + 1); }});
  button("\\u25B6|", "last frame", function() {{ stop(); show(n - 1); }});
  slider.oninput = function() {{ stop(); show(parseInt(slider.value, 10)); }};
  ctl.appendChild(slider); ctl.appendChild(text);
  root.appendChild(ctl);
  show(0); start();
}})();
"""


def figure_png(fig: Figure, dpi: float = MIN_DPI, colors: int | None = 256) -> bytes:
    """``fig`` as PNG bytes, rendered here (no pyplot backend needed).

    With ``colors`` the image is reduced to a palette of that many colours (Pillow's median
    cut): a contour plot shrinks about threefold and looks the same, which keeps notebooks that
    store figures for readers without a kernel light. Median cut alone merges colours that cover
    few pixels (a line that only appears in the legend would take a neighbour's colour), so white,
    black and the colours of the figure's lines get weight while the palette is chosen and keep
    palette entries of their own. ``colors=None`` keeps every colour.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    if colors is None:
        return buf.getvalue()
    from PIL import Image  # a dependency of matplotlib

    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    # the weight: a block of pixels per colour in a strip under the image, cut off afterwards
    keep, block = _line_colors(fig), 24
    per_row = max(1, image.width // block)
    rows = -(-len(keep) // per_row)
    strip = Image.new("RGB", (image.width, image.height + rows * block), "white")
    strip.paste(image, (0, 0))
    for i, rgb in enumerate(keep):
        x, y = (i % per_row) * block, image.height + (i // per_row) * block
        strip.paste(rgb, (x, y, x + block, y + block))
    quantized = strip.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small = io.BytesIO()
    quantized.crop((0, 0, image.width, image.height)).save(small, format="PNG", optimize=True)
    return small.getvalue()


def _line_colors(fig: Figure) -> list[tuple[int, int, int]]:
    """White, black and the distinct RGB colours (0-255) of the lines and markers in ``fig``."""
    from matplotlib.colors import to_rgb
    from matplotlib.lines import Line2D

    seen: dict[tuple[int, int, int], None] = {(255, 255, 255): None, (0, 0, 0): None}
    for line in fig.findobj(Line2D):
        for color in (line.get_color(), line.get_markerfacecolor()):
            try:
                rgb = tuple(round(255 * c) for c in to_rgb(color))
            except ValueError:  # "none", "auto"
                continue
            seen.setdefault(rgb, None)
    return list(seen)


_DASHES = {"-": (), "--": (3.7, 1.6), "-.": (6.4, 1.6, 1.0, 1.6), ":": (1.0, 1.65)}  # × width


def _svg_end(kind: str, x: float, y: float, color: str, r: float) -> str:
    """An end marker as in :func:`plot_trajectories`: ✗ diverged, ▶ escaped, ■ finished."""
    style = f'class="end" fill="{color}" stroke="black" stroke-width="1"'
    if kind == "diverged":
        arm = r * 0.35
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{x + dx:.1f},{y + dy:.1f}"
            for i, (dx, dy) in enumerate(
                [(-r, -r + arm), (-arm, 0), (-r, r - arm), (-r + arm, r), (0, arm), (r - arm, r),
                 (r, r - arm), (arm, 0), (r, -r + arm), (r - arm, -r), (0, -arm), (-r + arm, -r)]
            )
        )  # fmt: skip
        return f'<path {style} d="{d} Z"/>'
    if kind == "escaped":
        pts = f"{x - r:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x - r:.1f},{y + r:.1f}"
        return f'<polygon {style} points="{pts}"/>'
    side = 1.3 * r
    return (
        f'<rect {style} x="{x - side / 2:.1f}" y="{y - side / 2:.1f}" width="{side:.1f}" '
        f'height="{side:.1f}"/>'
    )


def _player_html(fig, ax, runs, lines, idx, background, still, interval, dpi) -> str:
    """The player's HTML: the still image (replaced by the background when JavaScript runs),
    the paths as SVG polylines in image pixels, and the script that animates them."""
    from matplotlib.colors import to_hex

    scale = dpi / fig.dpi
    width, height = fig.get_figwidth() * dpi, fig.get_figheight() * dpi
    box = ax.get_window_extent()
    clip = (box.x0 * scale, height - box.y1 * scale, box.width * scale, box.height * scale)
    paths, shapes = [], []
    for tr, line in zip(runs, lines):
        px = ax.transData.transform(tr.points) * scale
        pts = [f"{x:.1f},{height - y:.1f}" for x, y in px]
        paths.append(pts)
        color = to_hex(line.get_color())
        lw = line.get_linewidth() * dpi / 72
        dash = ",".join(f"{d * lw:.1f}" for d in _DASHES.get(line.get_linestyle(), ()))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        full = " ".join(pts)
        x_end, y_end = (float(v) for v in pts[-1].split(","))
        shapes.append(
            f'<polyline class="h" points="{full}" fill="none" stroke="white" '
            f'stroke-opacity="0.7" stroke-width="{lw + 1.5 * dpi / 72:.1f}" stroke-linejoin="round"'
            f"{dash_attr}/>"
            f'<polyline class="p" points="{full}" fill="none" stroke="{color}" '
            f'stroke-width="{lw:.1f}" stroke-linejoin="round"{dash_attr}/>'
            f'<circle r="{2.2 * lw:.1f}" cx="{x_end:.1f}" cy="{y_end:.1f}" fill="{color}" '
            'stroke="black" stroke-width="0.8"/>'
            + _svg_end(tr.outcome, x_end, y_end, color, 1.9 * lw)
        )
    data = json.dumps({"paths": paths, "steps": [int(i) for i in idx]}, separators=(",", ":"))
    uid = "anim-" + hashlib.sha1(data.encode() + background[:4096]).hexdigest()[:12]
    b64 = base64.b64encode
    svg = (
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" style="position:absolute; left:0; top:0; '
        f'width:100%; height:100%; display:none" xmlns="http://www.w3.org/2000/svg">'
        f'<clipPath id="{uid}-clip"><rect x="{clip[0]:.1f}" y="{clip[1]:.1f}" '
        f'width="{clip[2]:.1f}" height="{clip[3]:.1f}"/></clipPath>'
        f'<g clip-path="url(#{uid}-clip)">{"".join(shapes)}</g></svg>'
    )
    script = _PLAYER_JS.format(id=uid, data=data, interval=int(interval))
    return (
        f'<div id="{uid}" style="max-width:{width:.0f}px">'
        f"<style>{_PLAYER_CSS.format(id=uid)}</style>"
        f'<div style="position:relative; width:100%">'
        f'<img alt="{html_lib.escape(ax.get_title().splitlines()[0])}" style="width:100%; '
        f'display:block" src="data:image/png;base64,{b64(still).decode()}" '
        f'data-background="data:image/png;base64,{b64(background).decode()}">{svg}</div>'
        f"<script>{script}</script></div>"
    )


def _animation_figure(land, runs, figsize, dpi, levels, title) -> tuple[Figure, Axes]:
    """The animation's figure: :func:`plot_trajectories` with a one-line title, and the
    hyperparameters as a caption under the axes across the whole figure width (under the title
    they would be squeezed into the width the legend leaves and take half the height)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot(111)
    plot_trajectories(land, runs, ax, levels=levels, resolution=120, title=title, caption=False)
    ax.set_title(ax.get_title(), fontsize=MIN_FONT_PT + 1)
    lines = short_labels(runs)[1]
    if not lines:
        fig.tight_layout()
        return fig, ax
    text = caption_text(lines, figsize[0] - 0.3)
    height = ((text.count("\n") + 1) * MIN_FONT_PT * 1.4 / 72 + 0.1) / figsize[1]
    fig.tight_layout(rect=(0.0, height, 1.0, 1.0))
    fig.text(0.015, 0.015, text, ha="left", va="bottom", fontsize=MIN_FONT_PT, color="#333")
    return fig, ax


def animate_trajectories(
    landscape: Landscape | str,
    trajectories: Trajectory | Sequence[Trajectory],
    *,
    frames: int = 40,
    dpi: int = MIN_DPI,
    figsize: tuple[float, float] = (7.0, 4.6),
    interval: int = 150,
    max_bytes: int = 400_000,
    levels: int = 30,
    title: str | None = None,
) -> TrajectoryAnimation:
    """The runs moving over the landscape, step by step, as a small self-contained player.

    The figure is the one :func:`plot_trajectories` draws (same contours, short legend outside),
    with the hyperparameters as a caption under the axes, rendered once as a background image;
    the paths are vector lines on top of it that ``frames`` frames reveal (all runs advance
    together; shorter, diverged or escaped runs stop at their last point, and their end marker
    appears on the last frame). Buttons: first, back, play/pause, forward, last, and a slider.
    No network access, no web font.

    Where JavaScript does not run (an untrusted notebook, a static viewer) the same HTML shows the
    finished figure, and the ``image/png`` of the mime bundle carries it too. If the HTML would
    exceed ``max_bytes``, the images are re-rendered at a lower dpi (never below 72).
    """
    land = get_landscape(landscape)
    runs = _as_list(trajectories)
    if not runs:
        raise ValueError("need at least one trajectory to animate")
    if land.dim != 2:
        raise ValueError("animations need a 2-D landscape")
    if not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2, got {frames!r}")
    longest = max(len(tr.points) for tr in runs)
    idx = np.unique(np.linspace(0, longest - 1, min(frames, longest)).round().astype(int))
    fig, ax = _animation_figure(land, runs, figsize, dpi, levels, title)
    while True:
        still = figure_png(fig, dpi)
        path_lines = [ln for ln in ax.get_lines() if ln.get_gid() == "path"]
        hidden = [a for a in ax.get_children() if a.get_gid() in ("path", "end")]
        for artist in hidden:
            artist.set_visible(False)
        background = figure_png(fig, dpi)
        for artist in hidden:
            artist.set_visible(True)
        html = _player_html(fig, ax, runs, path_lines, idx, background, still, interval, dpi)
        if len(html.encode()) <= max_bytes or dpi <= 72:
            break
        dpi = max(72, int(dpi * 0.8))
    out = TrajectoryAnimation(html, still, len(idx), land.title, dpi)
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


# --- chapter 05 ---------------------------------------------------------------------------------


def plot_lr_wd_grids(
    grids: Sequence[Any],
    metric: str = "test_loss",
    *,
    vmax: float | None = None,
    cell_text: bool = True,
    ncols: int = 2,
    panel_size: tuple[float, float] = (4.3, 3.3),
):
    """Side-by-side lr × wd heat-maps with one shared, logarithmic colour scale.

    ``grids`` are :class:`course_lib.experiments.weight_decay.GridResult` (anything with
    ``lrs``, ``wds``, ``label`` and ``mean(metric)``). Rows: learning rate, columns: weight
    decay; the best cell of each panel is outlined and starred, each row's best cell gets a dot,
    and a diverged cell (NaN) is drawn hatched grey with "div." — never coloured from a NaN.
    ``vmax`` caps the colour scale (values above it get the top colour; default: the largest
    finite value). Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    means = [np.asarray(g.mean(metric), dtype=float) for g in grids]
    finite = np.concatenate([m[np.isfinite(m)] for m in means])
    lo = float(finite.min())
    hi = float(finite.max()) if vmax is None else float(vmax)
    norm = LogNorm(vmin=lo, vmax=max(hi, lo * 1.01))
    nrows = int(np.ceil(len(grids) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols + 1.0, panel_size[1] * nrows),
        dpi=MIN_DPI, squeeze=False, constrained_layout=True,
    )  # fmt: skip
    image = None
    for ax, grid, m in zip(axes.flat, grids, means):
        shown = np.ma.masked_invalid(np.minimum(m, hi))
        image = ax.imshow(shown, cmap="viridis_r", norm=norm, origin="lower", aspect="auto")
        ax.set_facecolor("0.85")
        rows, cols = m.shape
        for i in range(rows):
            row = m[i]
            if np.isfinite(row).any():
                j = int(np.nanargmin(row))
                ax.plot(j, i, "o", ms=4, color="white", mec="black", mew=0.6)
            for j in range(cols):
                if not np.isfinite(m[i, j]):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                                           color="0.4", lw=0))  # fmt: skip
                    ax.text(j, i, "div.", ha="center", va="center", fontsize=MIN_FONT_PT)
                elif cell_text:
                    dark = norm(min(m[i, j], hi)) > 0.55
                    text = f"{m[i, j]:.3g}" if m[i, j] < 100 else f"{m[i, j]:.0e}"
                    ax.text(j, i + 0.27, text, ha="center", va="center",
                            fontsize=MIN_FONT_PT, color="white" if dark else "black")
        bi, bj = np.unravel_index(np.nanargmin(m), m.shape)
        ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.plot(bj, bi, "*", ms=13, color="red", mec="white", mew=0.8)
        ax.set_xticks(range(cols), [f"{w:g}" for w in grid.wds])
        ax.set_yticks(range(rows), [f"{lr:g}" for lr in grid.lrs])
        ax.set_xlabel("weight_decay λ (PyTorch convention)")
        ax.set_ylabel("learning rate η")
        ax.set_title(grid.label, fontsize=MIN_FONT_PT + 1)
    for ax in list(axes.flat)[len(grids):]:
        ax.set_visible(False)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.9)
        bar.set_label(f"{metric.replace('_', ' ')}, mean over seeds (log scale)")
    return fig, axes


def plot_effective_decay(decays: Mapping[str, np.ndarray], adamw: float, *, ax=None):
    """Histogram of the per-step decay of every coordinate under Adam + L2, one row per group of
    parameters (``decays``: label → array), with AdamW's single value as a dashed line.
    Log x-axis. Returns ``(fig, ax)``."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(8.0, 3.6), dpi=MIN_DPI)
    else:
        fig = ax.figure
    values = np.concatenate([np.asarray(v, float).ravel() for v in decays.values()])
    bins = np.logspace(np.log10(min(values.min(), adamw)) - 0.1,
                       np.log10(max(values.max(), adamw)) + 0.1, 50)  # fmt: skip
    for k, (label, v) in enumerate(decays.items()):
        ax.hist(np.asarray(v, float).ravel(), bins=bins, histtype="step", lw=1.6,
                color=f"C{k}", label=f"Adam + L2, {label}")  # fmt: skip
    ax.axvline(adamw, color="black", ls="--", lw=1.4, label="AdamW, every coordinate: ηλ")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("decay per step d = ηλ/(√v̂ + ε) (fraction of the weight, log scale)")
    ax.set_ylabel("number of coordinates (log)")
    add_legend(ax, "right")
    return fig, ax


# --- chapter 06 -------------------------------------------------------------------------------


def plot_online_runs(
    runs: Mapping[str, Any], axes: Sequence[Axes] | None = None, *, title: str = ""
) -> tuple[Figure, Sequence[Axes]]:
    r"""Runs on linear online losses on :math:`[-1, 1]` (``name -> OnlineRun`` from
    :mod:`course_lib.experiments.amsgrad`): the iterate :math:`x_t` (left; the best point −1 and
    the worst +1 marked) and the average regret :math:`R_t/t` (right, log scale)."""
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11.0, 3.9), dpi=MIN_DPI)
    fig = axes[0].figure
    for (name, run), style in zip(runs.items(), LINESTYLES * 4):
        t = np.arange(len(run.x))
        axes[0].plot(t, run.x, style, lw=1.4, label=name)
        steps = np.arange(1, len(run.regret) + 1)
        axes[1].loglog(steps, np.clip(run.average_regret, 1e-4, None), style, lw=1.4, label=name)
    axes[0].axhline(-1, color="tab:green", lw=0.8, ls=":")
    axes[0].axhline(1, color="tab:red", lw=0.8, ls=":")
    axes[0].text(0.99, -0.93, "best point −1", color="tab:green", ha="right",
                 transform=axes[0].get_yaxis_transform(), fontsize=MIN_FONT_PT)
    axes[0].text(0.99, 0.88, "worst point +1", color="tab:red", ha="right", va="top",
                 transform=axes[0].get_yaxis_transform(), fontsize=MIN_FONT_PT)
    axes[0].set_xscale("symlog", linthresh=10)
    axes[0].set_xlim(0, max(len(run.x) for run in runs.values()))
    axes[0].set_ylim(-1.1, 1.1)
    axes[0].set_xlabel("step t (log scale after 10)")
    axes[0].set_ylabel("iterate x_t")
    axes[1].set_xlabel("step t")
    axes[1].set_ylabel("average regret R_t / t (log scale)")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=MIN_FONT_PT + 1)
    add_legend(axes[1], "right")
    fig.tight_layout()
    return fig, axes


def plot_failure_map(
    beta1s: Sequence[float],
    beta2s: Sequence[float],
    maps: Mapping[str, np.ndarray],
    axes: Sequence[Axes] | None = None,
) -> tuple[Figure, Sequence[Axes]]:
    r"""One heat-map per optimizer of the worst final iterate over (β2, β1) (from
    :func:`course_lib.experiments.amsgrad.adam_online_sweep`; +1 worst point, −1 best), with the
    curve :math:`\beta_1 = \sqrt{\beta_2}` of Reddi et al.'s Theorems 2–3: below it
    (:math:`\beta_1 < \sqrt{\beta_2}`) a problem on which Adam fails is guaranteed to exist."""
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(maps), figsize=(5.4 * len(maps), 4.3), dpi=MIN_DPI)
        axes = np.atleast_1d(axes)
    fig = axes[0].figure
    b1, b2 = np.asarray(beta1s, dtype=float), np.asarray(beta2s, dtype=float)
    image = None
    for ax, (name, worst) in zip(axes, maps.items()):
        image = ax.pcolormesh(np.arange(len(b2) + 1), np.arange(len(b1) + 1), worst,
                              cmap="coolwarm", vmin=-1, vmax=1)
        ax.set_xticks(np.arange(len(b2)) + 0.5, [f"{b:g}" for b in b2], fontsize=MIN_FONT_PT)
        ax.set_yticks(np.arange(len(b1)) + 0.5, [f"{b:.2g}" for b in b1], fontsize=MIN_FONT_PT)
        # the curve β1 = √β2 in cell coordinates (linear interpolation between cell centres)
        fine = np.linspace(b2.min(), b2.max(), 200)
        x = np.interp(fine, b2, np.arange(len(b2)) + 0.5)
        y = np.interp(np.sqrt(fine), b1, np.arange(len(b1)) + 0.5, right=np.nan)
        ax.plot(x, y, "k--", lw=1.5, label="β1 = √β2")
        ax.set_xlabel("β2")
        if ax is axes[0]:
            ax.set_ylabel("β1")
        ax.set_title(name, fontsize=MIN_FONT_PT + 1)
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize=MIN_FONT_PT,
                  frameon=False)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
        bar.set_label("worst mean x over the last period (+1 = worst point)")
    return fig, axes


def plot_v_hat_sequences(
    sequences: Mapping[str, np.ndarray], ax: Axes | None = None, *, title: str = ""
) -> tuple[Figure, Axes]:
    r"""The :math:`\hat v_t` each AMSGrad convention divides by (``label -> values``), log
    scale, one line style per convention so that coinciding curves stay visible."""
    fig, ax = _fig_ax(ax, figsize=(8.0, 3.8))
    widths = [3.0, 2.2, 1.6, 1.0]
    for (label, values), style, width in zip(sequences.items(), LINESTYLES, widths):
        t = np.arange(1, len(values) + 1)
        ax.plot(t, values, style, lw=width, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("v̂_t (log scale)")
    if title:
        ax.set_title(title, fontsize=MIN_FONT_PT + 1)
    ax.grid(alpha=0.3, which="both")
    add_legend(ax, "right")
    return fig, ax


__all__ += ["plot_failure_map", "plot_online_runs", "plot_v_hat_sequences"]


# --- chapter 09 ---

OPTIMIZER_COLORS = {"SGD": "C0", "Momentum": "C1", "Adam": "C2", "Adai": "C3"}  # one per name


def plot_escape_times(
    table: Mapping[tuple[str, float], Any], max_steps: int, figsize=(11.0, 4.2)
) -> tuple[Figure, Sequence[Axes]]:
    """Saddle escape, two panels. Left: the distribution (empirical CDF) of the steps each run
    needed, per optimizer, at the smallest curvature. Right: the median against the curvature
    (log-log) with the 25–75 % range as a band. ``table[(optimizer, curvature)]`` holds the steps
    of every run (``inf`` = still at the saddle after ``max_steps``)."""
    names = list(dict.fromkeys(n for n, _ in table))
    hs = sorted({h for _, h in table})
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize, dpi=MIN_DPI)
    for i, name in enumerate(names):
        steps = np.sort(np.asarray(table[(name, hs[0])], dtype=float))
        frac = np.arange(1, len(steps) + 1) / len(steps)
        ok = np.isfinite(steps)
        color = OPTIMIZER_COLORS.get(name)
        ax1.step(steps[ok], frac[ok], where="post", ls=LINESTYLES[i % 4], lw=1.8, color=color)
        q = np.array([np.quantile(np.asarray(table[(name, h)], dtype=float), [0.25, 0.5, 0.75])
                      for h in hs])
        q = np.where(np.isfinite(q), q, np.nan)
        ax2.plot(hs, q[:, 1], marker="o", ls=LINESTYLES[i % 4], lw=1.8, color=color, label=name)
        ax2.fill_between(hs, q[:, 0], q[:, 2], alpha=0.12, color=color)
    ax1.set_xscale("log")
    ax1.set_xlabel("steps to leave the saddle (|y| ≥ 1), log scale")
    ax1.set_ylabel("fraction of runs that have left")
    ax1.set_title(f"distribution over runs at h = {hs[0]:g} (colours as on the right)\n"
                  f"curves end below 1: runs still there after {max_steps} steps",
                  fontsize=MIN_FONT_PT + 1)
    ax1.grid(alpha=0.3)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("negative curvature h along y (log scale)")
    ax2.set_ylabel("median steps to leave (log scale)")
    ax2.set_title("median and 25–75 % range of the runs", fontsize=MIN_FONT_PT + 1)
    ax2.grid(alpha=0.3, which="both")
    add_legend(ax2, "right")
    fig.tight_layout()
    return fig, (ax1, ax2)


def plot_basin_fractions(
    sweep: Mapping[str, Mapping[float, Any]], figsize=(7.5, 4.0)
) -> tuple[Figure, Axes]:
    """Fraction of runs that end in the flat basin against the learning rate, per optimizer,
    with 95 % Wilson intervals as error bars; 0.5 (dotted) is no preference.
    ``sweep[optimizer][lr]`` is a :class:`course_lib.experiments.saddles.BasinResult`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, dpi=MIN_DPI)
    for i, (name, by_lr) in enumerate(sweep.items()):
        lrs = sorted(by_lr)
        frac = np.array([by_lr[lr].fraction for lr in lrs])
        err = np.array([[by_lr[lr].fraction - by_lr[lr].low, by_lr[lr].high - by_lr[lr].fraction]
                        for lr in lrs]).T
        ax.errorbar(lrs, frac, yerr=err, marker="o", capsize=3, ls=LINESTYLES[i % 4], label=name,
                    color=OPTIMIZER_COLORS.get(name))
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0.3, 1.05)
    ax.set_xlabel("learning rate (log scale; Momentum: effective lr/(1−μ))")
    ax.set_ylabel("fraction of runs ending in the flat basin")
    ax.set_title("half the runs start in each minimum; 0.5 = no preference",
                 fontsize=MIN_FONT_PT + 1)
    ax.grid(alpha=0.3, which="both")
    add_legend(ax, "right")
    fig.tight_layout()
    return fig, ax


def plot_sharpness(
    values: Mapping[str, Sequence[float]], target: float, figsize=(6.0, 3.6)
) -> tuple[Figure, Axes]:
    """Top Hessian eigenvalue at matched training loss: one dot per seed, a bar at the mean."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, dpi=MIN_DPI)
    for i, (name, vals) in enumerate(values.items()):
        vals = np.asarray(vals, dtype=float)
        ax.plot(np.full(len(vals), i) + np.linspace(-0.08, 0.08, len(vals)), vals, "o", ms=6,
                color=OPTIMIZER_COLORS.get(name))
        ax.hlines(vals.mean(), i - 0.25, i + 0.25, color="k", lw=2)
    ax.set_xticks(range(len(values)), list(values))
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set_ylim(0, None)
    ax.set_ylabel("top Hessian eigenvalue λ_max")
    ax.set_title(f"digits MLP at training loss < {target:g} (dots: seeds, bar: mean)",
                 fontsize=MIN_FONT_PT + 1)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig, ax


# --- chapter 08 ---


def plot_adaptive_lr_spread(spread: Any, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Variance of Adam's adaptive learning rate per step, with and without RAdam's rectifier,
    against the long-run variance the rectifier aims at (log-log; from
    :func:`course_lib.experiments.rectification.simulate_adaptive_lr`)."""
    fig, ax = _fig_ax(ax, figsize=(8.0, 4.2))
    ax.loglog(spread.t, spread.var_adam, "-", lw=2, label=r"Adam: Var[$\psi_t$]")
    ax.loglog(spread.t, spread.var_rectified, "--", lw=2, label=r"RAdam: Var[$r_t\,\psi_t$]")
    ax.axhline(spread.var_limit, color="k", ls=":", lw=1.2, label=r"target Var$_\infty$")
    ax.set_xlabel("step t (log scale)")
    ax.set_ylabel("variance over runs (units of 1/σ², log scale)")
    ax.set_title(
        f"adaptive lr ψ_t = √((1−β2^t)/v_t), β2 = {spread.beta2:g}, "
        f"N(0, 1) gradients, {spread.runs:,} runs",
        fontsize=MIN_FONT_PT + 1,
    )
    ax.grid(alpha=0.3, which="both")
    add_legend(ax, "right")
    fig.tight_layout()
    return fig, ax


def plot_lr_grid(grid: Any, title: str, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Final training loss against the learning rate, one line per optimizer: the median over
    seeds with a band from the best to the worst seed; diverged runs are drawn at the top of the
    axes as crosses labelled "diverged" (from
    :func:`course_lib.experiments.rectification.train_grid`)."""
    fig, ax = _fig_ax(ax, figsize=(8.0, 4.2))
    finite = np.concatenate([v[np.isfinite(v)] for v in grid.loss.values()])
    top = float(finite.max()) * 3 if finite.size else 1.0
    for i, (name, loss) in enumerate(grid.loss.items()):
        lrs = np.asarray(grid.lrs[name])
        shown = np.where(np.isfinite(loss), loss, np.nan)
        med = np.nanmedian(np.where(np.isfinite(loss), loss, top), axis=1)
        (line,) = ax.loglog(lrs, med, LINESTYLES[i % 4], marker="o", lw=2, label=name)
        ax.fill_between(lrs, np.nanmin(shown, axis=1), np.nanmax(shown, axis=1),
                        color=line.get_color(), alpha=0.15)
        bad = ~np.isfinite(loss).all(axis=1)
        if bad.any():
            ax.plot(lrs[bad], np.full(bad.sum(), top), "x", ms=9, color=line.get_color(),
                    label=f"{name}: diverged")
    ax.set_xlabel("learning rate η (log scale)")
    ax.set_ylabel("training loss, last epoch (log scale)")
    ax.set_title(title, fontsize=MIN_FONT_PT + 1)
    ax.grid(alpha=0.3, which="both")
    add_legend(ax, "right")
    fig.tight_layout()
    return fig, ax


__all__ += ["plot_adaptive_lr_spread", "plot_lr_grid"]


# --- chapter 11 ---


def plot_league(league, ax=None):
    """The league's held-out loss, mean ± standard deviation over seeds, one row per optimizer
    (best first, log scale), each labelled with its tuned lr and its state memory."""
    import matplotlib.pyplot as plt

    rows = league.rows[::-1]  # best at the top
    if ax is None:
        fig, ax = plt.subplots(figsize=(9.0, 0.32 * len(rows) + 1.6), dpi=MIN_DPI)
    else:
        fig = ax.figure
    y = np.arange(len(rows))
    means = np.array([r["mean"] for r in rows])
    stds = np.array([r["std"] for r in rows])
    colors = [f"C{min(int(round(r['state_ratio'])), 4)}" for r in rows]
    ax.errorbar(means, y, xerr=stds, fmt="none", ecolor="#555", capsize=3)
    ax.scatter(means, y, c=colors, zorder=3, s=30)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['name']} (lr {r['best_lr']:g}, state {r['state_ratio']:.0f}×)"
                        for r in rows], fontsize=MIN_FONT_PT)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("held-out cross-entropy after the budget (mean ± std over seeds, log scale)")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title("League on digits: lr tuned per optimizer; colour = state buffers "
                 "(C0 none, C1 one, C2 two, …)", fontsize=MIN_FONT_PT + 1)  # fmt: skip
    fig.tight_layout()
    return fig, ax


__all__ += ["plot_league"]


def plot_exact_zeros(runs, informative: int = 20, floor: float = 1e-5, ax=None):
    """The sizes |w| of the *useless* weights (index ≥ ``informative``) learned by each run of
    :func:`course_lib.experiments.ftrl_proximal.sparsity_experiment`, one column per method, log
    scale. A weight that is exactly zero cannot sit on a log axis: it is drawn as a cross on the
    line "exactly 0" below ``floor``, with the count of such weights written above the column."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(9.0, 4.2), dpi=MIN_DPI)
    else:
        fig = ax.figure
    rng = np.random.default_rng(0)  # horizontal jitter only, for legibility
    zero_line = floor / 10
    for i, run in enumerate(runs.values()):
        useless = np.abs(np.asarray(run.weights)[informative:])
        x = i + rng.uniform(-0.25, 0.25, useless.size)
        nonzero = useless > 0
        ax.scatter(x[nonzero], np.maximum(useless[nonzero], floor), s=10, alpha=0.6, color=f"C{i}")
        ax.scatter(x[~nonzero], np.full((~nonzero).sum(), zero_line), s=14, marker="x",
                   color=f"C{i}")  # fmt: skip
        ax.text(i, zero_line * 2.2, f"{int((~nonzero).sum())} exactly 0", ha="center",
                fontsize=MIN_FONT_PT)  # fmt: skip
    ax.axhline(floor / 3, color="#999", lw=0.8, ls=":")
    ax.set_yscale("log")
    decades = range(int(np.floor(np.log10(floor))), 1)
    ax.set_yticks([zero_line, *(10.0**k for k in decades)])
    ax.set_yticklabels(["exactly 0", *(f"$10^{{{k}}}$" for k in decades)])
    ax.minorticks_off()
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([label.replace(", ", ",\n").replace(" + ", "\n+ ") for label in runs],
                       fontsize=MIN_FONT_PT)  # fmt: skip
    ax.set_ylabel("|w| of each useless feature (log scale)")
    ax.set_title("Only the proximal step puts useless weights at exactly zero",
                 fontsize=MIN_FONT_PT + 1)  # fmt: skip
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig, ax


__all__ += ["plot_exact_zeros"]


# ---------------------------------------------------------------------------------------------
# Chapter 07: the learning-rate range test
# ---------------------------------------------------------------------------------------------


def plot_lr_range(result: Any, picked: float | None = None, *, title: str = "", ax=None):
    """The loss of an lr range test against the learning rate (log axis): raw losses in grey,
    the smoothed curve on top, and the picked learning rate as a dashed line.

    ``result`` is a :class:`course_lib.experiments.lr_range.LRRangeResult`. The y-axis stops
    at 1.5 × the first smoothed loss: the final blow-up would otherwise squash everything the
    test is read for. Returns ``(fig, ax)``.
    """
    fig, ax = _fig_ax(ax, figsize=(7.0, 3.4))
    ax.semilogx(result.lrs, result.losses, color="0.7", lw=1, label="loss per batch")
    ax.semilogx(result.lrs, result.smoothed, lw=2, label="smoothed (EMA, bias-corrected)")
    ax.set_ylim(0, 1.5 * float(result.smoothed[0]))
    if picked is not None:
        ax.axvline(picked, color="C3", ls="--", lw=1.5, label=f"picked lr = {picked:.3g}")
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss")
    ax.set_title(title, fontsize=MIN_FONT_PT + 2)
    ax.legend(loc="upper left", fontsize=MIN_FONT_PT)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig, ax


__all__ += ["plot_lr_range"]


# ---------------------------------------------------------------------------------------------
# Fair comparisons: the whole lr grid of each optimizer (chapter 10)
# ---------------------------------------------------------------------------------------------


def plot_comparison_grids(
    panels: Mapping[str, Any], ylabel: str, suptitle: str = "", markers: str = "osD^v"
) -> tuple[Figure, np.ndarray]:
    """One panel per :class:`course_lib.experiments.comparison.Comparison` (``title ->
    comparison``): the metric against the learning rate for every optimizer of its grid, the
    mean over the tuning seeds with a bar from the best to the worst seed; log–log axes, shared y,
    the legend outside the last panel. Shows how sensitive each optimizer is to its lr, not only
    its best point. Returns ``(fig, axes)``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.0 * len(panels), 3.8), sharey=True, squeeze=False,
        dpi=max(MIN_DPI, matplotlib.rcParams["figure.dpi"]),
    )  # fmt: skip
    axes = axes[0]
    for ax, (title, comparison) in zip(axes, panels.items()):
        for i, (name, by_lr) in enumerate(comparison.grid.items()):
            lrs = sorted(by_lr)
            values = np.array([by_lr[lr] for lr in lrs], dtype=float)  # rows: lr, columns: seeds
            mean = values.mean(axis=1)
            yerr = [mean - values.min(axis=1), values.max(axis=1) - mean]
            ax.errorbar(lrs, mean, yerr=yerr, marker=markers[i % len(markers)], capsize=3,
                        label=name)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learning rate η (log scale)")
        ax.set_title(title, fontsize=MIN_FONT_PT + 1)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(ylabel)
    add_legend(axes[-1], "right")
    if suptitle:
        fig.suptitle(suptitle, fontsize=MIN_FONT_PT + 1)
    fig.tight_layout()
    return fig, axes


__all__ += ["plot_comparison_grids"]
