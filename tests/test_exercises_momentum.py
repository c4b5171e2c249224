"""Chapter 02's exercises: the reference answers are right, and the find-the-bug stays silent."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.exercises.momentum import (
    FIXED_MOMENTUM_OPTIMIZER,
    MOMENTUM_LR_LIMIT,
    WRONG_FIXES,
    BuggyMomentumOptimizer,
    ref_momentum_lr_limit,
)
from course_lib.exercises.problems import Quadratic, quadratic_trajectory, random_spd
from course_lib.experiments import momentum
from course_lib.experiments.stability import bisect_threshold
from course_lib.grading import probes

ROOT = Path(__file__).resolve().parent.parent
D = torch.float64


@pytest.mark.parametrize("method", momentum.METHODS)
@pytest.mark.parametrize("mu", [0.0, 0.3, 0.7, 0.9, 0.99])
def test_the_limit_is_where_the_iteration_matrix_reaches_rate_one(method, mu):
    """The closed form against the spectral radius of the 2×2 matrix, found by bisection."""
    A = torch.diag(torch.tensor([0.5, 4.0], dtype=D))
    limit = bisect_threshold(
        lambda lr: momentum.convergence_rate(method, lr * 4.0, mu) >= 1.0, 1e-3, 10.0, rtol=1e-10
    )
    assert ref_momentum_lr_limit(A, mu, method == "nesterov") == pytest.approx(limit, rel=1e-8)


@pytest.mark.parametrize("nesterov", [False, True])
def test_torch_sgd_converges_below_the_limit_and_diverges_above(nesterov):
    gen = torch.Generator().manual_seed(7)
    A = random_spd(gen, 4, min_eigenvalue=0.5, max_eigenvalue=5.0)
    mu = 0.8
    limit = ref_momentum_lr_limit(A, mu, nesterov)

    def final_norm(lr: float) -> float:
        w = torch.nn.Parameter(torch.ones(4, dtype=D))
        opt = torch.optim.SGD([w], lr=lr, momentum=mu, nesterov=nesterov)
        for _ in range(3000):
            opt.zero_grad()
            (0.5 * w @ (A @ w)).backward()
            opt.step()
        return float(w.detach().norm())

    assert final_norm(0.98 * limit) < 1e-3
    assert final_norm(1.02 * limit) > 1e3


def test_the_visible_cases_cover_both_methods():
    cases = MOMENTUM_LR_LIMIT.self_check_cases(torch.Generator().manual_seed(0))
    hidden = MOMENTUM_LR_LIMIT.hidden_cases(torch.Generator().manual_seed(0))
    for group in (cases, hidden):
        assert {case.args[2] for case in group} == {False, True}
        assert all(case.args[1] > 0 for case in group)  # with μ = 0 both limits are GD's
    assert checks.check_momentum_lr_limit(ref_momentum_lr_limit)


def test_the_buggy_class_is_right_for_heavy_ball_and_wrong_for_nesterov():
    case = FIXED_MOMENTUM_OPTIMIZER.self_check_cases(torch.Generator().manual_seed(0))[0]
    for nesterov in (False, True):
        hyper = {"lr": 0.05, "momentum": 0.7, "nesterov": nesterov}
        run = case.__class__(case.label, case.quadratic, hyper, 6)
        given = FIXED_MOMENTUM_OPTIMIZER.trajectory(BuggyMomentumOptimizer, run)
        torch_run = FIXED_MOMENTUM_OPTIMIZER.trajectory(torch.optim.SGD, run)
        assert torch.allclose(given, torch_run) is (not nesterov)
    assert checks.check_momentum_optimizer(torch.optim.SGD)


def test_the_self_check_says_where_not_what():
    """A find-the-bug self-check names the input and the step, never the bug."""
    with pytest.raises(AssertionError) as info:
        checks.check_momentum_optimizer(BuggyMomentumOptimizer)
    message = str(info.value)
    assert "nesterov=True" in message and "after step 1" in message
    assert "Diagnosis" not in message
    for word in ("velocity", "look", "before", "old", "update", "v_k", "heavy"):
        assert word not in message.lower()


def _student_class(make_optimizer):
    """A class called like the student's, ``cls(params, **hyper)``, building ``make_optimizer``."""

    class StudentsClass:
        def __new__(cls, params, **hyper):
            return make_optimizer(params, **hyper)

    return StudentsClass


def _grader_verdict(answer) -> tuple[bool, str]:
    """The grader's verdict on the first hidden case that ``answer`` gets wrong (or the last)."""
    probe = probes.PROBES[FIXED_MOMENTUM_OPTIMIZER.name]

    def sent_back(make, case):
        quadratic = Quadratic(*(torch.tensor(case[k], dtype=D) for k in ("A", "b", "w0")))
        path = quadratic_trajectory(lambda p: make(p, **case["hyper"]), quadratic, case["steps"])
        return {"out": [{"data": path.tolist(), "shape": list(path.shape)}]}

    for case in probe.make_cases("one wording"):
        expected = sent_back(FIXED_MOMENTUM_OPTIMIZER.reference, case)
        passed, message = probes.compare_case(probe, case, expected, sent_back(answer, case))
        if not passed:
            return passed, message
    return passed, message


@pytest.mark.parametrize("wrong", WRONG_FIXES, ids=lambda make: make.__name__)
def test_every_wrong_fix_is_rejected_and_never_named(wrong):
    with pytest.raises(AssertionError) as info:
        checks.check_momentum_optimizer(_student_class(wrong))
    assert "after step" in str(info.value) and "Diagnosis" not in str(info.value)
    passed, message = _grader_verdict(wrong)
    assert not passed and "Diagnosis" not in message, message


def test_the_grader_accepts_torch_sgd():
    assert _grader_verdict(torch.optim.SGD)[0]


def test_the_notebook_hands_out_the_same_class():
    nb = json.loads((ROOT / "solutions" / "02_momentum.ipynb").read_text())
    source = textwrap.dedent(inspect.getsource(BuggyMomentumOptimizer)).strip()
    cells = ["".join(c["source"]).strip() for c in nb["cells"] if c["cell_type"] == "code"]
    assert source in cells


def test_the_solutions_use_every_new_exercise():
    nb = json.loads((ROOT / "solutions" / "02_momentum.ipynb").read_text())
    grade_ids = {
        c["metadata"]["nbgrader"]["grade_id"]
        for c in nb["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade")
    }
    assert {"momentum_lr_limit", "fixed_momentum_optimizer"} <= grade_ids
    assert np.isclose(
        sum(
            c["metadata"]["nbgrader"]["points"]
            for c in nb["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade")
        ),
        7,
    )
