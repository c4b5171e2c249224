r"""Chapter 04's exercises beyond ``adam_step``: two numbers to work out and a bug hunt.

* ``uncorrected_peak_step(beta1, beta2)`` (derive/compute): without bias correction, on a
  constant gradient, Adam's step is :math:`\eta\,(1-\beta_1^t)/\sqrt{1-\beta_2^t}`; the answer is
  the step :math:`t \ge 1` at which it is largest (for :math:`\beta_2 > \beta_1` it tends to
  :math:`\eta` from above, so the peak is at a finite :math:`t`).
* ``state_bytes(n_in, n_hidden, n_out, optimizer, bytes_per_number)`` (compute): the bytes of
  optimizer state that ``optimizer`` keeps for the MLP ``Linear(n_in, n_hidden) → ReLU →
  Linear(n_hidden, n_out)`` (weights and biases) whose numbers take ``bytes_per_number`` bytes
  each: tensors the size of the parameters only, as :func:`course_lib.optim.state_bytes`
  measures them (step counters are plain numbers). Optimizers: ``"SGD"`` (no momentum),
  ``"SGD+momentum"``, ``"Adagrad"``, ``"RMSprop"`` (no momentum, not centered), ``"Adam"``,
  ``"AdamW"``, ``"Adamax"``.
* ``adam_bug_hunt`` (find the bug): the notebook hands out ``BuggyAdam``; ``FixedAdam`` must
  match ``torch.optim.Adam``. A find-the-bug exercise has no diagnoses (the self-check says
  *that* the class is still wrong and on which input, never what the bug is), so it has no
  variants.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import OptimizerClassExercise
from course_lib.exercises.problems import uniform

# ---------------------------------------------------------------------------------------------
# uncorrected_peak_step
# ---------------------------------------------------------------------------------------------


def _uncorrected_factor(beta1: float, beta2: float, horizon: int) -> np.ndarray:
    t = np.arange(1, horizon + 1, dtype=float)
    return (1 - beta1**t) / np.sqrt(1 - beta2**t)


def _horizon(beta2: float) -> int:
    """Far enough that :math:`\\beta_2^t < 10^{-17}`: the factor has settled at 1 there."""
    return max(100, math.ceil(40 / (1 - beta2)))


def ref_uncorrected_peak_step(beta1: float, beta2: float) -> int:
    """The step t ≥ 1 at which (1 − β1ᵗ)/√(1 − β2ᵗ) is largest (β2 > β1)."""
    return int(np.argmax(_uncorrected_factor(beta1, beta2, _horizon(beta2)))) + 1


def _peak_within(beta1: float, beta2: float, last: int) -> int:
    return int(np.argmax(_uncorrected_factor(beta1, beta2, last))) + 1


def _peak_value(beta1: float, beta2: float) -> float:
    return float(np.max(_uncorrected_factor(beta1, beta2, _horizon(beta2))))


def _clear_peak(beta1: float, beta2: float) -> bool:
    """The peak is unique by a margin float64 resolves (no near-tie with a neighbour)."""
    factor = _uncorrected_factor(beta1, beta2, _horizon(beta2))
    k = int(np.argmax(factor))
    neighbours = factor[max(k - 1, 0) : k + 2]
    runner_up = np.sort(neighbours)[-2] if neighbours.size > 1 else -np.inf
    return k > 0 and factor[k] - runner_up > 1e-10 * factor[k]


def _peak_case(beta1: float, beta2: float) -> NumberCase:
    return NumberCase(f"hidden case beta1={beta1}, beta2={beta2}", (beta1, beta2))


def _peak_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    """Four cases with β1 in [0.5, 0.97], β2 in [0.99, 0.9999], and one whose peak is beyond
    step 100 (β1 ≈ 0.99); the betas are rounded so that the label is the exact input."""
    cases = []
    while len(cases) < 5:
        if len(cases) < 4:
            beta1, beta2 = (
                round(uniform(gen, 0.5, 0.97), 4),
                round(1 - 10 ** uniform(gen, -4, -2), 6),
            )
        else:
            beta1, beta2 = (
                round(uniform(gen, 0.988, 0.995), 4),
                round(1 - 10 ** uniform(gen, -4, -3.2), 6),
            )
        late = ref_uncorrected_peak_step(beta1, beta2) > 100 if len(cases) == 4 else True
        if beta2 > beta1 and late and _clear_peak(beta1, beta2):
            cases.append(_peak_case(beta1, beta2))
    return cases


UNCORRECTED_PEAK_STEP = NumberExercise(
    name="uncorrected_peak_step",
    reference=ref_uncorrected_peak_step,
    variants={
        "off by one: the first step is t = 1 (you returned a 0-based index)": (
            lambda beta1, beta2: ref_uncorrected_peak_step(beta1, beta2) - 1
        ),
        "t = 1 is where (1−β1ᵗ)/(1−β2ᵗ) peaks, the ratio without a square root: the "
        "denominator of the step is √v, so the factor is (1−β1ᵗ)/√(1−β2ᵗ)": (
            lambda beta1, beta2: 1
        ),
        "the peak lies beyond the steps you searched (you stopped at t = 100): search until "
        "β2ᵗ is negligible, a few times 1/(1−β2) steps": (
            lambda beta1, beta2: _peak_within(beta1, beta2, 100)
        ),
        "you returned the size of the largest step (in units of lr), not the step t at which "
        "it happens": _peak_value,
    },
    self_check_cases=lambda gen: [
        NumberCase(f"beta1={b1}, beta2={b2}", (b1, b2))
        for b1, b2 in ((0.9, 0.999), (0.5, 0.999), (0.8, 0.99), (0.99, 0.999), (0.9, 0.9999))
    ],
    hidden_cases=_peak_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# state_bytes
# ---------------------------------------------------------------------------------------------

# Tensors the size of the parameters each optimizer keeps per parameter (its defaults otherwise).
STATE_BUFFERS = {
    "SGD": 0,
    "SGD+momentum": 1,  # the velocity
    "Adagrad": 1,  # the sum of squares
    "RMSprop": 1,  # the average of squares
    "Adam": 2,  # m and v
    "AdamW": 2,  # m and v: the decay needs no state
    "Adamax": 2,  # m and the infinity norm u
}


def _mlp_parameters(n_in: int, n_hidden: int, n_out: int, biases: bool = True) -> int:
    weights = n_in * n_hidden + n_hidden * n_out
    return weights + (n_hidden + n_out if biases else 0)


def ref_state_bytes(n_in: int, n_hidden: int, n_out: int, optimizer: str, bytes_per_number: int):
    """Bytes of per-element optimizer state for the MLP n_in → n_hidden → n_out (with biases)."""
    if optimizer not in STATE_BUFFERS:
        raise ValueError(f"unknown optimizer {optimizer!r}: one of {sorted(STATE_BUFFERS)}")
    n = _mlp_parameters(int(n_in), int(n_hidden), int(n_out))
    return STATE_BUFFERS[optimizer] * n * int(bytes_per_number)


def _state_without_biases(n_in, n_hidden, n_out, optimizer, bytes_per_number):
    n = _mlp_parameters(int(n_in), int(n_hidden), int(n_out), biases=False)
    return STATE_BUFFERS[optimizer] * n * int(bytes_per_number)


def _state_plus_one_copy(n_in, n_hidden, n_out, optimizer, bytes_per_number):
    n = _mlp_parameters(int(n_in), int(n_hidden), int(n_out))
    return (STATE_BUFFERS[optimizer] + 1) * n * int(bytes_per_number)


def _state_numbers(n_in, n_hidden, n_out, optimizer, bytes_per_number):
    return STATE_BUFFERS[optimizer] * _mlp_parameters(int(n_in), int(n_hidden), int(n_out))


def _state_one_layer(n_in, n_hidden, n_out, optimizer, bytes_per_number):
    n = int(n_in) * int(n_hidden) + int(n_hidden)
    return STATE_BUFFERS[optimizer] * n * int(bytes_per_number)


def _state_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i, optimizer in enumerate(("Adam", "SGD+momentum", "Adamax", "RMSprop", "AdamW")):
        n_in = int(torch.randint(2, 800, (), generator=gen))
        n_hidden = int(torch.randint(2, 2000, (), generator=gen))
        n_out = int(torch.randint(1, 50, (), generator=gen))
        nbytes = (2, 4, 8)[int(torch.randint(0, 3, (), generator=gen))]
        cases.append(
            NumberCase(
                f"hidden case {i + 1}: {n_in} → {n_hidden} → {n_out}, {optimizer}, "
                f"{nbytes} bytes per number",
                (n_in, n_hidden, n_out, optimizer, nbytes),
            )
        )
    return cases


STATE_BYTES = NumberExercise(
    name="state_bytes",
    reference=ref_state_bytes,
    variants={
        "the biases are missing: each Linear layer also has one bias per output unit, and the "
        "optimizer keeps state for them too": _state_without_biases,
        "one copy of the parameters too many: the weights themselves (and their gradients) are "
        "not optimizer state; count only the tensors the optimizer keeps": _state_plus_one_copy,
        "that is a count of numbers, not of bytes: multiply by bytes_per_number": _state_numbers,
        "only the first layer is counted: the output layer has n_hidden·n_out weights and n_out "
        "biases": _state_one_layer,
    },
    self_check_cases=lambda gen: [
        NumberCase(
            f"{n_in} → {n_hidden} → {n_out}, {optimizer}, {nbytes} bytes per number",
            (n_in, n_hidden, n_out, optimizer, nbytes),
        )
        for n_in, n_hidden, n_out, optimizer, nbytes in (
            (3, 4, 2, "SGD", 4),
            (3, 4, 2, "SGD+momentum", 4),
            (10, 20, 5, "Adam", 4),
            (64, 32, 10, "Adagrad", 2),
            (7, 9, 3, "Adamax", 8),
        )
    ],
    hidden_cases=_state_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# adam_bug_hunt
# ---------------------------------------------------------------------------------------------

ADAM_BUG_HUNT = OptimizerClassExercise(
    name="adam_bug_hunt",
    class_name="FixedAdam",
    reference=torch.optim.Adam,
    reference_name="torch.optim.Adam",
    variants={},  # find the bug: the self-check never names it
    self_check_hypers=(
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3},
    ),
    hidden_hypers=(
        {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8},
        {"lr": 0.1, "betas": (0.85, 0.98), "eps": 1e-6},
        {"lr": 0.02, "betas": (0.95, 0.9999), "eps": 1e-8},
    ),
)
