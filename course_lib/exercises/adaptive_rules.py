"""Update-rule exercises of the adaptive methods (chapters 03-04), in PyTorch's convention.

* AdaGrad:   ``G ← G + g²``;   ``p ← p − lr·g / (√G + ε)``
* RMSprop:   ``v ← α·v + (1−α)·g²``;  ``p ← p − lr·g / (√v + ε)``      (ε outside the root)
* Adam:      ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
  ``m̂ = m/(1−β1ᵗ)``, ``v̂ = v/(1−β2ᵗ)``; ``p ← p − lr·m̂/(√v̂ + ε)``
* AdamW:     ``p ← p·(1 − lr·λ)`` (decoupled decay), then the Adam step with the raw gradient.

``t`` is the 1-based index of the step being taken. Each exercise is one block: the float64
reference ``ref_*``, its classic mistakes (wrong implementations with the reference's signature)
and the :class:`~.update_rule.Rule` that ties them to their diagnoses. List a new rule in
:data:`course_lib.exercises.RULES`.
"""

from __future__ import annotations

from functools import partial

import torch

from course_lib.exercises.mistakes import (
    ABSOLUTE_VALUE_IN_V,
    EPS_INSIDE_ROOT,
    SQUARE_MISSING_IN_V,
    STEP_COUNT_MINUS_ONE,
    STEP_COUNT_PLUS_ONE,
    WRONG_SIGN,
)
from course_lib.exercises.problems import uniform
from course_lib.exercises.update_rule import Rule


def _log_uniform_eps(gen):
    return 10 ** uniform(gen, -3, -1)


# ---------------------------------------------------------------------------------------------
# adagrad_step
# ---------------------------------------------------------------------------------------------


def ref_adagrad_step(p, g, G, lr, eps):
    """AdaGrad: ``G ← G + g²``, ``p ← p − lr·g/(√G + ε)``."""
    G_new = G + g * g
    return p - lr * g / (G_new.sqrt() + eps), G_new


def _adagrad_step_eps_inside_root(p, g, G, lr, eps):
    G_new = G + g * g
    return p - lr * g / (G_new + eps).sqrt(), G_new


def _adagrad_step_old_accumulator(p, g, G, lr, eps):
    return p - lr * g / (G.sqrt() + eps), G + g * g


def _adagrad_step_without_root(p, g, G, lr, eps):
    G_new = G + g * g
    return p - lr * g / (G_new + eps), G_new


def _adagrad_step_wrong_sign(p, g, G, lr, eps):
    G_new = G + g * g
    return p + lr * g / (G_new.sqrt() + eps), G_new


def _adagrad_step_with_ema(beta):
    """AdaGrad written as RMSprop: an exponential moving average with factor ``beta``."""

    def adagrad_step(p, g, G, lr, eps):
        G_new = beta * G + (1 - beta) * g * g
        return p - lr * g / (G_new.sqrt() + eps), G_new

    return adagrad_step


# The EMA factors a student borrows from RMSprop (Hinton's 0.9, PyTorch's 0.99) or from Adam.
_ADAGRAD_EMA_FACTORS = (0.9, 0.99, 0.999)


def _adagrad_ema_mistake(beta: float) -> str:
    return (
        f"AdaGrad written with an EMA (G ← {beta:g}·G + {1 - beta:.3g}·g², as in RMSprop): "
        "AdaGrad *adds* every squared gradient, G ← G + g², so its steps keep shrinking"
    )


ADAGRAD_STEP = Rule(
    name="adagrad_step",
    signature="adagrad_step(p, g, G, lr, eps) -> (p_new, G_new)",
    tensor_args=("p", "g", "G"),
    outputs=("p_new", "G_new"),
    reference=ref_adagrad_step,
    variants={
        EPS_INSIDE_ROOT: _adagrad_step_eps_inside_root,
        "you divided by the *old* accumulator; add g² to G first, then divide by √G_new + ε": (
            _adagrad_step_old_accumulator
        ),
        "square root missing: divide by √G + ε, not by G + ε": _adagrad_step_without_root,
        WRONG_SIGN: _adagrad_step_wrong_sign,
        **{_adagrad_ema_mistake(b): _adagrad_step_with_ema(b) for b in _ADAGRAD_EMA_FACTORS},
    },
    hyper={"lr": 0.1, "eps": 1e-2},
    random_hyper=lambda gen: {"lr": uniform(gen, 0.01, 0.5), "eps": _log_uniform_eps(gen)},
    state_args=("G",),
    nonnegative_args=("G",),
)

# ---------------------------------------------------------------------------------------------
# rmsprop_step
# ---------------------------------------------------------------------------------------------


def ref_rmsprop_step(p, g, v, lr, alpha, eps):
    """RMSprop (PyTorch, not centered): ``v ← αv + (1−α)g²``, ``p ← p − lr·g/(√v + ε)``."""
    v_new = alpha * v + (1 - alpha) * g * g
    return p - lr * g / (v_new.sqrt() + eps), v_new


