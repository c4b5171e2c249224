r"""Exercises whose answer is a number, or a function returning one.

* ``divergence_threshold(A)``: the largest stable learning rate of gradient descent on
  :math:`f(w) = \tfrac12 w^\top A w`, :math:`2/\lambda_{\max}(A)` (chapter 01);
* ``optimal_momentum(kappa)``: the best heavy-ball :math:`\mu` on a quadratic with condition
  number :math:`\kappa`, :math:`\big((\sqrt\kappa-1)/(\sqrt\kappa+1)\big)^2` (chapter 02);
* ``bias_correction(beta, t)``: the factor :math:`1-\beta^t` by which a zero-initialised EMA
  falls short after :math:`t` steps (chapter 04).

A :class:`NumberExercise` holds the reference, the classic mistakes as *variants* (wrong answers
for the same arguments, keyed by the sentence that diagnoses them), and the arguments of the
self-check's and of the grader's cases. List a new one in
:data:`course_lib.exercises.NUMBER_EXERCISES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from course_lib.exercises.mistakes import (
    COMPUTED_IN_FLOAT32,
    STEP_COUNT_MINUS_ONE,
    STEP_COUNT_PLUS_ONE,
)
from course_lib.exercises.problems import (
    COMPUTE,
    DTYPE,
    FIND_THE_BUG,
    KINDS,
    looks_like_float32,
    random_spd,
    uniform,
)

# A number is right when it is within NUMBER_RTOL relative (or NUMBER_ATOL absolute) of the answer.
NUMBER_RTOL = 1e-6
NUMBER_ATOL = 1e-12


@dataclass(frozen=True)
class NumberCase:
    """The arguments of one call, and a label for messages."""

    label: str
    args: tuple


@dataclass(frozen=True)
class NumberExercise:
    """A number exercise: reference, classic mistakes, and the cases it is tried on.

    ``self_check_cases(gen)`` and ``hidden_cases(gen)`` return the visible and the grader's cases
    (a fixed list may ignore the generator). ``kind`` is ``"compute"`` (derive a number),
    ``"measure"`` (run an experiment) or ``"find the bug"`` (no variants: never named).
    """

    name: str
    reference: Callable[..., float]
    variants: dict[str, Callable[..., float]]
    self_check_cases: Callable[[torch.Generator], list[NumberCase]]
    hidden_cases: Callable[[torch.Generator], list[NumberCase]]
    kind: str = COMPUTE

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == FIND_THE_BUG and self.variants:
            raise ValueError(f"{self.name}: a find-the-bug exercise never names its mistakes")

    def is_right(self, args: tuple, got: float) -> bool:
        """Whether ``got`` equals the reference's answer for ``args``."""
        want = self.reference(*args)
        return math.isclose(got, want, rel_tol=NUMBER_RTOL, abs_tol=NUMBER_ATOL)

    def diagnose(self, args: tuple, got: float) -> list[str]:
        """The sentences of the variants whose answer for ``args`` equals ``got`` (maybe none),
        and :data:`~course_lib.exercises.mistakes.COMPUTED_IN_FLOAT32` when ``got`` is the answer
        rounded to float32 (never for a find-the-bug exercise)."""
        if self.kind == FIND_THE_BUG:
            return []
        hits = []
        if looks_like_float32(got, self.reference(*args)):
            hits.append(COMPUTED_IN_FLOAT32)
        for why, wrong_answer in self.variants.items():
            value = wrong_answer(*args)
            if math.isfinite(value) and math.isclose(got, value, rel_tol=NUMBER_RTOL):
                hits.append(why)
        return hits


# ---------------------------------------------------------------------------------------------
# divergence_threshold
# ---------------------------------------------------------------------------------------------


def _eigenvalues(A) -> torch.Tensor:
    return torch.linalg.eigvalsh(torch.as_tensor(A, dtype=DTYPE))


def ref_divergence_threshold(A) -> float:
    """Largest stable lr of GD on ``f(w) = ½ wᵀAw``: ``2/λ_max(A)`` (A SPD)."""
    return 2.0 / _eigenvalues(A).max().item()


