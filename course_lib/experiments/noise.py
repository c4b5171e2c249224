r"""SGD's noise: its spread at a constant learning rate, decaying steps, and batch landscapes.

With a constant learning rate SGD does not converge to the minimum: its iterates fluctuate around
it, with a spread that grows with the learning rate and shrinks with the batch size.
:func:`sgd_iterate_variance` measures that spread, :func:`sgd_variance_prediction` predicts it
for small learning rates (proportional to :math:`\eta/B`).

A step size that decays removes the floor. Robbins & Monro (1951) ask for

.. math:: \sum_t \eta_t = \infty \qquad\text{and}\qquad \sum_t \eta_t^2 < \infty :

the first lets the iterates travel any distance, the second makes the accumulated noise finite.
:func:`sgd_schedule_distances` runs SGD on least squares under several schedules at once, and
:func:`noise_free_distances` gives what the same schedule does without gradient noise.

Every mini-batch has a loss of its own. :func:`minimise_batch_loss` drives the weights to a
point that is critical for one batch, where the other batches' gradients can be compared.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

__all__ = [
    "minimise_batch_loss",
    "noise_free_distances",
    "sgd_iterate_variance",
    "sgd_schedule_distances",
    "sgd_variance_prediction",
]


def _least_squares(X: torch.Tensor, y: torch.Tensor):
    X = torch.as_tensor(X, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if X.ndim != 2 or y.shape != X.shape[:1]:
        raise ValueError("need X of shape (n, d) and y of shape (n,)")
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    return X, y, w_star


def sgd_iterate_variance(
    X: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    batch_size: int,
    steps: int = 3000,
    burn_in: int = 500,
    chains: int = 256,
    seed: int = 0,
) -> float:
    r"""Stationary spread of SGD's iterates on least squares, :math:`E\lVert w - w^\star\rVert^2`.

    The loss is :math:`L(w) = \frac1{2n}\sum_i (x_i^\top w - y_i)^2` with minimiser
    :math:`w^\star`. ``chains`` independent copies of plain SGD (:class:`course_lib.optim.SGD`,
    one parameter tensor of shape ``(chains, d)``; the update is elementwise, so the copies do not
    interact) start at :math:`w^\star`; each step every copy draws its own mini-batch of
    ``batch_size`` examples *with replacement*. The squared distance to :math:`w^\star` is
    averaged over the copies and over the steps after ``burn_in``. Computed in float64.
    """
    from course_lib.optim import SGD

    if batch_size < 1 or chains < 1 or not 0 <= burn_in < steps:
        raise ValueError("need batch_size >= 1, chains >= 1 and 0 <= burn_in < steps")
    X, y, w_star = _least_squares(X, y)
    n = len(X)
    gen = torch.Generator().manual_seed(seed)
    W = w_star.repeat(chains, 1).requires_grad_(True)
    opt = SGD([W], lr=lr)
    total = 0.0
    for k in range(steps):
        idx = torch.randint(n, (chains, batch_size), generator=gen)
        residual = torch.einsum("cbd,cd->cb", X[idx], W) - y[idx]
        loss = 0.5 * residual.pow(2).mean(1).sum()  # a sum over chains: separate gradients
        W.grad = None
        loss.backward()
        opt.step()
        if k >= burn_in:
            total += float((W.detach() - w_star).pow(2).sum(1).mean())
    return total / (steps - burn_in)


def sgd_variance_prediction(X: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int) -> float:
    r"""Small-lr theory for :func:`sgd_iterate_variance`: :math:`\tfrac{\eta}{2B}\,tr(H^{-1}S)`.

    Near the minimum SGD is :math:`w \leftarrow w - \eta(H(w-w^\star) + \xi)` with gradient noise
    :math:`\xi` of covariance :math:`S/B`, where :math:`H = X^\top X/n` and
    :math:`S = \frac1n\sum_i r_i^2 x_i x_i^\top` (per-example gradient covariance at
    :math:`w^\star`, residuals :math:`r_i`). To first order in :math:`\eta` the stationary
    covariance :math:`C` solves :math:`HC + CH = \frac{\eta}{B}S`; multiplying by :math:`H^{-1}`
    and taking the trace gives :math:`tr\,C = \frac{\eta}{2B}\,tr(H^{-1}S)`
    — proportional to :math:`\eta/B`.
    """
    X, y, w_star = _least_squares(X, y)
    n = len(X)
    r = X @ w_star - y
    H = X.T @ X / n
    S = (X * r.pow(2).unsqueeze(1)).T @ X / n
    return float(lr / (2 * batch_size) * torch.trace(torch.linalg.solve(H, S)))


def sgd_schedule_distances(
    X: torch.Tensor,
    y: torch.Tensor,
    schedules: Mapping[str, Callable[[int], float]],
    batch_size: int,
    steps: int,
    start_offset: float = 3.0,
    chains: int = 256,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""Mean squared distance :math:`E\lVert w_t - w^\star\rVert^2` of SGD under learning-rate
    schedules, on least squares :math:`L(w) = \frac1{2n}\sum_i (x_i^\top w - y_i)^2`.

    ``schedules`` maps a name to a function ``t -> η_t`` (``t = 0, 1, …``). Each schedule is one
    parameter group of a single :class:`course_lib.optim.SGD`, holding ``chains`` independent
    copies that all start at :math:`w^\star + ` ``start_offset`` (every coordinate); before step
    ``t`` the group's ``lr`` is set to ``η_t``. Every copy draws its own mini-batch of
    ``batch_size`` examples with replacement, and every schedule sees the same draws; the
    mini-batch gradient :math:`\frac1B X_B^\top(X_B w - y_B)` is written out (no autograd, for
    speed) and the step is the optimizer's. Returns,
    per schedule, the distance averaged over the copies before step 0 and after every step
    (length ``steps + 1``). Computed in float64.
    """
    from course_lib.optim import SGD

    if batch_size < 1 or chains < 1 or steps < 1 or not schedules:
        raise ValueError("need batch_size, chains, steps >= 1 and at least one schedule")
    X, y, w_star = _least_squares(X, y)
    n = len(X)
    names = list(schedules)
    gen = torch.Generator().manual_seed(seed)
    params = [(w_star + start_offset).repeat(chains, 1) for _ in names]
    opt = SGD([{"params": [p], "lr": schedules[k](0)} for k, p in zip(names, params)], lr=0.0)

    def distances() -> list[float]:
        return [float((p.detach() - w_star).pow(2).sum(1).mean()) for p in params]

    out = [distances()]
    for t in range(steps):
        idx = torch.randint(n, (chains, batch_size), generator=gen)
        Xb, yb = X[idx], y[idx]
        for group, name, p in zip(opt.param_groups, names, params):
            group["lr"] = float(schedules[name](t))
            residual = torch.einsum("cbd,cd->cb", Xb, p.detach()) - yb
            p.grad = torch.einsum("cbd,cb->cd", Xb, residual) / batch_size  # ∇ of the batch loss
        opt.step()
        out.append(distances())
    table = np.array(out)
    return {name: table[:, i] for i, name in enumerate(names)}


