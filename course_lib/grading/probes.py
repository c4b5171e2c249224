"""Probes: the grader's hidden questions, one per graded cell of a solutions notebook.

A *probe* is looked up by the ``grade_id`` of the graded (autograder-test) cell in the solutions
notebook. It names the student's *target* (a function, class or variable, found by name — so it
does not matter in which cell, or how many times, the student defined it), a *runner* that the
sandbox uses to call it, and the grader-chosen inputs (*cases*). The cases are drawn from a seeded
generator, so re-grading is reproducible, and they differ from the inputs the visible self-checks
use, so hard-coding the visible answers earns nothing.

Grading a probe:

1. the sandbox runs the cases against the *solutions* notebook → expected outputs;
2. the sandbox runs the same cases against each submission → outputs as plain JSON data;
3. :func:`compare_case` (in the grader process) validates the data strictly and compares it
   with the expected outputs; on a mismatch it asks the exercise (:mod:`course_lib.exercises`)
   which known mistake produces the student's numbers, and quotes its diagnosis: the sentence
   the student's self-check prints for the same mistake.

Adding an exercise for a new chapter: define it in :mod:`course_lib.exercises` and list it in
that package's registry (``RULES``, ``NUMBER_EXERCISES`` or ``OPTIMIZER_CLASS_EXERCISES``): its
probe, named after the exercise, follows. Give the graded test cell ``grade_id = <probe name>``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from course_lib.exercises import (
    NUMBER_EXERCISES,
    OPTIMIZER_CLASS_EXERCISES,
    RULES,
    NumberExercise,
    OptimizerClassExercise,
)
from course_lib.exercises.mistakes import MODIFIED_AN_INPUT
from course_lib.exercises.number_answers import NUMBER_ATOL, NUMBER_RTOL
from course_lib.exercises.optimizer_classes import QuadraticCase
from course_lib.exercises.problems import ATOL, DTYPE, RTOL, Quadratic

MAX_ELEMENTS = 100_000


@dataclass(frozen=True)
class Probe:
    """A hidden question. ``cases(gen)`` returns JSON-ready case dicts (each has a ``label``)."""

    name: str
    target: str
    runner: str  # "rule" | "number_fn" | "value" | "optimizer_class" (see harness.RUNNERS)
    cases: Callable[[torch.Generator], list[dict]]
    what: str  # how the feedback calls the target, e.g. "function `sgd_step`"
    diagnose: Callable[[dict, list[torch.Tensor]], list[str]] | None = None
    rtol: float = 1e-6
    atol: float = 1e-9
    extra: dict = field(default_factory=dict)

    def make_cases(self, salt: str = "") -> list[dict]:
        """The probe's cases for a grading run; same salt → same cases."""
        seed = zlib.crc32(f"course-grade/{self.name}/{salt}".encode())
        return self.cases(torch.Generator().manual_seed(seed))

    def job_entry(self, salt: str = "") -> dict:
        """What the sandbox needs: name, target, runner and the cases."""
        return {
            "name": self.name,
            "target": self.target,
            "runner": self.runner,
            "cases": self.make_cases(salt),
        }


# ---------------------------------------------------------------------------------------------
# Probes built from the exercises: cases as JSON-ready data, diagnoses from the exercise
# ---------------------------------------------------------------------------------------------


def _to_json(x):
    """A case argument as plain data: a tensor becomes nested lists, a tuple a list."""
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return list(x) if isinstance(x, tuple) else x


def _from_json(x):
    """The inverse of :func:`_to_json`: nested lists become a float64 tensor."""
    return torch.tensor(x, dtype=DTYPE) if isinstance(x, list) else x


