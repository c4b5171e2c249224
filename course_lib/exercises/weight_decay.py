r"""Chapter 05's exercises beyond ``adamw_step`` (defined with Adam's rules in ``adaptive_rules``).

* ``decay_half_life(lr, weight_decay, v_hat, eps, decoupled)`` (derive/compute): the number of
  steps after which weight decay *alone* has shrunk a weight to half its size or less — the
  smallest integer :math:`k` with :math:`(1-d)^k \le \tfrac12`, where the per-step decay is
  :math:`d = \eta\lambda` for AdamW (``decoupled=True``) and
  :math:`d = \eta\lambda/(\sqrt{\hat v}+\epsilon)` for Adam + L2 (``decoupled=False``, the decay
  part of the step with :math:`\beta_1 = 0` and :math:`\hat v` held fixed, i.e. the data gradient
  dominates :math:`\hat v`). Cases keep :math:`0 < d < 1`.
* ``adamw_bug_hunt`` (find the bug): the notebook hands out ``BuggyAdamW``; ``FixedAdamW`` must
  match ``torch.optim.AdamW``. A find-the-bug exercise has no diagnoses, so no variants.
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import OptimizerClassExercise
from course_lib.exercises.problems import uniform

# ---------------------------------------------------------------------------------------------
# decay_half_life
# ---------------------------------------------------------------------------------------------


def _per_step_decay(lr, weight_decay, v_hat, eps, decoupled) -> float:
    if decoupled:
        return lr * weight_decay
    return lr * weight_decay / (math.sqrt(v_hat) + eps)


def _steps_to_half(d: float) -> int:
    """Smallest k with (1 − d)^k ≤ 1/2, for 0 < d < 1 (the float64 ratio, then an exact fix-up
    so that a ratio a hair above an integer does not round the wrong way)."""
    k = max(1, math.ceil(math.log(0.5) / math.log1p(-d)))
    while k > 1 and (1 - d) ** (k - 1) <= 0.5:
        k -= 1
    while (1 - d) ** k > 0.5:
        k += 1
    return k


def _steps_to_half_any(d: float) -> int:
    """Like :func:`_steps_to_half`, also for a (wrong) d ≥ 1/2: then one step is enough."""
    return 1 if d >= 0.5 else _steps_to_half(d)


def ref_decay_half_life(lr, weight_decay, v_hat, eps, decoupled) -> int:
    """Steps until decay alone halves a weight: AdamW (decoupled) or Adam + L2 with v̂ fixed."""
    return _steps_to_half(_per_step_decay(lr, weight_decay, v_hat, eps, decoupled))


def _half_life_cases(gen: torch.Generator, n: int, label: str) -> list[NumberCase]:
    cases = []
    while len(cases) < n:
        lr = float(f"{10 ** uniform(gen, -4, -2):.3g}")
        weight_decay = float(f"{10 ** uniform(gen, -2, 0):.3g}")
        v_hat = float(f"{10 ** uniform(gen, -6, 0):.3g}")
        eps = (1e-8, 1e-6)[len(cases) % 2]
        decoupled = len(cases) % 3 == 0
        d = _per_step_decay(lr, weight_decay, v_hat, eps, decoupled)
        k = ref_decay_half_life(lr, weight_decay, v_hat, eps, decoupled)
        # no near-ties: the answer must not hinge on the last bits of (1 − d)^k
        if 1e-6 < d < 0.5 and abs(k * math.log1p(-d) - math.log(0.5)) > 1e-6 and k < 10**8:
            cases.append(
                NumberCase(
                    f"{label} lr={lr}, weight_decay={weight_decay}, v_hat={v_hat}, eps={eps}, "
                    f"decoupled={decoupled}",
                    (lr, weight_decay, v_hat, eps, decoupled),
                )
            )
    return cases


def _half_life_self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    fixed = [
        (1e-3, 0.1, 1e-4, 1e-8, True),
        (1e-3, 0.1, 1e-4, 1e-8, False),
        (3e-4, 0.1, 0.25, 1e-8, False),
        (1e-2, 0.05, 1e-6, 1e-8, False),
    ]
    cases = [NumberCase(", ".join(f"{a}" for a in args), args) for args in fixed]
    return cases + _half_life_cases(torch.Generator().manual_seed(5), 2, "random:")


DECAY_HALF_LIFE = NumberExercise(
    name="decay_half_life",
    reference=ref_decay_half_life,
    variants={
        "that is AdamW's half-life for every case: with L2 inside Adam the decay term is divided "
        "by √v̂ + ε like the rest of the gradient": (
            lambda lr, wd, v, eps, dec: _steps_to_half(lr * wd)
        ),
        "the decay term was divided by v̂ + ε; Adam divides by √v̂ + ε": (
            lambda lr, wd, v, eps, dec: ref_decay_half_life(lr, wd, v, eps, dec)
            if dec else _steps_to_half_any(lr * wd / (v + eps))
        ),
        "the learning rate is missing: the per-step decay is lr·λ (PyTorch's convention), not λ": (
            lambda lr, wd, v, eps, dec: _steps_to_half_any(_per_step_decay(1.0, wd, v, eps, dec))
        ),
        "that is the continuous estimate ln 2/d rounded; count whole steps: the smallest k with "
        "(1 − d)^k ≤ 1/2": (
            lambda lr, wd, v, eps, dec: round(math.log(2) / _per_step_decay(lr, wd, v, eps, dec))
        ),
        "off by one: you returned the last step at which the weight is still above half": (
            lambda lr, wd, v, eps, dec: ref_decay_half_life(lr, wd, v, eps, dec) - 1
        ),
    },
    self_check_cases=_half_life_self_check_cases,
    hidden_cases=lambda gen: _half_life_cases(gen, 6, "hidden case"),
)

# ---------------------------------------------------------------------------------------------
# adamw_bug_hunt
# ---------------------------------------------------------------------------------------------

def _adam_with_l2(params, lr, betas, eps, weight_decay):
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _adamw_decay_without_lr(params, lr, betas, eps, weight_decay):
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay / lr)


def _adam_without_decay(params, lr, betas, eps, weight_decay):
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


ADAMW_BUG_HUNT = OptimizerClassExercise(
    name="adamw_bug_hunt",
    class_name="FixedAdamW",
    reference=torch.optim.AdamW,
    reference_name="torch.optim.AdamW",
    variants={},  # find the bug: the self-check never names it
    wrong_answers=(_adam_with_l2, _adamw_decay_without_lr, _adam_without_decay),
    self_check_hypers=(
        {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.5},
        {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.2},
    ),
    hidden_hypers=(
        {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.3},
        {"lr": 0.1, "betas": (0.85, 0.98), "eps": 1e-6, "weight_decay": 1.0},
        {"lr": 0.02, "betas": (0.95, 0.9999), "eps": 1e-8, "weight_decay": 0.1},
    ),
)
