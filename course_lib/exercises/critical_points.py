r"""Chapter 00: classify a critical point from its Hessian (an *implement* exercise).

``classify_critical_point(H, tol)`` returns one of four codes for a symmetric Hessian ``H`` at a
point where the gradient vanishes. Eigenvalues with :math:`|\lambda_i| \le` ``tol`` count as zero
(round-off never produces an exact zero). The rule, by the signs of the eigenvalues:

- all :math:`> 0` → :data:`MINIMUM` (strict local minimum);
- all :math:`< 0` → :data:`MAXIMUM` (strict local maximum);
- at least one :math:`> 0` *and* one :math:`< 0` → :data:`SADDLE`, whatever zero eigenvalues
  there are besides (a descent and an ascent direction exist);
- otherwise (some zero eigenvalues, the others of a single sign, or all zero) →
  :data:`INCONCLUSIVE`: second derivatives cannot decide (:math:`x^2 + y^4` has a minimum,
  :math:`x^2 + y^3` none, and both have the Hessian :math:`\mathrm{diag}(2, 0)` at 0).

The codes are numbers so the grader can compare them; the names are what students write.
"""

from __future__ import annotations

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.problems import DTYPE, uniform

MINIMUM = 1
MAXIMUM = -1
SADDLE = 0
INCONCLUSIVE = 2
CODE_NAMES = {
    MINIMUM: "MINIMUM",
    MAXIMUM: "MAXIMUM",
    SADDLE: "SADDLE",
    INCONCLUSIVE: "INCONCLUSIVE",
}
DEFAULT_TOL = 1e-8


def _eigenvalues(H) -> torch.Tensor:
    return torch.linalg.eigvalsh(torch.as_tensor(H, dtype=DTYPE))


def _by_signs(positive: bool, negative: bool, zero: bool) -> int:
    if positive and negative:
        return SADDLE
    if zero:
        return INCONCLUSIVE
    return MINIMUM if positive else MAXIMUM


def ref_classify_critical_point(H, tol=DEFAULT_TOL) -> int:
    """The class code of a critical point with Hessian ``H`` (see the module docstring)."""
    eig = _eigenvalues(H)
    positive, negative = bool((eig > tol).any()), bool((eig < -tol).any())
    return _by_signs(positive, negative, bool((eig.abs() <= tol).any()))


# --- classic mistakes ---------------------------------------------------------------------------


def _diagonal_signs(H, tol=DEFAULT_TOL) -> int:
    d = torch.as_tensor(H, dtype=DTYPE).diagonal()
    return _by_signs(bool((d > tol).any()), bool((d < -tol).any()), bool((d.abs() <= tol).any()))


def _singular_first(H, tol=DEFAULT_TOL) -> int:
    eig = _eigenvalues(H)
    if (eig.abs() <= tol).any():
        return INCONCLUSIVE
    return ref_classify_critical_point(H, tol)


def _semidefinite_decides(H, tol=DEFAULT_TOL) -> int:
    eig = _eigenvalues(H)
    if (eig >= -tol).all() and (eig > tol).any():
        return MINIMUM
    if (eig <= tol).all() and (eig < -tol).any():
        return MAXIMUM
    return ref_classify_critical_point(H, tol)


def _exact_zero(H, tol=DEFAULT_TOL) -> int:
    return ref_classify_critical_point(H, 0.0)


def _determinant_and_trace(H, tol=DEFAULT_TOL) -> int:
    H = torch.as_tensor(H, dtype=DTYPE)
    det, trace = float(torch.linalg.det(H)), float(H.trace())
    if abs(det) <= tol:
        return INCONCLUSIVE
    if det < 0:
        return SADDLE
    return MINIMUM if trace > 0 else MAXIMUM


# --- cases --------------------------------------------------------------------------------------


