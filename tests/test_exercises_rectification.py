"""Chapter 08's exercises: the references agree with torch.optim.RAdam and course_lib's Adan,
every classic mistake is caught and diagnosed (or, for the bug hunt, caught and never named)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import checks, optim
from course_lib.exercises.rectification import (
    ADAN_BUG_HUNT,
    FIRST_RECTIFIED_STEP,
    RADAM_RECTIFIER,
    ref_first_rectified_step,
    ref_radam_rectifier,
)
from course_lib.experiments.rectification import step_sizes, switch_step

ROOT = Path(__file__).resolve().parents[1]


def _solutions_cell(grade_id: str) -> str:
    nb = json.loads((ROOT / "solutions" / "08_radam_nadam_adan.ipynb").read_text())
    [cell] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    return "".join(cell["source"])


def _adan_classes() -> dict:
    namespace = {"torch": torch}
    exec(_solutions_cell("buggy_adan"), namespace)  # noqa: S102
    exec(_solutions_cell("adan_bug_hunt_code"), namespace)  # noqa: S102
    return namespace


def test_first_rectified_step_is_where_torch_radam_starts_to_rectify():
    for beta2 in (0.72, 0.8, 0.9, 0.999):
        steps = step_sizes(torch.optim.RAdam, np.ones(15), lr=1.0, betas=(0.9, beta2), eps=0.0)
        first = int(np.argmax(~np.isclose(steps, 1.0))) + 1
        assert ref_first_rectified_step(beta2, 5.0) == first == switch_step(beta2, 5.0)
    assert ref_first_rectified_step(0.999, 4.0) == 5


def test_radam_rectifier_is_torch_radams_step_on_a_constant_gradient():
    steps = step_sizes(torch.optim.RAdam, np.ones(400), lr=1.0, betas=(0.9, 0.995), eps=0.0)
    first = ref_first_rectified_step(0.995, 5.0)
    mine = [ref_radam_rectifier(0.995, t) for t in range(first, 401)]
    np.testing.assert_allclose(steps[first - 1 :], mine, rtol=1e-12)


@pytest.mark.parametrize("exercise", [FIRST_RECTIFIED_STEP, RADAM_RECTIFIER], ids=lambda e: e.name)
def test_every_mistake_is_caught_on_the_self_check_and_on_the_hidden_cases(exercise):
    gen = torch.Generator().manual_seed(0)
    for cases in (exercise.self_check_cases(gen), exercise.hidden_cases(gen)):
        for why, wrong in exercise.variants.items():
            caught = [c for c in cases if not exercise.is_right(c.args, float(wrong(*c.args)))]
            assert caught, f"{exercise.name}: {why!r} passes every case"
            assert all(why in exercise.diagnose(c.args, float(wrong(*c.args))) for c in caught)


def test_first_rectified_step_hidden_cases_defeat_the_rho_equals_t_shortcut():
    cases = FIRST_RECTIFIED_STEP.hidden_cases(torch.Generator().manual_seed(5))
    assert all(ref_first_rectified_step(*c.args) != int(c.args[1]) + 1 for c in cases)


def test_rectifier_cases_are_rectified_steps():
    from course_lib.optim.blocks.rectification import radam_rho

    gen = torch.Generator().manual_seed(1)
    for case in RADAM_RECTIFIER.self_check_cases(gen) + RADAM_RECTIFIER.hidden_cases(gen):
        assert radam_rho(case.args[1], case.args[0]) > 5


def test_the_self_checks_pass_the_references_and_name_a_mistake():
    assert checks.check_first_rectified_step(ref_first_rectified_step)
    assert checks.check_radam_rectifier(ref_radam_rectifier)
    with pytest.raises(AssertionError, match="square root"):
        checks.check_radam_rectifier(lambda beta2, t: ref_radam_rectifier(beta2, t) ** 2)


def test_adan_bug_hunt_self_check_says_where_but_never_what():
    classes = _adan_classes()
    with pytest.raises(AssertionError) as info:
        checks.check_adan_bug_hunt(classes["BuggyAdan"])
    message = str(info.value)
    assert "quadratic 1" in message and "after step 2" in message
    assert "Diagnosis" not in message and "previous" not in message and "first" not in message
    assert checks.check_adan_bug_hunt(classes["FixedAdan"])


def test_adan_bug_hunt_grader_fails_the_bug_and_passes_the_fix():
    from course_lib.grading import probes
    from tests.test_exercises import _sandbox_result

    classes = _adan_classes()
    probe = probes.PROBES["adan_bug_hunt"]
    for case in probe.make_cases("adan"):
        expected = _sandbox_result(probe, optim.Adan, case)
        passed, message = probes.compare_case(
            probe, case, expected, _sandbox_result(probe, classes["BuggyAdan"], case)
        )
        assert not passed and "Diagnosis" not in message
        fixed = _sandbox_result(probe, classes["FixedAdan"], case)
        assert probes.compare_case(probe, case, expected, fixed) == (True, "")


def test_adan_wrong_answers_each_differ_from_adan():
    gen = torch.Generator().manual_seed(0)
    for wrong in ADAN_BUG_HUNT.wrong_answers:
        differs = [
            not torch.allclose(
                ADAN_BUG_HUNT.trajectory(wrong, c), ADAN_BUG_HUNT.trajectory(optim.Adan, c)
            )
            for c in ADAN_BUG_HUNT.hidden_cases(gen)
        ]
        assert any(differs), wrong