def _rmsprop_step_eps_inside_root(p, g, v, lr, alpha, eps):
    v_new = alpha * v + (1 - alpha) * g * g
    return p - lr * g / (v_new + eps).sqrt(), v_new


def _rmsprop_step_swapped_weights(p, g, v, lr, alpha, eps):
    v_new = (1 - alpha) * v + alpha * g * g
    return p - lr * g / (v_new.sqrt() + eps), v_new


def _rmsprop_step_without_one_minus_alpha(p, g, v, lr, alpha, eps):
    v_new = alpha * v + g * g
    return p - lr * g / (v_new.sqrt() + eps), v_new


def _rmsprop_step_wrong_sign(p, g, v, lr, alpha, eps):
    v_new = alpha * v + (1 - alpha) * g * g
    return p + lr * g / (v_new.sqrt() + eps), v_new


def _rmsprop_step_v_from(moment):
    """RMSprop whose second moment averages ``moment(g)`` instead of g² (g itself, or |g|)."""

    def rmsprop_step(p, g, v, lr, alpha, eps):
        v_new = alpha * v + (1 - alpha) * moment(g)
        return p - lr * g / (v_new.sqrt() + eps), v_new

    return rmsprop_step


RMSPROP_STEP = Rule(
    name="rmsprop_step",
    signature="rmsprop_step(p, g, v, lr, alpha, eps) -> (p_new, v_new)",
    tensor_args=("p", "g", "v"),
    outputs=("p_new", "v_new"),
    reference=ref_rmsprop_step,
    variants={
        EPS_INSIDE_ROOT: _rmsprop_step_eps_inside_root,
        "α and (1−α) swapped: v ← αv + (1−α)g² keeps most of the old average": (
            _rmsprop_step_swapped_weights
        ),
        "the (1−α) factor on g² is missing: v ← αv + (1−α)g²": (
            _rmsprop_step_without_one_minus_alpha
        ),
        WRONG_SIGN: _rmsprop_step_wrong_sign,
        SQUARE_MISSING_IN_V: _rmsprop_step_v_from(lambda g: g),
        ABSOLUTE_VALUE_IN_V: _rmsprop_step_v_from(lambda g: g.abs()),
    },
    hyper={"lr": 0.01, "alpha": 0.9, "eps": 1e-2},
    random_hyper=lambda gen: {
        "lr": uniform(gen, 0.001, 0.1),
        "alpha": uniform(gen, 0.8, 0.999),
        "eps": _log_uniform_eps(gen),
    },
    state_args=("v",),
    nonnegative_args=("v",),
)

# ---------------------------------------------------------------------------------------------
# adam_step
# ---------------------------------------------------------------------------------------------


def ref_adam_step(p, g, m, v, t, lr, beta1, beta2, eps):
    """Adam with bias correction; ``t`` is the 1-based index of this step."""
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g * g
    m_hat = m_new / (1 - beta1**t)
    v_hat = v_new / (1 - beta2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps), m_new, v_new


def _adam_step_with(
    p, g, m, v, t, lr, beta1, beta2, eps, *, correct_m=True, correct_v=True, eps_inside_root=False,
    second_moment_of=torch.square, store_corrected=False,
):  # fmt: skip
    """Adam with one mistake switched on (the defaults give the reference): a bias correction
    left out, ε inside the root, v built from another function of g than g², or the corrected
    m̂, v̂ returned as the new state."""
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * second_moment_of(g)
    m_hat = m_new / (1 - beta1**t) if correct_m else m_new
    v_hat = v_new / (1 - beta2**t) if correct_v else v_new
    denominator = (v_hat + eps).sqrt() if eps_inside_root else v_hat.sqrt() + eps
    p_new = p - lr * m_hat / denominator
    return (p_new, m_hat, v_hat) if store_corrected else (p_new, m_new, v_new)


def _adam_step_wrong_sign(p, g, m, v, t, lr, beta1, beta2, eps):
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g * g
    m_hat = m_new / (1 - beta1**t)
    v_hat = v_new / (1 - beta2**t)
    return p + lr * m_hat / (v_hat.sqrt() + eps), m_new, v_new


def _adam_step_count_plus_one(p, g, m, v, t, lr, beta1, beta2, eps):
    return ref_adam_step(p, g, m, v, t + 1, lr, beta1, beta2, eps)


def _adam_step_count_minus_one(p, g, m, v, t, lr, beta1, beta2, eps):
    return ref_adam_step(p, g, m, v, t - 1, lr, beta1, beta2, eps)


def _adam_step_swapped_betas(p, g, m, v, t, lr, beta1, beta2, eps):
    return ref_adam_step(p, g, m, v, t, lr, beta2, beta1, eps)


def _adam_step_swapped_ema_weights(p, g, m, v, t, lr, beta1, beta2, eps):
    m_new = (1 - beta1) * m + beta1 * g
    v_new = (1 - beta2) * v + beta2 * g * g
    m_hat = m_new / (1 - beta1**t)
    v_hat = v_new / (1 - beta2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps), m_new, v_new


