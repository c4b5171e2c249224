r"""SGD's noise: the stationary spread of its iterates on least squares (chapter 01).

With a constant learning rate SGD does not converge to the minimum: its iterates fluctuate around
it, with a spread that grows with the learning rate and shrinks with the batch size.
:func:`sgd_iterate_variance` measures that spread, :func:`sgd_variance_prediction` predicts it
for small learning rates (proportional to :math:`\eta/B`).
"""

from __future__ import annotations

import torch

__all__ = [
    "sgd_iterate_variance",
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
