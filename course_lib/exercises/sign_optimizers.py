r"""Chapter 10's exercises: Lion's update, the steps its decay needs, and a Lion bug hunt.

* ``lion_step(p, g, m, lr, beta1, beta2, weight_decay) -> (p_new, m_new)`` (*implement*): one
  step of Lion (Chen et al., 2023) in the convention of ``lion-pytorch``:

  .. math:: c = \beta_1 m + (1-\beta_1)\, g,\quad
            p \leftarrow (1-\eta\lambda)\, p - \eta\,\operatorname{sign}(c),\quad
            m \leftarrow \beta_2 m + (1-\beta_2)\, g.

* ``lion_decay_steps(lr, weight_decay, fraction)`` (*compute*): a weight whose gradient and
  momentum are exactly zero feels only the decay (:math:`\operatorname{sign}(0) = 0`), so after
  :math:`T` steps it is :math:`(1-\eta\lambda)^T` times what it was. The answer is the smallest
  :math:`T` with :math:`(1-\eta\lambda)^T \le` ``fraction``, i.e.
  :math:`\lceil \ln(\text{fraction}) / \ln(1-\eta\lambda) \rceil`. The hidden cases keep that
  quotient at least 0.01 away from an integer, so every correct method agrees.
* ``FixedLion`` (*find the bug*): the notebook hands out ``BuggyLion``, a rewrite of the seed
  notes' Lion snippet; the fixed class must match ``lion_pytorch.Lion`` on small quadratics. The
  self-check says on which quadratic and after which step the parameters differ, never what the
  bug is. (For instructors: ``BuggyLion`` updates the momentum in place *before* it interpolates,
  so the update direction mixes in :math:`\beta_2`'s average — :class:`LionMomentumFirst`.)
"""

from __future__ import annotations

import math

import lion_pytorch  # the reference; imported here so that the grader's clean image has it loaded
import torch

from course_lib.exercises.mistakes import WRONG_SIGN
from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import FrozenParameters, OptimizerClassExercise
from course_lib.exercises.problems import uniform
from course_lib.exercises.update_rule import Rule

# ---------------------------------------------------------------------------------------------
# lion_step
# ---------------------------------------------------------------------------------------------


def ref_lion_step(p, g, m, lr, beta1, beta2, weight_decay):
    """Lion: decoupled decay, step along the sign of the β1 interpolation, then the β2 EMA."""
    c = beta1 * m + (1 - beta1) * g
    p_new = p * (1 - lr * weight_decay) - lr * torch.sign(c)
    return p_new, beta2 * m + (1 - beta2) * g


def _lion_momentum_first(p, g, m, lr, beta1, beta2, weight_decay):
    m_new = beta2 * m + (1 - beta2) * g
    c = beta1 * m_new + (1 - beta1) * g
    return p * (1 - lr * weight_decay) - lr * torch.sign(c), m_new


def _lion_one_beta(p, g, m, lr, beta1, beta2, weight_decay):
    return ref_lion_step(p, g, m, lr, beta1, beta1, weight_decay)


def _lion_sign_of_momentum(p, g, m, lr, beta1, beta2, weight_decay):
    m_new = beta2 * m + (1 - beta2) * g
    return p * (1 - lr * weight_decay) - lr * torch.sign(m_new), m_new


def _lion_decay_inside_sign(p, g, m, lr, beta1, beta2, weight_decay):
    c = beta1 * m + (1 - beta1) * g
    return p - lr * torch.sign(c + weight_decay * p), beta2 * m + (1 - beta2) * g


def _lion_decay_without_lr(p, g, m, lr, beta1, beta2, weight_decay):
    c = beta1 * m + (1 - beta1) * g
    return p * (1 - weight_decay) - lr * torch.sign(c), beta2 * m + (1 - beta2) * g


def _lion_without_sign(p, g, m, lr, beta1, beta2, weight_decay):
    c = beta1 * m + (1 - beta1) * g
    return p * (1 - lr * weight_decay) - lr * c, beta2 * m + (1 - beta2) * g


def _lion_wrong_sign(p, g, m, lr, beta1, beta2, weight_decay):
    c = beta1 * m + (1 - beta1) * g
    return p * (1 - lr * weight_decay) + lr * torch.sign(c), beta2 * m + (1 - beta2) * g


LION_STEP = Rule(
    name="lion_step",
    signature="lion_step(p, g, m, lr, beta1, beta2, weight_decay) -> (p_new, m_new)",
    tensor_args=("p", "g", "m"),
    outputs=("p_new", "m_new"),
    reference=ref_lion_step,
    variants={
        "the momentum was updated before the interpolation: the direction uses the old m "
        "(c = β1·m + (1−β1)·g), and m is updated with β2 only afterwards": _lion_momentum_first,
        "β1 was used for the momentum too: Lion tracks m with β2, and uses β1 only for the "
        "update direction": _lion_one_beta,
        "that is the sign of the momentum (Signum): Lion takes the sign of the interpolation "
        "c = β1·m + (1−β1)·g, not of m": _lion_sign_of_momentum,
        "the decay went inside the sign: Lion adds λ·p after the sign, "
        "p ← p − lr·(sign(c) + λ·p)": _lion_decay_inside_sign,
        "the decay is multiplied by the learning rate: p·(1 − lr·λ), not p·(1 − λ)": (
            _lion_decay_without_lr
        ),
        "the step is lr·c: Lion moves by lr·sign(c), the same size for every element": (
            _lion_without_sign
        ),
        WRONG_SIGN: _lion_wrong_sign,
    },
    hyper={"lr": 0.1, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.5},
    # random cases: β2 far from 1, so that every mistake flips some signs
    random_hyper=lambda gen: {
        "lr": uniform(gen, 0.01, 0.2),
        "beta1": uniform(gen, 0.8, 0.95),
        "beta2": uniform(gen, 0.3, 0.8),  # far from 1: the order of the two averages shows
        "weight_decay": uniform(gen, 0.1, 1.0),
    },
    state_args=("m",),
)