def rule_probe(rule_name: str, target: str | None = None) -> Probe:
    """A probe for an update rule of :data:`course_lib.exercises.RULES` (pure tensor function)."""
    rule = RULES[rule_name]

    def cases(gen: torch.Generator) -> list[dict]:
        return [
            {
                "label": case.label,
                "args": [_to_json(case.kwargs[name]) for name in rule.arg_names],
                "names": list(rule.arg_names),
                "n_out": len(rule.outputs),
            }
            for case in rule.hidden_cases(gen)
        ]

    def diagnose(case: dict, got: list[torch.Tensor]) -> list[str]:
        kwargs = {name: _from_json(v) for name, v in zip(case["names"], case["args"])}
        return rule.diagnose(kwargs, got)

    return Probe(
        name=rule_name,
        target=target or rule_name,
        runner="rule",
        cases=cases,
        what=f"function `{target or rule_name}`",
        diagnose=diagnose,
        rtol=RTOL,
        atol=ATOL,
    )


def number_probe(exercise: NumberExercise) -> Probe:
    """A probe for a function returning a number (:data:`course_lib.exercises.NUMBER_EXERCISES`).

    Exact answers use :data:`NUMBER_RTOL`; an exercise that declares ``rtol`` (a measurement) is
    compared within that relative band.
    """
    band = getattr(exercise, "rtol", None)

    def cases(gen: torch.Generator) -> list[dict]:
        return [
            {"label": case.label, "args": [_to_json(arg) for arg in case.args]}
            for case in exercise.hidden_cases(gen)
        ]

    def diagnose(case: dict, got: list[torch.Tensor]) -> list[str]:
        if got[0].numel() != 1:
            return []
        args = tuple(_from_json(arg) for arg in case["args"])
        return exercise.diagnose(args, got[0].reshape(-1)[0].item())

    return Probe(
        name=exercise.name,
        target=exercise.name,
        runner="number_fn",
        cases=cases,
        what=f"function `{exercise.name}`",
        diagnose=diagnose,
        # a measured number (e.g. a bisection on a real network) is right within its own band
        rtol=NUMBER_RTOL if band is None else band,
        atol=NUMBER_ATOL if band is None else 0.0,
    )


def optimizer_class_probe(exercise: OptimizerClassExercise) -> Probe:
    """A probe for a find-the-bug class (:data:`course_lib.exercises.OPTIMIZER_CLASS_EXERCISES`)."""

    def cases(gen: torch.Generator) -> list[dict]:
        return [
            {
                "label": case.label,
                "A": case.quadratic.A.tolist(),
                "b": case.quadratic.b.tolist(),
                "w0": case.quadratic.w0.tolist(),
                "steps": case.steps,
                "hyper": {key: _to_json(value) for key, value in case.hyper.items()},
            }
            for case in exercise.hidden_cases(gen)
        ]

    def diagnose(case: dict, got: list[torch.Tensor]) -> list[str]:
        quadratic = Quadratic(*(_from_json(case[key]) for key in ("A", "b", "w0")))
        run = QuadraticCase(case["label"], quadratic, case["hyper"], case["steps"])
        return exercise.diagnose(run, got[0])

    return Probe(
        name=exercise.name,
        target=exercise.class_name,
        runner="optimizer_class",
        cases=cases,
        what=f"class `{exercise.class_name}`",
        diagnose=diagnose,
        rtol=RTOL,
        atol=ATOL,
    )


# ---------------------------------------------------------------------------------------------
# The registry: one probe per exercise
# ---------------------------------------------------------------------------------------------

PROBES: dict[str, Probe] = {
    **{name: rule_probe(name) for name in RULES},
    **{name: number_probe(exercise) for name, exercise in NUMBER_EXERCISES.items()},
    **{
        name: optimizer_class_probe(exercise)
        for name, exercise in OPTIMIZER_CLASS_EXERCISES.items()
    },
}


# ---------------------------------------------------------------------------------------------
# Strict validation of what a sandbox sent back, and comparison (grader process only)
# ---------------------------------------------------------------------------------------------


class Malformed(ValueError):
    """The sandbox's answer is not the plain data the harness writes."""


