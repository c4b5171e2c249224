"""What an update-rule exercise is: :class:`Rule`, its diagnosis, and the inputs it is tried on.

An update-rule exercise asks for a *pure* function on tensors, e.g.
``momentum_step(p, g, v, lr, mu) -> (p_new, v_new)``. A :class:`Rule` holds everything both the
self-check (:mod:`course_lib.checks`) and the grader (:mod:`course_lib.grading.probes`) need:

- the call convention: tensor arguments, the optional step counter, hyperparameters, outputs;
- the float64 ``reference``;
- the ``variants``: the classic mistakes, each a wrong implementation with the reference's
  signature, keyed by the sentence that diagnoses it. :meth:`Rule.diagnose` returns the
  sentences of the variants whose outputs equal the student's, so the self-check and the grader
  name a mistake with the same words.

The inputs are cases (:class:`Case`): :meth:`Rule.self_check_cases` are the visible ones (a
readable fixed case, random single steps, a trajectory from zero state); :meth:`Rule.hidden_cases`
are the grader's, drawn from another generator with other shapes, so hard-coding the visible
answers earns nothing. Both draw a random step (:func:`random_step_kwargs`) and a trajectory
(:func:`reference_trajectory_kwargs`) the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from course_lib.exercises.mistakes import COMPUTED_IN_FLOAT32
from course_lib.exercises.problems import (
    ATOL,
    DTYPE,
    FIND_THE_BUG,
    IMPLEMENT,
    KINDS,
    RTOL,
    looks_like_float32,
)


@dataclass(frozen=True)
class Rule:
    """One update-rule exercise: the function students write, its reference, its classic mistakes.

    ``name`` is the function's name and the ``grade_id`` of its graded cell; ``signature`` is
    shown in messages. The function is called with the ``tensor_args`` (all the same shape), then
    the 1-based step counter ``step_arg`` if any (Adam's ``t``), then the hyperparameters in the
    order of ``hyper`` (the fixed case's values); it returns the ``outputs`` (a tuple when there
    are several). ``state_args`` are the tensor arguments that carry optimizer state (zero before
    the first step) and ``nonnegative_args`` those that cannot be negative (accumulated squares);
    ``random_hyper(gen)`` draws the hyperparameters of a random case. ``kind`` is
    ``"implement"`` (mistakes are diagnosed) or ``"find the bug"`` (a buggy function to fix: no
    variants, its checks only say *that* it is still wrong).
    """

    name: str
    signature: str
    tensor_args: tuple[str, ...]
    outputs: tuple[str, ...]
    reference: Callable
    variants: dict[str, Callable]
    hyper: dict[str, float]
    random_hyper: Callable[[torch.Generator], dict[str, float]]
    state_args: tuple[str, ...] = ()
    nonnegative_args: tuple[str, ...] = ()
    step_arg: str | None = None
    kind: str = IMPLEMENT

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == FIND_THE_BUG and self.variants:
            raise ValueError(f"{self.name}: a find-the-bug exercise never names its mistakes")

    @property
    def arg_names(self) -> tuple[str, ...]:
        """All argument names in call order."""
        step = (self.step_arg,) if self.step_arg else ()
        return self.tensor_args + step + tuple(self.hyper)

    def call(self, fn: Callable, kwargs: dict) -> tuple:
        """``fn`` called with ``kwargs`` in call order; its result as a tuple of outputs."""
        out = fn(*[kwargs[name] for name in self.arg_names])
        return (out,) if len(self.outputs) == 1 else out

    def self_check_cases(self, gen: torch.Generator) -> list[list[Case]]:
        """The visible cases: the fixed case, three random single steps, one 4-step trajectory.

        Returns *groups* of cases; a group of several cases is a trajectory, run in order.
        """
        groups = [[fixed_case(self)]]
        for i, shape in enumerate([(5,), (3, 4), (2, 3, 2)]):
            kwargs = random_step_kwargs(self, gen, shape, step_range=(2, 50))
            groups.append([Case(f"random case {i + 1} (shape {shape})", kwargs)])
        if self.state_args or self.step_arg:
            trajectory = reference_trajectory_kwargs(self, gen, size=4, steps=4)
            groups.append(
                [
                    Case(f"trajectory from zero state, step {t}", kwargs)
                    for t, kwargs in enumerate(trajectory, 1)
                ]
            )
        return groups

    def hidden_cases(self, gen: torch.Generator) -> list[Case]:
        """The grader's cases: five random single steps, one 4-step trajectory from zero state."""
        cases = []
        for i, shape in enumerate([(4,), (2, 3), (3, 1, 2), (6,), (1,)]):
            kwargs = random_step_kwargs(self, gen, shape, step_range=(1, 30))
            cases.append(Case(f"hidden case {i + 1} (one step, shape {shape})", kwargs))
        if self.state_args or self.step_arg:
            trajectory = reference_trajectory_kwargs(self, gen, size=5, steps=4)
            cases += [
                Case(f"hidden trajectory from zero state, step {t}", kwargs)
                for t, kwargs in enumerate(trajectory, 1)
            ]
        return cases

    def diagnose(self, kwargs: dict, got: Sequence[torch.Tensor]) -> list[str]:
        """The sentences of the variants whose outputs on ``kwargs`` equal ``got`` (maybe none),
        and :data:`~course_lib.exercises.mistakes.COMPUTED_IN_FLOAT32` when ``got`` is the right
        answer rounded to float32 (never for a find-the-bug exercise)."""
        if self.kind == FIND_THE_BUG:
            return []
        hits = []
        with torch.no_grad():
            want = self.call(self.reference, {k: _clone(v) for k, v in kwargs.items()})
        if looks_like_float32(tuple(got), tuple(want)):
            hits.append(COMPUTED_IN_FLOAT32)
        for why, variant in self.variants.items():
            try:
                with torch.no_grad():
                    wrong = self.call(variant, {k: _clone(v) for k, v in kwargs.items()})
            except (ZeroDivisionError, RuntimeError, ValueError):
                continue
            if _outputs_close(wrong, got):
                hits.append(why)
        return hits


def _clone(x):
    return x.clone() if isinstance(x, torch.Tensor) else x


def _outputs_close(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x, y = torch.as_tensor(x).to(DTYPE), torch.as_tensor(y).to(DTYPE)
        if x.shape != y.shape or not torch.allclose(y, x, rtol=RTOL, atol=ATOL, equal_nan=True):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One call of an update rule: a label for messages and the arguments by name."""

    label: str
    kwargs: dict


def fixed_case(rule: Rule) -> Case:
    """A case a student can redo by hand: small ``p`` and ``g``, zero state, first step."""
    kwargs = {}
    for name in rule.tensor_args:
        if name == "p":
            kwargs[name] = torch.tensor([1.0, -2.0, 3.0], dtype=DTYPE)
        elif name == "g":
            kwargs[name] = torch.tensor([0.5, 0.25, -1.0], dtype=DTYPE)
        else:
            kwargs[name] = torch.zeros(3, dtype=DTYPE)
    if rule.step_arg:
        kwargs[rule.step_arg] = 1
    kwargs.update(rule.hyper)
    return Case("fixed case (p=[1, -2, 3], g=[0.5, 0.25, -1], zero state)", kwargs)


def random_step_kwargs(
    rule: Rule, gen: torch.Generator, shape: tuple[int, ...], step_range: tuple[int, int]
) -> dict:
    """One step from random (non-zero) state: Gaussian tensors, step in ``[low, high)``."""
    kwargs = {}
    for name in rule.tensor_args:
        x = torch.randn(shape, generator=gen, dtype=DTYPE)
        kwargs[name] = x.abs() if name in rule.nonnegative_args else x
    if rule.step_arg:
        kwargs[rule.step_arg] = int(torch.randint(*step_range, (), generator=gen).item())
    kwargs.update(rule.random_hyper(gen))
    return kwargs


def reference_trajectory_kwargs(
    rule: Rule, gen: torch.Generator, size: int, steps: int
) -> list[dict]:
    """The arguments of ``steps`` steps from zero state, fresh gradients, state from the reference.

    A self-check replaces ``p`` and the state with the student's own outputs from step 2 on, so a
    mistake that shows only at step 3 is reported at step 3; the grader, which sends all cases to
    the sandbox at once, uses the reference's.
    """
    hyper = rule.random_hyper(gen)
    p = torch.randn(size, generator=gen, dtype=DTYPE)
    state = {name: torch.zeros(size, dtype=DTYPE) for name in rule.state_args}
    trajectory = []
    for t in range(1, steps + 1):
        kwargs = {"p": p, "g": torch.randn(size, generator=gen, dtype=DTYPE), **state, **hyper}
        if rule.step_arg:
            kwargs[rule.step_arg] = t
        trajectory.append(kwargs)
        p, *new_state = rule.call(rule.reference, kwargs)
        state = dict(zip(rule.state_args, new_state))
    return trajectory
