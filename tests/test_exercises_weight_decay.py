"""Chapter 05's exercises: decay_half_life's reference against torch, and the AdamW bug hunt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from course_lib import checks
from course_lib.exercises.weight_decay import (
    ADAMW_BUG_HUNT,
    DECAY_HALF_LIFE,
    ref_decay_half_life,
)
from course_lib.grading import probes

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions" / "05_weight_decay.ipynb"


def _cell(grade_id: str) -> str:
    nb = json.loads(SOLUTIONS.read_text())
    [cell] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    return "".join(cell["source"])


def _classes() -> dict:
    namespace = {"torch": torch}
    exec(_cell("buggy_adamw"), namespace)
    exec(_cell("adamw_bug_hunt_code"), namespace)
    return namespace


def _steps_until_half(make, v_hat_grad: float | None = None) -> int:
    w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = make([w])
    steps = 0
    while w.item() > 0.5:
        w.grad = torch.zeros(1, dtype=torch.float64)
        opt.step()
        steps += 1
    return steps


@pytest.mark.parametrize("lr, lam", [(1e-3, 0.1), (3e-4, 0.05), (1e-2, 0.01), (0.05, 0.5)])
def test_decoupled_half_life_is_what_torch_adamw_does(lr, lam):
    steps = _steps_until_half(lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=lam))
    assert ref_decay_half_life(lr, lam, 0.3, 1e-8, True) == steps


@pytest.mark.parametrize("lr, lam, v_hat", [(1e-3, 0.1, 1e-4), (1e-2, 0.05, 0.01), (0.1, 0.2, 4.0)])
def test_l2_half_life_is_the_decay_part_of_an_rmsprop_like_step_with_fixed_v(lr, lam, v_hat):
    """With β1 = 0 and v̂ held fixed, Adam + L2's step on a zero data gradient is w·ηλ/(√v̂+ε)."""
    w = torch.ones((), dtype=torch.float64)
    steps = 0
    while w > 0.5:
        w = w - lr * lam * w / (v_hat**0.5 + 1e-8)
        steps += 1
    assert ref_decay_half_life(lr, lam, v_hat, 1e-8, False) == steps


def test_half_life_cases_are_in_range_and_not_near_ties():
    import math

    for gen_seed in range(4):
        for case in DECAY_HALF_LIFE.hidden_cases(torch.Generator().manual_seed(gen_seed)):
            lr, lam, v_hat, eps, decoupled = case.args
            d = lr * lam if decoupled else lr * lam / (math.sqrt(v_hat) + eps)
            assert 0 < d < 0.5
            k = ref_decay_half_life(*case.args)
            assert (1 - d) ** k <= 0.5 < (1 - d) ** (k - 1)
    kinds = {c.args[-1] for c in DECAY_HALF_LIFE.hidden_cases(torch.Generator().manual_seed(0))}
    assert kinds == {True, False}


def test_adamw_bug_hunt_self_check_says_where_but_never_what():
    classes = _classes()
    with pytest.raises(AssertionError) as info:
        checks.check_adamw_bug_hunt(classes["BuggyAdamW"])
    message = str(info.value)
    assert "quadratic 1" in message and "Diagnosis" not in message
    assert "l2" not in message.lower() and "decay" not in message.lower().split("weight_decay")[0]
    assert checks.check_adamw_bug_hunt(classes["FixedAdamW"])


def test_the_buggy_adamw_is_adam_with_l2():
    """The handed-out class is exactly torch's Adam(weight_decay=λ): the bug is the one the
    lesson teaches, not an accident of the code."""
    classes = _classes()
    for hyper in ADAMW_BUG_HUNT.hidden_hypers:
        a = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.3], dtype=torch.float64))
        b = torch.nn.Parameter(a.detach().clone())
        buggy, adam = classes["BuggyAdamW"]([a], **hyper), torch.optim.Adam([b], **hyper)
        for _ in range(10):
            for x, opt in ((a, buggy), (b, adam)):
                opt.zero_grad()
                (x**4).sum().backward()
                opt.step()
        assert torch.allclose(a, b, rtol=1e-12, atol=0)


def test_adamw_bug_hunt_grader_rejects_the_bug_and_every_wrong_answer_unnamed():
    from tests.test_exercises import _sandbox_result

    classes = _classes()
    probe = probes.PROBES["adamw_bug_hunt"]
    wrong = [classes["BuggyAdamW"], *ADAMW_BUG_HUNT.wrong_answers]
    for case in probe.make_cases("bug hunt"):
        expected = _sandbox_result(probe, torch.optim.AdamW, case)
        for answer in wrong:
            passed, message = probes.compare_case(
                probe, case, expected, _sandbox_result(probe, answer, case)
            )
            assert not passed and "Diagnosis" not in message
        fixed = _sandbox_result(probe, classes["FixedAdamW"], case)
        assert probes.compare_case(probe, case, expected, fixed) == (True, "")
