"""Self-checks that exercise cells call: fast, exact, and kind.

Every exercise in the course asks you to write a *pure function* on tensors. "Pure" means: it
returns new tensors and leaves its inputs alone (no ``p.sub_(...)``, no ``g.mul_(...)``). The
helpers below run your function on small fixed inputs and on random problems, compare it with a
float64 reference, and print a short verdict. When the answer is wrong they tell you *where* (which
case, which step, which element, expected vs got) and, when your output matches a well-known
mistake, *what* probably went wrong: each known mistake is implemented as a "variant" of the
reference, and the diagnosis is simply the variant whose output equals yours.

The signatures you implement (all tensors float64, same shape; hyperparameters are Python floats;
``t`` is the 1-based number of the step being taken, so the very first step has ``t = 1``)::

    sgd_step(p, g, lr)                                      -> p_new
    momentum_step(p, g, v, lr, mu)                          -> (p_new, v_new)   # PyTorch form
    nesterov_step(p, g, v, lr, mu)                          -> (p_new, v_new)   # PyTorch form
    adagrad_step(p, g, G, lr, eps)                          -> (p_new, G_new)
    rmsprop_step(p, g, v, lr, alpha, eps)                   -> (p_new, v_new)
    adam_step(p, g, m, v, t, lr, beta1, beta2, eps)         -> (p_new, m_new, v_new)
    adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (p_new, m_new, v_new)
    bias_correction(beta, t)                                -> 1 - beta**t   (a float)
    divergence_threshold(A)                                 -> 2 / lambda_max(A)  (a float)
    optimal_momentum(kappa)                                 -> ((sqrt(kappa)-1)/(sqrt(kappa)+1))**2

Find-the-bug exercises fix a ``torch.optim.Optimizer`` subclass instead; ``check_sgd_class(cls)``
and ``check_momentum_class(cls)`` run it for 10 steps on random quadratics and compare the whole
trajectory with ``torch.optim.SGD``, ``check_adam_class(cls)`` with ``torch.optim.Adam``.

The update rules, exactly as the course (and PyTorch) defines them:

* SGD:       ``p ← p − lr·g``
* momentum:  ``v ← μ·v + g``;  ``p ← p − lr·v``                       (dampening 0)
* Nesterov:  ``v ← μ·v + g``;  ``p ← p − lr·(g + μ·v)``   (PyTorch's rewrite: no look-ahead call)
* AdaGrad:   ``G ← G + g²``;   ``p ← p − lr·g / (√G + ε)``
* RMSprop:   ``v ← α·v + (1−α)·g²``;  ``p ← p − lr·g / (√v + ε)``      (ε outside the root)
* Adam:      ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
  ``m̂ = m/(1−β1ᵗ)``, ``v̂ = v/(1−β2ᵗ)``; ``p ← p − lr·m̂/(√v̂ + ε)``
* AdamW:     ``p ← p·(1 − lr·λ)`` (decoupled decay), then the Adam step with the raw gradient.

Each ``check_*`` helper prints ``✓ …`` and returns ``True`` when everything matches. Otherwise it
raises :class:`ExerciseFailed` (an ``AssertionError``) whose message says where and, for implement
tasks, which classic mistake your output matches; Jupyter shows that message as a short red ✗
block, without a traceback into this module. An exercise you have not started (its cell still
says ``raise NotImplementedError()``) raises :class:`ExerciseNotSolved`, whose message is the
same one line for every exercise: ``✗ sgd_step: not implemented yet — replace `raise
NotImplementedError()` with your code.``

**Run All on an exercise notebook.** Importing this module in a notebook kernel installs a small
display hook (:func:`install_notebook_display`) so that a student who opens the exercises and
runs every cell sees one ✗ line per unsolved exercise and reaches the end of the notebook:

- an unsolved exercise's check cell prints its ✗ line and does *not* count as an error, so Run
  All goes on (a wrong answer still stops it: fix that one first);
- a cell that calls a function still raising ``NotImplementedError`` (a measurement using your
  ``sgd_step``) prints ``↷ skipped: this cell needs `sgd_step`, which is not implemented yet``,
  and so do cells that need a name such a skipped cell would have defined;
- a failed ``assert`` in a notebook cell shows the condition that was expected and the values
  its names had, instead of an empty ``AssertionError``.

Under nbgrader (``NBGRADER_EXECUTION`` is set by ``nbgrader autograde`` and ``validate``) and in
plain Python nothing is installed: every unsolved or wrong answer raises, so its test cell fails.

The references, the known mistakes with their diagnoses and the cases live in
:mod:`course_lib.exercises`; the instructor's grader reads the same definitions, so its feedback
names a mistake with the same sentence as your self-check. Find-the-bug exercises never name
their bug: their self-check says *that* the class is still wrong and on which input.

Writing a new ``check_*``: build it on :func:`_check_rule`, :func:`_run_number_function` /
:func:`_check_number` or :func:`_check_optimizer_class`, or wrap its body in
``with self_check("name"):`` so that ``NotImplementedError`` and failed asserts become the same
verdicts as everywhere else. In a notebook, a check that raises a plain ``AssertionError`` is
shown the same way (its message as a ✗ line, no traceback; one it raised while catching the
stub's ``NotImplementedError`` as the unsolved line); do not print the ✗ line yourself.
"""

from __future__ import annotations

import ast
import contextlib
import linecache
import math
import os
import sys
from collections.abc import Callable

import torch

from course_lib.exercises import RULES
from course_lib.exercises.mistakes import MODIFIED_AN_INPUT, NOT_IMPLEMENTED
from course_lib.exercises.number_answers import (
    BIAS_CORRECTION,
    DIVERGENCE_THRESHOLD,
    NUMBER_ATOL,
    NUMBER_RTOL,
    OPTIMAL_MOMENTUM,
    NumberExercise,
)
from course_lib.exercises.optimizer_classes import (
    FIXED_ADAM,
    FIXED_MOMENTUM_SGD,
    FIXED_SGD,
    SELF_CHECK_STEPS,
    OptimizerClassExercise,
)
from course_lib.exercises.problems import ATOL, DTYPE, RTOL
from course_lib.exercises.update_rule import Rule

__all__ = [
    "ExerciseFailed",
    "ExerciseNotSolved",
    "check_adagrad_step",
    "check_adam_class",
    "check_adam_step",
    "check_adamw_step",
    "check_bias_correction",
    "check_divergence_threshold",
    "check_momentum_class",
    "check_momentum_step",
    "check_nesterov_step",
    "check_optimal_momentum",
    "check_rmsprop_step",
    "check_sgd_class",
    "check_sgd_step",
    "install_notebook_display",
    "self_check",
]


