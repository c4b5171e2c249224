r"""Chapter 08's exercises: RAdam's switch step and rectifier, and an Adan bug hunt.

* ``first_rectified_step(beta2, threshold)`` (derive/compute): the first step :math:`t \ge 1` at
  which :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)` exceeds ``threshold`` (RAdam's
  first rectified step: 5 in the paper's Algorithm 2, 4 is its threshold; PyTorch uses 5). Not a
  transcription: the student turns the rule into a search and meets the small-:math:`\beta_2`
  cases where :math:`\rho_t \approx t` fails.
* ``radam_rectifier(beta2, t)`` (implement): :math:`r_t` for a step with :math:`\rho_t > 5`.
* ``adan_bug_hunt`` (find the bug): the notebook hands out ``BuggyAdan``; ``FixedAdan`` must take
  the steps of :class:`course_lib.optim.Adan` (the official ``sail-sg/Adan`` semantics,
  parity-tested against ``pytorch_optimizer.Adan``). A find-the-bug exercise never names its
  mistake, so its mistakes are ``wrong_answers``.
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import FrozenParameters, OptimizerClassExercise
from course_lib.exercises.problems import IMPLEMENT, uniform
from course_lib.optim import Adan, blocks
from course_lib.optim.blocks.rectification import radam_rho, radam_rho_inf

__all__ = [
    "ADAN_BUG_HUNT",
    "FIRST_RECTIFIED_STEP",
    "RADAM_RECTIFIER",
    "AdanDecayingBeforeTheStep",
    "AdanForgettingFirstGradient",
    "AdanWithPaperLookahead",
]

# ---------------------------------------------------------------------------------------------
# first_rectified_step
# ---------------------------------------------------------------------------------------------


def _first_step_above(rho_of_t, threshold: float) -> int:
    t = 1
    while rho_of_t(t) <= threshold:
        t += 1
    return t


def ref_first_rectified_step(beta2: float, threshold: float) -> int:
    """The first step t ≥ 1 with ρ_t > threshold (the caller guarantees ρ∞ > threshold)."""
    return _first_step_above(lambda t: radam_rho(t, beta2), threshold)


def _rho_inf_without_minus_one(beta2: float, threshold: float) -> int:
    return _first_step_above(lambda t: radam_rho(t, beta2) + 1, threshold)


def _rho_is_t(beta2: float, threshold: float) -> int:
    return math.floor(threshold) + 1


def _last_momentum_step(beta2: float, threshold: float) -> int:
    return ref_first_rectified_step(beta2, threshold) - 1


def _distinct(beta2: float, threshold: float) -> bool:
    """The right answer differs from every classic mistake, and ρ_t is not within rounding of the
    threshold at the switch (no near-tie)."""
    t = ref_first_rectified_step(beta2, threshold)
    clear = radam_rho(t, beta2) - threshold > 1e-6 and threshold - radam_rho(t - 1, beta2) > 1e-6
    mistakes = (_rho_inf_without_minus_one(beta2, threshold), _rho_is_t(beta2, threshold))
    return clear and all(m != t for m in mistakes)


def _switch_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    """Five cases: β2 in [0.7, 0.86] (where ρ_t ≈ t fails), thresholds 4, 4.5, 5 or 6."""
    cases: list[NumberCase] = []
    while len(cases) < 5:
        beta2 = round(uniform(gen, 0.7, 0.86), 4)
        threshold = (4.0, 4.5, 5.0, 6.0)[int(torch.randint(0, 4, (), generator=gen))]
        if radam_rho_inf(beta2) > threshold + 0.5 and _distinct(beta2, threshold):
            cases.append(
                NumberCase(f"hidden case beta2={beta2}, threshold={threshold}", (beta2, threshold))
            )
    return cases


FIRST_RECTIFIED_STEP = NumberExercise(
    name="first_rectified_step",
    reference=ref_first_rectified_step,
    variants={
        "ρ∞ is 2/(1 − β2) − 1: without the − 1 every ρ_t is one too large and the switch "
        "comes early": _rho_inf_without_minus_one,
        "ρ_t ≈ t only while t(1 − β2) is small; for a small β2 compute ρ_t from its "
        "formula": _rho_is_t,
        "that is the last momentum-only step (or a 0-based index): the answer is the first step "
        "t = 1, 2, … whose ρ_t exceeds the threshold": _last_momentum_step,
    },
    self_check_cases=lambda gen: [
        NumberCase(f"beta2={b2}, threshold={thr}", (b2, thr))
        for b2, thr in ((0.98, 5.0), (0.9, 4.0), (0.8, 5.0), (0.75, 4.0), (0.72, 5.0))
    ],
    hidden_cases=_switch_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# radam_rectifier
# ---------------------------------------------------------------------------------------------


def _rectifier(rho_t: float, rho_inf: float) -> float:
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def ref_radam_rectifier(beta2: float, t: int) -> float:
    """r_t for a step t with ρ_t > 5 (PyTorch's rule; ``torch.optim.RAdam``'s factor)."""
    return _rectifier(radam_rho(int(t), beta2), radam_rho_inf(beta2))


def _no_square_root(beta2: float, t: int) -> float:
    return ref_radam_rectifier(beta2, t) ** 2


def _inverted(beta2: float, t: int) -> float:
    return 1 / ref_radam_rectifier(beta2, t)


def _rho_inf_off(beta2: float, t: int) -> float:
    rho_inf = 2 / (1 - beta2)
    return _rectifier(rho_inf - 2 * t * beta2**t / (1 - beta2**t), rho_inf)


def _without_rho_ratio(beta2: float, t: int) -> float:
    rho_t, rho_inf = radam_rho(int(t), beta2), radam_rho_inf(beta2)
    return math.sqrt((rho_t - 4) * (rho_t - 2) / ((rho_inf - 4) * (rho_inf - 2)))


def _rho_t_is_t(beta2: float, t: int) -> float:
    return _rectifier(float(t), radam_rho_inf(beta2))


def _rectifier_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    """Five cases: β2 = 1 − 10^u with u in [−4, −1.5], t from 6 to 5,000 (log-uniform)."""
    cases: list[NumberCase] = []
    while len(cases) < 5:
        beta2 = round(1 - 10 ** uniform(gen, -4, -1.5), 6)
        t = int(round(10 ** uniform(gen, math.log10(6), math.log10(5000))))
        if radam_rho(t, beta2) > 5:
            cases.append(NumberCase(f"hidden case beta2={beta2}, t={t}", (beta2, t)))
    return cases


RADAM_RECTIFIER = NumberExercise(
    name="radam_rectifier",
    reference=ref_radam_rectifier,
    variants={
        "r_t is a ratio of standard deviations: take the square root of the ratio of "
        "variances": _no_square_root,
        "upside down: r_t shrinks the early steps (r_t < 1), so the variance at step t goes in "
        "the denominator": _inverted,
        "ρ∞ is 2/(1 − β2) − 1, not 2/(1 − β2)": _rho_inf_off,
        "the factor ρ∞/ρ_t is missing: each variance is ρ/(2(ρ − 2)(ρ − 4)), with ρ in the "
        "numerator too": _without_rho_ratio,
        "ρ_t is not t: compute it from ρ∞ − 2tβ2ᵗ/(1 − β2ᵗ)": _rho_t_is_t,
    },
    self_check_cases=lambda gen: [
        NumberCase(f"beta2={b2}, t={t}", (b2, t))
        for b2, t in ((0.999, 6), (0.999, 100), (0.99, 7), (0.9, 50), (0.9999, 2000))
    ],
    hidden_cases=_rectifier_hidden_cases,
    kind=IMPLEMENT,
)

# ---------------------------------------------------------------------------------------------
# adan_bug_hunt
# ---------------------------------------------------------------------------------------------


class AdanForgettingFirstGradient(Adan):
    """Adan whose previous gradient starts at zero: the first difference is :math:`g_1`, not 0
    (the bug of the handed-out ``BuggyAdan``)."""

    def update(self, group, params, grads, states):
        for state, g in zip(states, grads):
            state.setdefault("prev_grad", torch.zeros_like(g))
        super().update(group, params, grads, states)


class AdanWithPaperLookahead(Adan):
    """Adan whose look-ahead gradient uses the paper's factor with the code's beta,
    :math:`g_k + (1-\\beta_2)\\,d_k` — mixing the two conventions."""

    def update(self, group, params, grads, states):
        beta1, beta2, beta3 = group["betas"]
        d = blocks.grad_difference(states, grads)
        m = blocks.ema(states, "m", grads, beta1)
        v = blocks.ema(states, "v", d, beta2)
        n = blocks.ema_sq(states, "n", blocks.adan_lookahead_grad(grads, d, 1 - beta2), beta3)
        u = blocks.adan_direction(m, v, n, group["step"], group["betas"], group["eps"])
        blocks.apply_update(params, u, group["lr"])
        blocks.prox_weight_decay(params, group["lr"], group["weight_decay"])


class AdanDecayingBeforeTheStep(Adan):
    """Adan with AdamW's decay :math:`(1-\\eta\\lambda)w` before the step in place of the
    proximal division after it (``no_prox=True`` whatever is asked)."""

    def __init__(self, params, **hyper):
        super().__init__(params, **{**hyper, "no_prox": True})


ADAN_BUG_HUNT = OptimizerClassExercise(
    name="adan_bug_hunt",
    class_name="FixedAdan",
    reference=Adan,
    reference_name="course_lib.optim.Adan (the official sail-sg/Adan semantics)",
    variants={},  # find the bug: the self-check never names it
    wrong_answers=(
        FrozenParameters,
        AdanForgettingFirstGradient,
        AdanWithPaperLookahead,
        AdanDecayingBeforeTheStep,
    ),
    self_check_hypers=(
        {"lr": 0.1, "betas": (0.98, 0.92, 0.99), "eps": 1e-8, "weight_decay": 0.0},
        {"lr": 0.05, "betas": (0.9, 0.8, 0.95), "eps": 1e-8, "weight_decay": 0.1},
    ),
    hidden_hypers=(
        {"lr": 0.05, "betas": (0.98, 0.92, 0.99), "eps": 1e-8, "weight_decay": 0.02},
        {"lr": 0.1, "betas": (0.95, 0.9, 0.98), "eps": 1e-6, "weight_decay": 0.0},
        {"lr": 0.02, "betas": (0.9, 0.7, 0.999), "eps": 1e-8, "weight_decay": 0.5},
    ),
)
