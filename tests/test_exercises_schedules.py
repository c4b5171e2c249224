"""Chapter 07's exercises: references against torch, mistakes diagnosed, the bug never named."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import checks
from course_lib.exercises import NUMBER_EXERCISES
from course_lib.exercises.schedules import (
    NOAM_PEAK_LR,
    RANGE_TEST_LR,
    RESTART_RUN,
    SGDR_LR,
    ref_noam_peak_lr,
    ref_restart_run,
    ref_sgdr_lr,
    restart_problem,
)
from course_lib.grading import probes
from course_lib.optim.schedules import CosineWarmRestarts, Noam


def _torch_sgdr(step, lr, T_0, T_mult, lr_min):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0, T_mult, lr_min)
    for _ in range(step):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"]


def _all_cases(exercise):
    gen = torch.Generator().manual_seed(0)
    return exercise.self_check_cases(gen) + exercise.hidden_cases(gen)


def test_chapter_07_exercises_are_registered_with_probes():
    for name in ("sgdr_lr", "noam_peak_lr", "restart_run", "range_test_lr"):
        assert name in NUMBER_EXERCISES and name in probes.PROBES


@pytest.mark.parametrize("case", _all_cases(SGDR_LR), ids=lambda c: c.label)
def test_sgdr_reference_is_torchs_cosine_annealing_warm_restarts(case):
    assert ref_sgdr_lr(*case.args) == pytest.approx(_torch_sgdr(*case.args), rel=1e-9, abs=1e-15)


def test_every_sgdr_mistake_is_caught_and_named_by_the_self_check():
    cases = SGDR_LR.self_check_cases(torch.Generator().manual_seed(0))
    for why, wrong in SGDR_LR.variants.items():
        caught = [c for c in cases if not SGDR_LR.is_right(c.args, wrong(*c.args))]
        assert caught, f"no self-check case catches: {why}"
        assert why in SGDR_LR.diagnose(caught[0].args, wrong(*caught[0].args))
        with pytest.raises(AssertionError, match="Diagnosis|probably"):
            checks.check_sgdr_lr(wrong)


def test_noam_peak_is_the_maximum_of_the_schedule():
    for d_model, warmup in ((512, 4000), (64, 100), (1024, 37)):
        lrs = [Noam(d_model, warmup)(t) for t in range(3 * warmup)]
        assert max(lrs) == pytest.approx(ref_noam_peak_lr(d_model, warmup), rel=1e-12)
    assert ref_noam_peak_lr(512, 4000) == pytest.approx(6.9877e-4, rel=1e-4)


def test_every_noam_mistake_is_diagnosed():
    case = NOAM_PEAK_LR.self_check_cases(None)[0]
    for why, wrong in NOAM_PEAK_LR.variants.items():
        got = wrong(*case.args)
        assert not NOAM_PEAK_LR.is_right(case.args, got)
        assert why in NOAM_PEAK_LR.diagnose(case.args, got)


def _momentum_reset_run(T_0, T_mult, steps, lr):
    """The notebook's buggy loop: re-creates the optimizer (and so its momentum) at restarts."""
    A, w0 = restart_problem()
    w = w0.clone().requires_grad_()
    schedule = CosineWarmRestarts(lr=lr, T_0=T_0, T_mult=T_mult)
    opt = torch.optim.SGD([w], lr=lr, momentum=0.9)
    for t in range(steps):
        if t > 0 and schedule.cycle(t)[1] == 0:
            opt = torch.optim.SGD([w], lr=lr, momentum=0.9)
        opt.param_groups[0]["lr"] = schedule(t)
        loss = 0.5 * w @ A @ w
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(0.5 * w.detach() @ A @ w.detach())


def test_restart_reference_keeps_the_momentum_and_equals_scheduled_lr():
    from course_lib.optim.schedules import ScheduledLR

    A, w0 = restart_problem()
    w = w0.clone().requires_grad_()
    opt = torch.optim.SGD([w], lr=0.05, momentum=0.9)
    sched = ScheduledLR(opt, CosineWarmRestarts(0.05, T_0=8, T_mult=2))
    for _ in range(60):
        loss = 0.5 * w @ A @ w
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert ref_restart_run(8, 2, 60, 0.05) == pytest.approx(
        float(0.5 * w.detach() @ A @ w.detach()), rel=1e-12
    )


def test_the_restart_bug_fails_self_check_and_grader_without_a_diagnosis(capsys):
    cases = _all_cases(RESTART_RUN)
    assert any(RESTART_RUN.is_right(c.args, _momentum_reset_run(*c.args)) for c in cases)
    hidden = RESTART_RUN.hidden_cases(torch.Generator().manual_seed(0))
    assert all(not RESTART_RUN.is_right(c.args, _momentum_reset_run(*c.args)) for c in hidden)
    with pytest.raises(AssertionError) as err:
        checks.check_restart_run(_momentum_reset_run)
    assert "T_0=10, T_mult=1, steps=35" in str(err.value)
    assert "Diagnosis" not in str(err.value) and "momentum" not in str(err.value)
    assert RESTART_RUN.diagnose(hidden[0].args, _momentum_reset_run(*hidden[0].args)) == []


def test_range_test_measurement_band_and_self_check(capsys):
    assert RANGE_TEST_LR.rtol == 0.15
    want = RANGE_TEST_LR.reference(0)
    assert 1e-3 < want < 1.0
    assert checks.check_range_test_lr(lambda seed: RANGE_TEST_LR.reference(seed))
    with pytest.raises(AssertionError, match="above the reference"):
        checks.check_range_test_lr(lambda seed: 1.3 * RANGE_TEST_LR.reference(seed))
    assert math.isfinite(RANGE_TEST_LR.reference(3))


def test_the_student_notebook_gives_no_answer_away():
    """The implement/compute docstrings state the task, never the formula; the buggy loop is
    the only code of its exercise."""
    import json
    from pathlib import Path

    nb = json.loads(
        (Path(__file__).resolve().parent.parent / "exercises" / "07_schedules.ipynb").read_text()
    )
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for leak in ("math.cos", "** -0.5", "**-0.5", "suggest_lr(result", "T_mult**", 'min/10")'):
        assert leak not in code, leak