# ---------------------------------------------------------------------------------------------
# Update rules: pure functions on tensors
# ---------------------------------------------------------------------------------------------


def check_sgd_step(sgd_step: Callable, seed: int = 0) -> bool:
    """Check ``sgd_step(p, g, lr) -> p_new`` against ``p − lr·g``."""
    return _check_rule("sgd_step", sgd_step, seed)


def check_momentum_step(momentum_step: Callable, seed: int = 0) -> bool:
    """Check ``momentum_step(p, g, v, lr, mu) -> (p_new, v_new)`` (PyTorch heavy ball)."""
    return _check_rule("momentum_step", momentum_step, seed)


def check_nesterov_step(nesterov_step: Callable, seed: int = 0) -> bool:
    """Check ``nesterov_step(p, g, v, lr, mu) -> (p_new, v_new)`` (PyTorch's Nesterov)."""
    return _check_rule("nesterov_step", nesterov_step, seed)


def check_adagrad_step(adagrad_step: Callable, seed: int = 0) -> bool:
    """Check ``adagrad_step(p, g, G, lr, eps) -> (p_new, G_new)``."""
    return _check_rule("adagrad_step", adagrad_step, seed)


def check_rmsprop_step(rmsprop_step: Callable, seed: int = 0) -> bool:
    """Check ``rmsprop_step(p, g, v, lr, alpha, eps) -> (p_new, v_new)`` (ε outside the root)."""
    return _check_rule("rmsprop_step", rmsprop_step, seed)


def check_adam_step(adam_step: Callable, seed: int = 0) -> bool:
    """Check ``adam_step(p, g, m, v, t, lr, beta1, beta2, eps) -> (p_new, m_new, v_new)``.

    ``t`` is the 1-based index of the step being taken (bias correction uses ``1 − βᵗ``).
    """
    return _check_rule("adam_step", adam_step, seed)


def check_adamw_step(adamw_step: Callable, seed: int = 0) -> bool:
    """Check ``adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay)`` (decoupled)."""
    return _check_rule("adamw_step", adamw_step, seed)


def _check_rule(rule_name: str, fn: Callable, seed: int = 0) -> bool:
    """Run ``fn`` on every case of the rule; print ✓, or raise the verdict (:func:`self_check`)."""
    with self_check(rule_name):
        n_cases = _run_rule(RULES[rule_name], fn, seed)
    print(f"✓ {rule_name}: all {n_cases} cases match the reference. Well done!")
    return True


def _run_rule(rule: Rule, fn: Callable, seed: int) -> int:
    """Run every self-check case; return how many passed or raise at the first failure."""
    if not callable(fn):
        raise AssertionError(f"check_{rule.name} expects your function, got {_describe(fn)}")
    n_cases = 0
    for group in rule.self_check_cases(torch.Generator().manual_seed(seed)):
        students_state: dict = {}
        for case in group:
            got = _run_case(rule, fn, case.label, {**case.kwargs, **students_state})
            n_cases += 1
            if len(group) > 1:  # a trajectory goes on from the student's own p and state
                students_state = dict(zip(("p", *rule.state_args), got))
    return n_cases


