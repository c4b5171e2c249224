"""The exercises are defined once: the self-check and the grader diagnose every mistake alike.

Each classic mistake (a *variant* in :mod:`course_lib.exercises`) is run as a student's answer
through the student's self-check (:mod:`course_lib.checks`) and through the grader's comparison
(:func:`course_lib.grading.probes.compare_case`); both must name it with its own sentence. The
import tests keep the exercises below the grader and free of circles.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch

from course_lib import checks
from course_lib.exercises import NUMBER_EXERCISES, OPTIMIZER_CLASS_EXERCISES, RULES
from course_lib.exercises.adaptive_rules import ADAM_STEP
from course_lib.exercises.optimizer_classes import FIXED_ADAM, QuadraticCase, StepFunctionAdam
from course_lib.exercises.problems import Quadratic, quadratic_trajectory, random_spd
from course_lib.grading import probes
from tests.import_graph import MODULES, cycle_from, imports_of, is_in

D = torch.float64
PACKAGE = Path(checks.__file__).resolve().parent

SELF_CHECKS = {
    **{name: getattr(checks, f"check_{name}") for name in RULES},
    **{name: getattr(checks, f"check_{name}") for name in NUMBER_EXERCISES},
    "fixed_sgd": checks.check_sgd_class,
    "fixed_momentum_sgd": checks.check_momentum_class,
    "fixed_adam": checks.check_adam_class,
}
VARIANTS = [
    (name, why, exercise.variants[why])
    for registry in (RULES, NUMBER_EXERCISES, OPTIMIZER_CLASS_EXERCISES)
    for name, exercise in registry.items()
    for why in exercise.variants
]


def test_every_exercise_has_a_self_check_and_a_probe():
    exercises = {**RULES, **NUMBER_EXERCISES, **OPTIMIZER_CLASS_EXERCISES}
    assert set(SELF_CHECKS) == set(exercises) == set(probes.PROBES)


# ---------------------------------------------------------------------------------------------
# One wording per mistake
# ---------------------------------------------------------------------------------------------


def _as_student_class(make_optimizer):
    """A class whose ``cls(params, **hyper)`` is ``make_optimizer(params, **hyper)``."""

    class StudentsClass:
        def __new__(cls, params, **hyper):
            return make_optimizer(params, **hyper)

    return StudentsClass


def _self_check_diagnoses(name: str, answer) -> list[str]:
    with pytest.raises(AssertionError) as info:
        SELF_CHECKS[name](answer)
    message = str(info.value)
    assert "\nDiagnosis: " in message, message
    return message.split("\nDiagnosis: ", 1)[1].split("; or ")


def _data(x) -> dict:
    x = torch.as_tensor(x, dtype=D)
    return {"data": x.tolist(), "shape": list(x.shape)}


def _sandbox_result(probe: probes.Probe, answer, case: dict) -> dict:
    """What the sandbox sends back for ``answer`` on one hidden case (plain data)."""
    if probe.runner == "optimizer_class":
        quadratic = Quadratic(*(torch.tensor(case[k], dtype=D) for k in ("A", "b", "w0")))
        make = lambda params: answer(params, **case["hyper"])  # noqa: E731
        return {"out": [_data(quadratic_trajectory(make, quadratic, case["steps"]))]}
    args = [torch.tensor(a, dtype=D) if isinstance(a, list) else a for a in case["args"]]
    out = answer(*args)
    outs = out if isinstance(out, tuple) else (out,)
    return {"out": [_data(o) for o in outs], "mutated": []}


def _grader_diagnoses(name: str, answer, reference) -> list[str]:
    probe = probes.PROBES[name]
    for case in probe.make_cases("one wording"):
        expected = _sandbox_result(probe, reference, case)
        passed, message = probes.compare_case(
            probe, case, expected, _sandbox_result(probe, answer, case)
        )
        if not passed:
            assert ". Diagnosis: " in message, message
            return message.split(". Diagnosis: ", 1)[1].split("; or ")
    raise AssertionError(f"{name}: the grader accepted the variant on every hidden case")


@pytest.mark.parametrize(
    "name, why, variant", VARIANTS, ids=[f"{name}:{why[:30]}" for name, why, _ in VARIANTS]
)
def test_self_check_and_grader_diagnose_a_mistake_with_the_same_sentence(name, why, variant):
    if name in OPTIMIZER_CLASS_EXERCISES:
        reference = OPTIMIZER_CLASS_EXERCISES[name].reference
        self_check = _self_check_diagnoses(name, _as_student_class(variant))
    else:
        reference = {**RULES, **NUMBER_EXERCISES}[name].reference
        self_check = _self_check_diagnoses(name, variant)
    grader = _grader_diagnoses(name, variant, reference)
    assert why in self_check, self_check
    assert why in grader, grader


def test_the_grader_diagnoses_a_modified_input_with_the_self_checks_sentence():
    def sneaky(p, g, lr):
        g.mul_(lr)
        return p - g

    with pytest.raises(AssertionError) as info:
        checks.check_sgd_step(sneaky)
    probe = probes.PROBES["sgd_step"]
    case = probe.make_cases("one wording")[0]
    expected = _sandbox_result(probe, RULES["sgd_step"].reference, case)
    got = {**expected, "mutated": ["g"]}
    passed, message = probes.compare_case(probe, case, expected, got)
    sentence = str(info.value).split(": ", 1)[1].split(" (changed")[0]
    assert not passed and sentence in message


# ---------------------------------------------------------------------------------------------
# Shared problems and variants
# ---------------------------------------------------------------------------------------------


def test_random_spd_has_the_requested_spectrum():
    A = random_spd(torch.Generator().manual_seed(0), 6, min_eigenvalue=0.5, max_eigenvalue=4.0)
    eigenvalues = torch.linalg.eigvalsh(A)
    assert torch.equal(A, A.T)
    assert 0.5 <= eigenvalues.min() and eigenvalues.max() <= 4.0


def test_adam_class_variant_without_bias_correction_takes_the_uncorrected_step():
    case = QuadraticCase(
        "unit quadratic",
        Quadratic(torch.eye(2, dtype=D), torch.zeros(2, dtype=D), torch.ones(2, dtype=D)),
        {"lr": 0.1},
        steps=3,
    )
    why = next(why for why in ADAM_STEP.variants if why.startswith("missing bias correction"))
    wrong = partial(StepFunctionAdam, adam_step=ADAM_STEP.variants[why])
    trajectory = FIXED_ADAM.trajectory(wrong, case)
    # uncorrected first step: lr·(1−β1)g / sqrt((1−β2) g²) = 0.1·0.1/sqrt(0.001)
    assert torch.allclose(trajectory[0], case.quadratic.w0 - 0.1 * 0.1 / math.sqrt(0.001))
    assert trajectory.shape == (3, 2)
    assert FIXED_ADAM.diagnose(case, trajectory) == []  # find the bug: never named


# ---------------------------------------------------------------------------------------------
# Imports: exercises below the grader, no lessons in the grader, no circles
# ---------------------------------------------------------------------------------------------


EXERCISE_MODULES = sorted(m for m in MODULES if is_in(m, "course_lib.exercises"))
GRADING_MODULES = sorted(m for m in MODULES if is_in(m, "course_lib.grading"))
LESSON_PACKAGES = ("course_lib.experiments", "course_lib.plotting", "course_lib.widgets")


def test_the_import_walk_sees_theimports_of():
    assert "course_lib.exercises.update_rule" in imports_of("course_lib.exercises.sgd_rules")
    assert "course_lib.exercises" in imports_of("course_lib.checks")
    assert "course_lib.exercises.problems" in imports_of("course_lib.grading.probes")


@pytest.mark.parametrize("module", ["course_lib.checks", *EXERCISE_MODULES])
def test_exercises_and_checks_never_import_the_grader(module):
    assert not [m for m in imports_of(module) if is_in(m, "course_lib.grading")]


@pytest.mark.parametrize("module", GRADING_MODULES)
def test_the_grader_imports_no_lesson_or_experiment_module(module):
    assert not [m for m in imports_of(module) if any(is_in(m, p) for p in LESSON_PACKAGES)]


def test_the_probes_take_their_exercises_from_course_lib_exercises_only():
    imported = imports_of("course_lib.grading.probes")
    assert imported and all(is_in(m, "course_lib.exercises") for m in imported), imported


@pytest.mark.parametrize("module", ["course_lib.checks", *EXERCISE_MODULES])
def test_no_import_circle_through_the_checks_or_the_exercises(module):
    assert cycle_from(module) is None


def test_the_cycle_finder_finds_the_old_checks_lessons_circle():
    graph = {
        "course_lib.checks": {"course_lib.adaptive_lessons"},
        "course_lib.adaptive_lessons": {"course_lib.train", "course_lib.checks"},
    }
    cycle = cycle_from("course_lib.checks", lambda module: graph.get(module, set()))
    assert cycle == ["course_lib.checks", "course_lib.adaptive_lessons", "course_lib.checks"]


# ---------------------------------------------------------------------------------------------
# ch12-ux (issue #12): find-the-bug exercises never name their bug; float32 is diagnosed alike
# ---------------------------------------------------------------------------------------------

WRONG_FIXES = [
    (name, i, wrong)
    for name, exercise in OPTIMIZER_CLASS_EXERCISES.items()
    for i, wrong in enumerate(exercise.wrong_answers)
]


@pytest.mark.parametrize(
    "name, i, wrong", WRONG_FIXES, ids=[f"{name}:{i}" for name, i, _ in WRONG_FIXES]
)
def test_a_wrong_fix_is_rejected_by_both_checks_and_named_by_neither(name, i, wrong):
    from course_lib.exercises.problems import FIND_THE_BUG

    exercise = OPTIMIZER_CLASS_EXERCISES[name]
    assert exercise.kind == FIND_THE_BUG and exercise.variants == {}
    with pytest.raises(checks.ExerciseFailed) as info:
        SELF_CHECKS[name](_as_student_class(wrong))
    assert "Diagnosis" not in str(info.value) and "after step" in str(info.value)
    probe = probes.PROBES[name]
    failed = []
    for case in probe.make_cases("never named"):
        expected = _sandbox_result(probe, exercise.reference, case)
        passed, message = probes.compare_case(
            probe, case, expected, _sandbox_result(probe, wrong, case)
        )
        if not passed:
            failed.append(message)
    assert failed, f"{name}: the grader accepted wrong fix {i} on every hidden case"
    assert not [m for m in failed if "Diagnosis" in m]


def test_a_find_the_bug_exercise_cannot_be_given_diagnoses():
    from course_lib.exercises.optimizer_classes import OptimizerClassExercise
    from course_lib.exercises.problems import FIND_THE_BUG, IMPLEMENT

    common = dict(
        name="x", class_name="X", reference=torch.optim.SGD, reference_name="SGD",
        self_check_hypers=(), hidden_hypers=(),
    )  # fmt: skip
    named = {"a sentence that would give the bug away": torch.optim.SGD}
    with pytest.raises(ValueError, match="never names"):
        OptimizerClassExercise(**common, variants=named, kind=FIND_THE_BUG)
    # without a kind: diagnosed mistakes mean "implement", none mean "find the bug"
    assert OptimizerClassExercise(**common, variants=named).kind == IMPLEMENT
    assert OptimizerClassExercise(**common, variants={}).kind == FIND_THE_BUG


def test_self_check_and_grader_say_float32_with_the_same_sentence():
    from course_lib.exercises.mistakes import COMPUTED_IN_FLOAT32

    def in_float32(beta, t):
        return float(1 - torch.tensor(beta, dtype=torch.float32) ** t)

    assert COMPUTED_IN_FLOAT32 in _self_check_diagnoses("bias_correction", in_float32)
    # the grader, on a case where float32 shows (β close to 1, first step)
    probe = probes.PROBES["bias_correction"]
    case = {"label": "beta=0.999, t=1", "args": [0.999, 1]}
    got = [torch.tensor([in_float32(0.999, 1)], dtype=D)]
    assert probe.diagnose(case, got) == [COMPUTED_IN_FLOAT32]
