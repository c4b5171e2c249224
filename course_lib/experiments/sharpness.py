r"""Sharpness of a minimum: the top Hessian eigenvalue and the Hessian trace, without the Hessian.

A network with d parameters has a d × d Hessian, far too big to build. But autograd can compute
a *Hessian-vector product* Hv for the price of about two backward passes ("double backprop"):
differentiate ``g·v`` where ``g = ∇L`` was computed with ``create_graph=True``. Two classic
algorithms need nothing more:

- **Power iteration** (:func:`top_hessian_eigenvalue`): repeat ``v ← Hv / ‖Hv‖``; v turns towards
  the eigenvector whose eigenvalue has the largest magnitude, and the Rayleigh quotient ``vᵀHv``
  converges to that eigenvalue. At (or near) a minimum all eigenvalues are ≥ 0, so this is λ_max,
  the "sharpness" of the minimum. (Far from a minimum a large *negative* eigenvalue can win: the
  result then has a minus sign, and it is still the right answer to "largest magnitude".)
- **Hutchinson's estimator** (:func:`hutchinson_trace`): for random vectors z with entries ±1,
  E[zᵀHz] = trace(H). Average over a few samples; the standard error is reported too.

Both work on a closure ``loss_fn() -> scalar`` and a list of parameters, or, more conveniently,
on a model, a loss function and a batch (:func:`model_closure`). Call them with the model in the
state you want to measure (``model.eval()`` if it has dropout or batch norm).

λ_max is a property of *one point*. :func:`sharpness_along_gd` follows it along a run of
full-batch gradient descent: chapter 01 uses it to show that a run started where
:math:`\eta\lambda_{\max} > 2` survives only by moving to where :math:`\eta\lambda_{\max} < 2`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "EigenResult",
    "TraceResult",
    "hessian_vector_product",
    "hutchinson_trace",
    "model_closure",
    "sharpness_along_gd",
    "top_hessian_eigenvalue",
]


def model_closure(
    model: nn.Module, loss_fn: Callable, batch: Sequence[torch.Tensor]
) -> tuple[Callable[[], torch.Tensor], list[torch.Tensor]]:
    """``(closure, params)`` for ``loss_fn(model(X), y)`` on one batch ``(X, y)``."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError("batch must be a pair (X, y)")
    X, y = batch
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return (lambda: loss_fn(model(X), y)), params