def _run_case(rule: Rule, fn: Callable, where: str, kwargs: dict) -> tuple[torch.Tensor, ...]:
    """Call ``fn`` once and compare with the reference; return the student's outputs."""
    originals = {k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    students_args = {k: _clone(v) for k, v in kwargs.items()}
    try:
        with torch.no_grad():
            out = rule.call(fn, students_args)
    except NotImplementedError as exc:
        raise _unsolved_or_raised(rule.name, exc, where) from None
    except Exception as exc:  # the student's bug, reported plainly
        raise AssertionError(
            f"{where}: calling {rule.signature.split(' ->')[0]} raised {type(exc).__name__}: {exc}"
        ) from exc
    got = tuple(x.detach() for x in _as_outputs(rule, out, where))
    with torch.no_grad():
        want = rule.call(rule.reference, {k: _clone(v) for k, v in kwargs.items()})
    for name, w, g in zip(rule.outputs, want, got):
        if tuple(g.shape) != tuple(w.shape):
            raise AssertionError(
                f"{where}: {name} has shape {tuple(g.shape)}, expected {tuple(w.shape)}"
            )
    changed = [k for k, v in originals.items() if not torch.equal(students_args[k], v)]
    if changed:
        raise AssertionError(f"{where}: {MODIFIED_AN_INPUT} (changed: {', '.join(changed)})")
    for name, w, g in zip(rule.outputs, want, got):
        if not torch.allclose(g.to(DTYPE), w, rtol=RTOL, atol=ATOL):
            msg = f"{where}: {name} is wrong at {_first_mismatch(w, g)}"
            raise AssertionError(_with_diagnosis(msg, rule.diagnose(kwargs, got)))
    return tuple(x.clone() for x in got)


def _as_outputs(rule: Rule, out, where: str) -> tuple[torch.Tensor, ...]:
    """Validate the student's return value; raise ``AssertionError`` with a clear message."""
    n = len(rule.outputs)
    if n > 1 and not (isinstance(out, (tuple, list)) and len(out) == n):
        raise AssertionError(
            f"{where}: {rule.name} must return a tuple of {n} tensors "
            f"({', '.join(rule.outputs)}), got {_describe(out)}"
        )
    for name, x in zip(rule.outputs, out):
        if not isinstance(x, torch.Tensor):
            raise AssertionError(f"{where}: {name} must be a torch.Tensor, got {_describe(x)}")
    return tuple(out)


def _first_mismatch(expected: torch.Tensor, got: torch.Tensor) -> str:
    bad = ~torch.isclose(got.to(DTYPE), expected, rtol=RTOL, atol=ATOL, equal_nan=False)
    idx = tuple(int(i) for i in bad.nonzero()[0].tolist()) if bad.any() else ()
    e, g = expected[idx].item(), got.to(DTYPE)[idx].item()
    return f"element {list(idx)}: expected {e:.10g}, got {g:.10g}"


# ---------------------------------------------------------------------------------------------
# Numbers: a value, or a function returning one
# ---------------------------------------------------------------------------------------------


def check_divergence_threshold(value_or_fn, A=None, seed: int = 0) -> bool:
    """Check the GD divergence threshold ``2/λ_max(A)`` of ``f(w) = ½ wᵀAw``.

    Pass either a number together with the matrix ``A`` it was computed for, or a function
    ``divergence_threshold(A) -> float``, which is then also tried on random SPD matrices.
    """
    if callable(value_or_fn):
        n_cases = _run_number_function(
            DIVERGENCE_THRESHOLD, value_or_fn, "divergence_threshold(A)", seed
        )
        print(f"✓ divergence_threshold: all {n_cases} matrices match 2/λ_max. Well done!")
        return True
    if A is None:
        raise ValueError("check_divergence_threshold(value, A): pass the matrix A too")
    args = (torch.as_tensor(A, dtype=DTYPE),)
    with self_check("divergence_threshold"):
        _check_number(DIVERGENCE_THRESHOLD, args, value_or_fn, "the threshold", "your value")
    print("✓ the divergence threshold is right: lr* = 2/λ_max.")
    return True


def check_bias_correction(value_or_fn, beta: float | None = None, t: int | None = None) -> bool:
    """Check the bias-correction factor ``1 − βᵗ``: a function ``(beta, t) -> float`` or a value."""
    if callable(value_or_fn):
        return _number_exercise_passed(
            BIAS_CORRECTION, value_or_fn, "bias_correction(beta, t)", says="cases match 1 − βᵗ"
        )
    if beta is None or t is None:
        raise ValueError("check_bias_correction(value, beta=..., t=...): pass beta and t too")
    where = f"beta={beta}, t={t}"
    with self_check("bias_correction"):
        _check_number(BIAS_CORRECTION, (beta, t), value_or_fn, "the factor", where)
    print(f"✓ the bias-correction factor 1 − {beta}^{t} is right.")
    return True


def check_optimal_momentum(value_or_fn, kappa: float | None = None) -> bool:
    """Check ``((√κ − 1)/(√κ + 1))²``, the best heavy-ball μ on a quadratic with condition κ."""
    if callable(value_or_fn):
        return _number_exercise_passed(OPTIMAL_MOMENTUM, value_or_fn, "optimal_momentum(kappa)")
    if kappa is None:
        raise ValueError("check_optimal_momentum(value, kappa=...): pass kappa too")
    where = f"kappa={kappa}"
    with self_check("optimal_momentum"):
        _check_number(OPTIMAL_MOMENTUM, (kappa,), value_or_fn, "the optimal momentum", where)
    print("✓ the optimal momentum is right.")
    return True


def _run_number_function(exercise: NumberExercise, fn: Callable, what: str, seed: int = 0) -> int:
    """Check ``fn`` on every self-check case; return how many there were."""
    cases = exercise.self_check_cases(torch.Generator().manual_seed(seed))
    with self_check(exercise.name):
        for case in cases:
            try:
                got = fn(*[_clone(arg) for arg in case.args])
            except NotImplementedError as exc:
                raise _unsolved_or_raised(exercise.name, exc, case.label) from None
            except Exception as exc:  # the student's bug, reported plainly
                raise AssertionError(
                    f"{case.label}: {what} raised {type(exc).__name__}: {exc}"
                ) from exc
            _check_number(exercise, case.args, got, what, case.label)
    return len(cases)


def _number_exercise_passed(
    exercise: NumberExercise, fn: Callable, what: str, seed: int = 0, says: str = "cases match"
) -> bool:
    """:func:`_run_number_function`, then the one-line success message every number check prints."""
    n_cases = _run_number_function(exercise, fn, what, seed)
    print(f"✓ {exercise.name}: all {n_cases} {says}. Well done!")
    return True


def _check_number(exercise: NumberExercise, args: tuple, got, what: str, where: str) -> None:
    """Raise ``AssertionError`` (expected vs got, and a diagnosis) unless ``got`` is right."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if hasattr(got, "item") and not isinstance(got, (int, float)):
        got = got.item()  # NumPy scalars
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise AssertionError(f"{where}: {what} must be a number (float), got {_describe(got)}")
    got = float(got)
    want = exercise.reference(*args)
    if math.isclose(got, want, rel_tol=NUMBER_RTOL, abs_tol=NUMBER_ATOL):
        return
    msg = _with_diagnosis(
        f"{where}: {what} expected {want:.10g}, got {got:.10g}", exercise.diagnose(args, got)
    )
    raise AssertionError(msg)


# ---------------------------------------------------------------------------------------------
# Optimizer classes (find-and-fix-the-bug exercises)
# ---------------------------------------------------------------------------------------------


def check_sgd_class(cls, seed: int = 0) -> bool:
    """Check an SGD class ``cls(params, lr, weight_decay=0)`` against ``torch.optim.SGD``."""
    return _check_optimizer_class(FIXED_SGD, cls, seed)


def check_momentum_class(cls, seed: int = 0) -> bool:
    """Check a heavy-ball class ``cls(params, lr, momentum)`` against ``torch.optim.SGD``."""
    return _check_optimizer_class(FIXED_MOMENTUM_SGD, cls, seed)


def check_adam_class(cls, seed: int = 0) -> bool:
    """Check an Adam class ``cls(params, lr, betas, eps)`` against ``torch.optim.Adam`` (ch. 04).

    Diagnoses the classic mistakes of ``adam_step`` (missing bias correction, off-by-one step
    count, ε inside the root …), each run as a whole optimizer.
    """
    return _check_optimizer_class(FIXED_ADAM, cls, seed)


def _check_optimizer_class(exercise: OptimizerClassExercise, cls, seed: int) -> bool:
    """Compare the trajectories of ``cls`` and the reference on every self-check quadratic.

    A find-the-bug exercise (``exercise.kind``) gets no diagnosis: the message says on which
    quadratic and after which step the parameters differ, never what the bug is.
    """
    name = cls.__name__ if isinstance(cls, type) else exercise.class_name
    cases = exercise.self_check_cases(torch.Generator().manual_seed(seed))
    with self_check(name):
        if not isinstance(cls, type):
            raise AssertionError(f"{name} must be a class, got {_describe(cls)}")
        for case in cases:
            want = exercise.trajectory(exercise.reference, case)
            try:
                got = exercise.trajectory(cls, case)
            except NotImplementedError as exc:
                raise _unsolved_or_raised(name, exc, case.label) from None
            except Exception as exc:
                raise AssertionError(
                    f"{case.label}: {name} raised {type(exc).__name__}: {exc}"
                ) from exc
            close = torch.isclose(got, want, rtol=RTOL, atol=ATOL)
            if bool(close.all()):
                continue
            step = int((~close).any(dim=1).nonzero()[0])
            msg = (
                f"{case.label}: after step {step + 1} the parameters are "
                f"{_short_list(got[step])}, expected {_short_list(want[step])}"
            )
            raise AssertionError(_with_diagnosis(msg, exercise.diagnose(case, got)))
    print(
        f"✓ {name}: matches {exercise.reference_name} on {len(cases)} quadratics "
        f"({SELF_CHECK_STEPS} steps each). Well done!"
    )
    return True


# ---------------------------------------------------------------------------------------------
# Verdicts: how a failed or unsolved self-check shows in a notebook
# ---------------------------------------------------------------------------------------------


class ExerciseFailed(AssertionError):
    """A self-check's verdict on a wrong answer. Jupyter shows its message, not a traceback.

    ``str()`` is the message (where, expected vs got, the diagnosis); ``name`` is the exercise.
    ``_render_traceback_`` is IPython's hook for exceptions that format themselves: the first
    line becomes a red ``✗ name: …``. Plain Python prints the usual traceback.
    """

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name

    def _render_traceback_(self) -> list[str]:
        first, *rest = str(self).splitlines() or [""]
        prefix = f"{self.name}: " if self.name and not first.startswith(self.name) else ""
        return [f"\x1b[31m✗ {prefix}{first}\x1b[0m", *rest]


class ExerciseNotSolved(ExerciseFailed):
    """The exercise still raises ``NotImplementedError``: one line, the same for every exercise."""

    def __init__(self, name: str):
        super().__init__(f"{name}: {NOT_IMPLEMENTED}", name)


def _unsolved_or_raised(name: str, exc: NotImplementedError, where: str) -> AssertionError:
    """The stub's ``NotImplementedError()`` means "not started"; one with a message is a bug."""
    if exc.args:
        return AssertionError(f"{where}: {name} raised NotImplementedError: {exc}")
    return ExerciseNotSolved(name)


@contextlib.contextmanager
def self_check(name: str):
    """The body of a self-check: its exceptions become the verdicts students see.

    ``NotImplementedError()`` (the stub) becomes :class:`ExerciseNotSolved`; an
    ``AssertionError`` becomes :class:`ExerciseFailed` for exercise ``name``; verdicts pass
    through unchanged. Use it to write a new ``check_*``::

        def check_my_rule(fn):
            with self_check("my_rule"):
                assert abs(fn(2.0) - 4.0) < 1e-9, "my_rule(2.0): expected 4.0"
            print("✓ my_rule: right. Well done!")
            return True
    """
    try:
        yield
    except ExerciseFailed:
        raise
    except NotImplementedError as exc:
        raise _unsolved_or_raised(name, exc, "your code") from None
    except AssertionError as exc:
        raise ExerciseFailed(str(exc) or "the check failed", name) from exc.__cause__


def _short_list(x: torch.Tensor, limit: int = 6) -> str:
    values = [f"{v:.6g}" for v in x.reshape(-1).tolist()]
    shown = values[:limit] + (["…"] if len(values) > limit else [])
    return "[" + ", ".join(shown) + "]"


# Functions and classes that are still the stub, and the other names that cells left undefined
# because an exercise they need is not solved yet.
_UNSOLVED_NAMES: set[str] = set()
_UNDEFINED: set[str] = set()


def install_notebook_display(shell=None) -> bool:
    """Show unsolved exercises and failed asserts in a notebook the way the module docstring says.

    Called on import; does nothing outside an IPython kernel, under nbgrader
    (``NBGRADER_EXECUTION``) or when ``COURSE_PLAIN_ERRORS`` is set, and only once per kernel.
    Returns whether the display is installed.
    """
    if os.environ.get("NBGRADER_EXECUTION") or os.environ.get("COURSE_PLAIN_ERRORS"):
        return False
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    if getattr(shell, "_course_exercise_display", False):
        return True
    if shell.custom_exceptions:  # someone else's handler: leave it alone
        return False
    shell.set_custom_exc((AssertionError, NotImplementedError, NameError), _show_exception)
    shell.events.register("post_run_cell", _forgive_unsolved)
    shell._course_exercise_display = True
    return True


def _notebook_frames(shell, tb) -> list:
    """The traceback's frames that run notebook code (their globals are the user namespace)."""
    frames = []
    while tb is not None:
        if tb.tb_frame.f_globals is shell.user_ns:
            frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _from_library(tb) -> bool:
    """Whether the innermost frame of ``tb`` is in this module or :mod:`course_lib.exercises`."""
    module = _innermost(tb).f_globals.get("__name__", "")
    return module == __name__ or module.startswith("course_lib.exercises")


def _innermost(tb):
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame


def _frame_name(frame) -> str:
    """``sgd_step``, ``FixedSGD.step`` or ``FixedSGD`` (a class body): what the student writes."""
    code = frame.f_code
    qualname = getattr(code, "co_qualname", code.co_name)
    if "." not in qualname and "self" in frame.f_locals:
        qualname = f"{type(frame.f_locals['self']).__name__}.{code.co_name}"
    return qualname.replace("<locals>.", "")


def _unsolved(shell, exc: BaseException):
    """``(kind, name)`` when ``exc`` only means "an exercise is not done yet", else ``None``.

    kind ``"check"``: an unsolved exercise's check cell; ``"stub"``: the exercise's own cell (a
    class whose body is still the stub); ``"skip"``: a cell that needs an unsolved exercise;
    ``"undefined"``: a cell that needs a name a skipped cell did not define.
    """
    tb = exc.__traceback__
    cell_frames = _notebook_frames(shell, tb)
    if not cell_frames:
        return None
    cell_names = set(cell_frames[0].f_code.co_names)
    checking = any(n.startswith("check_") for n in cell_names)
    if isinstance(exc, ExerciseNotSolved):
        return "check", exc.name
    context = exc.__context__
    if (
        isinstance(exc, AssertionError)
        and not isinstance(exc, ExerciseFailed)
        and isinstance(context, NotImplementedError)
        and _from_library(exc.__traceback__)
    ):
        # a check_* that turned the stub's NotImplementedError into its own AssertionError
        exc, tb = context, context.__traceback__
    if isinstance(exc, NotImplementedError) and not exc.args:
        where = _innermost(tb)
        if where.f_globals is not shell.user_ns:
            return None  # raised inside a library: a real limitation, not a stub
        name = _frame_name(where)
        if where.f_back is cell_frames[0] and not where.f_code.co_flags & 0x2:  # a class body
            return "stub", name
        return ("check" if checking else "skip"), name.split(".")[0]
    name = getattr(exc, "name", None) if isinstance(exc, NameError) else None
    if name in _UNSOLVED_NAMES:
        return ("check" if checking else "skip"), name
    if name in _UNDEFINED:
        return ("check" if checking else "undefined"), name
    return None


def _show_exception(shell, etype, value, tb, tb_offset=None):
    """IPython's custom exception handler: unsolved → one line; notebook asserts → the
    condition and its values; everything else → the usual traceback."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    unsolved = _unsolved(shell, value)
    if unsolved is not None:
        kind, name = unsolved
        if kind == "check":
            print(f"✗ {name}: {NOT_IMPLEMENTED}")
        elif kind == "skip":
            print(f"↷ skipped: this cell needs `{name}`, which is not implemented yet.")
        elif kind == "undefined":
            print(f"↷ skipped: this cell needs `{name}`, which a skipped cell did not define.")
        return None
    if isinstance(value, AssertionError) and not isinstance(value, ExerciseFailed):
        frames = _notebook_frames(shell, tb)
        if frames and _innermost(tb) is frames[-1]:
            lines = _explain_assert(frames[-1], value)
            if lines:
                shell._showtraceback(etype, value, lines)
                return None
        if frames and _from_library(tb) and str(value):
            # a verdict of a check_* that raised a plain AssertionError: its message, no traceback
            verdict = ExerciseFailed(str(value).removeprefix("✗ "))
            shell._showtraceback(etype, value, verdict._render_traceback_())
            return None
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    return None


def _forgive_unsolved(result) -> None:
    """After a cell: an unsolved exercise is not an error (Run All goes on); remember the names
    the cell would have defined, so cells that need them are skipped too."""
    from IPython import get_ipython

    shell = get_ipython()
    exc = getattr(result, "error_in_exec", None)
    if shell is None or exc is None:
        return
    unsolved = _unsolved(shell, exc)
    if unsolved is None:
        return
    kind, name = unsolved
    if kind == "stub":
        _UNSOLVED_NAMES.add(name)
    if kind != "check":
        info = getattr(result, "info", None)
        _UNDEFINED.update(_top_level_bindings(getattr(info, "raw_cell", "") or ""))
    result.error_in_exec = None


def _top_level_bindings(source: str) -> set[str]:
    """Names a cell binds at its top level (assignments, defs, classes, imports, for targets)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def _explain_assert(frame, exc: AssertionError) -> list[str]:
    """The failed ``assert`` of a notebook cell: its condition and the values of its names."""
    filename, line = frame.f_code.co_filename, frame.f_lineno
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    node = next(
        (
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Assert) and n.lineno <= line <= (n.end_lineno or n.lineno)
        ),
        None,
    )
    if node is None:
        return []
    condition = " ".join((ast.get_source_segment(source, node.test) or "").split())
    values = []
    for name in dict.fromkeys(
        n.id for n in ast.walk(node.test) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    ):
        if name in frame.f_locals:
            value = frame.f_locals[name]
        elif name in frame.f_globals:
            value = frame.f_globals[name]
        else:
            continue
        if callable(value) or type(value).__name__ == "module":
            continue
        values.append(f"{name} = {_value_text(value)}")
    lines = [f"\x1b[31m✗ this check failed: {condition}\x1b[0m"]
    if str(exc):
        lines.append(f"  {exc}")
    if values:
        lines.append("  with " + ", ".join(values))
    lines.append(
        "  If the cell uses a function you wrote, run that function's self-check first. "
        "(%tb shows the full traceback.)"
    )
    return lines


