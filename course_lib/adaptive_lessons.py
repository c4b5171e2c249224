r"""Experiment helpers for the adaptive-methods lessons (chapters 03 AdaGrad/RMSprop and 04 Adam).

The lessons make claims about *per-coordinate learning rates*: AdaGrad's rate decays like
:math:`1/\sqrt t` and never recovers from one huge gradient, RMSprop forgets it, bias correction
removes the :math:`1-\beta^t` shrinkage of a zero-initialised average, and so on. Each claim is
measured by a notebook cell; the reusable parts of those measurements live here:

- :func:`effective_lrs`: feed any optimizer a *prescribed* gradient sequence on a single
  coordinate and record the **effective learning rate** :math:`|\Delta w_t| / |g_t|` of every
  step (for SGD it is the lr; for AdaGrad :math:`\eta/(\sqrt{G_t}+\epsilon)`). With
  :func:`spike_gradients` this is the "inject one huge gradient" experiment.
- :func:`simulate_ema`: Monte-Carlo estimate of :math:`\mathbb E[v_t]` for a zero-initialised
  EMA of i.i.d. gradients (or their squares), to compare with :math:`(1-\beta^t)\,\mathbb E[g^2]`.
- :func:`sparse_logistic_problem` / :func:`sparse_logistic_objective`: L2-regularised logistic
  regression on :func:`course_lib.data.make_sparse_logistic` data with its exact optimum (Newton's
  method), and a fixed-budget mini-batch objective for :func:`course_lib.compare.compare_optimizers`
  that returns the suboptimality :math:`f(w_T) - f^\star`.
- :func:`source_excerpt`: a function's code without its docstring, to print next to the math.

Everything is float64, seeded and deterministic.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.data import make_sparse_logistic
from course_lib.train import make_optimizer

__all__ = [
    "EMASimulation",
    "SparseLogistic",
    "effective_lrs",
    "source_excerpt",
    "simulate_ema",
    "sparse_logistic_objective",
    "sparse_logistic_problem",
    "spike_gradients",
    "train_sparse_logistic",
]

DTYPE = torch.float64


# --------------------------------------------------------------------------- source excerpts


def source_excerpt(obj: Any, drop_docstring: bool = True) -> str:
    """The source code of a function or class, dedented, optionally without its docstring.

    >>> print(source_excerpt(spike_gradients).splitlines()[0])
    def spike_gradients(
    """
    src = textwrap.dedent(inspect.getsource(obj))
    if not drop_docstring:
        return src.rstrip()
    doc = inspect.getdoc(obj)
    if doc:
        for quote in ('r"""', '"""', "r'''", "'''"):
            start = src.find(quote)
            if start != -1:
                end = src.find(quote[-3:], start + len(quote))
                if end != -1:
                    line_end = src.find("\n", end)
                    src = src[:start].rstrip(" ") + src[line_end + 1 :]
                    break
    return src.rstrip()


# --------------------------------------------------------------------------- effective lrs


def spike_gradients(
    steps: int,
    spike_at: int | None = None,
    spike: float = 100.0,
    base: float = 1.0,
    *,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A gradient sequence: ``base`` (plus Gaussian ``noise``), with one ``spike`` at ``spike_at``.

    ``spike_at`` is a 0-based step index (``None``: no spike). The spike *replaces* the gradient
    of that step, e.g. an exploding gradient from a bad batch.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if spike_at is not None and not 0 <= spike_at < steps:
        raise ValueError(f"spike_at must be in [0, {steps}), got {spike_at!r}")
    rng = np.random.default_rng(seed)
    g = base + noise * rng.standard_normal(steps)
    if spike_at is not None:
        g[spike_at] = spike
    return g


def effective_lrs(
    optimizer: Any,
    grads: Sequence[float] | np.ndarray,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **optimizer_kwargs: Any,
) -> np.ndarray:
    r"""Run ``optimizer`` on a parameter fed the gradients ``grads``; return :math:`|\Delta w|/|g|`.

    ``grads`` has shape ``(T,)`` (one coordinate) or ``(T, d)`` (``d`` coordinates stepped
    together). At step ``t`` the parameter's gradient is *set* to ``grads[t]`` (there is no loss:
    the gradient sequence is the experiment), the optimizer steps, and the effective learning
    rate :math:`|w_{t+1} - w_t| / |g_t|` is recorded (NaN where :math:`g_t = 0`). ``optimizer`` is a
    class plus ``**optimizer_kwargs`` or a factory ``params -> optimizer`` (as everywhere in the
    course); ``scheduler`` an optional factory ``optimizer -> LRScheduler``, stepped after every
    step. Returns an array of the shape of ``grads``.

    For SGD the result is the learning rate itself; for AdaGrad on a constant gradient it is
    :math:`\eta/\sqrt t`; for Adam on a constant gradient it is :math:`\eta/|g|`.
    """
    g_all = torch.as_tensor(np.asarray(grads, dtype=float), dtype=DTYPE)
    if g_all.ndim not in (1, 2) or g_all.shape[0] < 1:
        raise ValueError(f"grads must have shape (T,) or (T, d), got {tuple(g_all.shape)}")
    squeeze = g_all.ndim == 1
    if squeeze:
        g_all = g_all[:, None]
    w = torch.zeros(g_all.shape[1], dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [w], **optimizer_kwargs)
    sched = scheduler(opt) if scheduler is not None else None
    points = torch.empty(g_all.shape[0] + 1, g_all.shape[1], dtype=DTYPE)
    points[0] = w.detach()
    for t in range(g_all.shape[0]):
        w.grad = g_all[t].clone()
        opt.step()
        if sched is not None:
            sched.step()
        points[t + 1] = w.detach()
    dw = (points[1:] - points[:-1]).abs().numpy()
    g_abs = g_all.abs().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(g_abs != 0, dw / g_abs, np.nan)
    return out[:, 0] if squeeze else out


# --------------------------------------------------------------------------- bias of an EMA


@dataclass
class EMASimulation:
    r"""Monte-Carlo estimate of :math:`\mathbb E[v_t]` for a zero-initialised EMA.

    ``t`` (1-based steps), ``mean`` and ``sem`` (its standard error) over ``runs`` independent
    runs, the exact ``expected`` value :math:`(1-\beta^t)\,\mu` and the stationary target
    :math:`\mu` (:math:`\mathbb E[g^2]` for the second moment, :math:`\mathbb E[g]` for the first).
    """

    beta: float
    t: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    expected: np.ndarray
    target: float
    runs: int

    @property
    def z(self) -> np.ndarray:
        """(mean − expected) / sem at every step: standard normal if the formula is right."""
        return (self.mean - self.expected) / self.sem

    @property
    def corrected(self) -> np.ndarray:
        r"""The bias-corrected mean :math:`\overline{v_t}/(1-\beta^t)` (≈ ``target`` at every t)."""
        return self.mean / (1 - self.beta**self.t)


def simulate_ema(
    beta: float,
    steps: int,
    runs: int = 4000,
    *,
    mean: float = 0.5,
    std: float = 1.0,
    square: bool = True,
    seed: int = 0,
) -> EMASimulation:
    r"""Simulate ``runs`` zero-initialised EMAs of i.i.d. Gaussian gradients for ``steps`` steps.

    Gradients are :math:`g \sim \mathcal N(\text{mean}, \text{std}^2)`. With ``square=True`` the
    EMA is Adam's second moment :math:`v_t = \beta v_{t-1} + (1-\beta) g_t^2`, whose expectation is
    :math:`(1-\beta^t)\,\mathbb E[g^2]` with :math:`\mathbb E[g^2] = \text{mean}^2 + \text{std}^2`;
    with ``square=False`` it is the first moment :math:`m_t` and :math:`\mathbb E[m_t] =
    (1-\beta^t)\,\text{mean}`.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    if not isinstance(steps, int) or steps < 1 or not isinstance(runs, int) or runs < 2:
        raise ValueError(f"need steps >= 1 and runs >= 2, got steps={steps!r}, runs={runs!r}")
    gen = torch.Generator().manual_seed(seed)
    v = torch.zeros(runs, dtype=DTYPE)
    means, sems = np.empty(steps), np.empty(steps)
    for k in range(steps):
        g = mean + std * torch.randn(runs, generator=gen, dtype=DTYPE)
        v.mul_(beta).add_(g * g if square else g, alpha=1 - beta)
        means[k] = v.mean().item()
        sems[k] = v.std().item() / math.sqrt(runs)
    t = np.arange(1, steps + 1)
    target = mean**2 + std**2 if square else mean
    return EMASimulation(
        beta=beta,
        t=t,
        mean=means,
        sem=sems,
        expected=(1 - beta**t) * target,
        target=target,
        runs=runs,
    )


