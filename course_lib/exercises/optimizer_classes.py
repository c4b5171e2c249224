r"""Optimizer-class exercises: a ``torch.optim.Optimizer`` subclass that must match torch's.

The notebook hands out a class with a bug (``BuggySGD``, ``BuggyMomentumSGD``, ``BuggyAdam``)
and the student writes the fixed one (``FixedSGD``, ...). An :class:`OptimizerClassExercise`
runs the class for a few steps on small random quadratics :math:`\tfrac12 w^\top A w - b^\top w`
and compares the whole parameter trajectory with the ``torch.optim`` reference.

The classic mistakes are constructors with the student's class's signature, each building an
optimizer that makes one mistake. What happens to them depends on the exercise's ``kind``:

- **find the bug** (the three exercises here): finding the bug *is* the exercise, so no check
  ever names it (``shared/CHAPTER_STANDARD.md``). The mistakes are ``wrong_answers``: the tests
  make sure that the self-check and the grader reject each of them, and say only on which
  quadratic and after which step the parameters differ;
- **implement** (a class written from scratch, e.g. centered RMSprop with param groups): the
  mistakes are ``variants`` keyed by the sentence that diagnoses them, as for update rules.

Adam's wrong answers are the mistakes of the ``adam_step`` exercise run as whole optimizers
(:class:`StepFunctionAdam`), so the class and the function are tested against the same mistakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from course_lib.exercises.adaptive_rules import ADAM_STEP
from course_lib.exercises.problems import (
    ATOL,
    FIND_THE_BUG,
    IMPLEMENT,
    KINDS,
    RTOL,
    Quadratic,
    quadratic_trajectory,
    random_quadratic,
)

# The test quadratics have eigenvalues in [0.3, 3]: every reference stays stable for all the
# learning rates below, and every mistake changes the trajectory within a few steps.
MIN_EIGENVALUE, MAX_EIGENVALUE = 0.3, 3.0
SELF_CHECK_STEPS = 10
HIDDEN_STEPS = 8


# ---------------------------------------------------------------------------------------------
# Mistakes as whole optimizers
# ---------------------------------------------------------------------------------------------


class FrozenParameters(torch.optim.Optimizer):
    """The "parameters never change" mistake as an optimizer: ``step()`` moves nothing (what
    ``p = p - lr * p.grad`` does: it rebinds a local name and leaves the tensor alone)."""

    def __init__(self, params, **hyperparameters):
        super().__init__(params, hyperparameters)

    def step(self, closure=None):
        return None


class WrongSignSGD(torch.optim.Optimizer):
    """The wrong-sign mistake as an optimizer: ``p ← p + lr·(g + λp)``."""

    def __init__(self, params, lr=0.01, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad + group["weight_decay"] * p, alpha=group["lr"])


class StepFunctionAdam(torch.optim.Optimizer):
    """Adam whose update is a pure ``adam_step(p, g, m, v, t, lr, beta1, beta2, eps)`` function.

    With a variant of the ``adam_step`` exercise it is that mistake as a whole optimizer.
    """

    def __init__(self, params, adam_step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))
        self.adam_step = adam_step

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["t"] += 1
                p_new, state["m"], state["v"] = self.adam_step(
                    p, p.grad, state["m"], state["v"], state["t"],
                    group["lr"], beta1, beta2, group["eps"],
                )  # fmt: skip
                p.copy_(p_new)


# ---------------------------------------------------------------------------------------------
# The exercise
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuadraticCase:
    """One run: the quadratic, the class's hyperparameters, the number of steps, a label."""

    label: str
    quadratic: Quadratic
    hyper: dict
    steps: int


def _describe_hyper(hyper: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in hyper.items())