def noise_free_distances(
    X: torch.Tensor,
    y: torch.Tensor,
    schedule: Callable[[int], float],
    steps: int,
    start_offset: float = 3.0,
) -> np.ndarray:
    r"""The schedule without noise: :math:`\lVert \prod_{s<t}(I - \eta_s H)(w_0 - w^\star)\rVert^2`.

    Gradient descent with exact gradients on the least-squares problem of
    :func:`sgd_schedule_distances` (same :math:`w_0`), computed in the eigenbasis of
    :math:`H = X^\top X/n`. Mini-batch noise only adds to this (its mean is the exact
    gradient), so it is what SGD's distance tends to when :math:`\sum_t\eta_t^2` is small.
    """
    X, y, w_star = _least_squares(X, y)
    H = X.T @ X / len(X)
    eigenvalues, Q = torch.linalg.eigh(H)
    coords = Q.T @ torch.full_like(w_star, start_offset)
    out = [float(coords.pow(2).sum())]
    for t in range(steps):
        coords = coords * (1 - schedule(t) * eigenvalues)
        out.append(float(coords.pow(2).sum()))
    return np.array(out)


def minimise_batch_loss(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    steps: int,
    loss_fn: Callable | None = None,
) -> nn.Module:
    """A copy of ``model`` after ``steps`` steps of gradient descent on the loss of ``(X, y)``.

    With ``(X, y)`` one mini-batch, the copy ends (close to) a critical point of that batch's
    loss :math:`L_B`, which is not a critical point of the other batches' losses. ``model``
    itself is not changed; the default loss is cross-entropy.
    """
    from course_lib.optim import SGD

    loss_fn = loss_fn or nn.functional.cross_entropy
    work = copy.deepcopy(model)
    opt = SGD(work.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(work(X), y).backward()
        opt.step()
    return work
