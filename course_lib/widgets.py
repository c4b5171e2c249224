"""Interactive dashboards (core ipywidgets only), each with a *static twin*.

Three explorers:

- :class:`OptimizerPlayground`: pick a landscape, one or more optimizers, the learning rate,
  momentum, β1/β2, the number of steps, the start point and the gradient noise; see the
  trajectories and the loss curves. Runs that blow up are reported as "diverged after k steps"
  instead of being drawn from NaNs.
- :class:`ScheduleExplorer`: pick a learning-rate schedule and its parameters; see lr over steps.
- :class:`BiasCorrectionExplorer`: β1, β2, t → Adam's correction factors 1/(1 − β^t) and the
  first steps of Adam on a fixed gradient sequence, with and without bias correction.

Every widget draws with its static twin (:func:`playground_static`, :func:`schedule_static`,
:func:`bias_correction_static`): plain arguments in, ``(figure, data)`` out. The twins are what
tests, nbval and PDF export use; the widget only adds sliders. After every change a widget keeps
the latest result in ``.figure`` and ``.data``, so its logic can be tested without a browser:
build it, set ``widget.controls["lr"].value = 0.5``, look at ``widget.data``.

**Before anything runs.** A notebook opened fresh (untrusted in JupyterLab, or on Colab without
a runtime) cannot draw a live widget. Each widget therefore displays a mime bundle with three
views of itself: the live widget (``application/vnd.jupyter.widget-view+json``, chosen by a
trusted front end with a kernel), the current figure as ``image/png`` (what an untrusted
JupyterLab, GitHub and nbviewer show) and one sentence of ``text/plain`` saying that the sliders
need a running kernel. Executed notebooks store all three.

Compatibility: only widgets and keyword arguments that exist in both ipywidgets 7.7 (Colab) and
8.x are used, and figures are plain matplotlib images shown in an ``Output`` (no ipympl).
"""

from __future__ import annotations

import base64
import html
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from course_lib.landscapes import LANDSCAPES, get_landscape, plural, run_optimizer
from course_lib.optim import schedules as S
from course_lib.plotting import (
    MIN_DPI,
    MIN_FONT_PT,
    add_legend,
    caption_text,
    figure_png,
    plot_losses,
    plot_schedule,
    plot_trajectories,
    short_labels,
)

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_SCHEDULES",
    "BiasCorrectionExplorer",
    "OptimizerPlayground",
    "ScheduleExplorer",
    "bias_correction_static",
    "playground_static",
    "schedule_static",
]


def _new_figure(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    """A pyplot figure for direct calls (so Jupyter shows it inline), or the one given."""
    if fig is not None:
        fig.clear()
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, dpi=MIN_DPI)


def _png(fig: Figure, dpi: int = MIN_DPI) -> bytes:
    """The figure as PNG bytes (rendered here, so no matplotlib backend setup is needed)."""
    return figure_png(fig, dpi)


def _show(output: W.Output, fig: Figure) -> None:
    """Replace what ``output`` shows with ``fig`` as a PNG image.

    The PNG is rendered explicitly rather than displaying the Figure object: a Figure built
    without pyplot has no inline formatter unless pyplot was imported, and would show as text.
    Outside a Jupyter kernel (plain Python, pytest) there is nowhere to show it: skip.
    """
    from IPython import get_ipython
    from IPython.display import Image, display

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    with output:
        output.clear_output(wait=True)
        display(Image(data=_png(fig)))


# --------------------------------------------------------------------------- optimizer playground

# name -> factory(params, *, lr, momentum, beta1, beta2). Each uses the knobs it has and ignores
# the rest. Pass your own dict (e.g. built from course_lib.optim) to the playground to swap them.
DEFAULT_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "SGD": lambda p, lr, momentum, beta1, beta2: torch.optim.SGD(p, lr=lr),
    "Momentum": lambda p, lr, momentum, beta1, beta2: torch.optim.SGD(p, lr=lr, momentum=momentum),
    "Nesterov": lambda p, lr, momentum, beta1, beta2: torch.optim.SGD(
        p, lr=lr, momentum=momentum, nesterov=True
    ),
    "AdaGrad": lambda p, lr, momentum, beta1, beta2: torch.optim.Adagrad(p, lr=lr),
    "RMSprop": lambda p, lr, momentum, beta1, beta2: torch.optim.RMSprop(p, lr=lr, alpha=beta2),
    "Adam": lambda p, lr, momentum, beta1, beta2: torch.optim.Adam(p, lr=lr, betas=(beta1, beta2)),
    "AMSGrad": lambda p, lr, momentum, beta1, beta2: torch.optim.Adam(
        p, lr=lr, betas=(beta1, beta2), amsgrad=True
    ),
}


def playground_static(
    landscape: str = "rosenbrock",
    optimizers: Sequence[str] = ("SGD", "Momentum", "Adam"),
    lr: float = 1e-3,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    steps: int = 100,
    start: Sequence[float] | None = None,
    noise: float = 0.0,
    seed: int = 0,
    *,
    optimizer_factories: Mapping[str, Callable] | None = None,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """The playground as a function: run the chosen optimizers, draw trajectories + loss curves.

    Each run is named by its key in ``optimizer_factories`` ("SGD", "Momentum", ...): the legend
    (one for both panels, right of the loss panel) shows these names, and a caption under the
    panels gives every run's full hyperparameters. When every run stopped early (diverged or
    escaped) before a loss curve could be drawn, the loss panel says so instead of showing empty
    axes.

    Returns ``(fig, data)`` with ``data = {"trajectories": [...], "messages": [...],
    "diverged": {name: step or None}, "escaped": {name: step or None}}``; each message is one line
    per optimizer, e.g. ``"SGD: diverged after 4 steps"``.
    """
    factories = dict(optimizer_factories or DEFAULT_OPTIMIZERS)
    if isinstance(optimizers, str):
        optimizers = [optimizers]
    if not optimizers:
        raise ValueError("choose at least one optimizer")
    unknown = [o for o in optimizers if o not in factories]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {unknown}; choose from {sorted(factories)}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    land = get_landscape(landscape)
    runs = []
    for name in optimizers:
        make = factories[name]

        def factory(params, make=make):
            return make(params, lr=lr, momentum=momentum, beta1=beta1, beta2=beta2)

        runs.append(
            run_optimizer(
                land, factory, steps=int(steps), start=start, noise=noise, seed=seed, label=name
            )
        )
    fig = _new_figure(fig, (11.0, 4.6))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    plot_trajectories(land, runs, ax1, legend=False, caption=False)
    names, caption = short_labels(runs)
    if any(len(tr.losses) > 1 for tr in runs):
        plot_losses(runs, ax2, log=_positive_span({n: tr.losses for n, tr in zip(names, runs)}),
                    legend=False)  # fmt: skip
        ax2.set_title("loss per step" + (" (noisy gradients)" if noise else ""))
    else:
        _say_all_stopped(ax2, runs)
    add_legend(ax2, "right", ax1.get_lines(), names)
    fig.tight_layout()
    _add_caption(fig, caption)
    data = {
        "trajectories": runs,
        "messages": [tr.message for tr in runs],
        "diverged": {n: tr.diverged_at for n, tr in zip(optimizers, runs)},
        "escaped": {n: tr.escaped_at for n, tr in zip(optimizers, runs)},
    }
    return fig, data


def _say_all_stopped(ax, runs) -> None:
    """Instead of an empty loss panel: every run stopped at once, and what to try."""
    last = max(tr.stopped_at or 0 for tr in runs)
    how = "diverged" if all(tr.diverged for tr in runs) else "stopped"
    text = f"Every run {how} within {plural(last, 'step')}:\nno loss curve to draw.\n\n" + (
        "Try a smaller learning rate." if how == "diverged" else "See the messages above."
    )
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("loss per step")


def _add_caption(fig: Figure, lines: list[str]) -> None:
    """The hyperparameters under the panels, after making room for them at the bottom."""
    if not lines:
        return
    text = caption_text(lines, fig.get_figwidth() - 0.4)
    height = (text.count("\n") + 1) * MIN_FONT_PT * 1.35 / 72 / fig.get_figheight()
    fig.subplots_adjust(bottom=fig.subplotpars.bottom + height)
    fig.text(0.01, 0.01, text, ha="left", va="bottom", fontsize=MIN_FONT_PT, color="#333")


def _positive_span(curves: Mapping[str, np.ndarray]) -> bool:
    vals = np.concatenate([np.asarray(v)[np.isfinite(v)] for v in curves.values()])
    return bool(vals.size and np.all(vals > 0) and vals.max() / vals.min() > 100)


def _set_range(slider: W.Widget, lo: float, hi: float, value: float) -> None:
    """Change a slider's range without ever having min > max (both ipywidgets 7 and 8 refuse)."""
    if lo > slider.max:
        slider.max = hi
        slider.min = lo
    else:
        slider.min = lo
        slider.max = hi
    slider.value = min(max(value, lo), hi)


class _Explorer(W.VBox):
    """Common plumbing: controls -> static twin -> Output, with the latest result kept."""

    def __init__(self, controls: dict[str, W.Widget], layout_rows: list, figsize):
        self.controls = controls
        self.output = W.Output()
        self.status = W.HTML(value="")
        self.figure = Figure(figsize=figsize, dpi=MIN_DPI)
        self.data: dict[str, Any] = {}
        self.error: str | None = None
        self._hold = False
        super().__init__(children=[*layout_rows, self.status, self.output])
        for w in controls.values():
            w.observe(self._on_change, names="value")

    def _on_change(self, _change=None) -> None:
        if not self._hold:
            self.update()

    def _compute(self) -> tuple[Figure, dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _status_html(self) -> str:
        return ""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        """The live widget, plus what a front end without a kernel can show instead.

        ``image/png`` is the current figure (an untrusted JupyterLab and static viewers show it),
        ``text/plain`` one sentence instead of the widget's repr. A trusted front end with a
        kernel picks the widget view.
        """
        parent = getattr(super(), "_repr_mimebundle_", None)
        bundle = dict(parent(**kwargs) or {}) if parent is not None else self._widget_view()
        bundle["image/png"] = base64.b64encode(_png(self.figure)).decode("ascii")
        bundle["text/plain"] = (
            f"{type(self).__name__}: interactive; its sliders need a running kernel (run this "
            "cell). The picture shows its starting settings."
        )
        return bundle

    def _widget_view(self) -> dict:
        """The widget-view entry ipywidgets 7 puts in its display message."""
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self._model_id,
            }
        }

    if hasattr(W.Widget, "_ipython_display_"):  # ipywidgets 7 displays through this hook

        def _ipython_display_(self, **kwargs):
            from IPython.display import display

            display(self._repr_mimebundle_(), raw=True)
            self._handle_displayed(**kwargs)

    def update(self) -> None:
        """Recompute with the current control values and redraw."""
        try:
            _, self.data = self._compute()
            self.error = None
            self.status.value = self._status_html()
        except ValueError as err:  # bad combination of settings: say so, keep the old picture
            self.error = str(err)
            self.status.value = f"<b style='color:#b00'>Cannot run: {_escape(str(err))}</b>"
            return
        _show(self.output, self.figure)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _nowrap_numbers(text: str) -> str:
    """Wrap every number in a span the browser never breaks (``5.493e-10`` stays whole)."""
    return _NUMBER.sub(lambda m: f"<span style='white-space:nowrap'>{m.group(0)}</span>", text)