def _rotated(gen: torch.Generator, eigenvalues: list[float]) -> torch.Tensor:
    """``Q diag(eigenvalues) Qᵀ`` with a random rotation Q, symmetrised exactly."""
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DTYPE))
    H = (Q * torch.tensor(eigenvalues, dtype=DTYPE)) @ Q.T
    return (H + H.T) / 2


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    fixed = [
        ("H = diag(2, 3)", torch.diag(torch.tensor([2.0, 3.0], dtype=DTYPE))),
        ("H = diag(-1, -4)", torch.diag(torch.tensor([-1.0, -4.0], dtype=DTYPE))),
        ("H = [[1, 2], [2, 1]]", torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=DTYPE)),
        ("H = diag(2, 0)", torch.diag(torch.tensor([2.0, 0.0], dtype=DTYPE))),
        ("H = diag(0, -3)", torch.diag(torch.tensor([0.0, -3.0], dtype=DTYPE))),
        ("H = diag(2, -2, 0)", torch.diag(torch.tensor([2.0, -2.0, 0.0], dtype=DTYPE))),
        ("H = zeros(2, 2)", torch.zeros(2, 2, dtype=DTYPE)),
    ]
    cases = [NumberCase(label, (H, DEFAULT_TOL)) for label, H in fixed]
    for spectrum in ([5.0, -1.0, -2.0], [1.0, 1e-13], [3.0, -1e-13, 0.5]):
        cases.append(
            NumberCase(
                f"a rotated {len(spectrum)}×{len(spectrum)} H with eigenvalues {_fmt(spectrum)}",
                (_rotated(gen, spectrum), DEFAULT_TOL),
            )
        )
    return cases


def _hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    def mag(low=0.2, high=20.0):
        return uniform(gen, low, high)

    tiny = 1e-12 * uniform(gen, 0.5, 5.0)
    spectra = [
        [mag(), mag(), mag()],  # minimum
        [-mag(), -mag()],  # maximum
        [mag(), -mag(), mag(), mag()],  # saddle
        [mag(), -mag(), 0.0],  # singular saddle
        [mag(), 0.0, mag()],  # positive semi-definite, singular
        [-mag(), 0.0],  # negative semi-definite, singular
        [mag(), tiny],  # a numerical zero
        [-mag(), -tiny, -mag()],  # a numerical zero
        [mag(4.0, 9.0), -mag(0.5, 1.0), -mag(0.5, 1.0)],  # det > 0 and trace > 0, yet a saddle
        [0.0, 0.0, 0.0],
    ]
    cases = [
        NumberCase(f"hidden {len(s)}×{len(s)} Hessian {i + 1}", (_rotated(gen, s), DEFAULT_TOL))
        for i, s in enumerate(spectra)
    ]
    H = _rotated(gen, [mag(), -mag()])
    cases.append(NumberCase("hidden 2×2 Hessian with a tighter tol", (H, 1e-9)))
    return cases


CLASSIFY_CRITICAL_POINT = NumberExercise(
    name="classify_critical_point",
    reference=ref_classify_critical_point,
    variants={
        "you read the signs of the diagonal entries; the eigenvalues decide (a rotated Hessian "
        "can have a positive diagonal and a negative eigenvalue)": _diagonal_signs,
        "a zero eigenvalue does not make a saddle inconclusive: one positive and one negative "
        "eigenvalue already give a direction down and a direction up": _singular_first,
        "with a zero eigenvalue the test cannot decide even if the other eigenvalues are all "
        "positive (or all negative): x² + y³ has the Hessian diag(2, 0) at 0 and no minimum": (
            _semidefinite_decides
        ),
        "you compared the eigenvalues with exact zero; round-off leaves values like 1e-13 where "
        "the true eigenvalue is 0: count |λ_i| ≤ tol as zero": _exact_zero,
        "the determinant-and-trace test only works for 2×2 matrices: in 3-D, det > 0 and "
        "trace > 0 also hold for the eigenvalues (5, −1, −2), a saddle": _determinant_and_trace,
    },
    self_check_cases=_self_check_cases,
    hidden_cases=_hidden_cases,
)
