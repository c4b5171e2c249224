r"""Chapter 06's exercises: AMSGrad as PyTorch has it, the first negative FTRL increment, its memory.

* ``amsgrad`` (implement): a class ``AMSGrad(params, lr, betas, eps)`` whose steps are those of
  ``torch.optim.Adam(..., amsgrad=True)``. Its classic mistakes (diagnosed): the other
  conventions — the max of the bias-corrected :math:`\hat v` (optax), the memory-free max — no
  max at all (Adam), and the paper's box without bias correction.
* ``first_negative_increment(grads, beta2)`` (derive/compute): the first step :math:`t` at which
  the FTRL increment :math:`\sigma_t = 1/\eta_t - 1/\eta_{t-1}` of **Adam** (bias-corrected
  :math:`\hat v_t = v_t/(1-\beta_2^t)`, :math:`\eta_t = \alpha/\sqrt{\hat v_t}`, constant
  :math:`\alpha`, :math:`\epsilon = 0`) is negative on the 1-D gradient sequence ``grads``, or 0
  if it never is. The lesson works out RMSprop's (no correction, :math:`\sigma_t < 0` iff
  :math:`g_t^2 < v_{t-1}`); the student derives what the correction changes. (It changes the
  threshold, not the form: :math:`\hat v_t` is the weighted mean of :math:`\hat v_{t-1}` and
  :math:`g_t^2` with weights :math:`(\beta_2-\beta_2^t)/(1-\beta_2^t)` and
  :math:`(1-\beta_2)/(1-\beta_2^t)`, so :math:`\sigma_t < 0` iff :math:`g_t^2 < \hat v_{t-1}`.)
* ``amsgrad_state_bytes(n_in, n_hidden, n_out, convention, bytes_per_number)`` (compute): bytes of
  optimizer state ``course_lib.optim.Adam(amsgrad=True, amsgrad_convention=convention)`` keeps
  for the MLP ``Linear(n_in, n_hidden) → ReLU → Linear(n_hidden, n_out)``; ``convention`` is
  ``"raw"``, ``"corrected"``, ``"memory_free"`` or ``"none"`` (plain Adam).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from course_lib.exercises.adam_exercises import _mlp_parameters
from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import OptimizerClassExercise
from course_lib.exercises.problems import uniform
from course_lib.optim import Adam

DTYPE = torch.float64

# ---------------------------------------------------------------------------------------------
# amsgrad (implement)
# ---------------------------------------------------------------------------------------------


class AMSGradWithoutCorrection(torch.optim.Optimizer):
    r"""The paper's Algorithm 2 with a constant step: :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`,
    :math:`x \leftarrow x - \alpha\, m_t/(\sqrt{\hat v_t} + \epsilon)`, no bias correction (the
    mistake of copying the box when PyTorch's semantics are asked for)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(m=torch.zeros_like(p), v=torch.zeros_like(p),
                                 v_max=torch.zeros_like(p))
                state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                torch.maximum(state["v_max"], state["v"], out=state["v_max"])
                p.addcdiv_(state["m"], state["v_max"].sqrt().add_(group["eps"]),
                           value=-group["lr"])


def _adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **convention):
    return Adam(params, lr=lr, betas=betas, eps=eps, **convention)


AMSGRAD_CLASS = OptimizerClassExercise(
    name="amsgrad",
    class_name="AMSGrad",
    reference=partial(torch.optim.Adam, amsgrad=True),
    reference_name="torch.optim.Adam(amsgrad=True)",
    variants={
        "you take the maximum of the bias-corrected v̂ (optax's convention); PyTorch keeps the "
        "maximum of the raw v and divides it by the current 1 − β2ᵗ": partial(
            _adam, amsgrad=True, amsgrad_convention="corrected"
        ),
        "your maximum feeds back into the moving average (the memory-free heuristic); keep v a "
        "plain EMA and its running maximum in a separate buffer": partial(
            _adam, amsgrad=True, amsgrad_convention="memory_free"
        ),
        "there is no running maximum: that is Adam's step": partial(_adam),
        "no bias correction: that is the paper's Algorithm 2; PyTorch divides m by 1 − β1ᵗ and "
        "the maximum of v by 1 − β2ᵗ": AMSGradWithoutCorrection,
    },
    self_check_hypers=(
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8},
        {"lr": 0.05, "betas": (0.8, 0.9), "eps": 1e-6},
    ),
    hidden_hypers=(
        {"lr": 0.05, "betas": (0.9, 0.99), "eps": 1e-8},
        {"lr": 0.1, "betas": (0.5, 0.9), "eps": 1e-6},
        {"lr": 0.02, "betas": (0.9, 0.999), "eps": 1e-8},
    ),
)