ADAM_STEP = Rule(
    name="adam_step",
    signature="adam_step(p, g, m, v, t, lr, beta1, beta2, eps) -> (p_new, m_new, v_new)",
    tensor_args=("p", "g", "m", "v"),
    outputs=("p_new", "m_new", "v_new"),
    reference=ref_adam_step,
    variants={
        "missing bias correction: divide m by (1−β1ᵗ) and v by (1−β2ᵗ)": partial(
            _adam_step_with, correct_m=False, correct_v=False
        ),
        "bias correction applied to m only (v̂ = v/(1−β2ᵗ) is missing)": partial(
            _adam_step_with, correct_v=False
        ),
        "bias correction applied to v only (m̂ = m/(1−β1ᵗ) is missing)": partial(
            _adam_step_with, correct_m=False
        ),
        EPS_INSIDE_ROOT: partial(_adam_step_with, eps_inside_root=True),
        WRONG_SIGN: _adam_step_wrong_sign,
        STEP_COUNT_PLUS_ONE: _adam_step_count_plus_one,
        STEP_COUNT_MINUS_ONE: _adam_step_count_minus_one,
        "β1 and β2 swapped": _adam_step_swapped_betas,
        "EMA weights swapped: m ← (1−β1)m + β1·g instead of β1·m + (1−β1)g": (
            _adam_step_swapped_ema_weights
        ),
        SQUARE_MISSING_IN_V: partial(_adam_step_with, second_moment_of=lambda g: g),
        ABSOLUTE_VALUE_IN_V: partial(_adam_step_with, second_moment_of=torch.abs),
        "you returned the bias-corrected m̂ and v̂ as the new state: keep the raw averages m and "
        "v (the state) and recompute m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ) from them at every step": (
            partial(_adam_step_with, store_corrected=True)
        ),
    },
    hyper={"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-3},
    random_hyper=lambda gen: {
        "lr": uniform(gen, 0.001, 0.1),
        "beta1": uniform(gen, 0.8, 0.95),
        "beta2": uniform(gen, 0.9, 0.999),
        "eps": _log_uniform_eps(gen),
    },
    state_args=("m", "v"),
    nonnegative_args=("v",),
    step_arg="t",
)

# ---------------------------------------------------------------------------------------------
# adamw_step
# ---------------------------------------------------------------------------------------------


def ref_adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """AdamW: decoupled decay ``p ← p(1 − lr·λ)`` first, then Adam on the raw gradient."""
    return ref_adam_step(p * (1 - lr * weight_decay), g, m, v, t, lr, beta1, beta2, eps)


def _decay_then(adam_step):
    """An ``adamw_step`` that decays ``p`` correctly, then takes ``adam_step`` (an Adam mistake)."""

    def adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
        return adam_step(p * (1 - lr * weight_decay), g, m, v, t, lr, beta1, beta2, eps)

    return adamw_step


def _adamw_step_l2_penalty(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    return ref_adam_step(p, g + weight_decay * p, m, v, t, lr, beta1, beta2, eps)


def _adamw_step_decay_without_lr(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    return ref_adam_step(p * (1 - weight_decay), g, m, v, t, lr, beta1, beta2, eps)


def _adamw_step_without_decay(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    return ref_adam_step(p, g, m, v, t, lr, beta1, beta2, eps)


ADAMW_STEP = Rule(
    name="adamw_step",
    signature=(
        "adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (p_new, m_new, v_new)"
    ),
    tensor_args=("p", "g", "m", "v"),
    outputs=("p_new", "m_new", "v_new"),
    reference=ref_adamw_step,
    variants={
        "L2 regularisation instead of decoupled weight decay: you added λ·p to the gradient "
        "(that is torch.optim.Adam(weight_decay=…)); AdamW shrinks p directly: p ← p(1 − lr·λ)": (
            _adamw_step_l2_penalty
        ),
        "weight decay not multiplied by the learning rate: use p ← p(1 − lr·λ), not p(1 − λ)": (
            _adamw_step_decay_without_lr
        ),
        "weight decay forgotten: p is never shrunk by (1 − lr·λ)": _adamw_step_without_decay,
        # every Adam mistake can be made after a correct decay
        **{why: _decay_then(adam_step) for why, adam_step in ADAM_STEP.variants.items()},
    },
    hyper={"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-3, "weight_decay": 0.1},
    random_hyper=lambda gen: {
        "lr": uniform(gen, 0.001, 0.1),
        "beta1": uniform(gen, 0.8, 0.95),
        "beta2": uniform(gen, 0.9, 0.999),
        "eps": _log_uniform_eps(gen),
        "weight_decay": uniform(gen, 0.05, 0.5),
    },
    state_args=("m", "v"),
    nonnegative_args=("v",),
    step_arg="t",
)
