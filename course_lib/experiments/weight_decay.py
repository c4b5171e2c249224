r"""Weight decay vs L2 regularisation: what each optimizer really does to the weights (chapter 05).

Two ways to pull weights towards zero, with :math:`\eta` the learning rate and :math:`\lambda` the
coefficient:

* **L2 in the loss**: minimise :math:`L(w) + \tfrac{\lambda}{2}\lVert w\rVert^2`, i.e. add
  :math:`\lambda w` to the gradient *before* the optimizer sees it (``torch.optim.SGD`` and
  ``torch.optim.Adam`` with ``weight_decay=λ``);
* **decoupled decay**: shrink the weights directly, :math:`w \leftarrow (1-\eta\lambda)\,w`, next
  to the step on :math:`L` alone (``torch.optim.AdamW``, the course's ``SGDW``).

For plain SGD the two are one update, :math:`w - \eta(g + \lambda w) = (1-\eta\lambda)w - \eta g`.
Momentum and adaptive scaling break the identity: with momentum the :math:`\lambda w` term is
accumulated in the velocity (a larger, lagged decay); in Adam it is divided by
:math:`\sqrt{\hat v}+\epsilon`, so the decay a weight feels per step is

.. math:: d_{\mathrm{L2}} = \frac{\eta\lambda}{\sqrt{\hat v}+\epsilon}
    \quad\text{(Adam + L2, } \beta_1 = 0\text{, decay part of the step)}
    \qquad\text{vs}\qquad d_{\mathrm{W}} = \eta\lambda \quad\text{(AdamW)},

large for weights with small gradients and small for weights with large ones.

What lives here:

* :func:`parameter_trajectory`: the flat parameters of a model after each full-batch step (for
  the exact identities, in float64);
* :func:`decay_only`: a single weight under an optimizer when the data gradient is zero;
* :func:`effective_decay`: the per-step decay of the two forms given :math:`\hat v`;
* :func:`paper_adamw_trajectory`: Algorithm 2 of Loshchilov & Hutter (2019) as written — a
  schedule multiplier :math:`\eta_t` on *both* the Adam step (:math:`\eta_t\alpha`) and the
  decay (:math:`\eta_t\lambda`), so its :math:`\lambda` is PyTorch's ``lr * weight_decay``;
* :func:`train_grid`: a learning-rate × weight-decay grid on the digits, every cell and seed
  trained at once (one batched MLP, the update rule written once for a whole stack of runs;
  ``tests/test_experiments_weight_decay.py`` proves each rule equal to ``torch.optim`` and the
  course's optimizers for a single run), and :func:`best_per_row` / :func:`good_band` to read
  the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

METHODS = ("sgd_l2", "sgdw", "adam_l2", "adamw", "adamw_proximal")
METHOD_LABELS = {
    "sgd_l2": "SGD + L2 (momentum 0.9)",
    "sgdw": "SGDW (momentum 0.9)",
    "adam_l2": "Adam + L2",
    "adamw": "AdamW",
    "adamw_proximal": "AdamW, proximal decay",
}


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` in one flat, detached copy (the order of ``parameters()``)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def parameter_trajectory(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    l2: float = 0.0,
) -> torch.Tensor:
    r"""Full-batch steps on the cross-entropy of ``model`` (plus :math:`\tfrac{l_2}{2}\lVert
    w\rVert^2` when ``l2 > 0``); returns the flat parameters, shape ``(steps + 1, n)``, row 0 the
    start. ``optimizer`` must be built on ``model.parameters()``."""
    rows = [flat_parameters(model)]
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        if l2 > 0:
            loss = loss + 0.5 * l2 * sum((p * p).sum() for p in model.parameters())
        loss.backward()
        optimizer.step()
        rows.append(flat_parameters(model))
    return torch.stack(rows)


def decay_only(optimizer_cls: type, steps: int, w0: float = 1.0, **hyper) -> np.ndarray:
    r"""One weight, data gradient exactly zero, ``steps`` steps of ``optimizer_cls(**hyper)``:
    returns :math:`w_0, \dots, w_T` (float64). Whatever moves the weight is weight decay."""
    w = nn.Parameter(torch.tensor([w0], dtype=torch.float64))
    opt = optimizer_cls([w], **hyper)
    out = [w0]
    for _ in range(steps):
        w.grad = torch.zeros_like(w)
        opt.step()
        out.append(w.item())
    return np.array(out)


def effective_decay(
    v_hat: torch.Tensor | np.ndarray | float, lr: float, weight_decay: float, eps: float = 1e-8
) -> tuple[np.ndarray, float]:
    r"""Per-step decay of each coordinate: Adam + L2 (:math:`\eta\lambda/(\sqrt{\hat v}+\epsilon)`,
    the decay part of the step with :math:`\beta_1 = 0` and :math:`\hat v` given) and AdamW
    (:math:`\eta\lambda`, the same for every coordinate)."""
    v = np.asarray(v_hat.detach().cpu() if isinstance(v_hat, torch.Tensor) else v_hat, float)
    return lr * weight_decay / (np.sqrt(v) + eps), lr * weight_decay


def paper_adamw_trajectory(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    alpha: float,
    weight_decay: float,
    multiplier: Callable[[int], float] = lambda t: 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.Tensor:
    r"""AdamW exactly as Algorithm 2 of Loshchilov & Hutter (2019) writes it, full batch:

    .. math::
        \theta_t = \theta_{t-1} - \eta_t\Big(\alpha\,\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}
        + \lambda\,\theta_{t-1}\Big)

    with the schedule multiplier :math:`\eta_t` = ``multiplier(t)`` (``t`` from 1) on both terms
    and :math:`\lambda` = ``weight_decay`` *not* multiplied by :math:`\alpha`. PyTorch's AdamW
    with ``lr`` :math:`=\alpha\eta_t` takes the same steps when its ``weight_decay`` is
    :math:`\lambda/\alpha`. Returns the flat parameters after each step, row 0 the start.
    """
    beta1, beta2 = betas
    params = list(model.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    rows = [flat_parameters(model)]
    for t in range(1, steps + 1):
        model.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        eta_t = multiplier(t)
        with torch.no_grad():
            for p, mi, vi in zip(params, m, v):
                mi.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                vi.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = mi / (1 - beta1**t)
                v_hat = vi / (1 - beta2**t)
                p.sub_(eta_t * (alpha * m_hat / (v_hat.sqrt() + eps) + weight_decay * p))
        rows.append(flat_parameters(model))
    return torch.stack(rows)


# ---------------------------------------------------------------------------------------------
# The lr × weight-decay grid: many small MLPs trained at once
# ---------------------------------------------------------------------------------------------


@dataclass
class GridResult:
    """Final metrics of a grid: arrays of shape ``(len(seeds), len(lrs), len(wds))``."""

    method: str
    lrs: np.ndarray
    wds: np.ndarray
    seeds: tuple[int, ...]
    test_loss: np.ndarray
    test_error: np.ndarray
    train_loss: np.ndarray
    weight_norm: np.ndarray

    @property
    def label(self) -> str:
        return METHOD_LABELS[self.method]

    def mean(self, metric: str = "test_loss") -> np.ndarray:
        """The metric averaged over seeds, shape ``(len(lrs), len(wds))``; a diverged run (NaN)
        makes its cell NaN."""
        return getattr(self, metric).mean(0)


class _StackedMLP:
    """R copies of ``make_mlp(n_in, hidden, n_out, seed)`` as stacked tensors (run first)."""

    def __init__(self, inits: Sequence[nn.Sequential], dtype: torch.dtype):
        layers = [[m for m in net if isinstance(m, nn.Linear)] for net in inits]
        self.params: list[torch.Tensor] = []
        for k in range(len(layers[0])):
            weight = torch.stack([ls[k].weight.detach().T for ls in layers]).to(dtype)
            bias = torch.stack([ls[k].bias.detach()[None, :] for ls in layers]).to(dtype)
            self.params += [weight.requires_grad_(), bias.requires_grad_()]

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        h = X
        n_layers = len(self.params) // 2
        for k in range(n_layers):
            h = torch.baddbmm(self.params[2 * k + 1], h, self.params[2 * k])
            if k < n_layers - 1:
                h = torch.relu(h)
        return h


def _grid_update(method, p, g, state, lr, wd, t, momentum, betas, eps):
    r"""One step of ``method`` on a stack of runs; ``lr`` and ``wd`` broadcast over runs.

    Each branch is the reference's update, elementwise: ``torch.optim.SGD`` (PyTorch momentum
    :math:`v \leftarrow \mu v + g`, L2 added to :math:`g`), the course's ``SGDW`` (decay
    :math:`(1-\eta\lambda)` outside the velocity), ``torch.optim.Adam`` with ``weight_decay``,
    ``torch.optim.AdamW``, and AdamW with the proximal decay :math:`1/(1+\eta\lambda)`.
    """
    if method in ("sgd_l2", "adam_l2"):
        g = g + wd * p
    if method in ("sgd_l2", "sgdw"):
        buf = state.get("buf")
        state["buf"] = buf = g.clone() if buf is None else buf.mul_(momentum).add_(g)
        if method == "sgdw":
            p.mul_(1 - lr * wd)
        p.sub_(lr * buf)
        return
    beta1, beta2 = betas
    if "m" not in state:
        state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
    m, v = state["m"], state["v"]
    m.mul_(beta1).add_(g, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    step = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    if method == "adamw":
        p.mul_(1 - lr * wd)
    p.sub_(lr * step)
    if method == "adamw_proximal":
        p.div_(1 + lr * wd)


def train_grid(
    method: str,
    lrs: Sequence[float],
    wds: Sequence[float],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    data=None,
    epochs: int = 10,
    hidden: int = 32,
    batch_size: int = 64,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    dtype: torch.dtype = torch.float32,
) -> GridResult:
    r"""Train one MLP ``64 → hidden → 10`` per (seed, lr, wd) on the digits; final metrics.

    Every run starts from ``make_mlp(64, hidden, 10, seed)`` and sees the training set in the
    order of ``torch.randperm`` seeded with its seed (mini-batches of ``batch_size``, the last one
    smaller), so two methods see the same data in the same order. All runs are trained together:
    the networks are stacked along a leading run axis (``torch.baddbmm``), the summed loss gives
    each run its own gradient, and :func:`_grid_update` applies the update with each run's own
    lr and wd. Weight decay/L2 acts on every parameter, biases included, as ``torch.optim`` does
    by default. A run that overflows is reported as NaN (diverged), never clipped.
    """
    from course_lib.data import load_digits_data
    from course_lib.train import make_mlp

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {METHODS}")
    data = load_digits_data() if data is None else data
    Xtr, ytr = data.X_train.to(dtype), data.y_train
    Xte, yte = data.X_test.to(dtype), data.y_test
    lrs_a, wds_a = np.asarray(lrs, float), np.asarray(wds, float)
    cells = [(s, lr, wd) for s in seeds for lr in lrs_a for wd in wds_a]
    runs = len(cells)
    net = _StackedMLP(
        [make_mlp(Xtr.shape[1], hidden, int(ytr.max()) + 1, seed=s) for s, _, _ in cells], dtype
    )
    lr_t = torch.tensor([c[1] for c in cells], dtype=dtype).view(runs, 1, 1)
    wd_t = torch.tensor([c[2] for c in cells], dtype=dtype).view(runs, 1, 1)
    gens = {s: torch.Generator().manual_seed(s) for s in seeds}
    run_seed = [c[0] for c in cells]
    states = [{} for _ in net.params]
    n = Xtr.shape[0]
    t = 0
    for _ in range(epochs):
        orders = {s: torch.randperm(n, generator=gens[s]) for s in seeds}
        order = torch.stack([orders[s] for s in run_seed])  # (runs, n)
        for start in range(0, n, batch_size):
            idx = order[:, start : start + batch_size]
            logits = net(Xtr[idx])
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ytr[idx].reshape(-1), reduction="none"
            ).view(runs, -1).mean(1).sum()
            grads = torch.autograd.grad(loss, net.params)
            t += 1
            with torch.no_grad():
                for p, g, st in zip(net.params, grads, states):
                    _grid_update(method, p, g, st, lr_t, wd_t, t, momentum, betas, eps)
    with torch.no_grad():
        out_te = net(Xte.expand(runs, -1, -1))
        out_tr = net(Xtr.expand(runs, -1, -1))
        ce_te = nn.functional.cross_entropy(
            out_te.reshape(-1, out_te.shape[-1]), yte.repeat(runs), reduction="none"
        ).view(runs, -1).mean(1)
        ce_tr = nn.functional.cross_entropy(
            out_tr.reshape(-1, out_tr.shape[-1]), ytr.repeat(runs), reduction="none"
        ).view(runs, -1).mean(1)
        err = (out_te.argmax(-1) != yte).to(torch.float64).mean(1)
        norm = torch.sqrt(sum((p.detach() ** 2).flatten(1).sum(1) for p in net.params))
    finite = torch.isfinite(ce_te) & torch.isfinite(norm)

    def grid(x: torch.Tensor) -> np.ndarray:
        x = x.to(torch.float64)
        x = torch.where(finite, x, torch.full_like(x, math.nan))
        return x.numpy().reshape(len(seeds), len(lrs_a), len(wds_a))

    return GridResult(
        method, lrs_a, wds_a, tuple(seeds), grid(ce_te), grid(err), grid(ce_tr), grid(norm)
    )


def best_per_row(scores: np.ndarray) -> np.ndarray:
    """Column index of the lowest finite score in every row (NaN cells skipped); a row with no
    finite cell gets -1."""
    out = np.full(scores.shape[0], -1)
    for i, row in enumerate(scores):
        if np.isfinite(row).any():
            out[i] = int(np.nanargmin(row))
    return out


def good_band(scores: np.ndarray, wds: Sequence[float], within: float = 0.1) -> np.ndarray:
    r"""How wide the range of good weight decays is, per learning rate.

    For every row (one lr) the good λs are the columns whose score is at most ``(1 + within)``
    times that row's best; returns, per row, the width of that set in decades,
    :math:`\log_{10}(\lambda_{\max}/\lambda_{\min})` over the good columns (0 when only the best
    one qualifies; NaN for a row that diverged everywhere). A wide band means the λ hardly matters
    at that lr; comparing bands across rows shows whether one λ is good for every lr.
    """
    logs = np.log10(np.asarray(wds, float))
    out = np.full(scores.shape[0], np.nan)
    for i, row in enumerate(scores):
        if np.isfinite(row).any():
            good = np.isfinite(row) & (row <= np.nanmin(row) * (1 + within))
            out[i] = logs[good].max() - logs[good].min()
    return out