# ---------------------------------------------------------------------------------------------
# first_negative_increment (derive/compute)
# ---------------------------------------------------------------------------------------------


def _grads(grads) -> np.ndarray:
    return np.asarray(torch.as_tensor(grads, dtype=DTYPE).reshape(-1).tolist(), dtype=float)


def _ema_sq(g: np.ndarray, beta2: float) -> np.ndarray:
    v, current = np.empty_like(g), 0.0
    for i, g_t in enumerate(g):
        current = beta2 * current + (1 - beta2) * g_t * g_t
        v[i] = current
    return v


# A fall smaller than this (relative) is rounding: on a constant gradient v̂_t is g² up to 1e-16.
FALL_RTOL = 1e-9


def _falls(x: np.ndarray) -> np.ndarray:
    """Where x_t < x_{t−1} by more than rounding (x_0 = 0)."""
    before = np.r_[0.0, x[:-1]]
    return x < before * (1 - FALL_RTOL)


def _first(mask: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    return int(hits[0]) + 1 if hits.size else 0


def ref_first_negative_increment(grads, beta2: float) -> int:
    """First t ≥ 1 with Adam's v̂_t < v̂_{t−1} (bias-corrected, σ_t < 0), or 0."""
    g = _grads(grads)
    v_hat = _ema_sq(g, beta2) / (1 - beta2 ** np.arange(1, g.size + 1))
    return _first(_falls(v_hat))


def _rmsprop_rule(grads, beta2: float) -> int:
    g = _grads(grads)
    return _first(_falls(_ema_sq(g, beta2)))


def _smaller_than_previous(grads, beta2: float) -> int:
    g = _grads(grads)
    return _first(np.abs(g) < np.r_[0.0, np.abs(g[:-1])])


def _zero_based(grads, beta2: float) -> int:
    return ref_first_negative_increment(grads, beta2) - 1


def _variants_differ(grads, beta2: float) -> bool:
    want = ref_first_negative_increment(grads, beta2)
    others = (_rmsprop_rule(grads, beta2), _smaller_than_previous(grads, beta2))
    return want > 1 and all(o != want for o in others)


def _sequence_case(label: str, grads, beta2: float) -> NumberCase:
    return NumberCase(label, (torch.tensor(grads, dtype=DTYPE), beta2))


def _rise_then_fall(gen: torch.Generator) -> tuple[list[float], float]:
    """Gradients that grow for a few steps, then shrink slowly with noise (rounded to 4 digits)."""
    rise = int(torch.randint(2, 7, (), generator=gen))
    n = rise + int(torch.randint(6, 16, (), generator=gen))
    beta2 = round(uniform(gen, 0.8, 0.99), 3)
    size, grads = 10 ** uniform(gen, -1, 1), []
    for i in range(n):
        size *= uniform(gen, 1.05, 1.6) if i < rise else uniform(gen, 0.8, 1.02)
        grads.append(round(size, 4))
    return grads, beta2


def _increment_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    """Five random rise-then-fall sequences on which the answer and the two classic shortcuts
    all differ, plus a growing sequence whose increments never go negative (answer 0)."""
    cases = []
    while len(cases) < 5:
        grads, beta2 = _rise_then_fall(gen)
        if _variants_differ(grads, beta2):
            label = f"hidden sequence {len(cases) + 1} ({len(grads)} gradients, beta2={beta2})"
            cases.append(_sequence_case(label, grads, beta2))
    growing = [round(0.5 * 1.2**i, 4) for i in range(10)]
    cases.append(_sequence_case("hidden growing sequence (10 gradients, beta2=0.9)", growing, 0.9))
    return cases


FIRST_NEGATIVE_INCREMENT = NumberExercise(
    name="first_negative_increment",
    reference=ref_first_negative_increment,
    variants={
        "off by one: steps count from t = 1 (you returned a 0-based index)": _zero_based,
        "that is RMSprop's answer (v without bias correction); Adam divides by "
        "v̂_t = v_t / (1 − β2ᵗ), and the correction changes when 1/η_t falls": _rmsprop_rule,
        "a gradient smaller than the previous one is not enough: v̂ falls only when g_t² is "
        "below the average it is mixed into": _smaller_than_previous,
    },
    self_check_cases=lambda gen: [
        _sequence_case(label, grads, beta2)
        for label, grads, beta2 in (
            ("grads = (1, 1, 1, 1), beta2 = 0.9 (constant)", [1.0, 1.0, 1.0, 1.0], 0.9),
            ("grads = (2, 1, 1, 1, 1, 1), beta2 = 0.9", [2.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.9),
            ("grads = (7.48, 11.65, 11.47, 9.92, 9.16, 8.86, 8.57, 6.98, 5.67, 4.74), beta2 = 0.85",
             [7.48, 11.65, 11.47, 9.92, 9.16, 8.86, 8.57, 6.98, 5.67, 4.74], 0.85),
            ("grads = (5.26, 7.74, 10.6, 9.69, 9.2, 9.04, 8.41, 7.28, 6.06), beta2 = 0.885",
             [5.26, 7.74, 10.6, 9.69, 9.2, 9.04, 8.41, 7.28, 6.06], 0.885),
        )
    ],
    hidden_cases=_increment_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# amsgrad_state_bytes (compute)
# ---------------------------------------------------------------------------------------------

AMSGRAD_BUFFERS = {"none": 2, "raw": 3, "corrected": 3, "memory_free": 2}  # m, v (+ the max)


def ref_amsgrad_state_bytes(n_in, n_hidden, n_out, convention: str, bytes_per_number) -> int:
    """Bytes of state of Adam/AMSGrad (``convention``) for the MLP n_in → n_hidden → n_out."""
    if convention not in AMSGRAD_BUFFERS:
        raise ValueError(f"unknown convention {convention!r}: one of {sorted(AMSGRAD_BUFFERS)}")
    n = _mlp_parameters(int(n_in), int(n_hidden), int(n_out))
    return AMSGRAD_BUFFERS[convention] * n * int(bytes_per_number)


def _three_buffers_always(n_in, n_hidden, n_out, convention, bytes_per_number):
    return 3 * _mlp_parameters(int(n_in), int(n_hidden), int(n_out)) * int(bytes_per_number)


def _with_parameters(n_in, n_hidden, n_out, convention, bytes_per_number):
    n = _mlp_parameters(int(n_in), int(n_hidden), int(n_out))
    return (AMSGRAD_BUFFERS[convention] + 1) * n * int(bytes_per_number)


def _without_biases(n_in, n_hidden, n_out, convention, bytes_per_number):
    n = _mlp_parameters(int(n_in), int(n_hidden), int(n_out), biases=False)
    return AMSGRAD_BUFFERS[convention] * n * int(bytes_per_number)


def _state_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i, convention in enumerate(("raw", "memory_free", "corrected", "none", "memory_free")):
        n_in = int(torch.randint(2, 800, (), generator=gen))
        n_hidden = int(torch.randint(2, 2000, (), generator=gen))
        n_out = int(torch.randint(1, 50, (), generator=gen))
        nbytes = (2, 4, 8)[int(torch.randint(0, 3, (), generator=gen))]
        cases.append(NumberCase(
            f"hidden case {i + 1}: {n_in} → {n_hidden} → {n_out}, {convention}, {nbytes} bytes",
            (n_in, n_hidden, n_out, convention, nbytes),
        ))
    return cases


AMSGRAD_STATE_BYTES = NumberExercise(
    name="amsgrad_state_bytes",
    reference=ref_amsgrad_state_bytes,
    variants={
        "the memory-free heuristic keeps its maximum in v itself: no third buffer": (
            _three_buffers_always
        ),
        "the parameters themselves are not optimizer state; count only the buffers the optimizer "
        "keeps": _with_parameters,
        "the biases are missing: the optimizer keeps state for every bias too": _without_biases,
    },
    self_check_cases=lambda gen: [
        NumberCase(f"{a} → {b} → {c}, {conv}, {nb} bytes per number", (a, b, c, conv, nb))
        for a, b, c, conv, nb in (
            (3, 4, 2, "raw", 4),
            (3, 4, 2, "memory_free", 4),
            (10, 20, 5, "corrected", 2),
            (64, 32, 10, "none", 8),
        )
    ],
    hidden_cases=_state_hidden_cases,
)
