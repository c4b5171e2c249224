"""Chapter 10's exercises: lion_step, lion_decay_steps and the Lion bug hunt."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lion_pytorch
import pytest
import torch

from course_lib import checks, optim
from course_lib.exercises import sign_optimizers as ex
from course_lib.grading import probes

ROOT = Path(__file__).resolve().parents[1]
D = torch.float64


def _solution_cells(*grade_ids: str) -> dict:
    """Run the cells of solutions/10_sign_optimizers.ipynb with these grade_ids; their names."""
    nb = json.loads((ROOT / "solutions" / "10_sign_optimizers.ipynb").read_text())
    namespace: dict = {"torch": torch}
    for grade_id in grade_ids:
        for cell in nb["cells"]:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                exec(compile("".join(cell["source"]), grade_id, "exec"), namespace)  # noqa: S102
    return namespace


def test_ref_lion_step_is_lion_pytorch_and_the_course_lion():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(7, generator=gen, dtype=D)
    params = [torch.nn.Parameter(w.clone()) for _ in range(2)]
    opts = [
        lion_pytorch.Lion([params[0]], lr=0.05, betas=(0.8, 0.95), weight_decay=0.3),
        optim.Lion([params[1]], lr=0.05, betas=(0.8, 0.95), weight_decay=0.3),
    ]
    p, m = w.clone(), torch.zeros(7, dtype=D)
    for _ in range(10):
        g = torch.randn(7, generator=gen, dtype=D)
        for q, opt in zip(params, opts):
            q.grad = g.clone()
            opt.step()
        p, m = ex.ref_lion_step(p, g, m, 0.05, 0.8, 0.95, 0.3)
    for q in params:
        assert torch.allclose(q.detach(), p, rtol=0, atol=1e-14)


def test_lion_decay_steps_reference_is_what_lion_does():
    for lr, weight_decay, fraction in ((0.01, 0.5, 0.3), (0.05, 0.2, 0.7)):
        steps = ex.ref_lion_decay_steps(lr, weight_decay, fraction)
        w = torch.nn.Parameter(torch.ones(2, dtype=D))
        opt = optim.Lion([w], lr=lr, weight_decay=weight_decay)
        values = []
        for _ in range(steps):
            w.grad = torch.zeros_like(w)
            opt.step()
            values.append(w[0].item())
        assert values[-1] <= fraction < values[-2]


def test_lion_decay_hidden_cases_are_away_from_integers():
    for seed in range(5):
        for case in ex.LION_DECAY_STEPS.hidden_cases(torch.Generator().manual_seed(seed)):
            q = math.log(case.args[2]) / math.log1p(-case.args[0] * case.args[1])
            assert abs(q - round(q)) > 0.01


@pytest.mark.parametrize("wrong", ex.LION_BUG_HUNT.wrong_answers, ids=lambda c: c.__name__)
def test_every_wrong_lion_fails_the_self_check_and_the_grader(wrong):
    with pytest.raises(AssertionError) as info:
        checks.check_lion_bug_hunt(wrong)
    assert "after step" in str(info.value)
    assert "Diagnosis" not in str(info.value)
    gen = torch.Generator().manual_seed(123)
    cases = ex.LION_BUG_HUNT.hidden_cases(gen)
    assert any(
        not torch.allclose(
            ex.LION_BUG_HUNT.trajectory(wrong, case),
            ex.LION_BUG_HUNT.trajectory(ex.LION_BUG_HUNT.reference, case),
        )
        for case in cases
    )


def test_the_handed_out_buggy_lion_is_the_momentum_first_mistake_and_the_fix_passes():
    names = _solution_cells("buggy_lion", "lion_bug_hunt_code")
    case = ex.LION_BUG_HUNT.self_check_cases(torch.Generator().manual_seed(0))[0]
    buggy = ex.LION_BUG_HUNT.trajectory(names["BuggyLion"], case)
    assert torch.allclose(buggy, ex.LION_BUG_HUNT.trajectory(ex.LionMomentumFirst, case))
    with pytest.raises(AssertionError):
        checks.check_lion_bug_hunt(names["BuggyLion"])
    assert checks.check_lion_bug_hunt(names["FixedLion"])
    assert probes.PROBES["lion_bug_hunt"].target == "FixedLion"


def test_lion_step_solution_passes_and_its_docstring_gives_nothing_away():
    names = _solution_cells("lion_step_code", "lion_decay_steps_code")
    assert checks.check_lion_step(names["lion_step"])
    assert checks.check_lion_decay_steps(names["lion_decay_steps"])
    doc = names["lion_step"].__doc__ + names["lion_decay_steps"].__doc__
    assert "sign(" not in doc and "log" not in doc and "1 - lr" not in doc
