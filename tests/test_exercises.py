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
# Chapter 02 (issue #12): momentum_lr_limit and FixedMomentumOptimizer
# ---------------------------------------------------------------------------------------------

SELF_CHECKS["fixed_momentum_optimizer"] = checks.check_momentum_optimizer


# ---------------------------------------------------------------------------------------------
# Chapter 03: CenteredRMSprop (param groups), FixedAdagrad (find the bug), a number
# ---------------------------------------------------------------------------------------------


from course_lib.exercises.adaptive_rates import (  # noqa: E402
    CENTERED_RMSPROP,
    FIXED_ADAGRAD,
    RMSPROP_LR_AFTER_SPIKE,
    GroupsCase,
    ref_rmsprop_lr_after_spike,
)

SELF_CHECKS.update(
    {
        "centered_rmsprop": checks.check_centered_rmsprop_class,
        "fixed_adagrad": checks.check_adagrad_class,
        "rmsprop_lr_after_spike": checks.check_rmsprop_lr_after_spike,
    }
)


class CenteredRMSpropReadingDefaults(torch.optim.Optimizer):
    """Centered RMSprop that reads its hyperparameters from ``self.defaults``, not the group."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        lr, alpha, eps = (self.defaults[k] for k in ("lr", "alpha", "eps"))
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["v"], state["m"] = torch.zeros_like(p), torch.zeros_like(p)
                state["v"].mul_(alpha).addcmul_(p.grad, p.grad, value=1 - alpha)
                state["m"].mul_(alpha).add_(p.grad, alpha=1 - alpha)
                denominator = (state["v"] - state["m"] ** 2).sqrt() + eps
                p.addcdiv_(p.grad, denominator, value=-lr)


class AdagradAsRunningMean(torch.optim.Optimizer):
    """The find-the-bug class of the chapter 03 exercises (the accumulator is an average)."""

    def __init__(self, params, lr=1e-2, eps=1e-10, *, rescale_lr=False):
        super().__init__(params, dict(lr=lr, eps=eps))
        self.rescale_lr = rescale_lr

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"], state["mean"] = 0, torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                state["mean"].mul_(1 - 1 / t).addcmul_(p.grad, p.grad, value=1 / t)
                lr = group["lr"] / math.sqrt(t) if self.rescale_lr else group["lr"]
                p.addcdiv_(p.grad, state["mean"].sqrt().add_(group["eps"]), value=-lr)


def test_the_group_case_catches_hyperparameters_read_from_the_defaults():
    gen = torch.Generator().manual_seed(0)
    cases = CENTERED_RMSPROP.self_check_cases(gen)
    single, grouped = cases[:-1], cases[-1]
    assert isinstance(grouped, GroupsCase)
    for case in single:  # one group: the defaults are the group's values, no difference
        want = CENTERED_RMSPROP.trajectory(CENTERED_RMSPROP.reference, case)
        got = CENTERED_RMSPROP.trajectory(CenteredRMSpropReadingDefaults, case)
        assert torch.allclose(got, want)
    want = CENTERED_RMSPROP.trajectory(CENTERED_RMSPROP.reference, grouped)
    assert torch.equal(want[:, -2:], grouped.c0.expand(len(want), 2))  # c never moves
    with pytest.raises(AssertionError, match="two param groups"):
        checks.check_centered_rmsprop_class(CenteredRMSpropReadingDefaults)


def test_the_reference_class_passes_and_the_variants_differ_from_it():
    assert checks.check_centered_rmsprop_class(_as_student_class(CENTERED_RMSPROP.reference))
    assert checks.check_adagrad_class(_as_student_class(torch.optim.Adagrad))
    case = CENTERED_RMSPROP.self_check_cases(torch.Generator().manual_seed(1))[0]
    want = CENTERED_RMSPROP.trajectory(CENTERED_RMSPROP.reference, case)
    for why, variant in CENTERED_RMSPROP.variants.items():
        assert not torch.allclose(CENTERED_RMSPROP.trajectory(variant, case), want), why


@pytest.mark.parametrize("rescale_lr", [False, True], ids=["as given", "half-fixed"])
def test_the_buggy_adagrad_fails_where_it_should_without_a_diagnosis(rescale_lr):
    student = partial(AdagradAsRunningMean, rescale_lr=rescale_lr)
    with pytest.raises(AssertionError) as info:
        checks.check_adagrad_class(_as_student_class(student))
    message = str(info.value)
    assert "Diagnosis" not in message  # find the bug: say where, never what
    assert "after step 1 " not in message  # the first step is AdaGrad's
    # the grader finds it wrong on its hidden cases too, also without naming the bug
    probe = probes.PROBES["fixed_adagrad"]
    results = []
    for case in probe.make_cases("buggy adagrad"):
        expected = _sandbox_result(probe, torch.optim.Adagrad, case)
        results.append(
            probes.compare_case(probe, case, expected, _sandbox_result(probe, student, case))
        )
    assert not all(passed for passed, _ in results)
    assert not any("Diagnosis" in message for _, message in results)


def test_rmsprop_lr_after_spike_is_what_torch_rmsprop_does():
    gen = torch.Generator().manual_seed(0)
    cases = RMSPROP_LR_AFTER_SPIKE.self_check_cases(gen) + RMSPROP_LR_AFTER_SPIKE.hidden_cases(gen)
    assert any(case.args[0] < case.args[1] for case in cases)  # a case before the spike
    for case in cases:
        t, spike_step, spike, base, lr, beta, eps = case.args
        grads = [spike if s == spike_step else base for s in range(1, t + 1)]
        w = torch.zeros(1, dtype=D, requires_grad=True)
        opt = torch.optim.RMSprop([w], lr=lr, alpha=beta, eps=eps)
        for g in grads:
            before = w.detach().clone()
            w.grad = torch.full((1,), g, dtype=D)
            opt.step()
        measured = ((before - w.detach()).abs() / abs(grads[-1])).item()
        assert measured == pytest.approx(ref_rmsprop_lr_after_spike(*case.args), rel=1e-9), (
            case.label
        )


def test_fixed_adagrad_has_no_diagnoses():
    assert FIXED_ADAGRAD.variants == {}


# ---------------------------------------------------------------------------------------------
# Chapter 04 (appended): uncorrected_peak_step, state_bytes, the Adam bug hunt
# ---------------------------------------------------------------------------------------------

SELF_CHECKS["adam_bug_hunt"] = checks.check_adam_bug_hunt


def _chapter_04_cell(grade_id: str) -> str:
    """The source of the cell of ``solutions/04_adam.ipynb`` with this nbgrader ``grade_id``."""
    import json

    nb = json.loads((PACKAGE.parent / "solutions" / "04_adam.ipynb").read_text())
    [cell] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    return "".join(cell["source"])


def _chapter_04_classes() -> dict:
    """``BuggyAdam`` as handed out and ``FixedAdam`` as the solutions notebook repairs it."""
    namespace = {"torch": torch}
    exec(_chapter_04_cell("buggy_adam"), namespace)
    exec(_chapter_04_cell("adam_bug_hunt_code"), namespace)
    return namespace


def test_uncorrected_peak_step_reference_matches_the_lesson():
    from course_lib.exercises.adam_exercises import ref_uncorrected_peak_step

    assert ref_uncorrected_peak_step(0.9, 0.999) == 12
    assert ref_uncorrected_peak_step(0.99, 0.999) == 136
    assert ref_uncorrected_peak_step(0.5, 0.999) == 2
    assert ref_uncorrected_peak_step(0.0, 0.999) == 1


def test_uncorrected_peak_step_hidden_cases_are_clear_and_one_is_late():
    from course_lib.exercises.adam_exercises import UNCORRECTED_PEAK_STEP, _clear_peak

    cases = UNCORRECTED_PEAK_STEP.hidden_cases(torch.Generator().manual_seed(3))
    assert len(cases) == 5 and all(b2 > b1 and _clear_peak(b1, b2) for b1, b2 in (c.args for c in cases))
    assert UNCORRECTED_PEAK_STEP.reference(*cases[-1].args) > 100  # catches a search that stops at 100


def test_state_bytes_reference_is_what_the_course_optimizers_hold():
    from course_lib import optim
    from course_lib.exercises.adam_exercises import STATE_BUFFERS, ref_state_bytes
    from course_lib.train import make_mlp

    classes = {"SGD": (optim.SGD, {}), "SGD+momentum": (optim.SGD, {"momentum": 0.9}),
               "Adagrad": (optim.Adagrad, {}), "RMSprop": (optim.RMSprop, {}), "Adam": (optim.Adam, {}),
               "AdamW": (optim.AdamW, {}), "Adamax": (optim.Adamax, {})}
    assert set(classes) == set(STATE_BUFFERS)
    for (n_in, n_hidden, n_out), dtype in (((7, 13, 3), torch.float32), ((20, 5, 2), torch.float64),
                                           ((4, 9, 6), torch.bfloat16)):
        for name, (cls, kwargs) in classes.items():
            model = make_mlp(n_in, n_hidden, n_out, seed=0).to(dtype)
            opt = cls(model.parameters(), lr=1e-3, **kwargs)
            model(torch.randn(3, n_in, dtype=dtype)).sum().backward()
            opt.step()
            nbytes = torch.finfo(dtype).bits // 8
            assert ref_state_bytes(n_in, n_hidden, n_out, name, nbytes) == optim.state_bytes(opt), name


def test_adam_bug_hunt_self_check_says_where_but_never_what():
    classes = _chapter_04_classes()
    with pytest.raises(AssertionError) as info:
        checks.check_adam_bug_hunt(classes["BuggyAdam"])
    message = str(info.value)
    assert "quadratic 1" in message and "after step 1" in message
    assert "Diagnosis" not in message and "bias" not in message.lower()
    assert checks.check_adam_bug_hunt(classes["FixedAdam"])


def test_adam_bug_hunt_grader_fails_the_bug_without_a_diagnosis():
    classes = _chapter_04_classes()
    probe = probes.PROBES["adam_bug_hunt"]
    for case in probe.make_cases("bug hunt"):
        expected = _sandbox_result(probe, torch.optim.Adam, case)
        passed, message = probes.compare_case(
            probe, case, expected, _sandbox_result(probe, classes["BuggyAdam"], case)
        )
        assert not passed and "Diagnosis" not in message
        fixed = _sandbox_result(probe, classes["FixedAdam"], case)
        assert probes.compare_case(probe, case, expected, fixed) == (True, "")


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
        ("00_orientation", "gradient_tolerance", ("m * delta", "m*delta", "mδ", "mu * delta")),
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


# --- chapter 05 ---------------------------------------------------------------------------------
# decay_half_life's self-check comes from NUMBER_EXERCISES above; the bug hunt's is named here.
# Its own tests: tests/test_exercises_weight_decay.py.

SELF_CHECKS["adamw_bug_hunt"] = checks.check_adamw_bug_hunt


# --- chapter 10 ---------------------------------------------------------------------------------
# lion_step, lion_decay_steps (diagnosed through VARIANTS above), the Lion bug hunt

SELF_CHECKS["lion_bug_hunt"] = checks.check_lion_bug_hunt


# --- chapter 06 -------------------------------------------------------------------------------

SELF_CHECKS["amsgrad"] = checks.check_amsgrad


# --- chapter 08 ---: first_rectified_step, radam_rectifier, the Adan bug hunt

SELF_CHECKS["adan_bug_hunt"] = checks.check_adan_bug_hunt


def test_chapter_08_docstrings_do_not_contain_the_answer():
    function, _ = _solutions_function("08_radam_nadam_adan", "radam_rectifier")
    doc = function.__doc__ or ""
    assert doc.strip() and not [f for f in ("rho - 4", "ρ_t - 4", "(ρ−4)", "sqrt(") if f in doc]
    function, _ = _solutions_function("08_radam_nadam_adan", "first_rectified_step")
    assert "2 / (1" not in (function.__doc__ or "")


def test_chapter_08_solutions_pass_their_self_checks():
    for name in ("first_rectified_step", "radam_rectifier"):
        function, _ = _solutions_function("08_radam_nadam_adan", name)
        assert SELF_CHECKS[name](function)


# --- chapter 11 ---
# AdamWFromBlocks (implement), composed_state_bytes and ftrl_weight (compute)

SELF_CHECKS["adamw_from_blocks"] = checks.check_adamw_from_blocks


def test_composed_state_bytes_reference_is_what_the_composer_holds():
    from course_lib.exercises.composition import MOMENTA, SCALINGS, ref_composed_state_bytes
    from course_lib.optim import ComposedOptimizer

    for momentum in MOMENTA:
        for scaling in SCALINGS:
            if momentum == "adaptive_inertia" and scaling != "none":
                continue
            w = torch.zeros(37, dtype=D, requires_grad=True)
            opt = ComposedOptimizer([w], momentum=momentum, scaling=scaling, lr=0.1)
            w.grad = torch.ones_like(w)
            opt.step()
            want = ref_composed_state_bytes(momentum, scaling, 37, 8)
            assert want == optim_state_bytes(opt), (momentum, scaling)


def optim_state_bytes(opt) -> int:
    from course_lib.optim import state_bytes

    return state_bytes(opt)


def test_ftrl_weight_reference_is_the_experiments_closed_form():
    import numpy as np

    from course_lib.exercises.composition import FTRL_WEIGHT, ref_ftrl_weight
    from course_lib.experiments.ftrl_proximal import ftrl_weights

    gen = torch.Generator().manual_seed(0)
    cases = FTRL_WEIGHT.self_check_cases(gen) + FTRL_WEIGHT.hidden_cases(gen)
    zeros = 0
    for case in cases:
        z, n, alpha, beta, l1, l2 = case.args
        vector = ftrl_weights(np.array([z]), np.array([n]), alpha, beta, l1, l2)[0]
        assert vector == pytest.approx(ref_ftrl_weight(*case.args), rel=1e-12, abs=0)
        zeros += ref_ftrl_weight(*case.args) == 0.0
    assert zeros >= 3, "some cases must test the threshold (answer exactly 0)"


def test_adamw_from_blocks_solution_cell_passes_and_the_composer_is_accepted():
    import json

    nb = json.loads((PACKAGE.parent / "solutions" / "11_putting_it_together.ipynb").read_text())
    [cell] = [c for c in nb["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade_id") == "adamw_from_blocks_code"]
    namespace = {"torch": torch}
    exec("".join(cell["source"]), namespace)
    assert checks.check_adamw_from_blocks(namespace["AdamWFromBlocks"])