# ---------------------------------------------------------------------------------------------
# lion_decay_steps
# ---------------------------------------------------------------------------------------------


def ref_lion_decay_steps(lr: float, weight_decay: float, fraction: float) -> int:
    """Smallest T with (1 − lr·λ)^T ≤ fraction (decay alone: zero gradient and momentum)."""
    return math.ceil(math.log(fraction) / math.log1p(-lr * weight_decay))


def _decay_steps_without_lr(lr, weight_decay, fraction):
    if weight_decay >= 1:
        return math.nan
    return math.ceil(math.log(fraction) / math.log1p(-weight_decay))


def _decay_steps_one_short(lr, weight_decay, fraction):
    return ref_lion_decay_steps(lr, weight_decay, fraction) - 1


def _decay_steps_continuous(lr, weight_decay, fraction):
    return math.ceil(-math.log(fraction) / (lr * weight_decay))


def _decay_steps_with_sign_step(lr, weight_decay, fraction):
    """As if every step also moved the weight by lr towards 0 (it does not: sign(0) = 0)."""
    w, t = 1.0, 0
    while w > fraction and t < 10**8:
        w, t = w * (1 - lr * weight_decay) - lr, t + 1
    return t


def _steps_quotient(lr, weight_decay, fraction) -> float:
    return math.log(fraction) / math.log1p(-lr * weight_decay)


def _decay_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    while len(cases) < 5:
        lr = round(10 ** uniform(gen, -4, -2), 6)
        weight_decay = round(10 ** uniform(gen, -2, 0), 4)
        fraction = round(uniform(gen, 0.05, 0.9), 3)
        q = _steps_quotient(lr, weight_decay, fraction)
        if q < 5e6 and abs(q - round(q)) > 0.01:
            cases.append(
                NumberCase(
                    f"hidden case {len(cases) + 1}: lr={lr}, weight_decay={weight_decay}, "
                    f"fraction={fraction}",
                    (lr, weight_decay, fraction),
                )
            )
    return cases


LION_DECAY_STEPS = NumberExercise(
    name="lion_decay_steps",
    reference=ref_lion_decay_steps,
    variants={
        "the decay per step is lr·λ, not λ: PyTorch's and Lion's decoupled decay multiplies "
        "the weights by (1 − lr·λ)": _decay_steps_without_lr,
        "one step short: after that many steps the weight is still above the fraction (round "
        "up, not down)": _decay_steps_one_short,
        "that is the continuous approximation e^(−lr·λ·T); count whole steps of "
        "(1 − lr·λ)": _decay_steps_continuous,
        "a weight with zero gradient and zero momentum gets no sign step (sign(0) = 0): only the "
        "decay acts": _decay_steps_with_sign_step,
    },
    self_check_cases=lambda gen: [
        NumberCase(f"lr={lr}, weight_decay={wd}, fraction={f}", (lr, wd, f))
        for lr, wd, f in ((0.01, 0.1, 0.5), (1e-3, 0.05, 0.25), (3e-4, 1.0, 0.1), (0.05, 0.2, 0.7))
    ],
    hidden_cases=_decay_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# lion_bug_hunt
# ---------------------------------------------------------------------------------------------


class _LionVariant(torch.optim.Optimizer):
    """A Lion with one deliberate mistake, given as a step function (for the tests)."""

    step_function = staticmethod(ref_lion_step)

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                p_new, state["m"] = self.step_function(
                    p, p.grad, state["m"], group["lr"], beta1, beta2, group["weight_decay"]
                )
                p.copy_(p_new)


class LionMomentumFirst(_LionVariant):
    """The handed-out bug: the momentum is updated before the interpolation."""

    step_function = staticmethod(_lion_momentum_first)


class LionSignOfMomentum(_LionVariant):
    """Signum with β2 instead of Lion."""

    step_function = staticmethod(_lion_sign_of_momentum)


class LionDecayInsideSign(_LionVariant):
    """The decay added inside the sign."""

    step_function = staticmethod(_lion_decay_inside_sign)


class LionOneBeta(_LionVariant):
    """β1 for both the direction and the momentum."""

    step_function = staticmethod(_lion_one_beta)


def _lion_pytorch(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
    return lion_pytorch.Lion(params, lr=lr, betas=betas, weight_decay=weight_decay)


# Learning rates large enough that Lion reaches the minimum and oscillates around it within the
# first steps (there the update direction depends on the momentum), β2 far enough from 1 that
# the order of the two momentum lines matters, and decays large enough to flip a sign: every
# mistake shows within the steps of a case.
LION_BUG_HUNT = OptimizerClassExercise(
    name="lion_bug_hunt",
    class_name="FixedLion",
    reference=_lion_pytorch,
    reference_name="lion_pytorch.Lion",
    variants={},  # find the bug: the self-check never names it
    wrong_answers=(
        FrozenParameters,
        LionMomentumFirst,
        LionSignOfMomentum,
        LionDecayInsideSign,
        LionOneBeta,
    ),
    self_check_hypers=(
        {"lr": 0.3, "betas": (0.9, 0.6), "weight_decay": 0.0},
        {"lr": 0.2, "betas": (0.8, 0.5), "weight_decay": 1.0},
    ),
    hidden_hypers=(
        {"lr": 0.3, "betas": (0.9, 0.7), "weight_decay": 0.8},
        {"lr": 0.25, "betas": (0.85, 0.5), "weight_decay": 1.5},
        {"lr": 0.4, "betas": (0.95, 0.6), "weight_decay": 0.6},
    ),
)