class OptimizerPlayground(_Explorer):
    """Optimizers on 2-D landscapes, live. Static twin: :func:`playground_static`.

    >>> pg = OptimizerPlayground(landscape="quadratic", optimizers=("SGD",), lr=0.5)
    >>> pg.controls["lr"].value = 3.0          # beyond 2/λ_max = 2: SGD diverges
    >>> pg.data["messages"][0]
    'SGD: diverged after 5 steps'
    >>> "Every run diverged" in pg.status.value
    True
    """

    def __init__(
        self,
        landscape: str = "rosenbrock",
        optimizers: Sequence[str] = ("SGD", "Momentum", "Adam"),
        lr: float = 1e-3,
        momentum: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        steps: int = 100,
        noise: float = 0.0,
        *,
        optimizer_factories: Mapping[str, Callable] | None = None,
        landscapes: Sequence[str] | None = None,
    ):
        self.factories = dict(optimizer_factories or DEFAULT_OPTIMIZERS)
        names = list(landscapes or [n for n in LANDSCAPES if n != "reddi"])
        if landscape not in names:
            raise ValueError(f"landscape {landscape!r} is not among {names}")
        land = get_landscape(landscape)
        wide = {"description_width": "initial"}
        c = {
            "landscape": W.Dropdown(options=names, value=landscape, description="landscape"),
            "optimizers": W.SelectMultiple(
                options=list(self.factories),
                value=tuple(optimizers),
                rows=min(7, len(self.factories)),
                description="optimizers",
            ),
            "lr": W.FloatLogSlider(
                value=lr,
                base=10,
                min=-5,
                max=1,
                step=0.05,
                description="lr",
                continuous_update=False,
                readout_format=".3g",
            ),
            "momentum": W.FloatSlider(
                value=momentum,
                min=0.0,
                max=0.99,
                step=0.01,
                description="momentum",
                continuous_update=False,
            ),
            "beta1": W.FloatSlider(
                value=beta1,
                min=0.0,
                max=0.99,
                step=0.01,
                description="β1",
                continuous_update=False,
            ),
            "beta2": W.FloatSlider(
                value=beta2,
                min=0.9,
                max=0.9999,
                step=0.0001,
                description="β2",
                continuous_update=False,
                readout_format=".4f",
            ),
            "steps": W.IntSlider(
                value=steps, min=1, max=500, step=1, description="steps", continuous_update=False
            ),
            "noise": W.FloatSlider(
                value=noise,
                min=0.0,
                max=5.0,
                step=0.05,
                description="grad noise",
                continuous_update=False,
                style=wide,
            ),
            "x0": W.FloatSlider(
                value=land.start[0],
                min=land.xlim[0],
                max=land.xlim[1],
                step=0.01,
                description="start x",
                continuous_update=False,
            ),
            "y0": W.FloatSlider(
                value=land.start[1],
                min=land.ylim[0],
                max=land.ylim[1],
                step=0.01,
                description="start y",
                continuous_update=False,
            ),
        }
        rows = [
            W.HBox([c["landscape"], c["optimizers"]]),
            W.HBox([c["lr"], c["momentum"], c["steps"]]),
            W.HBox([c["beta1"], c["beta2"], c["noise"]]),
            W.HBox([c["x0"], c["y0"]]),
        ]
        super().__init__(c, rows, figsize=(11.0, 4.6))
        c["landscape"].observe(self._on_landscape, names="value")
        self.update()

    def _on_landscape(self, change) -> None:
        """A new landscape: move the start sliders to its window and its default start."""
        land = get_landscape(change["new"])
        self._hold = True
        try:
            _set_range(self.controls["x0"], *land.xlim, land.start[0])
            _set_range(self.controls["y0"], *land.ylim, land.start[1])
        finally:
            self._hold = False
        self.update()

    def _compute(self):
        v = {k: w.value for k, w in self.controls.items()}
        return playground_static(
            v["landscape"],
            list(v["optimizers"]),
            lr=v["lr"],
            momentum=v["momentum"],
            beta1=v["beta1"],
            beta2=v["beta2"],
            steps=v["steps"],
            start=(v["x0"], v["y0"]),
            noise=v["noise"],
            optimizer_factories=self.factories,
            fig=self.figure,
        )

    def _status_html(self) -> str:
        runs = self.data["trajectories"]
        colors = [to_hex(line.get_color()) for line in self.figure.axes[0].get_lines()]
        lines = []
        for msg, tr, color in zip(self.data["messages"], runs, colors):
            style = {"diverged": "color:#b00;font-weight:bold", "escaped": "color:#a60"}
            swatch = f"<span style='color:{color}'>&#9632;</span> "
            text = _nowrap_numbers(_escape(msg))
            lines.append(f"<div style='{style.get(tr.outcome, 'color:#333')}'>{swatch}{text}</div>")
        if all(tr.diverged for tr in runs):
            last = max(tr.diverged_at for tr in runs)
            lines.append(
                f"<div style='color:#b00'>Every run diverged within {plural(last, 'step')}: "
                "try a smaller learning rate.</div>"
            )
        return "".join(lines)


# --------------------------------------------------------------------------- schedule explorer