def _value_text(value, limit: int = 80) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return f"{value.item():.6g}"
        return f"tensor of shape {tuple(value.shape)}: {_short_list(value.detach().float())}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


install_notebook_display()


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def _with_diagnosis(msg: str, diagnoses: list[str]) -> str:
    return msg + "\nDiagnosis: " + "; or ".join(diagnoses) if diagnoses else msg


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of length {len(x)}"
    return f"a {type(x).__name__}"


def _clone(x):
    return x.clone() if isinstance(x, torch.Tensor) else x


# ---------------------------------------------------------------------------------------------
# Chapter 02 (issue #12): the largest stable learning rate, and a momentum optimizer's bug
# ---------------------------------------------------------------------------------------------

from course_lib.exercises.momentum import FIXED_MOMENTUM_OPTIMIZER, MOMENTUM_LR_LIMIT  # noqa: E402

__all__ += ["check_momentum_lr_limit", "check_momentum_optimizer"]


def check_momentum_lr_limit(momentum_lr_limit: Callable) -> bool:
    """Check ``momentum_lr_limit(A, mu, nesterov=False) -> float``: the largest stable learning
    rate of ``SGD(momentum=mu, nesterov=nesterov)`` on ``f(w) = ½ wᵀAw``."""
    n_cases = _run_number_function(
        MOMENTUM_LR_LIMIT, momentum_lr_limit, "momentum_lr_limit(A, mu, nesterov)"
    )
    print(f"✓ momentum_lr_limit: all {n_cases} cases match. Well done!")
    return True


