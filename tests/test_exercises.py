"""The exercises are defined once: the self-check and the grader diagnose every mistake alike.

Each classic mistake (a *variant* in :mod:`course_lib.exercises`) is run as a student's answer
through the student's self-check (:mod:`course_lib.checks`) and through the grader's comparison
(:func:`course_lib.grading.probes.compare_case`); both must name it with its own sentence. The
import tests keep the exercises below the grader and free of circles.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from course_lib import checks
from course_lib.exercises import NUMBER_EXERCISES, OPTIMIZER_CLASS_EXERCISES, RULES
from course_lib.exercises.optimizer_classes import FIXED_ADAM, QuadraticCase
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
    why = next(why for why in FIXED_ADAM.variants if why.startswith("missing bias correction"))
    trajectory = FIXED_ADAM.trajectory(FIXED_ADAM.variants[why], case)
    # uncorrected first step: lr·(1−β1)g / sqrt((1−β2) g²) = 0.1·0.1/sqrt(0.001)
    assert torch.allclose(trajectory[0], case.quadratic.w0 - 0.1 * 0.1 / math.sqrt(0.001))
    assert trajectory.shape == (3, 2)
    assert FIXED_ADAM.diagnose(case, trajectory) == [why]


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
# Chapters 00-01 (issue #12): find-the-bug, a measured number, and docstrings without the code
# ---------------------------------------------------------------------------------------------

ROOT = PACKAGE.parent


def _solutions_function(chapter: str, name: str):
    """Define ``name`` from the cell of ``solutions/<chapter>.ipynb`` that defines it."""
    import json

    nb = json.loads((ROOT / "solutions" / f"{chapter}.ipynb").read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {name}(" in text:
            namespace: dict = {"torch": torch}
            exec(compile(text, f"<{chapter}:{name}>", "exec"), namespace)  # noqa: S102
            return namespace[name], text
    raise LookupError(f"{name} is not defined in solutions/{chapter}.ipynb")


def test_the_buggy_early_stopping_rule_fails_the_self_check_and_the_grader_without_a_diagnosis():
    from course_lib.exercises.stopping_rules import EARLY_STOPPING_EPOCH

    buggy, _ = _solutions_function("00_orientation", "buggy_early_stopping_epoch")
    with pytest.raises(AssertionError) as info:
        checks.check_early_stopping_epoch(buggy)
    assert "val_losses=" in str(info.value) and "Diagnosis" not in str(info.value)
    assert EARLY_STOPPING_EPOCH.variants == {}, "a find-the-bug exercise never names the bug"
    probe = probes.PROBES["early_stopping_epoch"]
    reference = EARLY_STOPPING_EPOCH.reference
    failed = []
    for case in probe.make_cases("buggy"):
        passed, message = probes.compare_case(
            probe, case, _sandbox_result(probe, reference, case), _sandbox_result(probe, buggy, case)
        )
        if not passed:
            failed.append(message)
    assert failed and all("Diagnosis" not in m for m in failed)


def test_a_measured_number_is_graded_within_its_band():
    from course_lib.exercises.sgd_measures import STABILITY_RATIO

    probe = probes.PROBES["stability_ratio"]
    assert probe.rtol == STABILITY_RATIO.rtol == 0.03 and probe.atol == 0.0
    case = probe.make_cases("band")[0]
    expected = {"out": [_data(2.0)], "mutated": []}
    assert probes.compare_case(probe, case, expected, {"out": [_data(2.04)], "mutated": []})[0]
    passed, message = probes.compare_case(probe, case, expected, {"out": [_data(2.1)], "mutated": []})
    assert not passed and "expected 2" in message
    assert STABILITY_RATIO.is_right((1,), STABILITY_RATIO.reference(1) * 1.02)
    assert not STABILITY_RATIO.is_right((1,), STABILITY_RATIO.reference(1) * 1.05)


def test_the_stability_self_check_says_how_far_off_a_measurement_is():
    with pytest.raises(AssertionError, match=r"seed=1: .* 50% above the reference measurement"):
        checks.check_stability_ratio(lambda seed: 1.5 * STABILITY_REFERENCE_AT_SEED_1())


def STABILITY_REFERENCE_AT_SEED_1() -> float:  # noqa: N802 - a cached constant
    from course_lib.exercises.sgd_measures import ref_stability_ratio

    return ref_stability_ratio(1)


@pytest.mark.slow
def test_the_stability_seeds_have_a_single_divergence_boundary():
    """Every correct bisection lands on the same learning rate only if "diverges" switches once."""
    import numpy as np
    from torch import nn

    from course_lib.exercises.sgd_measures import (
        HIDDEN_STABILITY_SEEDS,
        STABILITY_EPOCHS,
        STABILITY_STEPS,
    )
    from course_lib.experiments.sharpness import top_hessian_eigenvalue
    from course_lib.experiments.stability import digits_checkpoint, gd_diverges

    for seed in (1, *HIDDEN_STABILITY_SEEDS):
        model, X, y = digits_checkpoint(seed, epochs=STABILITY_EPOCHS)
        lam = top_hessian_eigenvalue(model, nn.functional.cross_entropy, (X, y)).eigenvalue
        scan = [
            gd_diverges(model, X, y, f * 2 / lam, steps=STABILITY_STEPS)
            for f in np.geomspace(0.5, 8, 60)
        ]
        switches = sum(a != b for a, b in zip(scan, scan[1:]))
        assert not scan[0] and scan[-1] and switches == 1, (seed, scan)


@pytest.mark.parametrize(
    "chapter, name, forbidden",
    [
        ("00_orientation", "classify_critical_point", ("eigvalsh", "> tol", "< -tol")),
        ("00_orientation", "gradient_tolerance", ("mu * delta", "mu*delta", "μδ")),
        ("01_gradient_descent", "sgd_step", ("p - lr", "lr * g", "lr·g")),
        ("01_gradient_descent", "divergence_threshold", ("2 /", "2/", "λ_max")),
        ("01_gradient_descent", "sgd_noise_floor", ("(2 -", "2 − ", "σ² /")),
    ],
)
def test_implement_and_derive_docstrings_do_not_contain_the_answer(chapter, name, forbidden):
    function, _ = _solutions_function(chapter, name)
    doc = function.__doc__ or ""
    assert doc.strip(), f"{name} needs a docstring stating the task and the interface"
    assert not [f for f in forbidden if f in doc], doc
