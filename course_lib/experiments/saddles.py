r"""Saddle escape and flat-minimum selection under gradient noise (chapter 09, Adai).

**The noise model.** Near a critical point the diffusion theory of SGD (Zhu et al., 2019; Xie,
Sato & Sugiyama, ICLR 2021, "A Diffusion Theory for Deep Learning Dynamics") approximates the
covariance of a mini-batch gradient by

.. math:: C(w) \approx \frac{1}{B}\, H(w),

the Hessian over the batch size. The argument: for a negative log-likelihood loss the covariance
of one example's gradient is the empirical Fisher matrix, which equals the Hessian in expectation
when the labels are distributed as the model predicts. It is an approximation with conditions
(near a critical point, a likelihood loss, a model whose predictions match the label
distribution); :func:`fisher_to_hessian_ratio` measures where it holds on the digits. At a saddle
the Hessian has negative eigenvalues; here, as in the theory, the noise along an eigen-direction
has variance :math:`|h|/B`.

**Saddle escape.** :func:`saddle_gradient` is that model on the quadratic saddle

.. math:: f(x, y) = \tfrac{a}{2} x^2 - \tfrac{h}{2} y^2 ,\qquad
          \tilde g = \nabla f + \big(\sqrt{a/B}\,\xi_1,\ \sqrt{h/B}\,\xi_2\big),

with a tiny negative curvature :math:`-h` along :math:`y`. Every run starts *on* the saddle; it
has escaped at the first step with :math:`|y| \ge r` (:func:`escape_steps`). Linearised, plain
SGD multiplies :math:`y` by :math:`1 + \eta h` per step and adds noise of variance
:math:`\eta^2 h / B`, so the spread grows like :math:`(1+\eta h)^t` and the escape time scales
like :math:`1/(\eta h)`: slow when the curvature is tiny, and driven only by the noise (a run
started exactly at :math:`y = 0` never leaves without it).

**Many runs at once.** ``chains`` independent runs are the rows of one parameter tensor of shape
``(chains, 2)``. SGD, SGD with momentum and Adam are elementwise, so rows never interact and
``course_lib.optim`` runs them directly. Adai is not elementwise: its :math:`\beta_1` compares each
:math:`\hat v` with the mean of :math:`\hat v` over *all* parameters, which would mix the runs.
:class:`ChainsAdai` is Adai with the mean taken per row (one row = one model); the tests check
that every row follows :class:`course_lib.optim.Adai` run on that row alone.

**Which basin.** :class:`TwoBasins` is :func:`course_lib.landscapes.sharp_flat` (two Gaussian
wells of equal depth, a narrow and a wide one) with its gradient and Hessian in closed form, and
:func:`basin_fractions` starts half of the runs in each minimum, applies the same noise model
(covariance :math:`|H(w)|/B`, :math:`|H|` the matrix with the absolute eigenvalues) and counts
the runs that end nearer the flat minimum, with a Wilson confidence interval
(:func:`wilson_interval`). 0.5 means no preference.

**A real network.** :func:`train_to_loss` trains an MLP on the digits until its full-batch
training loss first falls below a target (runs are compared at *matched training loss*, not at a
matched number of steps), and :func:`sharpness_at_matched_loss` measures the top Hessian
eigenvalue there (:func:`digits_sharpness`, with
:func:`course_lib.experiments.sharpness.top_hessian_eigenvalue`). :func:`rescaled_copy` is Dinh
et al.'s (2017) counterpoint: the same function with another sharpness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.landscapes import Landscape, sharp_flat
from course_lib.optim import SGD, Adai, Adam

__all__ = [
    "OPTIMIZERS",
    "BasinResult",
    "ChainsAdai",
    "MatchedLossRun",
    "TwoBasins",
    "basin_fractions",
    "chains_optimizer",
    "escape_steps",
    "escape_time_table",
    "fisher_to_hessian_ratio",
    "saddle_gradient",
    "digits_sharpness",
    "rescaled_copy",
    "train_to_loss",
    "wilson_interval",
]

DTYPE = torch.float64
OPTIMIZERS = ("SGD", "Momentum", "Adam", "Adai")


class ChainsAdai(torch.optim.Optimizer):
    r"""Adai for many independent copies of one small model: each row of every parameter is a
    copy, and the mean :math:`\overline{\hat v}` is taken *per row* over all parameters.

    For a single parameter of shape ``(chains, d)`` row :math:`c` follows exactly
    :class:`course_lib.optim.Adai` on a ``d``-vector (tested), with the official code's update:

    .. math::
        v &\leftarrow \beta_2 v + (1-\beta_2) g^2,\quad \hat v = v/(1-\beta_2^t),\quad
        \beta_1 = \operatorname{clip}(1 - \beta_0 \hat v / \overline{\hat v}_c,\ 0,\ 1-\epsilon)\\
        m &\leftarrow \beta_1 m + (1-\beta_1) g,\quad P \leftarrow P\beta_1,\quad
        w \leftarrow w - \eta\, m/(1-P)

    No weight decay (the experiments here have none). A row whose gradients were all zero so far
    has :math:`\overline{\hat v}_c = 0`; its ratio is taken as 0, as in ``course_lib.optim``.
    """

    def __init__(self, params, lr: float, betas=(0.1, 0.99), eps: float = 1e-3):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            return None
        sums, count = 0.0, 0
        for group in self.param_groups:
            beta2 = group["betas"][1]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["v"] = torch.zeros_like(p)
                    state["m"] = torch.zeros_like(p)
                    state["beta1_prod"] = torch.ones_like(p)
                state["step"] += 1
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                v_hat = state["v"] / (1 - beta2 ** state["step"])
                sums = sums + v_hat.reshape(v_hat.shape[0], -1).sum(1)
                count += v_hat[0].numel()
        mean = sums / count  # one mean per row (per copy of the model)
        for group in self.param_groups:
            beta0, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                v_hat = state["v"] / (1 - beta2 ** state["step"])
                row_mean = mean.reshape(-1, *([1] * (p.dim() - 1)))
                ratio = torch.where(row_mean > 0, v_hat / row_mean, torch.zeros_like(v_hat))
                beta1 = (1 - beta0 * ratio).clamp(0.0, 1 - group["eps"])
                state["beta1_prod"].mul_(beta1)
                state["m"].mul_(beta1).addcmul_(1 - beta1, p.grad)
                p.sub_(group["lr"] * state["m"] / (1 - state["beta1_prod"]))
        return None


def chains_optimizer(name: str, w: torch.Tensor, lr: float, adam_lr: float | None = None):
    r"""The optimizer ``name`` (one of :data:`OPTIMIZERS`) on the rows of ``w``, with the
    learning-rate convention of the Adai paper's comparison:

    * ``"SGD"``: :math:`\eta`;
    * ``"Momentum"``: PyTorch's heavy ball with :math:`\mu = 0.9` and lr :math:`\eta/10`, the same
      effective step :math:`\eta/(1-\mu) = \eta` (the official Adai README: Adai's lr is SGD's, or
      10× SGD-momentum's);
    * ``"Adai"``: :math:`\eta`, betas (0.1, 0.99), eps 1e-3 (:class:`ChainsAdai`);
    * ``"Adam"``: ``adam_lr`` (default :math:`\eta/10`), betas (0.9, 0.999). Adam's step has
      another unit (about ``adam_lr`` per coordinate whatever the gradient's size), so no
      conversion makes it "the same" learning rate; the lesson states the value it uses.
    """
    if name == "SGD":
        return SGD([w], lr=lr)
    if name == "Momentum":
        return SGD([w], lr=lr / 10, momentum=0.9)
    if name == "Adam":
        return Adam([w], lr=lr / 10 if adam_lr is None else adam_lr)
    if name == "Adai":
        return ChainsAdai([w], lr=lr)
    raise ValueError(f"unknown optimizer {name!r}: one of {OPTIMIZERS}")


def saddle_gradient(
    w: torch.Tensor,
    curvature: float,
    *,
    stiffness: float = 1.0,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""A noisy gradient of :math:`f(x,y) = \frac a2 x^2 - \frac h2 y^2` at the rows of ``w``
    (shape ``(chains, 2)``): :math:`(a x, -h y)` plus Gaussian noise of variance
    :math:`(a/B,\ h/B)`, the diffusion model :math:`C = |H|/B`. ``curvature`` is
    :math:`h > 0`, ``stiffness`` is :math:`a`."""
    if curvature <= 0 or stiffness <= 0 or batch_size < 1:
        raise ValueError("need curvature > 0, stiffness > 0 and batch_size >= 1")
    scale = torch.tensor([stiffness, curvature], dtype=w.dtype)
    exact = w * torch.tensor([stiffness, -curvature], dtype=w.dtype)
    xi = torch.randn(w.shape, generator=generator, dtype=w.dtype)
    return exact + xi * (scale / batch_size).sqrt()


def escape_steps(
    name: str,
    curvature: float,
    *,
    lr: float = 0.5,
    adam_lr: float | None = None,
    chains: int = 1000,
    max_steps: int = 3000,
    radius: float = 1.0,
    batch_size: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    r"""Steps each of ``chains`` noisy runs of ``name`` needs to leave the saddle.

    Every run starts at the saddle :math:`(0, 0)`; the answer for a run is the first step
    :math:`t \ge 1` after which :math:`|y| \ge` ``radius``, or ``inf`` if it is still inside
    after ``max_steps`` steps (a censored run: report how many). Shape ``(chains,)``, float64.
    Raises ``ValueError`` if the runs diverge along the stable direction :math:`x` (some
    :math:`|x| \ge 10^6` at the end, or not a number).
    Gradients from :func:`saddle_gradient`; optimizers and learning rates from
    :func:`chains_optimizer`. The loop stops early once every run has escaped.
    """
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(chains, 2, dtype=DTYPE, requires_grad=True)
    opt = chains_optimizer(name, w, lr, adam_lr)
    steps = torch.full((chains,), math.inf, dtype=DTYPE)
    for t in range(1, max_steps + 1):
        w.grad = saddle_gradient(w.detach(), curvature, batch_size=batch_size, generator=gen)
        opt.step()
        out = (w.detach()[:, 1].abs() >= radius) & torch.isinf(steps)
        steps[out] = t
        if not torch.isinf(steps).any():
            break
    if not (w.detach()[:, 0].abs() < 1e6).all():  # |x| stays O(1) unless the runs blow up
        raise ValueError(f"{name} diverged along the stable direction: lr={lr} is too large")
    return steps


def escape_time_table(
    names: Sequence[str], curvatures: Sequence[float], **kwargs
) -> dict[tuple[str, float], torch.Tensor]:
    """:func:`escape_steps` for every optimizer and curvature (same seed: same noise draws)."""
    return {(n, h): escape_steps(n, h, **kwargs) for n in names for h in curvatures}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    r"""The Wilson score interval for a proportion :math:`\hat p = k/n` (95 % for z = 1.96):

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n}
              + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}

    Unlike :math:`\hat p \pm z\sqrt{\hat p(1-\hat p)/n}` it stays inside [0, 1] and does not
    collapse to a point when :math:`k = 0` or :math:`k = n`."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}, {n}")
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class TwoBasins:
    r""":func:`course_lib.landscapes.sharp_flat` with its gradient and Hessian in closed form,
    batched over rows (the noise model needs :math:`H(w)` at every run, every step).

    With :math:`E_k = d\,e^{-\lVert w-c_k\rVert^2/2s_k^2}`, :math:`f = -\sum_k E_k + \kappa
    \lVert w\rVert^2` (:math:`\kappa = 0.05`):
    :math:`\nabla f = \sum_k E_k (w-c_k)/s_k^2 + 2\kappa w`,
    :math:`H = \sum_k E_k \big(I/s_k^2 - (w-c_k)(w-c_k)^\top/s_k^4\big) + 2\kappa I`.
    ``landscape`` is the shared :class:`~course_lib.landscapes.Landscape` (its ``minima[0]`` is
    the sharp minimum, ``minima[1]`` the flat one).
    """

    bowl = 0.05

    def __init__(self, sharp_width=0.15, flat_width=0.8, depth=1.0, centres=(-1.0, 1.2)):
        self.landscape: Landscape = sharp_flat(sharp_width, flat_width, depth, centres)
        self.widths = (sharp_width, flat_width)
        self.depth = depth
        self.centres = [torch.tensor([c, 0.0], dtype=DTYPE) for c in centres]
        self.minima = torch.tensor(self.landscape.minima, dtype=DTYPE)

    def _wells(self, w):
        for c, s in zip(self.centres, self.widths):
            d = w - c
            e = self.depth * torch.exp(-(d**2).sum(-1) / (2 * s**2))
            yield d, e, s

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        g = 2 * self.bowl * w
        for d, e, s in self._wells(w):
            g = g + e[..., None] * d / s**2
        return g

    def hessian(self, w: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(2, dtype=w.dtype)
        H = 2 * self.bowl * eye.expand(*w.shape[:-1], 2, 2)
        for d, e, s in self._wells(w):
            outer = d[..., :, None] * d[..., None, :]
            H = H + e[..., None, None] * (eye / s**2 - outer / s**4)
        return H

    def noisy_gradient(self, w, batch_size=1, generator=None) -> torch.Tensor:
        r""":math:`\nabla f(w) + |H(w)|^{1/2}\xi/\sqrt B`: noise with covariance
        :math:`|H(w)|/B` (per row)."""
        lam, Q = torch.linalg.eigh(self.hessian(w))
        xi = torch.randn(w.shape, generator=generator, dtype=w.dtype)
        root = Q @ (lam.abs().sqrt()[..., None] * (Q.transpose(-1, -2) @ xi[..., None]))
        return self.gradient(w) + root[..., 0] / math.sqrt(batch_size)

    def in_flat_basin(self, w: torch.Tensor) -> torch.Tensor:
        """True for rows nearer the flat minimum than the sharp one (as
        :meth:`~course_lib.landscapes.Landscape.nearest_minimum`)."""
        dist = torch.cdist(w.to(DTYPE), self.minima)
        return dist[:, 1] < dist[:, 0]


@dataclass
class BasinResult:
    """Runs that ended in the flat basin: count, total, fraction and its 95 % Wilson interval;
    ``final`` are the end points ``(chains, 2)``."""

    flat: int
    n: int
    low: float
    high: float
    final: torch.Tensor

    @property
    def fraction(self) -> float:
        return self.flat / self.n


def basin_fractions(
    name: str,
    *,
    lr: float = 0.02,
    adam_lr: float | None = None,
    batch_size: int = 1,
    chains: int = 400,
    steps: int = 1500,
    seed: int = 0,
    basins: TwoBasins | None = None,
) -> BasinResult:
    r"""Half of ``chains`` runs of ``name`` start in the sharp minimum, half in the flat one;
    after ``steps`` noisy steps (:meth:`TwoBasins.noisy_gradient`) count those nearer the flat
    minimum. A fraction of 0.5 is no preference, 1 a run always ends in the flat basin. If the
    runs blow up (some coordinate beyond :math:`10^6`) they stop and ``final`` is NaN: diverged."""
    basins = basins or TwoBasins()
    gen = torch.Generator().manual_seed(seed)
    start = basins.minima[torch.arange(chains) % 2].clone()
    w = start.requires_grad_(True)
    opt = chains_optimizer(name, w, lr, adam_lr)
    for _ in range(steps):
        if not (w.detach().abs() < 1e6).all():  # blown up: stop, the caller sees non-finite
            w.data.fill_(math.nan)
            break
        w.grad = basins.noisy_gradient(w.detach(), batch_size, gen)
        opt.step()
    final = w.detach().clone()
    flat = int(basins.in_flat_basin(final).sum())
    return BasinResult(flat, chains, *wilson_interval(flat, chains), final)


def fisher_to_hessian_ratio(l2: float, *, test_size: float = 0.25) -> float:
    r"""Median over informative weights of (empirical Fisher diagonal) / (Hessian diagonal) at
    the minimum of L2-regularised softmax regression on the digits (chapter 04's
    :mod:`course_lib.experiments.adam_scaling`). 1 is where :math:`C \approx H/B` holds for
    :math:`B = 1`; the ratio uses the observed labels, as a mini-batch gradient does."""
    from course_lib.data import load_digits_data
    from course_lib.experiments.adam_scaling import softmax_curvature, softmax_regression_minimum

    data = load_digits_data(test_size=test_size, dtype=DTYPE)
    W = softmax_regression_minimum(data.X_train, data.y_train, 10, l2=l2)
    c = softmax_curvature(W, data.X_train, data.y_train, l2=l2)
    used = c.informative
    return float((c.fisher[used] / c.hessian[used]).median())


@dataclass
class MatchedLossRun:
    """A run stopped at matched training loss: the model, the full-batch training loss and the
    epoch where it first fell below the target (``reached`` is False if it never did)."""

    name: str
    seed: int
    model: nn.Module
    loss: float
    epochs: int
    reached: bool


def _full_loss(model, X, y) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(X), y))


def train_to_loss(
    name: str,
    optimizer_kwargs: dict,
    *,
    target: float = 0.05,
    max_epochs: int = 60,
    batch_size: int = 32,
    hidden: int = 32,
    seed: int = 0,
) -> MatchedLossRun:
    """Train ``make_mlp(64, hidden, 10, seed)`` on the digits' training split with mini-batches
    (order seeded by ``seed``) until the full-batch training cross-entropy, checked after every
    epoch, is below ``target``. ``name`` is ``"SGD"``, ``"Adam"`` or ``"Adai"``
    (``course_lib.optim``) built with ``optimizer_kwargs``."""
    from course_lib.data import load_digits_data
    from course_lib.train import make_mlp

    classes = {"SGD": SGD, "Adam": Adam, "Adai": Adai}
    data = load_digits_data()
    X, y = data.X_train, data.y_train
    model = make_mlp(64, hidden, 10, seed=seed)
    opt = classes[name](model.parameters(), **optimizer_kwargs)
    gen = torch.Generator().manual_seed(seed)
    loss = _full_loss(model, X, y)
    for epoch in range(1, max_epochs + 1):
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        loss = _full_loss(model, X, y)
        if loss < target:
            return MatchedLossRun(name, seed, model, loss, epoch, True)
    return MatchedLossRun(name, seed, model, loss, max_epochs, False)


def digits_sharpness(model: nn.Module) -> float:
    """Top Hessian eigenvalue of ``model``'s full-batch training loss on the digits (power
    iteration with Hessian-vector products, 200 iterations at most, relative tolerance 1e-5)."""
    from course_lib.data import load_digits_data
    from course_lib.experiments.sharpness import top_hessian_eigenvalue

    data = load_digits_data()
    result = top_hessian_eigenvalue(
        model, nn.functional.cross_entropy, (data.X_train, data.y_train), iters=200, tol=1e-5
    )
    return result.eigenvalue


def rescaled_copy(model: nn.Sequential, alpha: float) -> nn.Sequential:
    r"""A copy of the ReLU MLP ``Linear → ReLU → Linear`` with the first layer (weights and bias)
    multiplied by :math:`\alpha > 0` and the second layer's weights divided by it. Since
    :math:`\mathrm{relu}(\alpha z) = \alpha\,\mathrm{relu}(z)`, it computes the same function;
    its Hessian is not the same (Dinh et al., ICML 2017, "Sharp Minima Can Generalize For Deep
    Nets")."""
    import copy

    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    first, last = model[0], model[-1]
    if len(model) != 3 or not isinstance(first, nn.Linear) or not isinstance(last, nn.Linear):
        raise ValueError("expected Sequential(Linear, ReLU, Linear)")
    out = copy.deepcopy(model)
    with torch.no_grad():
        out[0].weight.mul_(alpha)
        out[0].bias.mul_(alpha)
        out[-1].weight.div_(alpha)
    return out