def check_momentum_optimizer(cls, seed: int = 0) -> bool:
    """Check a class ``cls(params, lr, momentum, nesterov=False)`` against ``torch.optim.SGD``.

    A find-the-bug exercise: the message says on which quadratic and after which step the
    parameters differ, never what the bug is.
    """
    return _check_optimizer_class(FIXED_MOMENTUM_OPTIMIZER, cls, seed)


# ---------------------------------------------------------------------------------------------
# Chapter 03 (AdaGrad and RMSprop)
# ---------------------------------------------------------------------------------------------

from course_lib.exercises.adaptive_rates import (  # noqa: E402
    CENTERED_RMSPROP,
    FIXED_ADAGRAD,
    RMSPROP_LR_AFTER_SPIKE,
)

__all__ += ["check_adagrad_class", "check_centered_rmsprop_class", "check_rmsprop_lr_after_spike"]


def check_centered_rmsprop_class(cls, seed: int = 0) -> bool:
    """Check ``CenteredRMSprop(params, lr, alpha, eps)`` against torch's centered RMSprop.

    Two random quadratics, then one problem with two param groups that differ in every
    hyperparameter and a parameter whose gradient is ``None``.
    """
    return _check_optimizer_class(CENTERED_RMSPROP, cls, seed)


def check_adagrad_class(cls, seed: int = 0) -> bool:
    """Check a fixed AdaGrad class ``cls(params, lr, eps)`` against ``torch.optim.Adagrad``.

    A find-the-bug exercise: the message says on which quadratic and after which step the
    parameters differ, not what the bug is.
    """
    return _check_optimizer_class(FIXED_ADAGRAD, cls, seed)


