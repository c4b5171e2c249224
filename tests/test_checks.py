"""The self-check helpers: references match torch.optim, and every known mistake is diagnosed."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import checks
from course_lib.exercises import RULES
from course_lib.exercises.adaptive_rules import (
    ref_adagrad_step,
    ref_adam_step,
    ref_adamw_step,
    ref_rmsprop_step,
)
from course_lib.exercises.mistakes import COMPUTED_IN_FLOAT32
from course_lib.exercises.number_answers import (
    ref_bias_correction,
    ref_divergence_threshold,
    ref_optimal_momentum,
)
from course_lib.exercises.sgd_rules import ref_momentum_step, ref_nesterov_step, ref_sgd_step

D = torch.float64


# ---------------------------------------------------------------------------------------------
# The references are the real thing: compare with torch.optim over several steps
# ---------------------------------------------------------------------------------------------


def _torch_run(make_opt, p0, grads):
    w = torch.nn.Parameter(p0.clone())
    opt = make_opt([w])
    for g in grads:
        w.grad = g.clone()
        opt.step()
    return w.detach()


def _ref_run(step, state_names, p0, grads, hyper, with_t=False):
    p = p0.clone()
    state = [torch.zeros_like(p0) for _ in state_names]
    for t, g in enumerate(grads, 1):
        args = [p, g, *state] + ([t] if with_t else []) + list(hyper)
        out = step(*args)
        out = out if isinstance(out, tuple) else (out,)
        p, state = out[0], list(out[1:])
    return p


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(1)
    p0 = torch.randn(6, generator=gen, dtype=D)
    grads = [torch.randn(6, generator=gen, dtype=D) for _ in range(5)]
    return p0, grads


@pytest.mark.parametrize(
    "name, make_opt, step, state, hyper, with_t",
    [
        ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1), ref_sgd_step, [], [0.1], False),
        (
            "momentum",
            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
            ref_momentum_step,
            ["v"],
            [0.1, 0.9],
            False,
        ),
        (
            "nesterov",
            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
            ref_nesterov_step,
            ["v"],
            [0.1, 0.9],
            False,
        ),
        (
            "adagrad",
            lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-3),
            ref_adagrad_step,
            ["G"],
            [0.1, 1e-3],
            False,
        ),
        (
            "rmsprop",
            lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-3),
            ref_rmsprop_step,
            ["v"],
            [0.01, 0.9, 1e-3],
            False,
        ),
        (
            "adam",
            lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-3),
            ref_adam_step,
            ["m", "v"],
            [0.01, 0.9, 0.99, 1e-3],
            True,
        ),
        (
            "adamw",
            lambda ps: torch.optim.AdamW(
                ps, lr=0.01, betas=(0.9, 0.99), eps=1e-3, weight_decay=0.1
            ),
            ref_adamw_step,
            ["m", "v"],
            [0.01, 0.9, 0.99, 1e-3, 0.1],
            True,
        ),
    ],
)
def test_reference_matches_torch_optim(problem, name, make_opt, step, state, hyper, with_t):
    p0, grads = problem
    want = _torch_run(make_opt, p0, grads)
    got = _ref_run(step, state, p0, grads, hyper, with_t)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_numbers():
    assert ref_divergence_threshold(torch.diag(torch.tensor([1.0, 10.0]))) == pytest.approx(0.2)
    assert ref_bias_correction(0.9, 2) == pytest.approx(0.19)
    assert ref_optimal_momentum(9.0) == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# Correct work passes, quietly or not
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RULES))
def test_reference_passes_its_check(name, capsys):
    helper = getattr(checks, f"check_{name}")
    assert helper(RULES[name].reference) is True
    assert "✓" in capsys.readouterr().out


def test_number_checks_pass():
    assert checks.check_divergence_threshold(ref_divergence_threshold)
    assert checks.check_divergence_threshold(0.2, torch.diag(torch.tensor([1.0, 10.0])))
    assert checks.check_bias_correction(ref_bias_correction)
    assert checks.check_bias_correction(1 - 0.9**3, beta=0.9, t=3)
    assert checks.check_optimal_momentum(ref_optimal_momentum)
    assert checks.check_optimal_momentum(0.25, kappa=9.0)


# ---------------------------------------------------------------------------------------------
# Every known mistake is caught and named
# ---------------------------------------------------------------------------------------------

VARIANTS = [(name, why) for name, rule in RULES.items() for why in rule.variants]


@pytest.mark.parametrize("name, why", VARIANTS, ids=[f"{n}:{w[:30]}" for n, w in VARIANTS])
def test_each_variant_is_diagnosed(name, why, capsys):
    rule = RULES[name]
    with pytest.raises(AssertionError) as info:
        getattr(checks, f"check_{name}")(rule.variants[why])
    assert "Diagnosis" in str(info.value)
    assert why in str(info.value)
    assert "expected" in str(info.value) and "got" in str(info.value)
    assert isinstance(info.value, checks.ExerciseFailed)
    assert info.value._render_traceback_()[0].startswith("\x1b[31m✗ ")  # Jupyter's red ✗ line
    assert capsys.readouterr().out == ""  # the verdict is the exception, not a print


def test_failure_names_case_element_and_values():
    def off(p, g, lr):
        out = p - lr * g
        out[..., -1] += 1.0
        return out

    with pytest.raises(AssertionError) as info:
        checks.check_sgd_step(off)
    msg = str(info.value)
    assert "fixed case" in msg and "element [2]" in msg and "expected" in msg


def test_off_by_one_step_reported_in_trajectory():
    def late(p, g, m, v, t, lr, b1, b2, eps):
        if t < 3:
            return ref_adam_step(p, g, m, v, t, lr, b1, b2, eps)
        return ref_adam_step(p, g, m, v, t + 1, lr, b1, b2, eps)

    with pytest.raises(AssertionError, match="t\\+1"):
        checks.check_adam_step(late)


def test_in_place_modification_is_caught():
    def sneaky(p, g, v, lr, mu):
        v.mul_(mu).add_(g)
        return p - lr * v, v

    with pytest.raises(AssertionError, match="in place.*changed: v"):
        checks.check_momentum_step(sneaky)

    def grad_clip(p, g, lr):
        g.clamp_(-0.1, 0.1)
        return p - lr * g

    with pytest.raises(AssertionError, match="changed: g"):
        checks.check_sgd_step(grad_clip)


def test_not_implemented_and_bad_types():
    def todo(p, g, lr):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        checks.check_sgd_step(todo)
    with pytest.raises(AssertionError, match="tuple of 2 tensors"):
        checks.check_momentum_step(lambda p, g, v, lr, mu: p - lr * g)
    with pytest.raises(AssertionError, match="must be a torch.Tensor"):
        checks.check_sgd_step(lambda p, g, lr: (p - lr * g).tolist())
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        checks.check_sgd_step(lambda p, g, lr: 1 / 0)
    with pytest.raises(AssertionError, match="expects your function"):
        checks.check_sgd_step(3)


def test_number_mistakes_are_diagnosed():
    A = torch.diag(torch.tensor([1.0, 10.0], dtype=D))
    with pytest.raises(AssertionError, match="factor 2 is missing"):
        checks.check_divergence_threshold(0.1, A)
    with pytest.raises(AssertionError, match="smallest eigenvalue"):
        checks.check_divergence_threshold(lambda M: 2 / torch.linalg.eigvalsh(M).min().item())
    with pytest.raises(AssertionError, match="you returned βᵗ"):
        checks.check_bias_correction(lambda b, t: b**t)
    with pytest.raises(AssertionError, match="t\\+1"):
        checks.check_bias_correction(1 - 0.9**4, beta=0.9, t=3)
    with pytest.raises(AssertionError, match="square is missing"):
        checks.check_optimal_momentum(lambda k: (math.sqrt(k) - 1) / (math.sqrt(k) + 1))
    with pytest.raises(AssertionError, match="must be a number"):
        checks.check_optimal_momentum("0.25", kappa=9.0)


class _Buggy(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p = p - group["lr"] * p.grad  # noqa: PLW2901 - the bug under test


class _NoMemory(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.state[p].get("buf", torch.zeros_like(p))
                buf = group["momentum"] * buf + p.grad
                p.add_(buf, alpha=-group["lr"])


def test_class_checks():
    assert checks.check_sgd_class(torch.optim.SGD)
    assert checks.check_momentum_class(torch.optim.SGD)
    with pytest.raises(checks.ExerciseFailed, match="after step 1 the parameters are") as info:
        checks.check_sgd_class(_Buggy)
    assert "Diagnosis" not in str(info.value)  # find the bug: the check never names it
    with pytest.raises(checks.ExerciseFailed, match="quadratic 1 .*after step 2") as info:
        checks.check_momentum_class(_NoMemory)
    assert "Diagnosis" not in str(info.value) and "momentum" not in str(info.value).split(":")[-1]
    with pytest.raises(AssertionError, match="must be a class"):
        checks.check_sgd_class(lambda ps, lr: None)


class _Adam(torch.optim.Optimizer):
    """A from-scratch Adam whose step counter may start at ``start`` (1 is the correct value)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, start=1):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
        self.start = start

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=self.start - 1, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (state["v"] / (1 - beta2**t)).sqrt().add_(group["eps"])
                p.addcdiv_(state["m"] / (1 - beta1**t), denom, value=-group["lr"])