def _one_cycle(
    max_lr: float = 0.1,
    total_steps: int = 300,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> S.OneCycle:
    """:class:`~course_lib.optim.schedules.OneCycle` with its numeric knobs only (cosine phases,
    two of them: torch's ``OneCycleLR`` defaults), so that every knob is a slider."""
    return S.OneCycle(max_lr, total_steps, pct_start, "cos", div_factor, final_div_factor)


# name -> factory(**params) -> schedule(step) -> lr; the factories' defaults are the sliders'
# starting values. course_lib.optim.schedules fits too: pass {"cosine": CosineAnnealing, ...} and
# the values of required parameters in `defaults`.
DEFAULT_SCHEDULES: dict[str, Callable[..., Callable[[int], float]]] = {
    "constant": partial(S.Constant, lr=0.1),
    "step decay": partial(S.StepDecay, lr=0.1, step_size=30, gamma=0.1),
    "exponential": partial(S.ExponentialDecay, lr=0.1, gamma=0.97),
    "1/sqrt(t)": partial(S.InverseSqrt, lr=0.1),
    "linear": partial(S.LinearSchedule, lr=0.1, total_iters=200),
    "cosine": partial(S.CosineAnnealing, lr=0.1, T_max=200),
    "warmup + cosine": partial(S.WarmupCosine, lr=0.1, warmup_steps=20, total_steps=200),
    "cosine restarts (SGDR)": partial(S.CosineWarmRestarts, lr=0.1, T_0=20, T_mult=2),
    "transformer (Noam)": partial(S.Noam, d_model=512, warmup=4000),
    "one-cycle": _one_cycle,
}
_DEFAULT_STEPS = {"transformer (Noam)": 20000, "cosine restarts (SGDR)": 300}


def _schedule_params(factory: Callable, defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameter name -> starting value: ``defaults`` first, then the factory's own defaults."""
    out: dict[str, Any] = {}
    defaults = dict(defaults or {})
    for name, p in inspect.signature(factory).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in defaults:
            out[name] = defaults.pop(name)
        elif p.default is not inspect.Parameter.empty:
            out[name] = p.default
        else:
            raise ValueError(f"schedule parameter {name!r} has no default: give it in defaults")
    if defaults:
        raise ValueError(f"unknown schedule parameter(s) {sorted(defaults)}")
    return out


def schedule_static(
    schedule: str | Callable[[int], float] = "cosine",
    steps: int | None = None,
    *,
    schedules: Mapping[str, Callable] | None = None,
    fig: Figure | None = None,
    log: bool | None = None,
    **params: Any,
) -> tuple[Figure, np.ndarray]:
    """The schedule explorer as a function: lr over ``steps`` steps; returns ``(fig, lrs)``.

    ``schedule`` is a name from ``schedules`` (default :data:`DEFAULT_SCHEDULES`), built with
    ``**params``, or a ready callable ``step -> lr``. ``log=None`` uses a log scale when the
    learning rates span more than two decades.
    """
    if callable(schedule):
        if params:
            raise ValueError("params can only be given together with a schedule name")
        fn, title = schedule, getattr(schedule, "__name__", "schedule")
    else:
        table = dict(schedules or DEFAULT_SCHEDULES)
        if schedule not in table:
            raise ValueError(f"unknown schedule {schedule!r}; choose from {sorted(table)}")
        fn = table[schedule](**_schedule_params(table[schedule], params))
        shown = ", ".join(
            f"{k}={v:g}" for k, v in _schedule_params(table[schedule], params).items()
        )
        title = f"{schedule}({shown})"
        if steps is None:
            steps = _DEFAULT_STEPS.get(schedule, 300)
    steps = 300 if steps is None else steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    lrs = np.array([float(fn(t)) for t in range(steps)])
    fig = _new_figure(fig, (7.0, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    plot_schedule(lrs, ax=ax, log=log)
    ax.set_title(caption_text([title], fig.get_figwidth() - 0.8, MIN_FONT_PT + 1),
                 fontsize=MIN_FONT_PT + 1)  # fmt: skip
    fig.tight_layout()
    return fig, lrs


def _steps_max(steps: int) -> int:
    """The steps slider's range: 5× the schedule's default, so the handle starts mid-way."""
    return max(1000, 5 * int(steps))


def _param_slider(name: str, value: Any, rng: tuple | None) -> W.Widget:
    common = {
        "description": name,
        "continuous_update": False,
        "style": {"description_width": "initial"},
    }
    if rng is not None:
        lo, hi, step = rng
        cls = (
            W.IntSlider if isinstance(value, int) and not isinstance(value, bool) else W.FloatSlider
        )
        return cls(value=value, min=lo, max=hi, step=step, **common)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"schedule parameter {name!r}: cannot make a slider for {value!r}")
    if isinstance(value, int):
        return W.IntSlider(value=value, min=1, max=max(10, 4 * value), step=1, **common)
    if "lr" in name.lower() and value > 0:
        return W.FloatLogSlider(
            value=value, base=10, min=-6, max=1, step=0.05, readout_format=".3g", **common
        )
    if 0 < value < 1 or "lr" in name.lower():
        return W.FloatSlider(
            value=value, min=0.0, max=1.0, step=0.001, readout_format=".3f", **common
        )
    return W.FloatSlider(value=value, min=0.0, max=max(1.0, 4 * value), step=0.01, **common)


class ScheduleExplorer(_Explorer):
    """Pick a schedule and its parameters; see lr over steps. Static twin: :func:`schedule_static`.

    ``schedules``: ``name -> factory(**params) -> (step -> lr)`` (default
    :data:`DEFAULT_SCHEDULES`); sliders are made from the factory's parameters, starting at
    ``defaults[name]`` or the factory's defaults. ``ranges`` overrides a slider's
    ``(min, max, step)`` by parameter name.
    """

    def __init__(
        self,
        schedule: str | None = None,
        steps: int | None = None,
        *,
        schedules: Mapping[str, Callable] | None = None,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
        ranges: Mapping[str, tuple] | None = None,
    ):
        self.schedules = dict(schedules or DEFAULT_SCHEDULES)
        self.defaults = {k: dict(v) for k, v in (defaults or {}).items()}
        self.ranges = dict(ranges or {})
        schedule = schedule or next(iter(self.schedules))
        if schedule not in self.schedules:
            raise ValueError(f"unknown schedule {schedule!r}; choose from {sorted(self.schedules)}")
        steps = steps or _DEFAULT_STEPS.get(schedule, 300)
        c = {
            "schedule": W.Dropdown(
                options=list(self.schedules), value=schedule, description="schedule"
            ),
            "steps": W.IntSlider(
                value=steps,
                min=10,
                max=_steps_max(steps),
                step=10,
                description="steps",
                continuous_update=False,
            ),
            "log": W.Checkbox(value=False, description="log scale (else automatic)"),
        }
        self.param_box = W.VBox([])
        self.param_controls: dict[str, W.Widget] = {}
        super().__init__(
            c, [W.HBox([c["schedule"], c["steps"], c["log"]]), self.param_box], (7.0, 3.4)
        )
        c["schedule"].unobserve(self._on_change, names="value")
        c["schedule"].observe(self._on_schedule, names="value")
        self._build_params(schedule)
        self.update()

    def _build_params(self, name: str) -> None:
        for w in self.param_controls.values():
            w.unobserve(self._on_change, names="value")
        values = _schedule_params(self.schedules[name], self.defaults.get(name))
        self.param_controls = {
            k: _param_slider(k, v, self.ranges.get(k)) for k, v in values.items()
        }
        for w in self.param_controls.values():
            w.observe(self._on_change, names="value")
        self.param_box.children = list(self.param_controls.values())

    def _on_schedule(self, change) -> None:
        self._hold = True
        try:
            self._build_params(change["new"])
            if change["new"] in _DEFAULT_STEPS:
                steps = _DEFAULT_STEPS[change["new"]]
                _set_range(self.controls["steps"], 10, _steps_max(steps), steps)
        finally:
            self._hold = False
        self.update()

    def _compute(self):
        params = {k: w.value for k, w in self.param_controls.items()}
        fig, lrs = schedule_static(
            self.controls["schedule"].value,
            int(self.controls["steps"].value),
            schedules=self.schedules,
            fig=self.figure,
            log=self.controls["log"].value or None,  # unticked: automatic
            **params,
        )
        return fig, {"lrs": lrs, "params": params}

    def _status_html(self) -> str:
        lrs = self.data["lrs"]
        text = (
            f"lr: start {lrs[0]:.4g}, max {lrs.max():.4g} (first at step {int(lrs.argmax())}), "
            f"min {lrs.min():.4g}, end {lrs[-1]:.4g}"
        )
        restarts = restart_steps(lrs)
        if restarts:
            shown = ", ".join(str(t) for t in restarts[:8]) + (" …" if len(restarts) > 8 else "")
            text += f"; restarts at steps {shown}"
        return text


def restart_steps(lrs: Sequence[float] | np.ndarray) -> list[int]:
    """Steps at which the lr jumps *up* by more than a quarter of its range (a warm restart).

    A warmup rises by small increments and is not counted; SGDR's jump back to the peak is.
    """
    lrs = np.asarray(lrs, dtype=float)
    if lrs.size < 2:
        return []
    span = float(np.nanmax(lrs) - np.nanmin(lrs))
    jumps = np.diff(lrs)
    return [int(t) + 1 for t in np.flatnonzero(jumps > 0.25 * span)] if span > 0 else []


# --------------------------------------------------------------------------- bias correction


def bias_correction_static(
    beta1: float = 0.9,
    beta2: float = 0.999,
    steps: int = 20,
    grads: Sequence[float] | None = None,
    lr: float = 1e-3,
    eps: float = 1e-8,
    *,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, np.ndarray]]:
    """Adam's bias correction, computed: factors 1/(1 − β^t) and the first steps with/without it.

    With zero-initialised moments, ``m_t = (1 − β1) Σ β1^{t−i} g_i`` is too small by the factor
    ``1 − β1^t`` (likewise ``v_t`` by ``1 − β2^t``). On the gradient sequence ``grads``
    (default: a constant 1, where the ideal step is exactly ``lr``) this returns, per step t,
    ``m, v, m_hat, v_hat`` and the update sizes ``lr·m̂/(√v̂ + ε)`` (corrected) and
    ``lr·m/(√v + ε)`` (uncorrected). With β2 = 0.999 the uncorrected first step is about
    √1000 · 0.1 ≈ 3.2 times too large.
    """
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must be in [0, 1), got beta1={beta1}, beta2={beta2}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    g = np.ones(steps) if grads is None else np.asarray(grads, dtype=float)
    if g.ndim != 1 or len(g) < steps:
        raise ValueError(f"grads must be a 1-D sequence with at least {steps} values")
    g = g[:steps]
    t = np.arange(1, steps + 1)
    c1, c2 = 1 / (1 - beta1**t), 1 / (1 - beta2**t)
    m = np.zeros(steps)
    v = np.zeros(steps)
    mi = vi = 0.0
    for i in range(steps):
        mi = beta1 * mi + (1 - beta1) * g[i]
        vi = beta2 * vi + (1 - beta2) * g[i] ** 2
        m[i], v[i] = mi, vi
    m_hat, v_hat = m * c1, v * c2
    upd_c = lr * m_hat / (np.sqrt(v_hat) + eps)
    upd_u = lr * m / (np.sqrt(v) + eps)
    data = {
        "t": t,
        "grads": g,
        "correction1": c1,
        "correction2": c2,
        "m": m,
        "v": v,
        "m_hat": m_hat,
        "v_hat": v_hat,
        "update_corrected": upd_c,
        "update_uncorrected": upd_u,
    }
    fig = _new_figure(fig, (11.0, 4.2))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    ax1.plot(t, c1, "o-", ms=3, label=f"1/(1−β1^t), β1={beta1:g}")
    ax1.plot(t, c2, "s--", ms=3, label=f"1/(1−β2^t), β2={beta2:g}")
    ax1.set_yscale("log")
    ax1.set_xlabel("step t")
    ax1.set_ylabel("correction factor (log scale)")
    ax1.set_title("the factors Adam multiplies m and v by", fontsize=MIN_FONT_PT + 1)
    add_legend(ax1, "below")
    ax1.grid(alpha=0.3)
    ax2.plot(t, upd_c, "o-", ms=3, label="with bias correction")
    ax2.plot(t, upd_u, "s--", ms=3, label="without bias correction")
    ax2.axhline(lr, color="k", ls=":", lw=1, label=f"lr = {lr:g}")
    ax2.set_xlabel("step t")
    ax2.set_ylabel("Adam update |Δw|")
    ax2.set_title(
        f"Adam(lr={lr:g}, betas=({beta1:g}, {beta2:g}), eps={eps:g})", fontsize=MIN_FONT_PT + 1
    )
    add_legend(ax2, "below")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig, data


class BiasCorrectionExplorer(_Explorer):
    """β1, β2 and the number of steps as sliders. Static twin: :func:`bias_correction_static`."""

    def __init__(
        self,
        beta1: float = 0.9,
        beta2: float = 0.999,
        steps: int = 20,
        grads: Sequence[float] | None = None,
        lr: float = 1e-3,
    ):
        self.grads = None if grads is None else np.asarray(grads, dtype=float)
        self.lr = lr
        max_steps = 200 if self.grads is None else len(self.grads)
        c = {
            "beta1": W.FloatSlider(
                value=beta1, min=0.0, max=0.99, step=0.01, description="β1", continuous_update=False
            ),
            "beta2": W.FloatSlider(
                value=beta2,
                min=0.9,
                max=0.9999,
                step=0.0001,
                description="β2",
                continuous_update=False,
                readout_format=".4f",
            ),
            "steps": W.IntSlider(
                value=min(steps, max_steps),
                min=1,
                max=max_steps,
                description="steps",
                continuous_update=False,
            ),
        }
        super().__init__(c, [W.HBox(list(c.values()))], (11.0, 4.2))
        self.update()

    def _compute(self):
        return bias_correction_static(
            self.controls["beta1"].value,
            self.controls["beta2"].value,
            int(self.controls["steps"].value),
            self.grads,
            lr=self.lr,
            fig=self.figure,
        )

    def _status_html(self) -> str:
        d = self.data
        return (
            f"step 1: correction factors {d['correction1'][0]:.3g} (m) and "
            f"{d['correction2'][0]:.3g} (v); update {d['update_corrected'][0]:.3g} with vs "
            f"{d['update_uncorrected'][0]:.3g} without correction"
        )


# --- chapter 05 ---------------------------------------------------------------------------------
# Weight decay vs L2 in Adam: the per-coordinate decay each form applies, as a function of v̂.


def weight_decay_static(
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    eps: float = 1e-8,
    steps: int = 1000,
    sqrt_v_hat: Sequence[float] | None = None,
    *,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, np.ndarray]]:
    r"""Per-step decay of each coordinate under Adam + L2 and AdamW, and what is left after
    ``steps`` steps of decay alone.

    Adam + L2 (``torch.optim.Adam(weight_decay=λ)``) adds :math:`\lambda w` to the gradient, so
    the decay part of its step (with :math:`\beta_1 = 0` and :math:`\hat v` held fixed) is
    :math:`d = \eta\lambda/(\sqrt{\hat v}+\epsilon)`; AdamW's is :math:`d = \eta\lambda` for
    every coordinate. After :math:`k` steps a weight keeps :math:`(1-d)^k` of its size. Where
    :math:`d > 2` the decay term alone flips the sign and grows the weight (:math:`|1-d| > 1`):
    those coordinates are reported as diverged, not drawn. ``sqrt_v_hat`` defaults to
    :math:`10^{-5}\dots1`, the range of :math:`\sqrt{\hat v}` in the lesson's MLP.
    """
    if lr <= 0 or weight_decay < 0 or eps < 0:
        raise ValueError(f"need lr > 0, weight_decay ≥ 0, eps ≥ 0; got {lr}, {weight_decay}, {eps}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    s = np.logspace(-5, 0, 300) if sqrt_v_hat is None else np.asarray(sqrt_v_hat, dtype=float)
    decay_l2 = lr * weight_decay / (s + eps)
    decay_w = np.full_like(s, lr * weight_decay)
    diverged = np.abs(1 - decay_l2) > 1
    with np.errstate(over="ignore"):
        left_l2 = np.where(diverged, np.nan, np.abs(1 - decay_l2) ** steps)
    left_w = np.abs(1 - decay_w) ** steps
    data = {
        "sqrt_v_hat": s,
        "decay_l2": decay_l2,
        "decay_adamw": decay_w,
        "left_l2": left_l2,
        "left_adamw": left_w,
        "diverged": diverged,
    }
    fig = _new_figure(fig, (11.0, 4.2))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    ax1.loglog(s, decay_l2, color="C3", label="Adam + L2: ηλ/(√v̂ + ε)")
    ax1.loglog(s, decay_w, color="C0", ls="--", label="AdamW: ηλ")
    ax1.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax1.text(s[-1], 1.0, "d = 1 ", ha="right", va="bottom", fontsize=MIN_FONT_PT, color="0.4")
    ax1.set_xlabel("√v̂ of the coordinate (gradient scale, log)")
    ax1.set_ylabel("decay per step d (fraction of w, log)")
    ax1.set_title("decay per step", fontsize=MIN_FONT_PT + 1)
    add_legend(ax1, "below")
    ax2.semilogx(s, left_l2, color="C3", label="Adam + L2")
    ax2.semilogx(s, left_w, color="C0", ls="--", label="AdamW")
    ax2.set_ylim(-0.03, 1.05)
    ax2.set_xlabel("√v̂ of the coordinate (gradient scale, log)")
    ax2.set_ylabel(f"|w| left after {steps} steps (fraction)")
    ax2.set_title(f"decay alone, {steps} steps", fontsize=MIN_FONT_PT + 1)
    if diverged.any():
        edge = s[diverged].max()
        ax2.axvspan(s.min(), edge, color="C3", alpha=0.12, lw=0)
        ax2.text(
            edge, 0.5, " diverged:\n d > 2 flips\n and grows w", color="C3",
            fontsize=MIN_FONT_PT, ha="left", va="center",
        )  # fmt: skip
    add_legend(ax2, "below")
    fig.suptitle(
        f"η = {lr:.3g}, λ = {weight_decay:.3g}, ε = {eps:.0e} (β1 = 0, v̂ held fixed)",
        fontsize=MIN_FONT_PT + 1,
    )
    fig.tight_layout()
    return fig, data


class WeightDecayExplorer(_Explorer):
    """lr, λ (log sliders) and the number of steps. Static twin: :func:`weight_decay_static`."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.1, steps: int = 1000,
                 eps: float = 1e-8):  # fmt: skip
        self.eps = eps
        c = {
            "lr": W.FloatLogSlider(
                value=lr, base=10, min=-5, max=-1, step=0.25, description="lr η",
                continuous_update=False, readout_format=".1e",
            ),
            "weight_decay": W.FloatLogSlider(
                value=weight_decay, base=10, min=-4, max=1, step=0.25, description="λ",
                continuous_update=False, readout_format=".1e",
            ),
            "steps": W.IntSlider(
                value=steps, min=10, max=100_000, step=10, description="steps",
                continuous_update=False,
            ),
        }  # fmt: skip
        super().__init__(c, [W.HBox(list(c.values()))], (11.0, 4.2))
        self.update()

    def _compute(self):
        return weight_decay_static(
            float(self.controls["lr"].value),
            float(self.controls["weight_decay"].value),
            self.eps,
            int(self.controls["steps"].value),
            fig=self.figure,
        )

    def _status_html(self) -> str:
        d = self.data
        ratio = d["decay_l2"].max() / d["decay_l2"].min()
        edge = d["sqrt_v_hat"][d["diverged"]].max() if d["diverged"].any() else None
        note = f"; the L2 term alone diverges where √v̂ < {edge:.2g}" if edge is not None else ""
        return (
            f"AdamW decays every coordinate by {d['decay_adamw'][0]:.3g} per step; Adam + L2 "
            f"from {d['decay_l2'].min():.3g} to {d['decay_l2'].max():.3g} ({ratio:.3g}× apart)"
            f"{note}"
        )


__all__ += ["WeightDecayExplorer", "weight_decay_static"]


# --- chapter 10 ---------------------------------------------------------------------------------
# SignStepExplorer: a stream of noisy gradients fed to Lion and to Adam; sizes and directions.


def sign_steps_static(
    snr: float = 0.3,
    beta1: float = 0.9,
    beta2: float = 0.99,
    steps: int = 300,
    seed: int = 0,
    *,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, Any]]:
    r"""Lion's and Adam's steps on the gradient stream :math:`g_t = \mathrm{SNR} + \xi_t`.

    :math:`\xi_t \sim \mathcal N(0, 1)` (seeded). Both optimizers get the same stream, lr = 1 (so
    a step reads in units of :math:`\eta`); Lion with ``betas=(beta1, beta2)``, Adam with its
    defaults (0.9, 0.999). A positive step moves downhill on average (against the mean gradient).
    Returns the figure and ``lion``, ``adam`` (signed steps / η), ``lion_right`` (fraction of
    Lion's steps that go downhill), ``lion_mean`` and ``adam_mean`` (mean step / η after the
    first 10 % of the steps).
    """
    from course_lib.experiments.adaptivity import signed_steps
    from course_lib.optim import Adam, Lion

    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must be in [0, 1), got beta1={beta1}, beta2={beta2}")
    if not isinstance(steps, int) or steps < 10:
        raise ValueError(f"steps must be an int ≥ 10, got {steps!r}")
    grads = snr + np.random.default_rng(seed).standard_normal(steps)
    lion = signed_steps(Lion, grads, lr=1.0, betas=(beta1, beta2))
    adam = signed_steps(Adam, grads, lr=1.0)
    burn = steps // 10
    data = {
        "grads": grads,
        "lion": lion,
        "adam": adam,
        "lion_right": float((lion[burn:] > 0).mean()),
        "lion_mean": float(lion[burn:].mean()),
        "adam_mean": float(adam[burn:].mean()),
    }
    fig = _new_figure(fig, (11.0, 4.0))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    t = np.arange(1, steps + 1)
    shown = min(steps, 100)
    ax1.plot(t[:shown], adam[:shown], "-", color="tab:orange", lw=1.5, label="Adam")
    ax1.plot(t[:shown], lion[:shown], "o", color="tab:blue", ms=3, label="Lion")
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xlabel("step t")
    ax1.set_ylabel("step / η  (> 0: downhill)")
    ax1.set_title(f"the first {shown} steps, SNR = {snr:g}", fontsize=MIN_FONT_PT + 1)
    add_legend(ax1, "below")
    ax1.grid(alpha=0.3)
    running = {name: np.cumsum(s) / t for name, s in (("Lion", lion), ("Adam", adam))}
    ax2.plot(t, running["Lion"], color="tab:blue", lw=2, label="Lion: mean step so far")
    ax2.plot(t, running["Adam"], color="tab:orange", lw=2, label="Adam: mean step so far")
    ax2.axhline(
        snr / np.sqrt(1 + snr**2),
        color="tab:orange",
        ls=":",
        lw=1.2,
        label="SNR/√(1+SNR²) (Adam, ch. 04)",
    )
    ax2.set_ylim(min(-0.1, float(np.min([r.min() for r in running.values()]))), 1.05)
    ax2.set_xlabel("step t")
    ax2.set_ylabel("mean of step / η over steps 1..t")
    ax2.set_title(
        f"Lion(betas=({beta1:g}, {beta2:g})) vs Adam(betas=(0.9, 0.999)), lr = η",
        fontsize=MIN_FONT_PT + 1,
    )
    add_legend(ax2, "below")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig, data


class SignStepExplorer(_Explorer):
    """SNR, Lion's β1 and β2 as sliders. Static twin: :func:`sign_steps_static`."""

    def __init__(self, snr: float = 0.3, beta1: float = 0.9, beta2: float = 0.99, steps: int = 300):
        c = {
            "snr": W.FloatLogSlider(
                value=snr, base=10, min=-2, max=1, step=0.05, description="SNR",
                continuous_update=False, readout_format=".3g",
            ),
            "beta1": W.FloatSlider(
                value=beta1, min=0.0, max=0.99, step=0.01, description="Lion β1",
                continuous_update=False,
            ),
            "beta2": W.FloatSlider(
                value=beta2, min=0.0, max=0.999, step=0.001, description="Lion β2",
                continuous_update=False, readout_format=".3f",
            ),
        }  # fmt: skip
        self.steps = steps
        super().__init__(c, [W.HBox(list(c.values()))], (11.0, 4.0))
        self.update()

    def _compute(self):
        return sign_steps_static(
            self.controls["snr"].value,
            self.controls["beta1"].value,
            self.controls["beta2"].value,
            self.steps,
            fig=self.figure,
        )

    def _status_html(self) -> str:
        d = self.data
        return (
            f"Lion: every step ±η, {d['lion_right']:.0%} of them downhill, mean step "
            f"{d['lion_mean']:.2f} η; Adam: mean step {d['adam_mean']:.2f} η"
        )


__all__ += ["SignStepExplorer", "sign_steps_static"]


# --- chapter 06 -------------------------------------------------------------------------------

REDDI_VARIANTS = {  # name -> keyword arguments of course_lib.optim.Adam
    "Adam": {},
    "AMSGrad (PyTorch: max of raw v)": {"amsgrad": True, "amsgrad_convention": "raw"},
    "AMSGrad (optax: max of corrected v̂)": {"amsgrad": True, "amsgrad_convention": "corrected"},
    "AMSGrad memory-free": {"amsgrad": True, "amsgrad_convention": "memory_free"},
}


def reddi_static(
    C: float = 3.0,
    beta1: float = 0.0,
    beta2: float | None = None,
    variant: str = "Adam",
    steps: int = 1500,
    lr: float = 0.5,
    *,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, Any]]:
    r"""Reddi et al.'s online problem, run: :math:`f_t(x) = C x` if :math:`t \bmod 3 = 1`, else
    :math:`-x`, on :math:`[-1, 1]`, with ``course_lib.optim.Adam`` in one of
    :data:`REDDI_VARIANTS`, step :math:`\alpha/\sqrt t` (``lr`` is :math:`\alpha`), :math:`\epsilon
    = 10^{-8}`. ``beta2=None`` takes the paper's :math:`1/(1+C^2)`. Draws the iterate and the
    average regret; returns ``{"run", "final_x", "average_regret", "beta2", "diverged"}``.
    """
    from course_lib.experiments.amsgrad import online_linear, periodic_coefficients
    from course_lib.optim import Adam
    from course_lib.plotting import plot_online_runs

    if variant not in REDDI_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {list(REDDI_VARIANTS)}")
    if not C > 2:
        raise ValueError(f"Reddi's problem needs C > 2, got {C}")
    beta2 = 1.0 / (1.0 + C**2) if beta2 is None else float(beta2)
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must be in [0, 1), got beta1={beta1}, beta2={beta2}")
    run = online_linear(
        Adam, periodic_coefficients(C, int(steps)), lr=lr, betas=(beta1, beta2), eps=1e-8,
        **REDDI_VARIANTS[variant],
    )
    diverged = not np.all(np.isfinite(run.x))
    final_x = float(np.mean(run.x[-3:])) if not diverged else float("nan")
    data = {"run": run, "final_x": final_x, "average_regret": float(run.average_regret[-1]),
            "beta2": beta2, "diverged": diverged}
    fig = _new_figure(fig, (11.0, 4.0))
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    title = (f"{variant}: betas=({beta1:g}, {beta2:.3g}), lr = {lr:g}/√t, C = {C:g}"
             + (" — diverged" if diverged else f" — ends at x ≈ {final_x:+.2f}"))
    if diverged:
        axes[0].text(0.5, 0.5, "diverged", ha="center", va="center", transform=axes[0].transAxes)
    else:
        plot_online_runs({variant: run}, axes, title=title)
    return fig, data


class ReddiExplorer(_Explorer):
    """C, β1, β2 and the variant (Adam or an AMSGrad convention) on Reddi et al.'s problem.
    Static twin: :func:`reddi_static`."""

    def __init__(
        self,
        C: float = 3.0,
        beta1: float = 0.0,
        beta2: float | None = None,
        variant: str = "Adam",
        steps: int = 1500,
    ):
        beta2 = 1.0 / (1.0 + C**2) if beta2 is None else beta2
        c = {
            "C": W.FloatSlider(value=C, min=2.5, max=10.0, step=0.5, description="C",
                               continuous_update=False),
            "beta1": W.FloatSlider(value=beta1, min=0.0, max=0.95, step=0.05, description="β1",
                                   continuous_update=False),
            "beta2": W.FloatSlider(value=round(beta2, 3), min=0.01, max=0.999, step=0.001,
                                   description="β2", continuous_update=False,
                                   readout_format=".3f"),
            "variant": W.Dropdown(options=list(REDDI_VARIANTS), value=variant,
                                  description="variant", layout=W.Layout(width="380px")),
            "steps": W.IntSlider(value=steps, min=30, max=3000, step=30, description="steps",
                                 continuous_update=False),
        }
        rows = [W.HBox([c["C"], c["beta1"], c["beta2"]]), W.HBox([c["variant"], c["steps"]])]
        super().__init__(c, rows, (11.0, 4.0))
        self.update()

    def _compute(self):
        v = {k: w.value for k, w in self.controls.items()}
        return reddi_static(v["C"], v["beta1"], v["beta2"], v["variant"], int(v["steps"]),
                            fig=self.figure)

    def _status_html(self) -> str:
        d = self.data
        if d["diverged"]:
            return "<b>diverged</b>"
        verdict = "the worst point" if d["final_x"] > 0.9 else (
            "the optimum" if d["final_x"] < -0.9 else "in between")
        return (f"ends at x ≈ {d['final_x']:+.3f} ({verdict}); average regret R_T/T = "
                f"{d['average_regret']:.3f} (the paper's β2 = 1/(1+C²) = "
                f"{1 / (1 + self.controls['C'].value ** 2):.3f})")


__all__ += ["REDDI_VARIANTS", "ReddiExplorer", "reddi_static"]


# --- chapter 09 ---


def _lr_note(optimizer: str, lr: float) -> str:
    """The learning rates the runs really use (chains_optimizer's convention)."""
    if optimizer == "Momentum":
        return f"SGD lr {lr:g}, Momentum lr {lr / 10:g} (μ 0.9)"
    if optimizer == "Adam":
        return f"SGD lr {lr:g}, Adam lr {lr / 10:g}"
    return f"lr {lr:g}"


def escape_static(
    optimizer: str = "Adai",
    curvature: float = 0.01,
    batch_size: int = 1,
    *,
    saddle_lr: float = 0.5,
    basin_lr: float = 0.02,
    chains: int = 100,
    max_steps: int = 1000,
    basin_steps: int = 600,
    seed: int = 0,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """Noise level, curvature and optimizer → escape-time histogram and basin fractions.

    Left: the steps each of ``chains`` runs needs to leave the saddle ½x² − ½·h·y² (h =
    ``curvature``) under gradient noise of covariance |H|/B (B = ``batch_size``), for
    ``optimizer`` and for SGD (:func:`course_lib.experiments.saddles.escape_steps`, lr
    ``saddle_lr``). Right: the fraction of runs that end in the flat basin of the sharp/flat
    landscape, with 95 % Wilson intervals (:func:`~course_lib.experiments.saddles.basin_fractions`,
    lr ``basin_lr``). Learning rates follow :func:`~course_lib.experiments.saddles.chains_optimizer`
    (Momentum lr/10 with μ = 0.9, Adam lr/10). A run whose iterates blow up is reported as
    diverged, never plotted.
    """
    from course_lib.experiments.saddles import OPTIMIZERS, basin_fractions, escape_steps
    from course_lib.plotting import OPTIMIZER_COLORS

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (curvature > 0 and batch_size >= 1):
        raise ValueError("need curvature > 0 and batch_size >= 1")
    names = ["SGD"] if optimizer == "SGD" else ["SGD", optimizer]
    kw = dict(lr=saddle_lr, chains=chains, max_steps=max_steps, batch_size=batch_size, seed=seed)
    steps, basins, diverged = {}, {}, []
    for name in names:
        try:
            steps[name] = escape_steps(name, curvature, **kw).numpy()
        except ValueError:
            diverged.append(f"{name} (saddle)")
        res = basin_fractions(
            name, lr=basin_lr, batch_size=batch_size, chains=chains, steps=basin_steps, seed=seed
        )
        if torch.isfinite(res.final).all():
            basins[name] = res
        else:
            diverged.append(f"{name} (basins)")
    fig = _new_figure(fig, (11.0, 4.2))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    bins = np.logspace(0, np.log10(max_steps), 30)
    for i, (name, s) in enumerate(steps.items()):
        left = s[np.isfinite(s)]
        label = f"{name}: median {np.median(s):.0f}" if np.isfinite(np.median(s)) else name
        ax1.hist(left, bins=bins, histtype="step" if i == 0 else "stepfilled",
                 alpha=1.0 if i == 0 else 0.5, color="0.3" if i == 0 else OPTIMIZER_COLORS[name],
                 lw=1.8,
                 label=f"{label}, stuck {len(s) - len(left)}/{len(s)}")
    ax1.set_xscale("log")
    ax1.set_xlabel("steps to leave the saddle (log scale)")
    ax1.set_ylabel("runs")
    ax1.set_title(f"saddle, h = {curvature:g}, B = {batch_size}; {_lr_note(optimizer, saddle_lr)}",
                  fontsize=MIN_FONT_PT + 1)
    ax1.grid(alpha=0.3)
    add_legend(ax1, "below")
    for i, (name, r) in enumerate(basins.items()):
        ax2.bar(i, r.fraction, color="0.6" if name == "SGD" else OPTIMIZER_COLORS[name])
        ax2.errorbar(i, r.fraction, yerr=[[r.fraction - r.low], [r.high - r.fraction]],
                     color="k", capsize=4)
    ax2.set_xticks(range(len(basins)), list(basins))
    ax2.axhline(0.5, color="k", ls=":", lw=1)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("fraction ending in the flat basin")
    ax2.set_title(f"flat-basin fraction (0.5: none), B = {batch_size}; "
                  f"{_lr_note(optimizer, basin_lr)}", fontsize=MIN_FONT_PT + 1)
    for ax, shown in ((ax1, steps), (ax2, basins)):
        if len(shown) < len(names):  # some run blew up: say so, never plot it
            ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes,
                    fontsize=MIN_FONT_PT + 4, color="#b00")
    fig.tight_layout()
    data = {"steps": steps, "basins": basins, "diverged": diverged}
    return fig, data


class EscapeExplorer(_Explorer):
    """Optimizer, curvature and batch size (noise level) as controls. Static twin:
    :func:`escape_static`."""

    def __init__(self, optimizer: str = "Adai", curvature: float = 0.01, batch_size: int = 1):
        from course_lib.experiments.saddles import OPTIMIZERS

        c = {
            "optimizer": W.Dropdown(options=list(OPTIMIZERS), value=optimizer,
                                    description="optimizer"),
            "curvature": W.FloatLogSlider(value=curvature, base=10, min=-3, max=-1, step=0.25,
                                          description="curvature h", continuous_update=False),
            "batch_size": W.IntSlider(value=batch_size, min=1, max=16, description="batch B",
                                      continuous_update=False),
        }
        super().__init__(c, [W.HBox(list(c.values()))], (11.0, 4.2))
        self.update()

    def _compute(self):
        return escape_static(
            self.controls["optimizer"].value,
            float(self.controls["curvature"].value),
            int(self.controls["batch_size"].value),
            fig=self.figure,
        )

    def _status_html(self) -> str:
        parts = []
        for name, s in self.data["steps"].items():
            parts.append(f"{name}: median {np.median(s):.0f} steps to leave the saddle")
        for name, r in self.data["basins"].items():
            parts.append(f"{name}: {r.fraction:.0%} in the flat basin "
                         f"(95 % CI {r.low:.0%}–{r.high:.0%})")
        if self.data["diverged"]:
            parts.append("diverged: " + ", ".join(self.data["diverged"]))
        return _escape("; ".join(parts))


# --- chapter 08 ---


def rectification_static(
    beta2: float = 0.999,
    threshold: float = 5.0,
    steps: int = 200,
    *,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """RAdam's rectification for one β2: ρ_t and the switch step, r_t, and the variance of the
    adaptive learning rate with and without the rectifier.

    Left: :math:`\\rho_t` against :math:`t` with the threshold (RAdam takes momentum-only steps
    while :math:`\\rho_t \\le` ``threshold``; 5 in PyTorch, 4 in the paper's Algorithm 2) and the
    rectifier :math:`r_t` from the switch on. Right: the variance of :math:`\\psi_t` in the
    scaled-inverse-:math:`\\chi^2` model (exact, infinite for :math:`\\rho_t \\le 2`), the same
    times :math:`r_t^2`, and the long-run variance. Returns the figure and a dict with ``t``,
    ``rho``, ``rectifier`` (``nan`` before the switch), ``var_adam``, ``var_rectified``,
    ``var_limit``, ``rho_inf`` and ``switch`` (``None``: never within ``steps``).
    """
    from course_lib.experiments import rectification as R

    if not 0.5 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0.5, 1), got {beta2}")
    if not 4.0 <= threshold <= 10.0:
        raise ValueError(
            f"threshold must be in [4, 10] (the paper: 4, PyTorch: 5), got {threshold}"
        )
    if not isinstance(steps, int) or not 10 <= steps <= 100_000:
        raise ValueError(f"steps must be an int in [10, 100000], got {steps!r}")
    t = np.arange(1, steps + 1)
    rho = R.rho(t, beta2)
    rho_inf = R.rho_inf(beta2)
    switched = rho > threshold
    r = np.where(switched, R.rectifier(t, beta2), np.nan)
    var_adam = R.psi_variance_exact(rho)
    var_rect = np.where(switched, r**2 * var_adam, np.nan)
    var_limit = float(R.psi_variance_exact(rho_inf)[0])
    switch = int(t[switched][0]) if switched.any() else None
    data = {"t": t, "rho": rho, "rectifier": r, "var_adam": var_adam,
            "var_rectified": var_rect, "var_limit": var_limit, "rho_inf": rho_inf,
            "switch": switch}

    fig = _new_figure(fig, (11.0, 4.4))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    ax1.semilogx(t, rho, "-", lw=2, label="ρ_t")
    ax1.axhline(threshold, color="tab:red", ls="--", lw=1.2, label=f"threshold {threshold:g}")
    ax1.axhline(rho_inf, color="k", ls=":", lw=1.2, label=f"ρ∞ = {rho_inf:.4g}")
    if switch is not None:
        ax1.axvline(
            switch, color="tab:green", ls="-.", lw=1.2, label=f"first rectified step {switch}"
        )
    ax1.set_yscale("log")
    ax1.set_xlabel("step t (log scale)")
    ax1.set_ylabel("SMA length ρ_t (log scale)")
    ax1.set_title(f"β2 = {beta2:g}: when RAdam starts to adapt", fontsize=MIN_FONT_PT + 1)
    ax1.grid(alpha=0.3, which="both")
    right = ax1.twinx()
    right.semilogx(t, r, color="tab:purple", lw=1.5, label="r_t (right axis)")
    right.set_ylim(0, 1.05)
    right.set_ylabel("rectifier r_t", color="tab:purple")
    handles = ax1.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = ax1.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    add_legend(ax1, "below", handles=handles, labels=labels)

    finite = np.isfinite(var_adam)
    ax2.loglog(t[finite], var_adam[finite], "-", lw=2, label="Adam: Var[ψ_t]")
    ax2.loglog(t, var_rect, "--", lw=2, label="RAdam: Var[r_t ψ_t]")
    ax2.axhline(var_limit, color="k", ls=":", lw=1.2, label="Var at t → ∞")
    if not finite.all():
        ax2.text(0.97, 0.95, f"Var[ψ_t] = ∞ for t ≤ {int(t[~finite][-1])} (ρ_t ≤ 2)",
                 transform=ax2.transAxes, fontsize=MIN_FONT_PT, ha="right", va="top")
    ax2.set_xlabel("step t (log scale)")
    ax2.set_ylabel("variance (units of 1/σ², log scale)")
    ax2.set_title("variance of the adaptive lr (scaled-inv-χ² model)", fontsize=MIN_FONT_PT + 1)
    ax2.grid(alpha=0.3, which="both")
    add_legend(ax2, "below")
    fig.tight_layout()
    return fig, data


class RectificationExplorer(_Explorer):
    """β2, the switch threshold and the horizon as sliders. Static twin:
    :func:`rectification_static`."""

    def __init__(self, beta2: float = 0.999, threshold: float = 5.0, steps: int = 200):
        c = {
            "beta2": W.FloatSlider(value=beta2, min=0.7, max=0.9999, step=0.0001, description="β2",
                                   continuous_update=False, readout_format=".4f"),
            "threshold": W.FloatSlider(value=threshold, min=4.0, max=8.0, step=0.5,
                                       description="threshold", continuous_update=False),
            "steps": W.IntSlider(value=steps, min=20, max=20_000, step=20, description="steps",
                                 continuous_update=False),
        }
        super().__init__(c, [W.HBox(list(c.values()))], (11.0, 4.4))
        self.update()

    def _compute(self):
        return rectification_static(
            self.controls["beta2"].value,
            self.controls["threshold"].value,
            int(self.controls["steps"].value),
            fig=self.figure,
        )

    def _status_html(self) -> str:
        d = self.data
        if d["switch"] is None:
            return (f"ρ∞ = {d['rho_inf']:.4g}: ρ_t never passes the threshold within "
                    f"{len(d['t'])} steps — only momentum steps")
        k = d["switch"] - 1
        return (f"ρ∞ = {d['rho_inf']:.4g}; momentum-only steps 1–{k}, first rectified step "
                f"{d['switch']} with r = {d['rectifier'][k]:.3g}; r_t at the last step "
                f"{d['rectifier'][-1]:.3g}")

__all__ += ["RectificationExplorer", "rectification_static"]


# --- chapter 11 ---
# The optimizer composer: one block per concept -> a working optimizer, on a landscape and on
# digits, with its state memory and the same composition as three lines of code.


def _composition_name(composition) -> str | None:
    """The named optimizer this composition is (its concepts only), or ``None``."""
    from course_lib.optim.composer import NAMED_COMPOSITIONS

    for name, (named, _) in NAMED_COMPOSITIONS.items():
        if named == composition:
            return name
    return None


def composer_static(
    momentum: str = "ema",
    scaling: str = "ema",
    bias_correction: bool = True,
    decay: str = "decoupled",
    rectify: bool = False,
    update: str = "plain",
    lr: float = 0.01,
    weight_decay: float = 0.01,
    landscape: str = "rosenbrock",
    landscape_lr: float = 0.1,
    landscape_steps: int = 300,
    digits_steps: int = 60,
    *,
    fig: Figure | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """The composer as a function: build the optimizer from one choice per concept
    (:class:`course_lib.optim.Composition`), run it on ``landscape`` and on the league's digits
    task (:func:`course_lib.experiments.league.digits_curve`), draw both. The landscape has its
    own learning rate ``landscape_lr``: a 2-D function and a network want different lrs, one
    reason why pictures of landscapes cannot rank optimizers.

    Returns ``(fig, data)`` with ``data = {"composition", "name" (the named optimizer it is, or
    None), "code" (three lines), "trajectory", "digits" (losses, diverged_at, accuracy,
    state_bytes, param_bytes), "buffers"}``. A run that diverges is reported, not drawn from NaNs.
    """
    from course_lib.experiments.league import digits_curve
    from course_lib.optim.composer import Composition

    if not (lr > 0 and landscape_lr > 0):
        raise ValueError(f"learning rates must be > 0, got {lr!r} and {landscape_lr!r}")
    composition = Composition(momentum=momentum, scaling=scaling, bias_correction=bias_correction,
                              decay=decay, rectify=rectify, update=update)  # fmt: skip
    hyper = {"lr": lr, "weight_decay": weight_decay}
    name = _composition_name(composition)
    label = name or "composed"
    land = get_landscape(landscape)
    trajectory = run_optimizer(
        land, lambda params: composition.build(params, **{**hyper, "lr": landscape_lr}),
        steps=int(landscape_steps),
        label=label,
    )  # fmt: skip
    digits = digits_curve(lambda params: composition.build(params, **hyper), int(digits_steps))
    fig = _new_figure(fig, (11.0, 4.4))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    plot_trajectories(land, [trajectory], ax1, legend=False, caption=False)
    ax1.set_title(f"{landscape}, lr={landscape_lr:g}: {trajectory.message}",
                  fontsize=MIN_FONT_PT + 1)  # fmt: skip
    if digits["losses"]:
        ax2.plot(np.arange(1, len(digits["losses"]) + 1), digits["losses"], color="C0")
        ax2.set_yscale("log")
    ax2.set_xlabel("step (mini-batch of 128)")
    ax2.set_ylabel("training cross-entropy (log scale)")
    if digits["diverged_at"] is not None:
        message = f"diverged at step {digits['diverged_at']}:\ntry a smaller lr"
        ax2.text(0.5, 0.5, message, ha="center", va="center", transform=ax2.transAxes,
                 fontsize=11, color="#b00")  # fmt: skip
        title = "digits MLP 64-32-10: diverged"
    else:
        title = f"digits MLP 64-32-10: held-out accuracy {100 * digits['accuracy']:.1f} %"
    ax2.set_title(title, fontsize=MIN_FONT_PT + 1)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    ratio = digits["state_bytes"] / digits["param_bytes"]
    caption = (f"{label}: {composition}, lr={lr:g} (digits), weight_decay={weight_decay:g}; "
               f"state {digits['state_bytes']:,} B = {ratio:.0f}× the parameters")  # fmt: skip
    _add_caption(fig, [caption])
    data = {
        "composition": composition,
        "name": name,
        "code": composition.code(hyper),
        "trajectory": trajectory,
        "digits": digits,
        "buffers": composition.buffers,
    }
    return fig, data


class OptimizerComposer(_Explorer):
    """One control per concept, the lr and a landscape. Static twin: :func:`composer_static`.

    Every change rebuilds the optimizer, reruns it on the landscape and on digits, and shows
    below the controls which named optimizer the composition is (if any), its state memory and
    the three lines of code that build it. A combination that makes no sense (adaptive inertia
    with a division by √v, rectification without Adam's pieces) says why instead of running.
    """

    def __init__(self, momentum="ema", scaling="ema", bias_correction=True, decay="decoupled",
                 rectify=False, update="plain", lr=0.01, landscape="rosenbrock",
                 landscape_lr=0.1):  # fmt: skip
        from course_lib.optim.composer import CONCEPTS

        def dropdown(key, value, description):
            return W.Dropdown(options=list(CONCEPTS[key]), value=value, description=description,
                              layout=W.Layout(width="260px"))  # fmt: skip

        c = {
            "momentum": dropdown("momentum", momentum, "momentum"),
            "scaling": dropdown("scaling", scaling, "scaling"),
            "decay": dropdown("decay", decay, "decay"),
            "update": dropdown("update", update, "update"),
            "bias_correction": W.Checkbox(value=bias_correction, description="bias correction"),
            "rectify": W.Checkbox(value=rectify, description="rectification"),
            "lr": W.FloatLogSlider(value=lr, base=10, min=-4, max=0.5, step=0.25,
                                   description="lr", continuous_update=False),
            "landscape_lr": W.FloatLogSlider(value=landscape_lr, base=10, min=-4, max=0.5,
                                             step=0.25, description="landscape lr",
                                             continuous_update=False),
            "landscape": W.Dropdown(options=[n for n in LANDSCAPES if n != "reddi"],
                                    value=landscape, description="landscape"),
        }  # fmt: skip
        self.code = W.HTML(value="")
        rows = [
            W.HBox([c["momentum"], c["scaling"], c["bias_correction"]]),
            W.HBox([c["decay"], c["update"], c["rectify"]]),
            W.HBox([c["lr"], c["landscape"], c["landscape_lr"]]),
        ]
        super().__init__(c, rows, (11.0, 4.4))
        self.children = (*self.children[:-1], self.code, self.children[-1])
        self.update()

    def _compute(self):
        v = {k: w.value for k, w in self.controls.items()}
        return composer_static(
            v["momentum"], v["scaling"], v["bias_correction"], v["decay"], v["rectify"],
            v["update"], lr=v["lr"], landscape=v["landscape"], landscape_lr=v["landscape_lr"],
            fig=self.figure,
        )  # fmt: skip

    def _status_html(self) -> str:
        d = self.data
        digits = d["digits"]
        named = f"this is <b>{d['name']}</b>" if d["name"] else "a new combination"
        outcome = (f"diverged at step {digits['diverged_at']}" if digits["diverged_at"]
                   else f"held-out accuracy {100 * digits['accuracy']:.1f} %")  # fmt: skip
        self.code.value = f"<pre style='font-size:12px'>{_escape(d['code'])}</pre>"
        return (
            f"{named}; state: {d['buffers']} buffer(s) the size of the parameters "
            f"({digits['state_bytes']:,} B on the digits MLP); landscape: "
            f"{_escape(d['trajectory'].message)}; digits: {outcome}"
        )


__all__ += ["OptimizerComposer", "composer_static"]
