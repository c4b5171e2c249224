"""Power iteration and Hutchinson against exact Hessians."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn
from torch.func import functional_call

from course_lib.experiments import sharpness
from course_lib.experiments.sharpness import (
    hessian_vector_product,
    hutchinson_trace,
    model_closure,
    top_hessian_eigenvalue,
)


def _quadratic(d=6, seed=0, eigs=None):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    eigs = torch.linspace(0.1, 5.0, d, dtype=torch.float64) if eigs is None else eigs
    A = Q @ torch.diag(eigs) @ Q.T
    w = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    return A, w, (lambda: 0.5 * w @ A @ w + w.sum())


def test_hvp_is_A_times_v():
    A, w, f = _quadratic()
    v = torch.randn(6, dtype=torch.float64)
    (hv,) = hessian_vector_product(f, [w], [v])
    torch.testing.assert_close(hv, A @ v)
    with pytest.raises(ValueError, match="shape"):
        hessian_vector_product(f, [w], [torch.zeros(3)])


def test_power_iteration_finds_top_eigenvalue_of_quadratic():
    A, w, f = _quadratic()
    exact = torch.linalg.eigvalsh(A)
    r = top_hessian_eigenvalue(f, [w], iters=500, tol=1e-12)
    assert r.converged
    assert r.eigenvalue == pytest.approx(float(exact[-1]), rel=1e-6)
    # the vector is the eigenvector: A v = λ v
    v = r.vector[0]
    torch.testing.assert_close(A @ v, r.eigenvalue * v, atol=1e-4, rtol=1e-4)
    assert len(r.history) == r.iterations


def test_power_iteration_reports_largest_magnitude_when_indefinite():
    eigs = torch.tensor([-7.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    A, w, f = _quadratic(4, seed=1, eigs=eigs)
    r = top_hessian_eigenvalue(f, [w], iters=1000, tol=1e-12)
    assert r.eigenvalue == pytest.approx(-7.0, rel=1e-5)


def test_hutchinson_trace_quadratic():
    A, w, f = _quadratic()
    r = hutchinson_trace(f, [w], samples=400, seed=3)
    exact = float(torch.trace(A))
    assert abs(r.trace - exact) < 4 * r.std_error + 1e-9
    assert r.std_error < 0.2 * exact
    D = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    u = torch.ones(3, dtype=torch.float64, requires_grad=True)
    rd = hutchinson_trace(lambda: 0.5 * u @ D @ u, [u], samples=5)
    assert rd.trace == pytest.approx(6.0) and rd.std_error == pytest.approx(
        0.0
    )  # exact if diagonal


def _tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    X = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (20,))
    return model, X, y


def _exact_hessian(model, X, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(theta):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            k = s.numel()
            parts[n] = theta[i : i + k].reshape(s)
            i += k
        return nn.functional.cross_entropy(functional_call(model, parts, (X,)), y)

    return torch.autograd.functional.hessian(loss_of, flat)


def test_tiny_model_against_autograd_hessian():
    model, X, y = _tiny_model()
    H = _exact_hessian(model, X, y)
    eigs = torch.linalg.eigvalsh(H)
    top = eigs[eigs.abs().argmax()]
    r = top_hessian_eigenvalue(model, nn.functional.cross_entropy, (X, y), iters=1000, tol=1e-10)
    assert r.eigenvalue == pytest.approx(float(top), rel=1e-4)
    t = hutchinson_trace(model, nn.functional.cross_entropy, (X, y), samples=300)
    assert abs(t.trace - float(torch.trace(H))) < 4 * t.std_error
    # model_closure gives the same loss as calling the model
    closure, params = model_closure(model, nn.functional.cross_entropy, (X, y))
    assert len(params) == 4
    torch.testing.assert_close(closure(), nn.functional.cross_entropy(model(X), y))


def test_bad_calls():
    model, X, y = _tiny_model()
    with pytest.raises(ValueError, match="call with"):
        top_hessian_eigenvalue(model, X)
    with pytest.raises(ValueError, match="iters"):
        top_hessian_eigenvalue(model, nn.functional.cross_entropy, (X, y), iters=0)
    with pytest.raises(ValueError, match="samples"):
        hutchinson_trace(model, nn.functional.cross_entropy, (X, y), samples=0)
    with pytest.raises(ValueError, match="scalar"):
        top_hessian_eigenvalue(lambda: model(X).sum(0), list(model.parameters()))
    with pytest.raises(ValueError, match="pair"):
        model_closure(model, nn.functional.cross_entropy, X)


def test_docstring_examples():
    assert doctest.testmod(sharpness).failed == 0