def _check_leaves(x, depth: int = 0) -> int:
    if depth > 8:
        raise Malformed("nested too deeply")
    if type(x) is list:
        return sum(_check_leaves(y, depth + 1) for y in x)
    if type(x) is float or type(x) is int:
        return 1
    raise Malformed(f"element of type {type(x).__name__}")


def to_tensor(entry) -> torch.Tensor:
    """``{"data": nested floats, "shape": [..]}`` → float64 tensor, refusing anything else."""
    if type(entry) is not dict or set(entry) != {"data", "shape"}:
        raise Malformed("not a {data, shape} record")
    shape = entry["shape"]
    if type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
        raise Malformed("bad shape")
    if math.prod(shape) > MAX_ELEMENTS:
        raise Malformed("too many elements")
    n = _check_leaves(entry["data"])
    if n != math.prod(shape):
        raise Malformed("data does not match its shape")
    try:
        t = torch.tensor(entry["data"], dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise Malformed(str(exc)) from None
    if list(t.shape) != shape:
        raise Malformed("data does not match its shape")
    return t


def case_outputs(entry) -> tuple[list[torch.Tensor], list[str]]:
    """Validated outputs and the names of mutated inputs of one case result."""
    if type(entry) is not dict or type(entry.get("out")) is not list:
        raise Malformed("no outputs")
    mutated = entry.get("mutated", [])
    if type(mutated) is not list or not all(type(m) is str for m in mutated):
        raise Malformed("bad mutated list")
    return [to_tensor(o) for o in entry["out"]], [m[:20] for m in mutated]


def _fmt(x: float) -> str:
    return f"{x:.8g}"


def compare_case(probe: Probe, case: dict, expected, got) -> tuple[bool, str]:
    """Compare one case. Returns ``(passed, explanation)``; the explanation is empty on success."""
    want, _ = case_outputs(expected)
    label = case["label"]
    if type(got) is dict and type(got.get("error")) is str:  # the sandbox caught an exception
        if got.get("not_implemented") is True:
            return False, "not implemented yet (raise NotImplementedError() is still there)"
        where = got.get("where")
        where = f" at {where[:40]}" if type(where) is str and where else ""
        err = got["error"][:200]
        verb = "" if err.startswith("an unusable") else "raised "
        return False, f"{label}: {verb}{err}{where}"
    try:
        outs, mutated = case_outputs(got)
    except Malformed as exc:
        return False, f"{label}: unusable result ({exc})"
    if len(outs) != len(want):
        return False, f"{label}: expected {len(want)} results, got {len(outs)}"
    if mutated:
        return False, f"{label}: {MODIFIED_AN_INPUT} (changed: {', '.join(mutated)})"
    for i, (w, g) in enumerate(zip(want, outs)):
        name = _output_name(probe, i)
        if w.shape != g.shape:
            return False, f"{label}: {name} has shape {list(g.shape)}, expected {list(w.shape)}"
        if not torch.allclose(g, w, rtol=probe.rtol, atol=probe.atol):
            bad = ~torch.isclose(g, w, rtol=probe.rtol, atol=probe.atol)
            idx = tuple(int(j) for j in bad.nonzero()[0].tolist()) if bad.any() else ()
            msg = (
                f"{label}: {name} is wrong"
                + (f" at element {list(idx)}" if idx else "")
                + f": expected {_fmt(w[idx].item())}, got {_fmt(g[idx].item())}"
            )
            if probe.diagnose is not None:
                try:
                    hits = probe.diagnose(case, outs)
                except Exception:  # a diagnosis is a bonus; never fail grading over it
                    hits = []
                if hits:
                    msg += ". Diagnosis: " + "; or ".join(hits)
            return False, msg
    return True, ""


def _output_name(probe: Probe, i: int) -> str:
    if probe.runner == "rule":
        return RULES[probe.name].outputs[i] if probe.name in RULES else f"output {i}"
    if probe.runner == "optimizer_class":
        return "the parameter trajectory"
    return "the result"
