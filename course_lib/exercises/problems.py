r"""The small random problems every exercise is tried on, and the tolerances of the comparison.

Everything is float64 and drawn from a ``torch.Generator`` the caller seeds, so a self-check run
twice gives the same verdict and re-grading gives the same feedback.

- :func:`uniform`: one float drawn uniformly from ``[low, high)`` (random hyperparameters).
- :func:`random_spd`: a random symmetric positive-definite matrix with a chosen spectrum.
- :class:`Quadratic` / :func:`random_quadratic`: :math:`f(w) = \tfrac12 w^\top A w - b^\top w`
  with a starting point, the test problem of the optimizer-class exercises.
- :func:`quadratic_trajectory`: the iterates of an optimizer on a :class:`Quadratic`.
- :func:`looks_like_float32`: whether a wrong answer is the right one computed in float32.

Kinds of exercise (``kind`` of every exercise definition): :data:`IMPLEMENT`, :data:`COMPUTE`
and :data:`MEASURE` name the classic mistake a wrong answer matches; :data:`FIND_THE_BUG` never
does (finding the bug is the exercise), so its wrong answers are only rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

DTYPE = torch.float64

# An answer is right when every element satisfies |got − expected| ≤ ATOL + RTOL·|expected|
# (torch.allclose): loose enough for float32 arithmetic or a different but equivalent order of
# operations, tight enough that every classic mistake stands out.
RTOL = 1e-5
ATOL = 1e-7

IMPLEMENT, COMPUTE, MEASURE, FIND_THE_BUG = "implement", "compute", "measure", "find the bug"
KINDS = (IMPLEMENT, COMPUTE, MEASURE, FIND_THE_BUG)


def looks_like_float32(got, want) -> bool:
    """Whether ``got`` is ``want`` computed in float32: every value of ``got`` is exactly a
    float32 number, ``want`` is not, and they agree to float32 precision (relative 1e-3).

    A float64 computation almost never lands exactly on a float32 number, so this recognises
    ``1 - torch.tensor(0.999) ** 1 = 0.0009999871`` (instead of 0.001) without knowing how the
    student computed it. ``got`` and ``want``: numbers, tensors, or equally long tuples of them.
    """
    gots = got if isinstance(got, (tuple, list)) else (got,)
    wants = want if isinstance(want, (tuple, list)) else (want,)
    if len(gots) != len(wants):
        return False
    try:
        g = torch.cat([torch.as_tensor(x, dtype=DTYPE).reshape(-1) for x in gots])
        w = torch.cat([torch.as_tensor(x, dtype=DTYPE).reshape(-1) for x in wants])
    except (TypeError, ValueError, RuntimeError):
        return False
    if g.shape != w.shape or not bool(torch.isfinite(g).all()):
        return False
    exact32 = torch.equal(g, g.float().to(DTYPE))
    want_exact32 = torch.equal(w, w.float().to(DTYPE))
    return exact32 and not want_exact32 and torch.allclose(g, w, rtol=1e-3, atol=1e-9)


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    """A float drawn uniformly from ``[low, high)``."""
    return low + (high - low) * torch.rand((), generator=gen, dtype=DTYPE).item()


def random_spd(
    gen: torch.Generator, n: int, min_eigenvalue: float, max_eigenvalue: float
) -> torch.Tensor:
    r"""A random SPD ``n×n`` matrix :math:`A = Q\,\mathrm{diag}(\lambda_1, \dots, \lambda_n)\,Q^\top`.

    :math:`Q` is a random rotation (QR of a Gaussian matrix) and the eigenvalues :math:`\lambda_i`
    are drawn log-uniformly from ``[min_eigenvalue, max_eigenvalue]``, so every order of
    magnitude in between is equally likely. The result is symmetrised exactly.
    """
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DTYPE))
    log_low, log_high = math.log10(min_eigenvalue), math.log10(max_eigenvalue)
    eigenvalues = 10 ** (log_low + (log_high - log_low) * torch.rand(n, generator=gen, dtype=DTYPE))
    A = (Q * eigenvalues) @ Q.T
    return (A + A.T) / 2


@dataclass(frozen=True)
class Quadratic:
    r""":math:`f(w) = \tfrac12 w^\top A w - b^\top w` (``A`` SPD) and the starting point ``w0``."""

    A: torch.Tensor
    b: torch.Tensor
    w0: torch.Tensor


def random_quadratic(
    gen: torch.Generator, n: int, min_eigenvalue: float, max_eigenvalue: float
) -> Quadratic:
    """A quadratic in ``n`` variables: :func:`random_spd` curvature, Gaussian ``b`` and ``w0``."""
    A = random_spd(gen, n, min_eigenvalue, max_eigenvalue)
    b = torch.randn(n, generator=gen, dtype=DTYPE)
    w0 = torch.randn(n, generator=gen, dtype=DTYPE)
    return Quadratic(A, b, w0)


def quadratic_trajectory(
    make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    quadratic: Quadratic,
    steps: int,
) -> torch.Tensor:
    """Run ``steps`` steps of an optimizer on ``quadratic`` from its ``w0``; return the iterates.

    ``make_optimizer(params)`` builds the optimizer (anything with ``zero_grad()`` and ``step()``);
    the gradient comes from autograd, as in training. Row ``k`` of the ``(steps, n)`` result is
    ``w`` after step ``k + 1``.
    """
    w = torch.nn.Parameter(quadratic.w0.clone())
    optimizer = make_optimizer([w])
    iterates = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = 0.5 * w @ (quadratic.A @ w) - quadratic.b @ w
        loss.backward()
        optimizer.step()
        iterates.append(w.detach().clone())
    return torch.stack(iterates)