def check_rmsprop_lr_after_spike(fn: Callable) -> bool:
    """Check ``rmsprop_lr_after_spike(t, spike_step, spike, base, lr, beta, eps) -> float``."""
    what = "rmsprop_lr_after_spike(t, spike_step, spike, base, lr, beta, eps)"
    return _number_exercise_passed(RMSPROP_LR_AFTER_SPIKE, fn, what)


# ---------------------------------------------------------------------------------------------
# Chapter 04 (appended): the uncorrected step's peak, optimizer state bytes, the Adam bug hunt
# ---------------------------------------------------------------------------------------------


def check_uncorrected_peak_step(uncorrected_peak_step: Callable, seed: int = 0) -> bool:
    """Check ``uncorrected_peak_step(beta1, beta2) -> int``: the step t ≥ 1 at which Adam's
    step without bias correction, on a constant gradient, is largest."""
    from course_lib.exercises.adam_exercises import UNCORRECTED_PEAK_STEP

    what = "uncorrected_peak_step(beta1, beta2)"
    return _number_exercise_passed(UNCORRECTED_PEAK_STEP, uncorrected_peak_step, what, seed)


def check_state_bytes(state_bytes: Callable, seed: int = 0) -> bool:
    """Check ``state_bytes(n_in, n_hidden, n_out, optimizer, bytes_per_number) -> int``: the
    bytes of optimizer state for the MLP n_in → n_hidden → n_out (weights and biases)."""
    from course_lib.exercises.adam_exercises import STATE_BYTES

    what = "state_bytes(n_in, n_hidden, n_out, optimizer, bytes_per_number)"
    return _number_exercise_passed(STATE_BYTES, state_bytes, what, seed)


def check_adam_bug_hunt(cls, seed: int = 0) -> bool:
    """Check a repaired Adam class ``cls(params, lr, betas, eps)`` against ``torch.optim.Adam``:
    says on which quadratic and after which step it differs, never what the bug is."""
    from course_lib.exercises.adam_exercises import ADAM_BUG_HUNT

    return _check_optimizer_class(ADAM_BUG_HUNT, cls, seed)


__all__ += ["check_adam_bug_hunt", "check_state_bytes", "check_uncorrected_peak_step"]


# ---------------------------------------------------------------------------------------------
# Chapters 00-01 (issue #12): critical points, stopping rules, SGD's noise floor, a measurement
# ---------------------------------------------------------------------------------------------

from course_lib.exercises.critical_points import CLASSIFY_CRITICAL_POINT  # noqa: E402
from course_lib.exercises.sgd_measures import (  # noqa: E402
    SGD_NOISE_FLOOR,
    STABILITY_RATIO,
    MeasuredNumberExercise,
)
from course_lib.exercises.stopping_rules import (  # noqa: E402
    EARLY_STOPPING_EPOCH,
    GRADIENT_TOLERANCE,
)

__all__ += [
    "check_classify_critical_point",
    "check_early_stopping_epoch",
    "check_gradient_tolerance",
    "check_sgd_noise_floor",
    "check_stability_ratio",
]


def check_classify_critical_point(classify_critical_point: Callable, seed: int = 0) -> bool:
    """Check ``classify_critical_point(H, tol) -> MINIMUM | MAXIMUM | SADDLE | INCONCLUSIVE``."""
    what = "the class (1 = MINIMUM, -1 = MAXIMUM, 0 = SADDLE, 2 = INCONCLUSIVE)"
    return _number_exercise_passed(
        CLASSIFY_CRITICAL_POINT, classify_critical_point, what, seed,
        says="Hessians classified right",
    )


def check_gradient_tolerance(value_or_fn, m=None, L=None, delta=None) -> bool:
    """Check the gradient tolerance that certifies ``‖w − w*‖ ≤ delta`` (m-strongly convex f).

    Pass a function ``gradient_tolerance(m, L, delta) -> float``, or a number together with
    the ``m``, ``L`` and ``delta`` it was computed for.
    """
    if callable(value_or_fn):
        n_cases = _run_number_function(
            GRADIENT_TOLERANCE, value_or_fn, "the gradient tolerance ε"
        )
        print(f"✓ gradient_tolerance: all {n_cases} cases are right. Well done!")
        return True
    if m is None or L is None or delta is None:
        raise ValueError("check_gradient_tolerance(value, m=..., L=..., delta=...): pass all 3")
    where, what = f"m={m}, L={L}, delta={delta}", "the gradient tolerance ε"
    _check_number(GRADIENT_TOLERANCE, (m, L, delta), value_or_fn, what, where)
    print("✓ the gradient tolerance is right.")
    return True


def check_early_stopping_epoch(early_stopping_epoch: Callable) -> bool:
    """Check ``early_stopping_epoch(val_losses, patience) -> int`` (the epoch whose weights are
    kept) on fixed validation curves; a wrong answer names the input, not the bug."""
    n_cases = _run_number_function(
        EARLY_STOPPING_EPOCH, early_stopping_epoch, "the epoch whose weights are kept"
    )
    print(f"✓ early_stopping_epoch: all {n_cases} validation curves are right. Well done!")
    return True


def check_sgd_noise_floor(value_or_fn, lr=None, curvature=None, noise_std=None) -> bool:
    """Check the stationary ``E[w²]`` of constant-lr SGD on ``½·h·w²`` with gradient noise σ.

    Pass a function ``sgd_noise_floor(lr, curvature, noise_std) -> float``, or a number with the
    ``lr``, ``curvature`` and ``noise_std`` it was computed for.
    """
    what = "the stationary E[w²]"
    if callable(value_or_fn):
        return _number_exercise_passed(SGD_NOISE_FLOOR, value_or_fn, what, says="cases are right")
    if lr is None or curvature is None or noise_std is None:
        raise ValueError("check_sgd_noise_floor(value, lr=..., curvature=..., noise_std=...)")
    where = f"lr={lr}, curvature={curvature}, noise_std={noise_std}"
    _check_number(SGD_NOISE_FLOOR, (lr, curvature, noise_std), value_or_fn, what, where)
    print("✓ the noise floor is right.")
    return True


