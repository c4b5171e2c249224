r"""Chapter 11's exercises: compose a named optimizer, count a composition's state, FTRL's weight.

* ``AdamWFromBlocks`` (implement): an optimizer class ``AdamWFromBlocks(params, lr, betas, eps,
  weight_decay)`` built from :mod:`course_lib.optim.blocks` (or from the composer) that equals
  ``torch.optim.AdamW`` step by step. The classic mistakes are wrong *compositions*: L2 in the
  gradient instead of decoupled decay, no bias correction, no momentum block.
* ``composed_state_bytes(momentum, scaling, n_params, bytes_per_number)`` (compute): the bytes of
  per-element state a :class:`~course_lib.optim.ComposedOptimizer` with these two concepts keeps
  for ``n_params`` numbers of ``bytes_per_number`` bytes (step counters are plain numbers: 0 B).
* ``ftrl_weight(z, n, alpha, beta, l1, l2)`` (compute): FTRL-Proximal's closed-form weight of one
  coordinate (McMahan et al. 2013, Algorithm 1), exactly 0 when :math:`|z| \le \lambda_1`.
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import OptimizerClassExercise
from course_lib.exercises.problems import IMPLEMENT, uniform
from course_lib.optim import ComposedOptimizer, Composition

# ---------------------------------------------------------------------------------------------
# AdamWFromBlocks
# ---------------------------------------------------------------------------------------------


def _composed(**concepts):
    def make(params, **hyper):
        return ComposedOptimizer(params, **hyper, **concepts)

    return make


ADAMW_FROM_BLOCKS = OptimizerClassExercise(
    name="adamw_from_blocks",
    class_name="AdamWFromBlocks",
    reference=torch.optim.AdamW,
    reference_name="torch.optim.AdamW",
    variants={
        "the decay went into the gradient (L2), so it was divided by sqrt(v_hat) with the rest: "
        "AdamW shrinks the weights directly, w <- (1 - lr*weight_decay) w": _composed(
            momentum="ema", scaling="ema", bias_correction=True, decay="l2"
        ),
        "m and v are not bias-corrected: divide them by 1 - beta1^t and 1 - beta2^t": _composed(
            momentum="ema", scaling="ema", decay="decoupled"
        ),
        "the step divides the gradient itself, not the first moment m: AdamW has momentum "
        "(an EMA of the gradients with beta1)": _composed(
            scaling="ema", bias_correction=True, decay="decoupled"
        ),
    },
    self_check_hypers=(
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.5},
    ),
    hidden_hypers=(
        {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.2},
        {"lr": 0.1, "betas": (0.85, 0.98), "eps": 1e-6, "weight_decay": 0.05},
        {"lr": 0.02, "betas": (0.95, 0.9999), "eps": 1e-8, "weight_decay": 1.0},
    ),
    kind=IMPLEMENT,
)

# ---------------------------------------------------------------------------------------------
# composed_state_bytes
# ---------------------------------------------------------------------------------------------

MOMENTA = ("none", "heavy_ball", "nesterov", "ema", "lion", "adaptive_inertia")
SCALINGS = ("none", "adagrad", "ema", "amsgrad", "amsgrad_memory_free")


def _valid(momentum: str, scaling: str) -> bool:
    return momentum != "adaptive_inertia" or scaling == "none"


def ref_composed_state_bytes(momentum, scaling, n_params, bytes_per_number) -> int:
    """Bytes of per-element state of ComposedOptimizer(momentum=..., scaling=...)."""
    return Composition(momentum=momentum, scaling=scaling).buffers * int(n_params) * int(
        bytes_per_number
    )


def _with_buffers(momentum_buffers: dict, scaling_buffers: dict):
    def answer(momentum, scaling, n_params, bytes_per_number):
        count = momentum_buffers.get(momentum, None)
        if count is None:
            count = Composition(momentum=momentum).buffers
        extra = scaling_buffers.get(scaling, None)
        if extra is None:
            extra = Composition(scaling=scaling).buffers
        return (count + extra) * int(n_params) * int(bytes_per_number)

    return answer


def _plus_params(momentum, scaling, n_params, bytes_per_number):
    return ref_composed_state_bytes(momentum, scaling, n_params, bytes_per_number) + int(
        n_params
    ) * int(bytes_per_number)


def _numbers(momentum, scaling, n_params, bytes_per_number):
    return ref_composed_state_bytes(momentum, scaling, n_params, 1)


def _state_case(label: str, momentum: str, scaling: str, n: int, nbytes: int) -> NumberCase:
    return NumberCase(
        f"{label}momentum={momentum!r}, scaling={scaling!r}, {n:,} parameters, {nbytes} B each",
        (momentum, scaling, n, nbytes),
    )


def _state_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    combos = [("lion", "none"), ("ema", "amsgrad"), ("adaptive_inertia", "none"),
              ("nesterov", "amsgrad_memory_free"), ("heavy_ball", "adagrad")]  # fmt: skip
    cases = []
    for i, (momentum, scaling) in enumerate(combos):
        n = int(torch.randint(10, 10**7, (), generator=gen))
        nbytes = (2, 4, 8)[int(torch.randint(0, 3, (), generator=gen))]
        cases.append(_state_case(f"hidden case {i + 1}: ", momentum, scaling, n, nbytes))
    return cases


COMPOSED_STATE_BYTES = NumberExercise(
    name="composed_state_bytes",
    reference=ref_composed_state_bytes,
    variants={
        "AMSGrad's running maximum is a buffer of its own, next to the EMA v it is the maximum "
        "of (only the memory-free variant keeps the maximum in v itself)": _with_buffers(
            {}, {"amsgrad": 1}
        ),
        "adaptive inertia keeps three buffers: the momentum m, the second moment v (which sets "
        "each coordinate's beta1) and the running product of the beta1s for the bias "
        "correction": _with_buffers({"adaptive_inertia": 1}, {}),
        "Lion keeps ONE buffer: it interpolates m and g for the update, then updates the same m "
        "with beta2": _with_buffers({"lion": 2}, {}),
        "one copy of the parameters too many: the parameters are not optimizer state": (
            _plus_params
        ),
        "that is a count of numbers, not of bytes: multiply by bytes_per_number": _numbers,
    },
    self_check_cases=lambda gen: [
        _state_case("", m, s, n, b)
        for m, s, n, b in (
            ("none", "none", 1000, 4),
            ("heavy_ball", "none", 1000, 4),
            ("ema", "ema", 2410, 4),
            ("ema", "amsgrad", 100, 2),
            ("lion", "none", 50, 8),
            ("adaptive_inertia", "none", 10, 4),
            ("none", "amsgrad_memory_free", 7, 4),
        )
    ],
    hidden_cases=_state_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# ftrl_weight
# ---------------------------------------------------------------------------------------------


def ref_ftrl_weight(z, n, alpha, beta, l1, l2) -> float:
    """FTRL-Proximal's weight of one coordinate (McMahan et al. 2013, Algorithm 1)."""
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / ((beta + math.sqrt(n)) / alpha + l2)