# --------------------------------------------------------------------------- sparse logistic


@dataclass
class SparseLogistic:
    r"""L2-regularised logistic regression with rare features and its exact optimum.

    :math:`f(w) = \frac1n\sum_i \log(1 + e^{-s_i x_i^\top w}) + \frac\lambda2\lVert w\rVert^2`
    (:math:`s_i = \pm 1`), on the training split of :func:`course_lib.data.make_sparse_logistic`
    with a constant feature appended (the bias). ``frequency[j]`` is the fraction of examples in
    which feature ``j`` is non-zero; ``f_star`` is the minimum, found by Newton's method.
    """

    X: torch.Tensor
    y: torch.Tensor
    l2: float
    w_star: torch.Tensor
    f_star: float
    frequency: np.ndarray
    seed: int

    def loss(self, w: torch.Tensor) -> float:
        """Full-batch objective :math:`f(w)`."""
        with torch.no_grad():
            return _logistic_loss(self.X, self.y, w.detach().to(DTYPE), self.l2).item()

    def gradient(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient of the objective on the examples ``idx`` (all of them if ``None``)."""
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        with torch.no_grad():
            return X.T @ (torch.sigmoid(X @ w) - y) / len(y) + self.l2 * w


def _logistic_loss(X, y, w, l2):
    return torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 0.5 * l2 * (w @ w)


def sparse_logistic_problem(
    seed: int = 0, n: int = 2000, d: int = 100, l2: float = 1e-3, **data_kwargs: Any
) -> SparseLogistic:
    """Build the problem from ``make_sparse_logistic(n, d, seed)`` and solve it exactly.

    Newton's method with the exact Hessian (``d + 1`` unknowns) converges to machine precision in
    a few iterations; the L2 term makes the problem strongly convex, so the optimum is unique even
    when a rare feature appears only in positive examples.
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it makes the optimum finite), got {l2!r}")
    data = make_sparse_logistic(n=n, d=d, seed=seed, dtype=DTYPE, **data_kwargs)
    X = torch.cat([data.X_train, torch.ones(len(data.X_train), 1, dtype=DTYPE)], dim=1)
    y = data.y_train.to(DTYPE)
    w = torch.zeros(X.shape[1], dtype=DTYPE)
    eye = torch.eye(X.shape[1], dtype=DTYPE)
    for _ in range(50):
        p = torch.sigmoid(X @ w)
        grad = X.T @ (p - y) / len(y) + l2 * w
        if grad.abs().max() < 1e-13:
            break
        H = (X.T * (p * (1 - p))) @ X / len(y) + l2 * eye
        w = w - torch.linalg.solve(H, grad)
    frequency = (data.X_train != 0).double().mean(0).numpy()
    return SparseLogistic(
        X=X,
        y=y,
        l2=l2,
        w_star=w,
        f_star=_logistic_loss(X, y, w, l2).item(),
        frequency=frequency,
        seed=seed,
    )


