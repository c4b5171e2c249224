r"""Chapter 02's new exercises: the largest stable learning rate, and a momentum optimizer's bug.

* ``momentum_lr_limit(A, mu, nesterov=False)`` (*derive*): the supremum of the learning rates for
  which ``SGD(momentum=mu, nesterov=nesterov)`` converges on :math:`f(w) = \tfrac12 w^\top A w`
  from every start. Heavy ball's, :math:`2(1+\mu)/\lambda_{\max}`, is derived in the lesson;
  Nesterov's follows from the same argument applied to its own 2×2 iteration matrix (a root of the
  characteristic polynomial reaches :math:`-1` first), which the student works out.
* ``FixedMomentumOptimizer`` (*find the bug*): :class:`BuggyMomentumOptimizer`, heavy ball or
  Nesterov, must match ``torch.optim.SGD(lr, momentum, nesterov=...)``. Finding the bug *is* the
  exercise, so no check names a mistake: the self-check and the grader say only on which quadratic
  and after which step the parameters differ. :data:`WRONG_FIXES` are the answers they must
  reject (the class as handed out, and mistakes a rewrite can make); the tests try each of them.
  (For instructors: the Nesterov step uses the velocity before its update, which makes it heavy
  ball's step.)

Both are registered in :mod:`course_lib.exercises`; the self-checks are
:func:`course_lib.checks.check_momentum_lr_limit` and
:func:`course_lib.checks.check_momentum_optimizer`, and the probes follow from the registry.
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import FrozenParameters, OptimizerClassExercise
from course_lib.exercises.problems import DTYPE, random_spd, uniform

# ---------------------------------------------------------------------------------------------
# momentum_lr_limit
# ---------------------------------------------------------------------------------------------


def _largest_eigenvalue(A) -> float:
    return torch.linalg.eigvalsh(torch.as_tensor(A, dtype=DTYPE)).max().item()


def _smallest_eigenvalue(A) -> float:
    return torch.linalg.eigvalsh(torch.as_tensor(A, dtype=DTYPE)).min().item()


def _limit(curvature: float, mu: float, nesterov: bool) -> float:
    if nesterov:
        return 2 * (1 + mu) / ((1 + 2 * mu) * curvature)
    return 2 * (1 + mu) / curvature


def ref_momentum_lr_limit(A, mu: float, nesterov: bool = False) -> float:
    """Largest stable lr of heavy ball / Nesterov (PyTorch form) on ``½ wᵀAw`` (A SPD)."""
    return _limit(_largest_eigenvalue(A), mu, bool(nesterov))


def _gd_limit(A, mu, nesterov=False):
    return 2.0 / _largest_eigenvalue(A)


def _heavy_ball_limit_for_both(A, mu, nesterov=False):
    return _limit(_largest_eigenvalue(A), mu, nesterov=False)


def _zigzag_edge(A, mu, nesterov=False):
    return (1 + math.sqrt(mu)) ** 2 / _largest_eigenvalue(A)


def _smallest_curvature(A, mu, nesterov=False):
    return _limit(_smallest_eigenvalue(A), mu, bool(nesterov))


def _half(A, mu, nesterov=False):
    return _limit(_largest_eigenvalue(A), mu, bool(nesterov)) / 2


def _diag(*values: float) -> torch.Tensor:
    return torch.diag(torch.tensor(values, dtype=DTYPE))


def _lr_limit_self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    A = _diag(1.0, 10.0)
    cases = [
        NumberCase("A = diag(1, 10), mu = 0.5, heavy ball", (A, 0.5, False)),
        NumberCase("A = diag(1, 10), mu = 0.5, nesterov=True", (A, 0.5, True)),
    ]
    for i, (n, nesterov) in enumerate(((3, False), (4, True), (5, True))):
        mu = round(uniform(gen, 0.3, 0.95), 3)
        A = random_spd(gen, n, min_eigenvalue=0.1, max_eigenvalue=10.0)
        kind = "nesterov=True" if nesterov else "heavy ball"
        cases.append(
            NumberCase(f"random SPD matrix {i + 1} ({n}×{n}), mu = {mu}, {kind}", (A, mu, nesterov))
        )
    return cases


def _lr_limit_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i, (n, nesterov) in enumerate(((2, True), (3, False), (4, True), (6, False), (8, True))):
        mu = uniform(gen, 0.2, 0.97)
        A = random_spd(gen, n, min_eigenvalue=0.05, max_eigenvalue=20.0)
        kind = "nesterov=True" if nesterov else "heavy ball"
        cases.append(
            NumberCase(f"hidden case {i + 1} ({n}×{n}, mu={mu:.3f}, {kind})", (A, mu, nesterov))
        )
    return cases


MOMENTUM_LR_LIMIT = NumberExercise(
    name="momentum_lr_limit",
    reference=ref_momentum_lr_limit,
    variants={
        "that is plain gradient descent's limit 2/λ_max: momentum changes the iteration matrix, "
        "and the limit with it": _gd_limit,
        "for nesterov=True this is heavy ball's limit 2(1+μ)/λ_max; Nesterov's iteration matrix "
        "is a different one: derive its characteristic polynomial": _heavy_ball_limit_for_both,
        "(1+√μ)²/λ_max is where heavy ball starts to zig-zag; it still converges beyond that, "
        "up to where a root reaches −1": _zigzag_edge,
        "you used the smallest eigenvalue; the largest curvature limits the learning rate": (
            _smallest_curvature
        ),
        "half the limit: check where a root of the characteristic polynomial reaches −1 "
        "(the factor 2 is missing)": _half,
    },
    self_check_cases=_lr_limit_self_check_cases,
    hidden_cases=_lr_limit_hidden_cases,
)


# ---------------------------------------------------------------------------------------------
# FixedMomentumOptimizer: the class handed out, and mistakes a fix can make
# ---------------------------------------------------------------------------------------------


class BuggyMomentumOptimizer(torch.optim.Optimizer):
    """SGD with momentum, heavy ball or Nesterov, meant to match ``torch.optim.SGD``.

    (No weight decay, no dampening.) It runs, it converges, and it has a bug.
    """

    def __init__(self, params, lr=0.01, momentum=0.9, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                velocity = self.state[p].setdefault("velocity", torch.zeros_like(p))
                look_ahead = p.grad + mu * velocity  # where the velocity is about to take us
                velocity.mul_(mu).add_(p.grad)
                p.add_(look_ahead if group["nesterov"] else velocity, alpha=-lr)


class _MomentumRule(torch.optim.Optimizer):
    """A momentum optimizer whose velocity update and step are given as a rule (for variants).

    ``rule(g, v, mu, nesterov) -> (step, v_new)``; the velocity starts at zero.
    """

    rule = None

    def __init__(self, params, lr=0.01, momentum=0.9, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                velocity = state.get("velocity", torch.zeros_like(p))
                direction, state["velocity"] = type(self).rule(
                    p.grad, velocity, group["momentum"], group["nesterov"]
                )
                p.add_(direction, alpha=-group["lr"])


class _AlwaysNesterov(_MomentumRule):
    @staticmethod
    def rule(g, v, mu, nesterov):
        v_new = mu * v + g
        return g + mu * v_new, v_new


class _EmaForm(_MomentumRule):
    @staticmethod
    def rule(g, v, mu, nesterov):
        v_new = mu * v + (1 - mu) * g
        return ((1 - mu) * g + mu * v_new if nesterov else v_new), v_new


# Answers the checks must reject without naming what is wrong: the class as handed out, a step
# that never moves the parameters, Nesterov's step for both settings, and the EMA form.
WRONG_FIXES = (BuggyMomentumOptimizer, FrozenParameters, _AlwaysNesterov, _EmaForm)

FIXED_MOMENTUM_OPTIMIZER = OptimizerClassExercise(
    name="fixed_momentum_optimizer",
    class_name="FixedMomentumOptimizer",
    reference=torch.optim.SGD,
    reference_name="torch.optim.SGD",
    variants={},  # find the bug: no diagnoses
    wrong_answers=WRONG_FIXES,
    self_check_hypers=(
        {"lr": 0.1, "momentum": 0.9, "nesterov": False},
        {"lr": 0.05, "momentum": 0.5, "nesterov": True},
        {"lr": 0.02, "momentum": 0.95, "nesterov": True},
    ),
    hidden_hypers=(
        {"lr": 0.1, "momentum": 0.8, "nesterov": False},
        {"lr": 0.04, "momentum": 0.6, "nesterov": True},
        {"lr": 0.02, "momentum": 0.99, "nesterov": True},
    ),
)