@dataclass(frozen=True)
class OptimizerClassExercise:
    """An optimizer class to write, its ``torch.optim`` reference, its classic mistakes and cases.

    ``name`` is the ``grade_id`` of the graded cell and ``class_name`` the class the notebook asks
    for. ``reference``, every variant and every wrong answer are called like the student's class,
    ``make(params, **hyper)``, with each of ``self_check_hypers`` (visible) or ``hidden_hypers``
    (the grader's). ``variants`` (diagnosed mistakes) are for ``kind="implement"`` only; a
    find-the-bug exercise lists its mistakes in ``wrong_answers``, which are rejected unnamed.
    Without ``kind``, an exercise with variants is an implement exercise, one without a
    find-the-bug exercise.
    """

    name: str
    class_name: str
    reference: Callable[..., torch.optim.Optimizer]
    reference_name: str
    variants: dict[str, Callable[..., torch.optim.Optimizer]]
    self_check_hypers: tuple[dict, ...]
    hidden_hypers: tuple[dict, ...]
    kind: str | None = None
    wrong_answers: tuple[Callable[..., torch.optim.Optimizer], ...] = ()

    def __post_init__(self):
        if self.kind is None:  # not given: diagnosed mistakes make it an implement exercise
            object.__setattr__(self, "kind", IMPLEMENT if self.variants else FIND_THE_BUG)
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == FIND_THE_BUG and self.variants:
            raise ValueError(f"{self.name}: a find-the-bug exercise never names its mistakes")

    def self_check_cases(self, gen: torch.Generator) -> list[QuadraticCase]:
        """One quadratic per self-check hyperparameter set, with 3, 4, … parameters."""
        return [
            QuadraticCase(
                f"quadratic {i + 1} ({3 + i} parameters, {_describe_hyper(hyper)})",
                random_quadratic(gen, 3 + i, MIN_EIGENVALUE, MAX_EIGENVALUE),
                hyper,
                SELF_CHECK_STEPS,
            )
            for i, hyper in enumerate(self.self_check_hypers)
        ]

    def hidden_cases(self, gen: torch.Generator) -> list[QuadraticCase]:
        """One quadratic per hidden hyperparameter set, with 2, 3, … parameters."""
        return [
            QuadraticCase(
                f"hidden quadratic {i + 1} ({2 + i} parameters, {HIDDEN_STEPS} steps, "
                f"{_describe_hyper(hyper)})",
                random_quadratic(gen, 2 + i, MIN_EIGENVALUE, MAX_EIGENVALUE),
                hyper,
                HIDDEN_STEPS,
            )
            for i, hyper in enumerate(self.hidden_hypers)
        ]

    def trajectory(
        self, make: Callable[..., torch.optim.Optimizer], case: QuadraticCase
    ) -> torch.Tensor:
        """The iterates of ``make(params, **case.hyper)`` on the case's quadratic."""
        return quadratic_trajectory(
            lambda params: make(params, **case.hyper), case.quadratic, case.steps
        )

    def diagnose(self, case: QuadraticCase, got: torch.Tensor) -> list[str]:
        """The sentences of the variants whose trajectory on ``case`` equals ``got``.

        NaN matches NaN: a mistake that divides by zero (``1 − β⁰``) is still recognised. A
        find-the-bug exercise has no variants, so nothing is ever named for it.
        """
        hits = []
        for why, make_variant in self.variants.items():
            wrong = self.trajectory(make_variant, case)
            if wrong.shape == got.shape and torch.allclose(
                got, wrong, rtol=RTOL, atol=ATOL, equal_nan=True
            ):
                hits.append(why)
        return hits


# ---------------------------------------------------------------------------------------------
# FixedSGD, FixedMomentumSGD, FixedAdam
# ---------------------------------------------------------------------------------------------


def _sgd_ignoring_weight_decay(params, lr, weight_decay=0.0):
    return torch.optim.SGD(params, lr=lr)


def _sgd_forgetting_momentum(params, lr, momentum):
    return torch.optim.SGD(params, lr=lr)


def _sgd_with_ema_momentum(params, lr, momentum):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=momentum)


def _sgd_with_nesterov_momentum(params, lr, momentum):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)


FIXED_SGD = OptimizerClassExercise(
    name="fixed_sgd",
    class_name="FixedSGD",
    reference=torch.optim.SGD,
    reference_name="torch.optim.SGD",
    variants={},
    wrong_answers=(FrozenParameters, WrongSignSGD, _sgd_ignoring_weight_decay),
    self_check_hypers=({"lr": 0.1}, {"lr": 0.05, "weight_decay": 0.1}),
    hidden_hypers=(
        {"lr": 0.1},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.2, "weight_decay": 0.01},
    ),
)

FIXED_MOMENTUM_SGD = OptimizerClassExercise(
    name="fixed_momentum_sgd",
    class_name="FixedMomentumSGD",
    reference=torch.optim.SGD,
    reference_name="torch.optim.SGD",
    variants={},
    wrong_answers=(
        FrozenParameters,
        _sgd_forgetting_momentum,
        _sgd_with_ema_momentum,
        _sgd_with_nesterov_momentum,
    ),
    self_check_hypers=({"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.5}),
    hidden_hypers=(
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.5},
        {"lr": 0.02, "momentum": 0.99},
    ),
)

FIXED_ADAM = OptimizerClassExercise(
    name="fixed_adam",
    class_name="FixedAdam",
    reference=torch.optim.Adam,
    reference_name="torch.optim.Adam",
    variants={},
    wrong_answers=(
        FrozenParameters,
        *(partial(StepFunctionAdam, adam_step=wrong) for wrong in ADAM_STEP.variants.values()),
    ),
    self_check_hypers=(
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3},
    ),
    hidden_hypers=(
        {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8},
        {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-3},
        {"lr": 0.02, "betas": (0.95, 0.9999), "eps": 1e-6},
    ),
)