def test_check_adam_class_accepts_a_correct_adam(capsys):
    assert checks.check_adam_class(_Adam) is True
    assert "✓ _Adam" in capsys.readouterr().out


def test_check_adam_class_rejects_an_off_by_one_step_counter_without_naming_it():
    class OffByOne(_Adam):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            super().__init__(params, lr, betas, eps, start=2)

    with pytest.raises(checks.ExerciseFailed, match="after step 1 the parameters are") as info:
        checks.check_adam_class(OffByOne)
    assert "off-by-one" not in str(info.value) and "Diagnosis" not in str(info.value)


def test_check_adam_class_diagnoses_torch_adam_mistakes():
    with pytest.raises(AssertionError, match="must be a class"):
        checks.check_adam_class(lambda ps: None)

    class Broken(_Adam):
        def step(self, closure=None):
            raise RuntimeError("boom")

    with pytest.raises(AssertionError, match="RuntimeError: boom"):
        checks.check_adam_class(Broken)


# ---------------------------------------------------------------------------------------------
# The diagnoses the issue asked for, and one wording for "not started"
# ---------------------------------------------------------------------------------------------


def test_float32_answers_are_recognised():
    # 1 − 0.999¹ in float32 is 0.0009999871, not 0.001
    with pytest.raises(checks.ExerciseFailed, match="float32") as info:
        checks.check_bias_correction(lambda beta, t: float(1 - torch.tensor(beta) ** t))
    assert "expected 0.001, got 0.0009999871" in str(info.value)
    with pytest.raises(checks.ExerciseFailed, match="float32"):
        checks.check_bias_correction(float(1 - torch.tensor(0.999) ** 1), beta=0.999, t=1)

    def rmsprop_float32(p, g, v, lr, alpha, eps):
        p32, g32, v32 = p.float(), g.float(), v.float()
        v_new = alpha * v32 + (1 - alpha) * g32 * g32
        return p32 - lr * g32 / (v_new.sqrt() + eps), v_new

    # update rules are compared with a tolerance that float32 arithmetic meets: accepted ...
    assert checks.check_rmsprop_step(rmsprop_float32)
    # ... and where float32 does show, the same sentence explains it
    rule = RULES["rmsprop_step"]
    kwargs = {"p": torch.tensor([1.0, -2.0], dtype=D), "g": torch.tensor([0.3, 0.1], dtype=D),
              "v": torch.zeros(2, dtype=D), "lr": 0.01, "alpha": 0.9, "eps": 1e-3}  # fmt: skip
    got = rule.call(rmsprop_float32, kwargs)
    assert COMPUTED_IN_FLOAT32 in rule.diagnose(kwargs, got)
    assert COMPUTED_IN_FLOAT32 not in rule.diagnose(kwargs, rule.call(ref_rmsprop_step, kwargs))


