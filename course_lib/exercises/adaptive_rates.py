r"""Chapter 03's exercises beyond the update rules: a whole optimizer, a class to fix, a number.

* ``CenteredRMSprop`` (implement): a ``torch.optim.Optimizer`` subclass with param groups, equal
  to ``torch.optim.RMSprop(centered=True)``. Besides the random quadratics of every class exercise,
  the self-check runs it on a problem with **two param groups** that differ in every
  hyperparameter, one of them holding a parameter that never receives a gradient (``None``): the
  class must read each group's own hyperparameters and skip that parameter. (The grader's probes
  call a class with one parameter list only, so they check the quadratics; the group case is
  the self-check's and the notebook's hidden test's.)
* ``FixedAdagrad`` (find the bug): an AdaGrad class that matches ``torch.optim.Adagrad`` on the
  first step only. Find-the-bug exercises carry **no** diagnoses: the self-check says on which
  quadratic and after which step the parameters differ, never what the bug is.
* ``rmsprop_lr_after_spike`` (compute): RMSprop's effective learning rate
  :math:`\eta/(\sqrt{v_t}+\epsilon)` at step :math:`t` of a gradient stream of constant size
  :math:`c` with one spike :math:`s` at step :math:`k`, from :math:`v_0 = 0`. Its closed form,
  :math:`v_t = (1-\beta^t)c^2 + (1-\beta)\beta^{t-k}(s^2-c^2)` for :math:`t \ge k`, combines the
  lesson's warm-up (section 5) and forgetting (section 3); simulating the stream with one's own
  ``rmsprop_step`` gives the same number.

Register each in :mod:`course_lib.exercises` (chapter 03's block at the end of ``__init__.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.optimizer_classes import (
    SELF_CHECK_STEPS,
    OptimizerClassExercise,
)
from course_lib.exercises.problems import DTYPE, Quadratic, random_quadratic, uniform

# The same spectrum as the other class exercises: every reference stays stable and every mistake
# changes the trajectory within a few steps.
MIN_EIGENVALUE, MAX_EIGENVALUE = 0.3, 3.0

# ---------------------------------------------------------------------------------------------
# CenteredRMSprop: the reference, its classic mistakes, the two-group case
# ---------------------------------------------------------------------------------------------

NOT_CENTERED = (
    "this is plain RMSprop: centered RMSprop also keeps the moving average m of the gradients "
    "and divides by √(v − m²) + ε"
)
CENTERED_EPS_INSIDE_ROOT = (
    "ε inside the square root, √(v − m² + ε); PyTorch puts it outside: √(v − m²) + ε"
)
ROOTS_SUBTRACTED = (
    "you subtracted the roots, √v − |m|; the variance estimate is v − m²: subtract first, "
    "then take the root"
)
OLD_MEAN = (
    "you used the average m from before this step's update; update both averages with the new "
    "gradient first, then divide by √(v − m²) + ε"
)
MEAN_SQUARED_ADDED = "you added m² instead of subtracting it: the variance estimate is v − m²"
CENTERED_SWAPPED_WEIGHTS = (
    "α and (1−α) swapped: the averages are v ← αv + (1−α)g² and m ← αm + (1−α)g, so α weighs "
    "the old average"
)


class CenteredRMSpropVariant(torch.optim.Optimizer):
    """Centered RMSprop with at most one classic mistake switched on (``None``: torch's update).

    ``mistake`` is one of ``"not_centered"``, ``"eps_inside_root"``, ``"roots_subtracted"``,
    ``"old_mean"``, ``"mean_squared_added"``, ``"swapped_weights"``.
    """

    MISTAKES = (
        "not_centered",
        "eps_inside_root",
        "roots_subtracted",
        "old_mean",
        "mean_squared_added",
        "swapped_weights",
    )

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, *, mistake: str | None = None):
        if mistake is not None and mistake not in self.MISTAKES:
            raise ValueError(f"unknown mistake {mistake!r}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))
        self.mistake = mistake

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            alpha, eps = group["alpha"], group["eps"]
            keep, new = (
                (1 - alpha, alpha) if self.mistake == "swapped_weights" else (alpha, 1 - alpha)
            )
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["v"], state["m"] = torch.zeros_like(p), torch.zeros_like(p)
                v, m = state["v"], state["m"]
                old_m = m.clone()
                v.mul_(keep).addcmul_(g, g, value=new)
                m.mul_(keep).add_(g, alpha=new)
                denominator = self._denominator(v, old_m if self.mistake == "old_mean" else m, eps)
                p.addcdiv_(g, denominator, value=-group["lr"])

    def _denominator(self, v, m, eps):
        if self.mistake == "not_centered":
            return v.sqrt() + eps
        if self.mistake == "eps_inside_root":
            return (v - m * m + eps).sqrt()
        if self.mistake == "roots_subtracted":
            return v.sqrt() - m.abs() + eps
        if self.mistake == "mean_squared_added":
            return (v + m * m).sqrt() + eps
        return (v - m * m).sqrt() + eps


@dataclass(frozen=True)
class GroupsCase:
    """A run with two param groups: ``a`` (first group) and ``b``, ``c`` (second group).

    The loss is the quadratic of ``quadratic`` (5 variables) on the concatenation ``[a, b]``;
    ``c`` is not in the loss, so its gradient stays ``None`` and it must never move.
    ``group_hypers`` holds each group's hyperparameters.
    """

    label: str
    quadratic: Quadratic
    c0: torch.Tensor
    group_hypers: tuple[dict, dict]
    steps: int


def groups_trajectory(make: Callable[..., torch.optim.Optimizer], case: GroupsCase) -> torch.Tensor:
    """The iterates ``[a, b, c]`` of ``make(param_groups)`` on a :class:`GroupsCase`."""
    w0 = case.quadratic.w0
    a = torch.nn.Parameter(w0[:2].clone())
    b = torch.nn.Parameter(w0[2:].clone())
    c = torch.nn.Parameter(case.c0.clone())
    first, second = case.group_hypers
    optimizer = make([{"params": [a], **first}, {"params": [b, c], **second}])
    A, rhs = case.quadratic.A, case.quadratic.b
    iterates = []
    for _ in range(case.steps):
        optimizer.zero_grad()
        w = torch.cat([a, b])
        loss = 0.5 * w @ (A @ w) - rhs @ w
        loss.backward()
        optimizer.step()
        iterates.append(torch.cat([a, b, c]).detach().clone())
    return torch.stack(iterates)


@dataclass(frozen=True)
class GroupedOptimizerClassExercise(OptimizerClassExercise):
    """A class exercise whose self-check adds one :class:`GroupsCase` to the quadratics."""

    group_hypers: tuple[dict, dict] = ({}, {})

    def self_check_cases(self, gen: torch.Generator) -> list:
        cases = list(super().self_check_cases(gen))
        quadratic = random_quadratic(gen, 5, MIN_EIGENVALUE, MAX_EIGENVALUE)
        c0 = torch.randn(2, generator=gen, dtype=DTYPE)
        first, second = self.group_hypers
        label = (
            f"two param groups ({_describe(first)} | {_describe(second)}): parameters a (2 "
            f"elements, group 1), b (3) and c (2, group 2; c never gets a gradient); shown as "
            f"[a, b, c], {SELF_CHECK_STEPS} steps"
        )
        cases.append(GroupsCase(label, quadratic, c0, self.group_hypers, SELF_CHECK_STEPS))
        return cases

    def trajectory(self, make, case) -> torch.Tensor:
        if isinstance(case, GroupsCase):
            return groups_trajectory(make, case)
        return super().trajectory(make, case)


def _describe(hyper: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in hyper.items())


CENTERED_RMSPROP = GroupedOptimizerClassExercise(
    name="centered_rmsprop",
    class_name="CenteredRMSprop",
    reference=partial(torch.optim.RMSprop, centered=True),
    reference_name="torch.optim.RMSprop(centered=True)",
    variants={
        NOT_CENTERED: partial(CenteredRMSpropVariant, mistake="not_centered"),
        CENTERED_EPS_INSIDE_ROOT: partial(CenteredRMSpropVariant, mistake="eps_inside_root"),
        ROOTS_SUBTRACTED: partial(CenteredRMSpropVariant, mistake="roots_subtracted"),
        OLD_MEAN: partial(CenteredRMSpropVariant, mistake="old_mean"),
        MEAN_SQUARED_ADDED: partial(CenteredRMSpropVariant, mistake="mean_squared_added"),
        CENTERED_SWAPPED_WEIGHTS: partial(CenteredRMSpropVariant, mistake="swapped_weights"),
    },
    self_check_hypers=(
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-3},
        {"lr": 0.003, "alpha": 0.99, "eps": 1e-6},
    ),
    hidden_hypers=(
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-8},
        {"lr": 0.02, "alpha": 0.9, "eps": 1e-3},
        {"lr": 0.005, "alpha": 0.95, "eps": 1e-6},
    ),
    group_hypers=(
        {"lr": 0.02, "alpha": 0.9, "eps": 1e-3},
        {"lr": 0.005, "alpha": 0.99, "eps": 1e-6},
    ),
)

# ---------------------------------------------------------------------------------------------
# FixedAdagrad: find the bug (no diagnoses)
# ---------------------------------------------------------------------------------------------

FIXED_ADAGRAD = OptimizerClassExercise(
    name="fixed_adagrad",
    class_name="FixedAdagrad",
    reference=torch.optim.Adagrad,
    reference_name="torch.optim.Adagrad",
    variants={},  # find the bug: the self-check says where, never what
    self_check_hypers=({"lr": 0.1, "eps": 1e-10}, {"lr": 0.3, "eps": 1e-3}),
    hidden_hypers=(
        {"lr": 0.2, "eps": 1e-10},
        {"lr": 0.05, "eps": 1e-2},
        {"lr": 0.5, "eps": 1e-6},
    ),
)

# ---------------------------------------------------------------------------------------------
# rmsprop_lr_after_spike: a number to work out
# ---------------------------------------------------------------------------------------------


def ref_rmsprop_lr_after_spike(t, spike_step, spike, base, lr, beta, eps) -> float:
    r"""RMSprop's effective lr :math:`\eta/(\sqrt{v_t}+\epsilon)` at step ``t`` (1-based).

    Gradients: ``base`` at every step except ``spike`` at step ``spike_step``; :math:`v_0 = 0`.
    """
    v = (1 - beta**t) * base**2
    if t >= spike_step:
        v += (1 - beta) * beta ** (t - spike_step) * (spike**2 - base**2)
    return lr / (math.sqrt(v) + eps)


def _spike_variant(*, settled=False, shift=0, added=False, always=False, adagrad=False):
    """A wrong answer: one of the classic slips in the closed form (defaults: the reference)."""

    def answer(t, spike_step, spike, base, lr, beta, eps):
        if adagrad:
            v = t * base**2 + (spike**2 - base**2) * (t >= spike_step)
        else:
            v = base**2 if settled else (1 - beta**t) * base**2
            if t >= spike_step or always:
                excess = spike**2 if added else spike**2 - base**2
                v += (1 - beta) * beta ** (t - spike_step + shift) * excess
        return lr / (math.sqrt(v) + eps) if v >= 0 else math.nan

    return answer


def _spike_eps_inside(t, spike_step, spike, base, lr, beta, eps):
    v = (1 / ref_rmsprop_lr_after_spike(t, spike_step, spike, base, 1.0, beta, 0.0)) ** 2
    return lr / math.sqrt(v + eps)


def _spike_step_not_rate(t, spike_step, spike, base, lr, beta, eps):
    g = spike if t == spike_step else base
    return ref_rmsprop_lr_after_spike(t, spike_step, spike, base, lr, beta, eps) * abs(g)


def _spike_self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    rows = [
        (1, 3, 10.0, 1.0, 0.01, 0.9, 1e-8),
        (3, 3, 10.0, 1.0, 0.01, 0.9, 1e-8),
        (60, 10, 100.0, 1.0, 0.01, 0.99, 1e-8),
        (250, 100, 20.0, 0.5, 1e-3, 0.9, 1e-8),
        (40, 2, 5.0, 2.0, 0.1, 0.95, 1e-3),
    ]
    names = ("t", "spike_step", "spike", "base", "lr", "beta", "eps")
    return [NumberCase(", ".join(f"{n}={v:g}" for n, v in zip(names, row)), row) for row in rows]


def _spike_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    """Six cases: at the spike's own step, two steps before it, then four steps after it."""
    cases = []
    for i in range(6):
        beta = uniform(gen, 0.8, 0.995)
        spike_step = int(torch.randint(5, 80, (), generator=gen).item())
        after = int(torch.randint(1, 300, (), generator=gen).item())
        t = (spike_step, spike_step - 2)[i] if i < 2 else spike_step + after
        base = uniform(gen, 0.2, 3.0)
        spike = base * 10 ** uniform(gen, 0.5, 2.5)
        lr, eps = 10 ** uniform(gen, -3, -1), 10 ** uniform(gen, -8, -3)
        row = (t, spike_step, spike, base, lr, beta, eps)
        cases.append(NumberCase(f"hidden case {i + 1} (t={t}, spike at step {spike_step})", row))
    return cases


RMSPROP_LR_AFTER_SPIKE = NumberExercise(
    name="rmsprop_lr_after_spike",
    reference=ref_rmsprop_lr_after_spike,
    variants={
        "you assumed the average had already settled at c² before the spike; it starts at "
        "v₀ = 0, so t steps of size c give only (1 − βᵗ)c²": _spike_variant(settled=True),
        "the spike's weight is one step off: the spike enters v with (1 − β) at its own step and "
        "is multiplied by β once per later step, (1 − β)·β^(t − k) at step t": (
            _spike_variant(shift=1)
        ),
        "the spike's weight is one step off the other way: at its own step (t = k) it carries "
        "(1 − β), with no extra factor β": _spike_variant(shift=-1),
        "the spike replaces the gradient of its step, it is not added on top: its excess over "
        "the usual contribution is s² − c²": _spike_variant(added=True),
        "before the spike's step (t < k) there is no spike in v yet": _spike_variant(always=True),
        "that is AdaGrad's sum of squares; RMSprop's v is an exponential moving average": (
            _spike_variant(adagrad=True)
        ),
        "ε inside the square root √(v + ε); PyTorch puts it outside: η/(√v + ε)": (
            _spike_eps_inside
        ),
        "you returned the step size |Δw| = η|g_t|/(√v + ε); the effective learning rate is "
        "|Δw|/|g_t| = η/(√v + ε)": _spike_step_not_rate,
    },
    self_check_cases=_spike_self_check_cases,
    hidden_cases=_spike_hidden_cases,
)

__all__ = [
    "CENTERED_RMSPROP",
    "FIXED_ADAGRAD",
    "RMSPROP_LR_AFTER_SPIKE",
    "CenteredRMSpropVariant",
    "GroupedOptimizerClassExercise",
    "GroupsCase",
    "groups_trajectory",
    "ref_rmsprop_lr_after_spike",
]
