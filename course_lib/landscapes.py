"""2-D test functions ("landscapes") and the trajectories optimizers trace on them.

A picture of an optimizer walking on a 2-D surface is the fastest way to build intuition: you can
*see* momentum overshoot, Adam's sign-like steps, a learning rate that is too large. It is also the
fastest way to build wrong intuition, since real networks have millions of dimensions and noisy
gradients, so the course never picks an optimizer from these pictures alone.

What is here
------------
- :class:`Landscape`: a function ``f(xy)`` of a ``(..., 2)`` tensor, with its known minima and
  saddle points, a sensible plot window and a default start point. Gradients always come from
  autograd, so the same code works for every function.
- Factories for the classic test functions: :func:`quadratic` (ill-conditioned; its Hessian
  eigenvalues are exposed so you can compute the stability threshold ``2/λ_max``),
  :func:`rosenbrock`, :func:`beale`, :func:`himmelblau`, :func:`saddle` (x² − y²),
  :func:`inflection` (a flat x³-like critical point), :func:`rastrigin`, :func:`sharp_flat`
  (one sharp and one flat basin, for the Adai lesson) and :func:`reddi` (the online problem on
  which Adam provably fails, for the AMSGrad lesson).
- :func:`run_optimizer`: any ``torch.optim.Optimizer`` (ours or PyTorch's) on a landscape for N
  steps, returning a :class:`Trajectory`. A run that stops making sense is cut at its last good
  point, so plots never show garbage, and the trajectory says why it stopped: it *diverged*
  (inf/NaN, or it left a box around the plot window with a growing loss), or it *escaped* (it
  left the box while the loss kept falling, on a landscape that is unbounded below, such as the
  saddle x² − y²: that is the optimizer doing its job, not an instability).

Conventions
-----------
All computations are in float64. Optional gradient noise is Gaussian with standard deviation
``noise``, drawn from a generator seeded with ``seed`` (so a "stochastic" run is repeatable);
it mimics the mini-batch noise of SGD.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from course_lib.train import make_optimizer, optimizer_hyperparameters, optimizer_label

__all__ = [
    "LANDSCAPES",
    "Landscape",
    "Trajectory",
    "beale",
    "get_landscape",
    "himmelblau",
    "inflection",
    "plural",
    "quadratic",
    "rastrigin",
    "reddi",
    "rosenbrock",
    "run_optimizer",
    "saddle",
    "sharp_flat",
]

DTYPE = torch.float64


@dataclass
class Landscape:
    """A test function with everything a plot or a lesson needs to know about it.

    ``f`` maps a tensor of shape ``(..., dim)`` to values of shape ``(...)``, so the same function
    evaluates one point (for optimization) or a whole grid (for a contour plot). For an *online*
    problem (``online=True``, e.g. :func:`reddi`) ``f`` takes the step number too: ``f(x, t)``.
    ``project`` (optional) maps a point back into the feasible set after every optimizer step.
    ``bounded_below=False`` marks functions whose infimum is −∞ (x² − y², x³ + y²): a run that
    leaves the plot window downhill on them has *escaped*, not diverged.
    """

    name: str
    f: Callable[..., torch.Tensor]
    minima: list[tuple[float, ...]] = field(default_factory=list)
    saddles: list[tuple[float, ...]] = field(default_factory=list)
    xlim: tuple[float, float] = (-2.0, 2.0)
    ylim: tuple[float, float] = (-2.0, 2.0)
    start: tuple[float, ...] = (1.0, 1.0)
    description: str = ""
    dim: int = 2
    online: bool = False
    project: Callable[[torch.Tensor], torch.Tensor] | None = None
    hessian_eigenvalues: tuple[float, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    bounded_below: bool = True
    _grid_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, xy: Any, t: int | None = None) -> torch.Tensor:
        x = torch.as_tensor(xy, dtype=DTYPE)
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"{self.name}: expected points with last dimension {self.dim}, got {tuple(x.shape)}"
            )
        if self.online:
            if t is None:
                raise ValueError(f"{self.name} is an online problem: pass the step t, f(x, t)")
            return self.f(x, t)
        return self.f(x)

    @property
    def title(self) -> str:
        """Name plus parameters, e.g. ``"quadratic(condition_number=10, ...)"``."""
        if not self.params:
            return self.name
        inner = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
        )
        return f"{self.name}({inner})"

    def gradient(self, xy: Any, t: int | None = None) -> np.ndarray:
        """∇f at one point (autograd), as a NumPy array."""
        x = torch.as_tensor(xy, dtype=DTYPE).detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(self(x, t), x)
        return g.numpy()

    def hessian(self, xy: Any, t: int | None = None) -> np.ndarray:
        """The Hessian matrix at one point (autograd), as a NumPy array."""
        x = torch.as_tensor(xy, dtype=DTYPE).detach()
        return torch.autograd.functional.hessian(lambda p: self(p, t), x).numpy()

    def nearest_minimum(self, xy: Any) -> int:
        """Index in ``minima`` of the known minimum nearest to ``xy`` (the basin a run reached)."""
        if not self.minima:
            raise ValueError(f"{self.name} has no known minima")
        p = np.asarray(xy, dtype=float)
        d = [np.linalg.norm(p - np.asarray(m)) for m in self.minima]
        return int(np.argmin(d))

    def grid(self, resolution: int = 150, t: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` on the plot window, for contour/surface plots (cached per resolution).

        For 1-D problems ``X`` is a ``(resolution,)`` grid, ``Y`` zeros and ``Z = f(X)``.
        """
        if not isinstance(resolution, int) or resolution < 2:
            raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
        key = (resolution, t if self.online else None)
        if key not in self._grid_cache:
            xs = np.linspace(*self.xlim, resolution)
            if self.dim == 1:
                X = xs
                Y = np.zeros_like(xs)
                Z = self(torch.as_tensor(xs)[:, None], t if self.online else None).numpy()
            else:
                ys = np.linspace(*self.ylim, resolution)
                X, Y = np.meshgrid(xs, ys)
                pts = torch.as_tensor(np.stack([X, Y], axis=-1))
                with torch.no_grad():
                    Z = self(pts, t if self.online else None).numpy()
            self._grid_cache[key] = (X, Y, Z)
        return self._grid_cache[key]

    def escape_box(self, factor: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) corners of the box outside which a run counts as diverged.

        The box has the plot window's centre and ``factor`` times its size per axis.
        """
        lims = [self.xlim, self.ylim][: self.dim]
        centre = np.array([(a + b) / 2 for a, b in lims])
        half = np.array([(b - a) / 2 for a, b in lims]) * factor
        return centre - half, centre + half


def _refine(f: Callable, point: Sequence[float], iters: int = 50) -> tuple[float, ...]:
    """Newton's method on ∇f = 0 from ``point``: approximate critical points made exact."""
    x = torch.tensor(point, dtype=DTYPE)
    for _ in range(iters):
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xr), xr)
        if g.norm() < 1e-13:
            break
        H = torch.autograd.functional.hessian(f, x)
        x = x - torch.linalg.solve(H, g)
    return tuple(float(v) for v in x)