def _ftrl_no_threshold(z, n, alpha, beta, l1, l2):
    return -z / ((beta + math.sqrt(n)) / alpha + l2)


def _ftrl_plus_sign(z, n, alpha, beta, l1, l2):
    return -ref_ftrl_weight(z, n, alpha, beta, l1, l2)


def _ftrl_n_not_rooted(z, n, alpha, beta, l1, l2):
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / ((beta + n) / alpha + l2)


def _ftrl_alpha_upside_down(z, n, alpha, beta, l1, l2):
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / (alpha * (beta + math.sqrt(n)) + l2)


def _ftrl_case(label, z, n, alpha, beta, l1, l2) -> NumberCase:
    return NumberCase(f"{label}z={z}, n={n}, alpha={alpha}, beta={beta}, l1={l1}, l2={l2}",
                      (z, n, alpha, beta, l1, l2))  # fmt: skip


def _ftrl_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(6):
        l1 = round(uniform(gen, 0.1, 3.0), 3)
        inside = i in (1, 4)  # two cases below the threshold: the answer is exactly 0
        size = uniform(gen, 0.0, 0.95) * l1 if inside else l1 + uniform(gen, 0.1, 5.0)
        z = round(size if i % 2 else -size, 4)
        n = round(uniform(gen, 0.5, 50.0), 3)
        alpha, beta = round(uniform(gen, 0.05, 1.0), 3), round(uniform(gen, 0.5, 2.0), 3)
        l2 = round(uniform(gen, 0.0, 1.0), 3)
        cases.append(_ftrl_case(f"hidden case {i + 1}: ", z, n, alpha, beta, l1, l2))
    return cases


FTRL_WEIGHT = NumberExercise(
    name="ftrl_weight",
    reference=ref_ftrl_weight,
    variants={
        "the L1 threshold is missing: the weight is 0 while |z| <= l1, and outside that l1 is "
        "taken off |z| (z - sign(z)*l1)": _ftrl_no_threshold,
        "wrong sign: w moves against z (z sums the gradients, and the weight goes downhill)": (
            _ftrl_plus_sign
        ),
        "n is the sum of squared gradients: the per-coordinate rate uses its square root, "
        "alpha / (beta + sqrt(n))": _ftrl_n_not_rooted,
        "alpha is the numerator of the learning rate alpha / (beta + sqrt(n)), so the "
        "denominator is (beta + sqrt(n)) / alpha + l2": _ftrl_alpha_upside_down,
    },
    self_check_cases=lambda gen: [
        _ftrl_case("", *args)
        for args in (
            (3.0, 4.0, 0.1, 1.0, 1.0, 0.0),
            (-3.0, 4.0, 0.1, 1.0, 1.0, 0.0),
            (0.5, 4.0, 0.1, 1.0, 1.0, 0.0),
            (-2.5, 9.0, 0.5, 1.0, 0.5, 1.0),
            (1.0, 16.0, 0.2, 2.0, 1.0, 0.3),
        )
    ],
    hidden_cases=_ftrl_hidden_cases,
)

