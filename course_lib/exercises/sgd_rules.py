"""Update-rule exercises of SGD and its momentum forms (chapters 01-02), in PyTorch's convention.

* SGD:       ``p ← p − lr·g``
* momentum:  ``v ← μ·v + g``;  ``p ← p − lr·v``                       (dampening 0)
* Nesterov:  ``v ← μ·v + g``;  ``p ← p − lr·(g + μ·v)``   (PyTorch's rewrite: no look-ahead call)

Each exercise is one block: the float64 reference ``ref_*``, its classic mistakes (wrong
implementations with the reference's signature) and the :class:`~.update_rule.Rule` that ties
them to their diagnoses. List a new rule in :data:`course_lib.exercises.RULES`.
"""

from __future__ import annotations

from course_lib.exercises.mistakes import EMA_MOMENTUM, NESTEROV_INSTEAD_OF_HEAVY_BALL, WRONG_SIGN
from course_lib.exercises.problems import uniform
from course_lib.exercises.update_rule import Rule

# ---------------------------------------------------------------------------------------------
# sgd_step
# ---------------------------------------------------------------------------------------------


def ref_sgd_step(p, g, lr):
    """Plain (stochastic) gradient descent: ``p − lr·g``."""
    return p - lr * g


def _sgd_step_wrong_sign(p, g, lr):
    return p + lr * g


def _sgd_step_without_lr(p, g, lr):
    return p - g


SGD_STEP = Rule(
    name="sgd_step",
    signature="sgd_step(p, g, lr) -> p_new",
    tensor_args=("p", "g"),
    outputs=("p_new",),
    reference=ref_sgd_step,
    variants={
        WRONG_SIGN: _sgd_step_wrong_sign,
        "the learning rate is missing: p − g instead of p − lr·g": _sgd_step_without_lr,
    },
    hyper={"lr": 0.1},
    random_hyper=lambda gen: {"lr": uniform(gen, 0.01, 0.5)},
)

# ---------------------------------------------------------------------------------------------
# momentum_step
# ---------------------------------------------------------------------------------------------


def ref_momentum_step(p, g, v, lr, mu):
    """Heavy ball, PyTorch form: ``v ← μv + g``, ``p ← p − lr·v``."""
    v_new = mu * v + g
    return p - lr * v_new, v_new


def ref_nesterov_step(p, g, v, lr, mu):
    """Nesterov, PyTorch's rewrite: ``v ← μv + g``, ``p ← p − lr·(g + μ·v_new)``."""
    v_new = mu * v + g
    return p - lr * (g + mu * v_new), v_new


def _momentum_step_wrong_sign(p, g, v, lr, mu):
    v_new = mu * v + g
    return p + lr * v_new, v_new


def _momentum_step_ema(p, g, v, lr, mu):
    v_new = mu * v + (1 - mu) * g
    return p - lr * v_new, v_new


def _momentum_step_old_velocity(p, g, v, lr, mu):
    return p - lr * v, mu * v + g


def _momentum_step_cs231n_form(p, g, v, lr, mu):
    v_new = mu * v - lr * g
    return p + v_new, v_new


MOMENTUM_STEP = Rule(
    name="momentum_step",
    signature="momentum_step(p, g, v, lr, mu) -> (p_new, v_new)",
    tensor_args=("p", "g", "v"),
    outputs=("p_new", "v_new"),
    reference=ref_momentum_step,
    variants={
        WRONG_SIGN: _momentum_step_wrong_sign,
        EMA_MOMENTUM: _momentum_step_ema,
        "you moved p with the *old* velocity; update v first, then p ← p − lr·v_new": (
            _momentum_step_old_velocity
        ),
        "CS231n form (lr inside the velocity: v ← μv − lr·g, p ← p + v); the course uses "
        "PyTorch's v ← μv + g, p ← p − lr·v": _momentum_step_cs231n_form,
        NESTEROV_INSTEAD_OF_HEAVY_BALL: ref_nesterov_step,
    },
    hyper={"lr": 0.1, "mu": 0.9},
    random_hyper=lambda gen: {"lr": uniform(gen, 0.01, 0.5), "mu": uniform(gen, 0.5, 0.99)},
    state_args=("v",),
)

# ---------------------------------------------------------------------------------------------
# nesterov_step
# ---------------------------------------------------------------------------------------------


def _nesterov_step_wrong_sign(p, g, v, lr, mu):
    v_new = mu * v + g
    return p + lr * (g + mu * v_new), v_new


def _nesterov_step_old_velocity(p, g, v, lr, mu):
    return p - lr * (g + mu * v), mu * v + g


def _nesterov_step_ema(p, g, v, lr, mu):
    v_new = mu * v + (1 - mu) * g
    return p - lr * (g + mu * v_new), v_new


NESTEROV_STEP = Rule(
    name="nesterov_step",
    signature="nesterov_step(p, g, v, lr, mu) -> (p_new, v_new)",
    tensor_args=("p", "g", "v"),
    outputs=("p_new", "v_new"),
    reference=ref_nesterov_step,
    variants={
        WRONG_SIGN: _nesterov_step_wrong_sign,
        "that is plain heavy-ball momentum (p − lr·v); Nesterov steps by "
        "p − lr·(g + μ·v_new)": ref_momentum_step,
        "you used the *old* velocity in the look-ahead: p − lr·(g + μ·v_new), with v_new "
        "= μv + g": _nesterov_step_old_velocity,
        EMA_MOMENTUM: _nesterov_step_ema,
    },
    hyper={"lr": 0.1, "mu": 0.9},
    random_hyper=lambda gen: {"lr": uniform(gen, 0.01, 0.5), "mu": uniform(gen, 0.5, 0.99)},
    state_args=("v",),
)