def check_stability_ratio(stability_ratio: Callable) -> bool:
    """Check a *measurement*: ``stability_ratio(seed)`` against the reference measurement.

    The reference runs the same experiment with :mod:`course_lib.experiments` (a few seconds);
    answers within the exercise's band (3 %) are right.
    """
    _run_measured_function(STABILITY_RATIO, stability_ratio, "the measured ratio lr / (2/λ_max)")
    print("✓ stability_ratio: your measurement agrees with the reference. Well done!")
    return True


def _run_measured_function(exercise: MeasuredNumberExercise, fn: Callable, what: str) -> None:
    """Like :func:`_run_number_function`, but a measurement is right within ``exercise.rtol``.

    The message says how far off the answer is, not the reference value itself.
    """
    with self_check(exercise.name):
        for case in exercise.self_check_cases(torch.Generator().manual_seed(0)):
            _check_measured_case(exercise, fn, what, case)


def _check_measured_case(exercise: MeasuredNumberExercise, fn: Callable, what: str, case) -> None:
    got = fn(*[_clone(arg) for arg in case.args])
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if hasattr(got, "item") and not isinstance(got, (int, float)):
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise AssertionError(f"{case.label}: {what} must be a number, got {_describe(got)}")
    got = float(got)
    if exercise.is_right(case.args, got):
        return
    want = exercise.reference(*case.args)
    off = (got - want) / want if math.isfinite(got) else math.inf
    msg = (
        f"{case.label}: {what} is {got:.4g}, {abs(off):.0%} "
        f"{'above' if off > 0 else 'below'} the reference measurement (allowed: "
        f"{exercise.rtol:.0%})"
    )
    raise AssertionError(msg)


# --- chapter 05 ----------------------------------------------------------------------------------
# decay_half_life (compute) and the AdamW bug hunt; adamw_step's check is check_adamw_step above.


def check_decay_half_life(decay_half_life: Callable, seed: int = 0) -> bool:
    """Check ``decay_half_life(lr, weight_decay, v_hat, eps, decoupled) -> int``: the steps after
    which weight decay alone has halved a weight, under AdamW or under Adam + L2."""
    from course_lib.exercises.weight_decay import DECAY_HALF_LIFE

    what = "decay_half_life(lr, weight_decay, v_hat, eps, decoupled)"
    return _number_exercise_passed(DECAY_HALF_LIFE, decay_half_life, what, seed)


def check_adamw_bug_hunt(cls, seed: int = 0) -> bool:
    """Check a repaired AdamW class ``cls(params, lr, betas, eps, weight_decay)`` against
    ``torch.optim.AdamW``: says on which quadratic and after which step it differs, never what
    the bug is."""
    from course_lib.exercises.weight_decay import ADAMW_BUG_HUNT

    return _check_optimizer_class(ADAMW_BUG_HUNT, cls, seed)


__all__ += ["check_adamw_bug_hunt", "check_decay_half_life"]


# --- chapter 10 ---------------------------------------------------------------------------------
# Lion: its update rule, the steps its decay needs, the bug hunt


def check_lion_step(lion_step: Callable, seed: int = 0) -> bool:
    """Check ``lion_step(p, g, m, lr, beta1, beta2, weight_decay) -> (p_new, m_new)`` against
    ``lion-pytorch``'s update (decoupled decay, sign of the β1 interpolation, β2 momentum)."""
    return _check_rule("lion_step", lion_step, seed)


def check_lion_decay_steps(lion_decay_steps: Callable, seed: int = 0) -> bool:
    """Check ``lion_decay_steps(lr, weight_decay, fraction) -> int``: the steps after which Lion's
    decay alone has shrunk a weight to ``fraction`` of its value."""
    from course_lib.exercises.sign_optimizers import LION_DECAY_STEPS

    what = "lion_decay_steps(lr, weight_decay, fraction)"
    return _number_exercise_passed(LION_DECAY_STEPS, lion_decay_steps, what, seed)


def check_lion_bug_hunt(cls, seed: int = 0) -> bool:
    """Check a repaired Lion class ``cls(params, lr, betas, weight_decay)`` against
    ``lion_pytorch.Lion``: says on which quadratic and after which step it differs, never what
    the bug is."""
    from course_lib.exercises.sign_optimizers import LION_BUG_HUNT

    return _check_optimizer_class(LION_BUG_HUNT, cls, seed)


__all__ += ["check_lion_bug_hunt", "check_lion_decay_steps", "check_lion_step"]


# --- chapter 06 -------------------------------------------------------------------------------


def check_amsgrad(cls, seed: int = 0) -> bool:
    """Check ``AMSGrad(params, lr, betas, eps)`` against ``torch.optim.Adam(amsgrad=True)`` on
    random quadratics; a classic mistake (another convention, no maximum, no bias correction)
    is named."""
    from course_lib.exercises.amsgrad import AMSGRAD_CLASS

    return _check_optimizer_class(AMSGRAD_CLASS, cls, seed)


def check_first_negative_increment(first_negative_increment: Callable, seed: int = 0) -> bool:
    """Check ``first_negative_increment(grads, beta2) -> int``: the first step t at which Adam's
    FTRL increment σ_t = 1/η_t − 1/η_{t−1} is negative (0 if never), on fixed sequences."""
    from course_lib.exercises.amsgrad import FIRST_NEGATIVE_INCREMENT

    what = "first_negative_increment(grads, beta2)"
    return _number_exercise_passed(
        FIRST_NEGATIVE_INCREMENT, first_negative_increment, what, seed, says="sequences match"
    )


def check_amsgrad_state_bytes(amsgrad_state_bytes: Callable, seed: int = 0) -> bool:
    """Check ``amsgrad_state_bytes(n_in, n_hidden, n_out, convention, bytes_per_number) -> int``."""
    from course_lib.exercises.amsgrad import AMSGRAD_STATE_BYTES

    what = "amsgrad_state_bytes(n_in, n_hidden, n_out, convention, bytes_per_number)"
    return _number_exercise_passed(AMSGRAD_STATE_BYTES, amsgrad_state_bytes, what, seed)


__all__ += ["check_amsgrad", "check_amsgrad_state_bytes", "check_first_negative_increment"]


# --- chapter 09 ---
from course_lib.exercises.adai import MEDIAN_ESCAPE_STEPS, SGD_SADDLE_ESCAPE_STEP  # noqa: E402