def test_new_diagnoses_name_the_mistake():
    def adam_storing_corrected(p, g, m, v, t, lr, b1, b2, eps):
        m_new, v_new = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m_new / (1 - b1**t), v_new / (1 - b2**t)
        return p - lr * m_hat / (v_hat.sqrt() + eps), m_hat, v_hat

    with pytest.raises(checks.ExerciseFailed, match="bias-corrected m̂ and v̂ as the new state"):
        checks.check_adam_step(adam_storing_corrected)

    def rmsprop_without_square(p, g, v, lr, alpha, eps):
        v_new = alpha * v + (1 - alpha) * g
        return p - lr * g / (v_new.sqrt() + eps), v_new

    with pytest.raises(checks.ExerciseFailed, match="v is built from g instead of g²"):
        checks.check_rmsprop_step(rmsprop_without_square)

    def adagrad_as_rmsprop(p, g, G, lr, eps):
        G_new = 0.9 * G + 0.1 * g * g
        return p - lr * g / (G_new.sqrt() + eps), G_new

    with pytest.raises(checks.ExerciseFailed, match="AdaGrad written with an EMA"):
        checks.check_adagrad_step(adagrad_as_rmsprop)


def _stub(*args):
    raise NotImplementedError()


class _StubSGD(torch.optim.SGD):
    def step(self, closure=None):
        raise NotImplementedError()