def train_sparse_logistic(
    problem: SparseLogistic,
    optimizer: Any,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **optimizer_kwargs: Any,
) -> torch.Tensor:
    """Mini-batch training of the weights of ``problem`` from :math:`w = 0`; returns :math:`w_T`.

    ``optimizer`` is a class plus ``**optimizer_kwargs`` or a factory ``params -> optimizer``. The
    batch order is drawn from a generator seeded with ``seed``; gradients are computed in closed
    form (:meth:`SparseLogistic.gradient`), so a run of a few hundred steps takes milliseconds.
    ``scheduler``: optional factory ``optimizer -> LRScheduler``, stepped after every step.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    w = torch.zeros(problem.X.shape[1], dtype=DTYPE, requires_grad=True)
    opt = make_optimizer(optimizer, [w], **optimizer_kwargs)
    sched = scheduler(opt) if scheduler is not None else None
    gen = torch.Generator().manual_seed(seed)
    n = len(problem.y)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            w.grad = problem.gradient(w.detach(), perm[i : i + batch_size])
            opt.step()
            if sched is not None:
                sched.step()
    return w.detach().clone()


def sparse_logistic_objective(
    epochs: int = 10,
    batch_size: int = 32,
    *,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    **problem_kwargs: Any,
) -> Callable[[Callable, int], float]:
    r"""Objective for :func:`~course_lib.compare.compare_optimizers`: suboptimality after a budget.

    ``objective(make_optimizer, seed)`` builds :func:`sparse_logistic_problem` with that ``seed``
    (a new data set per seed; problems are cached), starts from :math:`w = 0`, runs ``epochs``
    epochs of mini-batch steps (batch order seeded by ``seed``) and returns
    :math:`f(w_T) - f^\star` (NaN if the run diverged). ``scheduler`` (optional factory
    ``optimizer -> LRScheduler``) is applied to every run, e.g. the :math:`\alpha/\sqrt t` decay
    of the Adam paper's convex experiments.
    """
    cache: dict[int, SparseLogistic] = {}

    def objective(make_opt: Callable, seed: int) -> float:
        if seed not in cache:
            cache[seed] = sparse_logistic_problem(seed=seed, **problem_kwargs)
        prob = cache[seed]
        w = train_sparse_logistic(
            prob, make_opt, epochs=epochs, batch_size=batch_size, seed=seed, scheduler=scheduler
        )
        gap = prob.loss(w) - prob.f_star
        return gap if math.isfinite(gap) else math.nan

    objective.problems = cache  # type: ignore[attr-defined]
    return objective