def check_adai_beta1(adai_beta1: Callable, seed: int = 0) -> bool:
    """Check ``adai_beta1(v_hat_a, v_hat_b, beta0, eps) -> (beta1_a, beta1_b)`` (Adai's inertia,
    the mean over both tensors)."""
    return _check_rule("adai_beta1", adai_beta1, seed)


def check_sgd_saddle_escape_step(sgd_saddle_escape_step: Callable) -> bool:
    """Check ``sgd_saddle_escape_step(lr, curvature, batch_size, radius) -> int``: the first step
    at which linearised SGD's standard deviation along the escape direction reaches ``radius``."""
    what = "the escape step"
    return _number_exercise_passed(
        SGD_SADDLE_ESCAPE_STEP, sgd_saddle_escape_step, what, says="cases are right"
    )


def check_median_escape_steps(median_escape_steps: Callable) -> bool:
    """Check a *measurement*: ``median_escape_steps(seed)`` against the reference measurement
    (within 12 %: another random stream moves the median of 1000 runs by about 3 %)."""
    _run_measured_function(
        MEDIAN_ESCAPE_STEPS, median_escape_steps, "the median number of steps to leave the saddle"
    )
    print("✓ median_escape_steps: your measurement agrees with the reference. Well done!")
    return True


# --- chapter 08 ---


def check_first_rectified_step(first_rectified_step: Callable, seed: int = 0) -> bool:
    """Check ``first_rectified_step(beta2, threshold) -> int``: the first step t ≥ 1 at which
    RAdam's ρ_t exceeds ``threshold`` (its first rectified step)."""
    from course_lib.exercises.rectification import FIRST_RECTIFIED_STEP

    what = "first_rectified_step(beta2, threshold)"
    return _number_exercise_passed(FIRST_RECTIFIED_STEP, first_rectified_step, what, seed)


def check_radam_rectifier(radam_rectifier: Callable, seed: int = 0) -> bool:
    """Check ``radam_rectifier(beta2, t) -> float``: RAdam's rectification factor r_t at a step
    t with ρ_t > 5."""
    from course_lib.exercises.rectification import RADAM_RECTIFIER

    what = "radam_rectifier(beta2, t)"
    return _number_exercise_passed(RADAM_RECTIFIER, radam_rectifier, what, seed)


def check_adan_bug_hunt(cls, seed: int = 0) -> bool:
    """Check a repaired Adan class ``cls(params, lr, betas, eps, weight_decay)`` against
    ``course_lib.optim.Adan``: says on which quadratic and after which step it differs, never
    what the bug is."""
    from course_lib.exercises.rectification import ADAN_BUG_HUNT

    return _check_optimizer_class(ADAN_BUG_HUNT, cls, seed)


__all__ += ["check_adan_bug_hunt", "check_first_rectified_step", "check_radam_rectifier"]


# --- chapter 07 ---
# Schedules: sgdr_lr (implement), noam_peak_lr (compute), restart_run (find the bug),
# range_test_lr (measure)

__all__ += ["check_noam_peak_lr", "check_range_test_lr", "check_restart_run", "check_sgdr_lr"]


def check_sgdr_lr(sgdr_lr: Callable, seed: int = 0) -> bool:
    """Check ``sgdr_lr(step, lr, T_0, T_mult, lr_min) -> float`` against SGDR (torch's
    ``CosineAnnealingWarmRestarts``) on fixed steps, restarts included."""
    from course_lib.exercises.schedules import SGDR_LR

    what = "sgdr_lr(step, lr, T_0, T_mult, lr_min)"
    return _number_exercise_passed(SGDR_LR, sgdr_lr, what, seed, says="cases match SGDR")


def check_noam_peak_lr(noam_peak_lr: Callable, seed: int = 0) -> bool:
    """Check ``noam_peak_lr(d_model, warmup) -> float``: the largest lr of the Transformer
    schedule."""
    from course_lib.exercises.schedules import NOAM_PEAK_LR

    what = "noam_peak_lr(d_model, warmup)"
    return _number_exercise_passed(NOAM_PEAK_LR, noam_peak_lr, what, seed, says="cases are right")


def check_restart_run(restart_run: Callable, seed: int = 0) -> bool:
    """Check a repaired ``restart_run(T_0, T_mult, steps, lr) -> final loss``: says on which
    input the result differs from a correct SGDR run, never what the bug is."""
    from course_lib.exercises.schedules import RESTART_RUN

    what = "the final loss of restart_run(T_0, T_mult, steps, lr)"
    return _number_exercise_passed(
        RESTART_RUN, restart_run, what, seed, says="runs match a correct SGDR run"
    )


def check_range_test_lr(range_test_lr: Callable) -> bool:
    """Check a *measurement*: ``range_test_lr(seed)`` against the reference range test (within
    the exercise's band, 15 %)."""
    from course_lib.exercises.schedules import RANGE_TEST_LR

    _run_measured_function(RANGE_TEST_LR, range_test_lr, "the range-test learning rate")
    print("✓ range_test_lr: your measurement agrees with the reference. Well done!")
    return True


# --- chapter 11 ---
# Concepts, not names: AdamW composed from blocks, a composition's state bytes, FTRL's weight


def check_adamw_from_blocks(cls, seed: int = 0) -> bool:
    """Check ``cls(params, lr, betas, eps, weight_decay)`` against ``torch.optim.AdamW`` step by
    step on small quadratics; a mismatch names the wrong composition when it recognises it."""
    from course_lib.exercises.composition import ADAMW_FROM_BLOCKS

    return _check_optimizer_class(ADAMW_FROM_BLOCKS, cls, seed)


def check_composed_state_bytes(composed_state_bytes: Callable, seed: int = 0) -> bool:
    """Check ``composed_state_bytes(momentum, scaling, n_params, bytes_per_number) -> int``."""
    from course_lib.exercises.composition import COMPOSED_STATE_BYTES

    what = "composed_state_bytes(momentum, scaling, n_params, bytes_per_number)"
    return _number_exercise_passed(COMPOSED_STATE_BYTES, composed_state_bytes, what, seed)


def check_ftrl_weight(ftrl_weight: Callable, seed: int = 0) -> bool:
    """Check ``ftrl_weight(z, n, alpha, beta, l1, l2) -> float``: FTRL-Proximal's weight."""
    from course_lib.exercises.composition import FTRL_WEIGHT

    what = "ftrl_weight(z, n, alpha, beta, l1, l2)"
    return _number_exercise_passed(FTRL_WEIGHT, ftrl_weight, what, seed)


__all__ += ["check_adamw_from_blocks", "check_composed_state_bytes", "check_ftrl_weight"]