class _HVP:
    """Hessian-vector products at a fixed point: the gradient graph is built once and reused."""

    def __init__(self, closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty")
        loss = closure()
        if loss.ndim != 0:
            raise ValueError(
                f"the closure must return a scalar loss, got shape {tuple(loss.shape)}"
            )
        self.grads = torch.autograd.grad(loss, self.params, create_graph=True)
        self.loss = loss.detach()

    def __call__(self, vs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        dot = sum((g * v).sum() for g, v in zip(self.grads, vs))
        hv = torch.autograd.grad(dot, self.params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, self.params)]


def hessian_vector_product(
    closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], vs: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """H·v for the Hessian of ``closure()`` with respect to ``params`` (``vs`` shaped like them)."""
    params = list(params)
    vs = list(vs)
    if len(vs) != len(params) or any(v.shape != p.shape for v, p in zip(vs, params)):
        raise ValueError("vs must have one tensor per parameter, each of the parameter's shape")
    return _HVP(closure, params)(vs)


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _resolve(args: tuple, kwargs: dict) -> tuple[Callable, list[torch.Tensor]]:
    """Accept ``(closure, params)`` or ``(model, loss_fn, batch)``."""
    if len(args) == 2 and callable(args[0]) and not isinstance(args[0], nn.Module):
        return args[0], list(args[1])
    if len(args) == 3 and isinstance(args[0], nn.Module):
        return model_closure(*args)
    raise ValueError(
        "call with (closure, params) or (model, loss_fn, batch); got "
        f"{len(args)} positional arguments: {[type(a).__name__ for a in args]}"
    )


@dataclass
class EigenResult:
    """Power iteration result: eigenvalue, unit eigenvector (shaped like params), history."""

    eigenvalue: float
    vector: list[torch.Tensor]
    iterations: int
    converged: bool
    history: list[float]


def top_hessian_eigenvalue(
    *args, iters: int = 100, tol: float = 1e-6, seed: int = 0, **kwargs
) -> EigenResult:
    """The largest-magnitude Hessian eigenvalue by power iteration with Hessian-vector products.

    Call as ``top_hessian_eigenvalue(model, loss_fn, (X, y))`` or
    ``top_hessian_eigenvalue(closure, params)``. Stops when the Rayleigh quotient changes by less
    than ``tol`` (relative) between iterations, or after ``iters`` iterations.

    >>> A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> w = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    >>> r = top_hessian_eigenvalue(lambda: 0.5 * w @ A @ w, [w])
    >>> round(r.eigenvalue, 6)   # (5 + sqrt 5) / 2
    3.618034
    """
    if kwargs:
        raise ValueError(f"unexpected keyword arguments {sorted(kwargs)}")
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    closure, params = _resolve(args, kwargs)
    hvp = _HVP(closure, params)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(_dot(v, v))
    v = [x / norm for x in v]
    history: list[float] = []
    eig, converged, it = 0.0, False, 0
    for it in range(1, iters + 1):
        hv = hvp(v)
        eig_new = float(_dot(v, hv))  # Rayleigh quotient vᵀHv (‖v‖ = 1)
        history.append(eig_new)
        norm = float(torch.sqrt(_dot(hv, hv)))
        if norm == 0.0:  # v is in the null space: the Hessian (restricted to v) is zero
            eig, converged = 0.0, True
            break
        v = [x / norm for x in hv]
        if it > 1 and abs(eig_new - eig) <= tol * max(abs(eig_new), 1e-12):
            eig, converged = eig_new, True
            break
        eig = eig_new
    return EigenResult(
        eigenvalue=eig, vector=v, iterations=it, converged=converged, history=history
    )


@dataclass
class TraceResult:
    """Hutchinson estimate of trace(H), with the standard error of the mean over samples."""

    trace: float
    std_error: float
    samples: int


def hutchinson_trace(*args, samples: int = 100, seed: int = 0, **kwargs) -> TraceResult:
    """Estimate trace(H) as the mean of zᵀHz over ``samples`` Rademacher vectors z (entries ±1).

    Same call forms as :func:`top_hessian_eigenvalue`. Unbiased; its variance is
    2·Σ_{i≠j} H_ij², so it is exact for diagonal Hessians and needs more samples when the
    off-diagonal entries are large. The trace over the number of parameters is the *average*
    curvature, a softer sharpness measure than λ_max.
    """
    if kwargs:
        raise ValueError(f"unexpected keyword arguments {sorted(kwargs)}")
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    closure, params = _resolve(args, kwargs)
    hvp = _HVP(closure, params)
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        z = [
            (torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(dtype=p.dtype, device=p.device)
            for p in params
        ]
        values.append(float(_dot(z, hvp(z))))
    mean = sum(values) / samples
    if samples > 1:
        var = sum((x - mean) ** 2 for x in values) / (samples - 1)
        se = math.sqrt(var / samples)
    else:
        se = float("nan")
    return TraceResult(trace=mean, std_error=se, samples=samples)


def sharpness_along_gd(
    model: nn.Module,
    loss_fn: Callable,
    batch: Sequence[torch.Tensor],
    lr: float,
    record_at: Sequence[int],
    iters: int = 300,
    tol: float = 1e-6,
) -> tuple[list[float], list[float]]:
    """λ_max and the loss at the steps ``record_at`` of full-batch gradient descent with ``lr``.

    Runs plain gradient descent (:class:`course_lib.optim.SGD`) on ``loss_fn(model(X), y)`` for
    the whole ``batch = (X, y)``, on a copy of ``model``, up to ``max(record_at)`` steps;
    before the steps listed in ``record_at`` (0 = the start) it measures the top Hessian
    eigenvalue with :func:`top_hessian_eigenvalue` and the loss. Returns
    ``(eigenvalues, losses)`` in the order of ``record_at``.
    """
    from course_lib.optim import SGD

    marks = sorted(set(int(k) for k in record_at))
    if not marks or marks[0] < 0:
        raise ValueError("record_at must list step numbers >= 0")
    X, y = batch
    work = copy.deepcopy(model)
    opt = SGD(work.parameters(), lr=lr)
    found: dict[int, tuple[float, float]] = {}
    for step in range(marks[-1] + 1):
        if step in marks:
            eig = top_hessian_eigenvalue(work, loss_fn, (X, y), iters=iters, tol=tol).eigenvalue
            with torch.no_grad():
                found[step] = (eig, float(loss_fn(work(X), y)))
        if step < marks[-1]:
            opt.zero_grad()
            loss_fn(work(X), y).backward()
            opt.step()
    return [found[int(k)][0] for k in record_at], [found[int(k)][1] for k in record_at]
