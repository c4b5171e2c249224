r"""Weight-space geometry: the loss along lines and curves between trained networks.

Chapter 00 shows that two independently trained networks are separated by a loss barrier on the
straight line between them, yet joined by a low-loss curve (mode connectivity, Garipov et al.
2018); chapter 01 looks at the loss along a line through one network. Everything works on a
model's parameters flattened into one vector.

- :func:`flat_parameters`: a model's parameters as one vector.
- :func:`losses_along_line`, :func:`interpolation_losses`: the loss along a straight line.
- :func:`loss_barrier`, :func:`local_minima`: what a loss profile shows.
- :func:`fit_bezier_midpoint`, :func:`bezier_losses`: a quadratic Bézier curve between two
  networks, its midpoint trained so that the whole curve has low loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

__all__ = [
    "bezier_losses",
    "fit_bezier_midpoint",
    "flat_parameters",
    "interpolation_losses",
    "local_minima",
    "loss_barrier",
    "losses_along_line",
]


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached 1-D tensor (a point in weight space)."""
    return parameters_to_vector(model.parameters()).detach().clone()


def _loss_fn(y: torch.Tensor, loss_fn: Callable | None) -> Callable:
    if loss_fn is not None:
        return loss_fn
    if y.dtype in (torch.int64, torch.int32):
        return nn.functional.cross_entropy
    return nn.functional.mse_loss


@torch.no_grad()
def losses_along_line(
    model: nn.Module,
    start: torch.Tensor,
    direction: torch.Tensor,
    ts: Sequence[float],
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable | None = None,
) -> np.ndarray:
    r"""The loss :math:`L(w_0 + t\,d)` on ``(X, y)`` for every ``t`` in ``ts``.

    ``start`` (:math:`w_0`) and ``direction`` (:math:`d`) are flat parameter vectors (see
    :func:`flat_parameters`). Pass the whole training set as ``(X, y)`` for the full loss, or one
    mini-batch for that batch's own landscape. The model's parameters are restored afterwards.
    The default loss is cross-entropy for integer labels, mean squared error otherwise.
    """
    loss_fn = _loss_fn(y, loss_fn)
    saved = flat_parameters(model)
    was_training = model.training
    model.eval()
    out = []
    try:
        for t in ts:
            vector_to_parameters(start + float(t) * direction, model.parameters())
            out.append(float(loss_fn(model(X), y)))
    finally:
        vector_to_parameters(saved, model.parameters())
        model.train(was_training)
    return np.asarray(out)


def interpolation_losses(
    model_a: nn.Module,
    model_b: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    alphas: Sequence[float],
    loss_fn: Callable | None = None,
) -> np.ndarray:
    r"""Loss along the segment :math:`(1-\alpha)\,\theta_a + \alpha\,\theta_b` between two nets.

    The two models must have the same architecture; neither is changed (a copy of ``model_a`` is
    the workspace). ``alphas`` 0 and 1 give the two trained models themselves.
    """
    theta_a, theta_b = flat_parameters(model_a), flat_parameters(model_b)
    if theta_a.shape != theta_b.shape:
        raise ValueError("the two models have different numbers of parameters")
    work = copy.deepcopy(model_a)
    return losses_along_line(work, theta_a, theta_b - theta_a, alphas, X, y, loss_fn)


def loss_barrier(alphas: Sequence[float], losses: Sequence[float]) -> float:
    r"""Height of the loss barrier on a path from :math:`\alpha = 0` to :math:`\alpha = 1`.

    .. math:: B = \max_\alpha\; L(\alpha) - \big[(1-\alpha)\,L(0) + \alpha\,L(1)\big]

    The excess of the path's loss over the straight line joining its two end values (Frankle et
    al., 2020). ``alphas`` must run from 0 to 1; a barrier near 0 means the two ends are
    *linearly* connected by low loss.
    """
    a = np.asarray(alphas, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if a.shape != loss.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("alphas and losses must be 1-D sequences of the same length >= 2")
    if not (np.isclose(a[0], 0.0) and np.isclose(a[-1], 1.0)):
        raise ValueError("alphas must start at 0 and end at 1")
    chord = (1 - a) * loss[0] + a * loss[-1]
    return float(np.max(loss - chord))


def local_minima(values: Sequence[float]) -> np.ndarray:
    """Indices of the interior strict local minima of a sampled 1-D curve."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError("values must be 1-D")
    inner = np.arange(1, len(v) - 1)
    return inner[(v[inner] < v[inner - 1]) & (v[inner] < v[inner + 1])]


def _as_parameters(model: nn.Module, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """A flat vector cut into ``{name: tensor}`` with the model's parameter shapes."""
    out, i = {}, 0
    for name, p in model.named_parameters():
        out[name] = theta[i : i + p.numel()].view_as(p)
        i += p.numel()
    return out


def _bezier(theta_a, theta_c, theta_b, t):
    return (1 - t) ** 2 * theta_a + 2 * t * (1 - t) * theta_c + t**2 * theta_b


def fit_bezier_midpoint(
    model: nn.Module,
    theta_a: torch.Tensor,
    theta_b: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int = 400,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    loss_fn: Callable | None = None,
) -> torch.Tensor:
    r"""Train the bend :math:`\theta_c` of a quadratic Bézier curve between two trained nets.

    The curve is :math:`\phi(t) = (1-t)^2\theta_a + 2t(1-t)\,\theta_c + t^2\theta_b`, and
    :math:`\theta_c` (started at the midpoint of the segment) minimises the loss averaged over
    the curve, :math:`\mathbb E_{t\sim U[0,1]} L(\phi(t))`, by SGD with momentum 0.9: each step
    draws one ``t`` and one mini-batch (seeded by ``seed``). This is the method of Garipov et al.
    (2018), "Loss surfaces, mode connectivity, and fast ensembling of DNNs". The ends stay fixed;
    ``model`` only supplies the architecture and is not changed. Returns :math:`\theta_c`.
    """
    from course_lib.optim import SGD

    loss_fn = _loss_fn(y, loss_fn)
    gen = torch.Generator().manual_seed(seed)
    theta_c = (0.5 * (theta_a + theta_b)).clone().requires_grad_(True)
    opt = SGD([theta_c], lr=lr, momentum=0.9)
    for _ in range(steps):
        t = float(torch.rand((), generator=gen))
        idx = torch.randint(len(X), (batch_size,), generator=gen)
        params = _as_parameters(model, _bezier(theta_a, theta_c, theta_b, t))
        loss = loss_fn(torch.func.functional_call(model, params, (X[idx],)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return theta_c.detach()


@torch.no_grad()
def bezier_losses(
    model: nn.Module,
    theta_a: torch.Tensor,
    theta_c: torch.Tensor,
    theta_b: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    ts: Sequence[float],
    loss_fn: Callable | None = None,
) -> np.ndarray:
    """The loss on ``(X, y)`` at the points ``ts`` of a Bézier curve (see fit_bezier_midpoint)."""
    loss_fn = _loss_fn(y, loss_fn)
    out = []
    for t in ts:
        params = _as_parameters(model, _bezier(theta_a, theta_c, theta_b, float(t)))
        out.append(float(loss_fn(torch.func.functional_call(model, params, (X,)), y)))
    return np.asarray(out)