# --------------------------------------------------------------------------- the test functions


def quadratic(
    condition_number: float = 10.0, lambda_max: float = 1.0, angle: float = 0.0
) -> Landscape:
    """f(w) = ½ wᵀ H w with Hessian eigenvalues ``(lambda_max / κ, lambda_max)``.

    The steep direction is y (before rotation by ``angle`` degrees). Gradient descent is stable
    only for ``lr < 2 / lambda_max`` and needs about κ steps to converge: the ravine that
    motivates momentum and per-coordinate learning rates. With ``angle=0`` the ravine is aligned
    with the axes, which flatters diagonal methods (Adam, RMSprop); rotate it to be fair.
    """
    if not condition_number >= 1:
        raise ValueError(f"condition_number must be >= 1, got {condition_number!r}")
    if not lambda_max > 0:
        raise ValueError(f"lambda_max must be > 0, got {lambda_max!r}")
    lam = (lambda_max / condition_number, lambda_max)
    th = math.radians(angle)
    R = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=DTYPE)
    H = R @ torch.diag(torch.tensor(lam, dtype=DTYPE)) @ R.T
    h00, h01, h11 = (float(H[0, 0]), float(H[0, 1]), float(H[1, 1]))

    def f(w: torch.Tensor) -> torch.Tensor:
        # written out (not einsum): this runs once per optimizer step, so it must be cheap
        x, y = w[..., 0], w[..., 1]
        if h01 == 0.0:
            return 0.5 * (h00 * x * x + h11 * y * y)
        return 0.5 * (h00 * x * x + 2 * h01 * x * y + h11 * y * y)

    return Landscape(
        name="quadratic",
        f=f,
        minima=[(0.0, 0.0)],
        xlim=(-2.0, 2.0),
        ylim=(-2.0, 2.0),
        start=(-1.8, 1.0),
        description="ill-conditioned quadratic ½wᵀHw; GD is stable for lr < 2/λ_max",
        hessian_eigenvalues=lam,
        params={"condition_number": condition_number, "lambda_max": lambda_max, "angle": angle},
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    """(a − x)² + b (y − x²)²: a curved, flat-bottomed banana valley; minimum (a, a²)."""

    def f(w):
        x, y = w[..., 0], w[..., 1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    return Landscape(
        name="rosenbrock",
        f=f,
        minima=[(a, a * a)],
        xlim=(-2.0, 2.0),
        ylim=(-1.0, 3.0),
        start=(-1.5, 2.0),
        description="curved valley; easy to find, slow to follow",
        params={"a": a, "b": b},
    )


def beale() -> Landscape:
    """Beale's function: sharp walls and a flat plateau; minimum (3, 0.5)."""

    def f(w):
        x, y = w[..., 0], w[..., 1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return Landscape(
        name="beale",
        f=f,
        minima=[(3.0, 0.5)],
        xlim=(-4.5, 4.5),
        ylim=(-4.5, 4.5),
        start=(1.0, 1.5),
        description="flat plateau between steep walls",
    )


def himmelblau() -> Landscape:
    """(x² + y − 11)² + (x + y² − 7)²: four equal minima, four saddles and one maximum."""

    def f(w):
        x, y = w[..., 0], w[..., 1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    approx_min = [(3.0, 2.0), (-2.805, 3.131), (-3.779, -3.283), (3.584, -1.848)]
    approx_saddle = [(0.087, 2.884), (-3.073, -0.081), (3.385, 0.074), (-0.128, -1.954)]
    return Landscape(
        name="himmelblau",
        f=f,
        minima=[_refine(f, p) for p in approx_min],
        saddles=[_refine(f, p) for p in approx_saddle],
        xlim=(-5.0, 5.0),
        ylim=(-5.0, 5.0),
        start=(-0.3, -0.9),
        description="four minima with f = 0; which one you reach depends on the start",
    )


def saddle() -> Landscape:
    """x² − y²: the textbook saddle. Hessian diag(2, −2) is indefinite; the gradient vanishes at 0.

    Start slightly off the x-axis: exactly on it, gradient descent converges *to* the saddle.
    """

    def f(w):
        return w[..., 0] ** 2 - w[..., 1] ** 2

    return Landscape(
        name="saddle",
        f=f,
        saddles=[(0.0, 0.0)],
        xlim=(-2.0, 2.0),
        ylim=(-2.0, 2.0),
        start=(1.5, 1e-3),
        description="x² − y²: unbounded below along y; escaping takes ~log(1/y0) steps",
        bounded_below=False,
    )


def inflection() -> Landscape:
    """x³ + y²: a degenerate critical point at the origin (zero curvature along x).

    For x > 0 gradient descent creeps towards the flat point like 1/k; for x < 0 the function is
    unbounded below, so runs that cross zero run away downhill (and are reported as escaped).
    """

    def f(w):
        return w[..., 0] ** 3 + w[..., 1] ** 2

    return Landscape(
        name="inflection",
        f=f,
        saddles=[(0.0, 0.0)],
        xlim=(-1.5, 1.5),
        ylim=(-1.5, 1.5),
        start=(1.0, 1.0),
        description="flat inflection point x³: zero gradient, zero curvature",
        bounded_below=False,
    )


def rastrigin(A: float = 10.0) -> Landscape:
    """A·2 + Σ (x² − A cos 2πx): a bowl covered in local minima; global minimum 0 at the origin."""

    def f(w):
        return 2 * A + (w**2 - A * torch.cos(2 * math.pi * w)).sum(-1)

    return Landscape(
        name="rastrigin",
        f=f,
        minima=[(0.0, 0.0)],
        xlim=(-5.12, 5.12),
        ylim=(-5.12, 5.12),
        start=(3.2, 2.1),
        description="many local minima; only the origin is global",
        params={"A": A},
    )


def sharp_flat(
    sharp_width: float = 0.15, flat_width: float = 0.8, depth: float = 1.0, centres=(-1.0, 1.2)
) -> Landscape:
    """Two Gaussian wells of equal depth, one narrow (sharp) and one wide (flat), in a gentle bowl.

    ``f(x, y) = −d·exp(−r₁²/2s²) − d·exp(−r₂²/2S²) + 0.05 (x² + y²)`` with r_i the distance to
    each centre. ``minima[0]`` is the sharp basin, ``minima[1]`` the flat one; their exact
    positions (shifted slightly by the bowl) are found by Newton's method. Used to measure which
    basin noisy runs of each optimizer end in (:meth:`Landscape.nearest_minimum`).
    """
    if not (0 < sharp_width < flat_width):
        raise ValueError(f"need 0 < sharp_width < flat_width, got {sharp_width}, {flat_width}")
    cs = torch.tensor([centres[0], 0.0], dtype=DTYPE)
    cf = torch.tensor([centres[1], 0.0], dtype=DTYPE)

    def f(w):
        rs = ((w - cs) ** 2).sum(-1)
        rf = ((w - cf) ** 2).sum(-1)
        return (
            -depth * torch.exp(-rs / (2 * sharp_width**2))
            - depth * torch.exp(-rf / (2 * flat_width**2))
            + 0.05 * (w**2).sum(-1)
        )

    return Landscape(
        name="sharp_flat",
        f=f,
        minima=[_refine(f, (centres[0], 0.0)), _refine(f, (centres[1], 0.0))],
        xlim=(-2.5, 3.0),
        ylim=(-2.0, 2.0),
        start=(0.0, 1.5),
        description="minima[0] is sharp, minima[1] is flat (same depth)",
        params={"sharp_width": sharp_width, "flat_width": flat_width},
    )


def reddi(C: float = 3.0) -> Landscape:
    """Reddi, Kale & Kumar (2018): f_t(x) = C·x if t mod 3 == 1 else −x, x ∈ [−1, 1], C > 2.

    The average loss (C − 2)/3 · x is minimised at x = −1, but Adam with β1 = 0, β2 = 1/(1+C²)
    drifts to +1 (the *worst* point) because the rare large gradient C is forgotten by the
    moving average of g². AMSGrad converges to −1. The step t counts from 1; every optimizer step
    is followed by projection onto [−1, 1]. A 1-D problem: trajectories have shape (N+1, 1).
    """
    if not C > 2:
        raise ValueError(f"Reddi's counterexample needs C > 2, got {C!r}")

    def f(x, t):
        coef = C if int(t) % 3 == 1 else -1.0
        return coef * x[..., 0]

    return Landscape(
        name="reddi",
        f=f,
        minima=[(-1.0,)],
        xlim=(-1.0, 1.0),
        ylim=(-1.0, 1.0),
        start=(0.0,),
        description="online problem; Adam goes to +1, AMSGrad to the optimum −1",
        dim=1,
        online=True,
        project=lambda x: x.clamp(-1.0, 1.0),
        params={"C": C},
    )


LANDSCAPES: dict[str, Callable[..., Landscape]] = {
    "quadratic": quadratic,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "saddle": saddle,
    "inflection": inflection,
    "rastrigin": rastrigin,
    "sharp_flat": sharp_flat,
    "reddi": reddi,
}


def get_landscape(name: str | Landscape, **params: Any) -> Landscape:
    """A landscape by name (``"rosenbrock"``, ...) and parameters; a Landscape passes through."""
    if isinstance(name, Landscape):
        if params:
            raise ValueError("parameters can only be given together with a landscape name")
        return name
    if name not in LANDSCAPES:
        raise ValueError(f"unknown landscape {name!r}; choose one of {sorted(LANDSCAPES)}")
    return LANDSCAPES[name](**params)


# --------------------------------------------------------------------------- running optimizers


def plural(n: int, word: str) -> str:
    """``"1 step"``, ``"4 steps"``: a count with its noun, in the right number."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class Trajectory:
    """The result of :func:`run_optimizer`.

    ``points`` has shape ``(k + 1, dim)``: the start and every point after a step, up to the last
    good one. ``losses[i]`` is the loss at ``points[i]`` (for online problems: the loss
    ``f_{i+1}(points[i])`` incurred at step i + 1).

    A run ends in one of three ways, and ``outcome`` says which:

    - ``"finished"``: all ``steps`` steps were taken;
    - ``"diverged"``: step ``diverged_at`` produced a non-finite value, or left the escape box
      (:meth:`Landscape.escape_box`) without lowering the loss;
    - ``"escaped"``: step ``escaped_at`` left the escape box *downhill* on a landscape that is
      unbounded below (``landscape.bounded_below`` is False, e.g. the saddle x² − y²): the loss
      was still falling, so the optimizer did its job and there is no minimum to reach.

    In the last two cases ``points`` stops just before that step. ``label`` is the name given to
    :func:`run_optimizer` or, without one, ``spec``: the optimizer class with all its
    hyperparameters, e.g. ``"SGD(lr=0.1, momentum=0, dampening=0, weight_decay=0)"``.
    """

    points: np.ndarray
    losses: np.ndarray
    label: str
    optimizer: str
    hyperparameters: dict[str, Any]
    landscape: str
    steps: int
    noise: float = 0.0
    seed: int = 0
    diverged: bool = False
    diverged_at: int | None = None
    escaped: bool = False
    escaped_at: int | None = None
    spec: str = ""

    @property
    def final(self) -> np.ndarray:
        return self.points[-1]

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def outcome(self) -> str:
        """``"finished"``, ``"diverged"`` or ``"escaped"`` (see the class docstring)."""
        return "diverged" if self.diverged else "escaped" if self.escaped else "finished"

    @property
    def stopped_at(self) -> int | None:
        """The step that ended the run early (diverged or escaped), ``None`` if it finished."""
        return self.diverged_at if self.diverged else self.escaped_at

    @property
    def named(self) -> bool:
        """Whether the run was given its own label (otherwise ``label`` is the full ``spec``)."""
        return bool(self.spec) and self.label != self.spec

    @property
    def ending(self) -> str:
        """How the run ended, in a few words: ``""`` if it finished, else e.g.
        ``"diverged after 1 step"`` or ``"escaped after 54 steps (the loss is unbounded below)"``.
        """
        if self.diverged:
            return f"diverged after {plural(self.diverged_at, 'step')}"
        if self.escaped:
            return f"escaped after {plural(self.escaped_at, 'step')} (the loss is unbounded below)"
        return ""

    @property
    def message(self) -> str:
        """One line for a widget or a print: where the run ended, or why it stopped early."""
        if self.ending:
            return f"{self.label}: {self.ending}"
        pt = ", ".join(f"{v:.4g}" for v in self.final)
        return (
            f"{self.label}: after {plural(self.steps, 'step')} at ({pt}), "
            f"loss {self.final_loss:.4g}"
        )

    def first_within(self, target: Sequence[float], tol: float) -> int | None:
        """First step at which the iterate is within ``tol`` of ``target`` (``None`` if never)."""
        d = np.linalg.norm(self.points - np.asarray(target, dtype=float), axis=1)
        hit = np.nonzero(d <= tol)[0]
        return int(hit[0]) if hit.size else None

    def first_outside(self, centre: Sequence[float], radius: float) -> int | None:
        """First step at which the iterate is farther than ``radius`` from ``centre`` (escape)."""
        d = np.linalg.norm(self.points - np.asarray(centre, dtype=float), axis=1)
        hit = np.nonzero(d > radius)[0]
        return int(hit[0]) if hit.size else None


def run_optimizer(
    landscape: Landscape | str,
    optimizer: Any,
    steps: int = 100,
    start: Sequence[float] | None = None,
    *,
    noise: float = 0.0,
    seed: int = 0,
    label: str | None = None,
    scheduler: Callable | None = None,
    escape: float = 10.0,
    **optimizer_kwargs: Any,
) -> Trajectory:
    """Run an optimizer on a landscape for ``steps`` steps from ``start``.

    >>> from torch.optim import SGD
    >>> tr = run_optimizer(quadratic(10), SGD, steps=50, lr=0.5)
    >>> tr.points.shape, tr.diverged
    ((51, 2), False)
    >>> run_optimizer(quadratic(10), SGD, steps=50, lr=2.5).message
    'SGD(lr=2.5, momentum=0, dampening=0, weight_decay=0): diverged after 8 steps'
    >>> run_optimizer(saddle(), SGD, steps=100, lr=0.1, label="GD").message
    'GD: escaped after 55 steps (the loss is unbounded below)'

    Parameters
    ----------
    optimizer
        An optimizer class plus its hyperparameters as keyword arguments
        (``torch.optim.Adam, lr=0.1``), or a factory ``lambda params: Adam(params, lr=0.1)``.
    start
        Start point; default ``landscape.start``.
    noise
        Standard deviation of Gaussian noise added to every gradient component (seeded by
        ``seed``), to mimic mini-batch SGD.
    scheduler
        Optional factory ``optimizer -> LRScheduler``, stepped after every optimizer step.
    escape
        A run stops early when an iterate or its loss is non-finite (diverged), or when it leaves
        the box ``escape`` times the size of the plot window (see :meth:`Landscape.escape_box`):
        diverged if the loss there is not below every loss so far, escaped if it is and the
        landscape is unbounded below.
    """
    land = get_landscape(landscape)
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    x0 = land.start if start is None else tuple(float(v) for v in start)
    if len(x0) != land.dim:
        raise ValueError(f"{land.name} is {land.dim}-D but the start point is {x0}")
    if not all(math.isfinite(v) for v in x0):
        raise ValueError(f"start point must be finite, got {x0}")

    p = torch.tensor(x0, dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [p], **optimizer_kwargs)
    sched = scheduler(opt) if scheduler is not None else None
    gen = torch.Generator().manual_seed(seed) if noise > 0 else None
    low, high = land.escape_box(escape)
    low_l, high_l = low.tolist(), high.tolist()
    f, online, project = land.f, land.online, land.project

    points = [list(x0)]
    losses: list[float] = []
    diverged_at = escaped_at = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2-element tensors: extra threads only add hand-off overhead
    try:
        for k in range(steps):
            p.grad = None  # what opt.zero_grad() does, minus its overhead
            loss = f(p, k + 1) if online else f(p)
            loss.backward()
            losses.append(loss.item())
            if gen is not None:
                p.grad.add_(torch.randn(p.shape, generator=gen, dtype=DTYPE), alpha=noise)
            opt.step()
            if project is not None:
                with torch.no_grad():
                    p.copy_(project(p))
            if sched is not None:
                sched.step()
            xy = p.tolist()
            if not all(lo <= v <= hi for v, lo, hi in zip(xy, low_l, high_l)):
                # also catches NaN: every comparison with NaN is False
                if not land.bounded_below and _downhill(land, xy, losses, k + 2):
                    escaped_at = k + 1
                else:
                    diverged_at = k + 1
                break
            points.append(xy)
    finally:
        torch.set_num_threads(threads)
    # the loss at the last good point (for online problems: the loss the next step would incur)
    with torch.no_grad():
        last = torch.tensor(points[-1], dtype=DTYPE)
        final_loss = (f(last, len(points)) if online else f(last)).item()
    losses = losses[: len(points) - 1] + [final_loss]
    if diverged_at is None and not math.isfinite(final_loss):
        diverged_at = len(points) - 1
    loss_arr = np.asarray(losses, dtype=float)
    if diverged_at is not None and not np.all(np.isfinite(loss_arr)):
        good = int(np.argmax(~np.isfinite(loss_arr)))
        points, loss_arr = points[:good] or points[:1], loss_arr[: max(good, 1)]

    spec = optimizer_label(opt)
    return Trajectory(
        points=np.asarray(points, dtype=float),
        losses=loss_arr,
        label=label or spec,
        optimizer=type(opt).__name__,
        hyperparameters=optimizer_hyperparameters(opt),
        landscape=land.title,
        steps=len(points) - 1,
        noise=noise,
        seed=seed,
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        escaped=escaped_at is not None,
        escaped_at=escaped_at,
        spec=spec,
    )


def _downhill(land: Landscape, xy: list[float], losses: list[float], t: int) -> bool:
    """Whether the point ``xy`` (outside the escape box) is finite and below every loss so far."""
    if not all(math.isfinite(v) for v in xy):
        return False
    with torch.no_grad():
        here = torch.tensor(xy, dtype=DTYPE)
        value = (land.f(here, t) if land.online else land.f(here)).item()
    return math.isfinite(value) and all(value < seen for seen in losses)