@pytest.mark.parametrize(
    "check, answer, name",
    [
        (checks.check_sgd_step, _stub, "sgd_step"),
        (checks.check_adam_step, _stub, "adam_step"),
        (checks.check_bias_correction, _stub, "bias_correction"),
        (checks.check_divergence_threshold, _stub, "divergence_threshold"),
        (checks.check_sgd_class, _StubSGD, "_StubSGD"),
    ],
)
def test_an_unsolved_exercise_says_the_same_one_line_everywhere(check, answer, name):
    from course_lib.exercises.mistakes import NOT_IMPLEMENTED

    with pytest.raises(checks.ExerciseNotSolved) as info:
        check(answer)
    assert str(info.value) == f"{name}: {NOT_IMPLEMENTED}"
    assert info.value._render_traceback_() == [f"\x1b[31m✗ {name}: {NOT_IMPLEMENTED}\x1b[0m"]


def test_a_not_implemented_error_with_a_message_is_a_bug_not_a_stub():
    def half_done(p, g, lr):
        raise NotImplementedError("only 1-D")

    with pytest.raises(checks.ExerciseFailed, match="raised NotImplementedError: only 1-D") as info:
        checks.check_sgd_step(half_done)
    assert not isinstance(info.value, checks.ExerciseNotSolved)


def test_self_check_turns_asserts_and_stubs_into_verdicts():
    with pytest.raises(checks.ExerciseFailed) as info, checks.self_check("my_rule"):
        raise AssertionError("my_rule(1): expected 2")
    assert info.value.name == "my_rule" and str(info.value) == "my_rule(1): expected 2"
    with pytest.raises(checks.ExerciseNotSolved, match="my_rule: not implemented yet"):
        with checks.self_check("my_rule"):
            _stub()


def test_the_notebook_display_is_installed_only_in_a_kernel_and_never_under_nbgrader(monkeypatch):
    class Kernelless:
        kernel = None

    assert checks.install_notebook_display(Kernelless()) is False
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")

    class Shell:
        kernel = object()
        custom_exceptions = ()

    assert checks.install_notebook_display(Shell()) is False