def _divergence_self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    A = torch.diag(torch.tensor([1.0, 10.0], dtype=DTYPE))
    cases = [NumberCase("fixed A = diag(1, 10)", (A,))]
    for i, n in enumerate((3, 5, 8)):
        A = random_spd(gen, n, min_eigenvalue=0.1, max_eigenvalue=10.0)
        cases.append(NumberCase(f"random SPD matrix {i + 1} ({n}×{n})", (A,)))
    return cases


def _divergence_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    return [
        NumberCase(
            f"hidden SPD matrix {i + 1} ({n}×{n})",
            (random_spd(gen, n, min_eigenvalue=0.1, max_eigenvalue=30.0),),
        )
        for i, n in enumerate((2, 3, 4, 6, 10))
    ]


DIVERGENCE_THRESHOLD = NumberExercise(
    name="divergence_threshold",
    reference=ref_divergence_threshold,
    variants={
        "you returned 1/λ_max: the factor 2 is missing (GD on ½wᵀAw diverges when "
        "|1 − lr·λ_max| > 1, i.e. lr > 2/λ_max)": lambda A: 1.0 / _eigenvalues(A).max().item(),
        "you used the smallest eigenvalue; the *largest* curvature limits the step": (
            lambda A: 2.0 / _eigenvalues(A).min().item()
        ),
        "the ratio is upside down: the threshold is 2/λ_max, not λ_max/2": (
            lambda A: _eigenvalues(A).max().item() / 2.0
        ),
        "you used the largest diagonal entry instead of the largest eigenvalue": (
            lambda A: 2.0 / torch.as_tensor(A, dtype=DTYPE).diagonal().max().item()
        ),
    },
    self_check_cases=_divergence_self_check_cases,
    hidden_cases=_divergence_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# optimal_momentum
# ---------------------------------------------------------------------------------------------


def ref_optimal_momentum(kappa: float) -> float:
    """Heavy-ball momentum that is optimal on a quadratic with condition number κ."""
    root = math.sqrt(kappa)
    return ((root - 1) / (root + 1)) ** 2


def _optimal_momentum_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    kappas = [10 ** uniform(gen, 0.2, 3.7) for _ in range(5)]
    return [NumberCase(f"hidden case kappa={kappa:.4g}", (kappa,)) for kappa in kappas]


OPTIMAL_MOMENTUM = NumberExercise(
    name="optimal_momentum",
    reference=ref_optimal_momentum,
    variants={
        "the square is missing: μ* = ((√κ−1)/(√κ+1))²": (
            lambda kappa: (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
        ),
        "you used κ instead of √κ": lambda kappa: ((kappa - 1) / (kappa + 1)) ** 2,
        "that is (κ−1)/(κ+1), the rate of plain GD": lambda kappa: (kappa - 1) / (kappa + 1),
    },
    self_check_cases=lambda gen: [
        NumberCase(f"kappa={kappa}", (kappa,)) for kappa in (4.0, 100.0, 10.0, 1000.0)
    ],
    hidden_cases=_optimal_momentum_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# bias_correction
# ---------------------------------------------------------------------------------------------


def ref_bias_correction(beta: float, t: int) -> float:
    """The factor Adam divides a zero-initialised EMA by after ``t`` steps: ``1 − βᵗ``."""
    return 1.0 - beta**t


def _bias_correction_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(6):
        beta = uniform(gen, 0.5, 0.999)
        t = int(torch.randint(1, 200, (), generator=gen).item()) if i else 1
        cases.append(NumberCase(f"hidden case beta={beta:.4f}, t={t}", (beta, t)))
    return cases


BIAS_CORRECTION = NumberExercise(
    name="bias_correction",
    reference=ref_bias_correction,
    variants={
        STEP_COUNT_PLUS_ONE: lambda beta, t: 1 - beta ** (t + 1),
        STEP_COUNT_MINUS_ONE: lambda beta, t: 1 - beta ** (t - 1),
        "you returned βᵗ; the factor is 1 − βᵗ": lambda beta, t: beta**t,
        "you returned the inverse 1/(1 − βᵗ); the factor itself is 1 − βᵗ": (
            lambda beta, t: 1 / (1 - beta**t)
        ),
    },
    self_check_cases=lambda gen: [
        NumberCase(f"beta={beta}, t={t}", (beta, t))
        for beta, t in ((0.9, 1), (0.999, 1), (0.9, 10), (0.999, 100), (0.5, 3))
    ],
    hidden_cases=_bias_correction_hidden_cases,
)
