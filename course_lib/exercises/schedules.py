r"""Chapter 07's exercises: SGDR as a pure function, the Transformer peak, a restart bug, a range
test.

* ``sgdr_lr(step, lr, T_0, T_mult, lr_min)`` (implement): the learning rate of SGDR (Loshchilov &
  Hutter, 2017) for the update that follows ``step`` completed updates, PyTorch's convention —
  the value ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0, T_mult, lr_min)``
  holds after ``step`` calls of ``scheduler.step()``. Cycle :math:`i` lasts
  :math:`T_0 T_{mult}^i` steps; within it the lr follows half a cosine from ``lr`` to ``lr_min``
  and jumps back to ``lr`` at the next cycle's first step. The reference is
  :class:`course_lib.optim.schedules.CosineWarmRestarts` (tested against torch).
* ``noam_peak_lr(d_model, warmup)`` (compute): the largest learning rate of the Transformer
  schedule :math:`d_{\text{model}}^{-0.5}\min(n^{-0.5}, n\,W^{-1.5})` over :math:`n \ge 1`:
  :math:`(d_{\text{model}} W)^{-0.5}`, reached at :math:`n = W`.
* ``restart_run(T_0, T_mult, steps, lr)`` (find the bug): SGD with momentum 0.9 and SGDR on a
  fixed ill-conditioned quadratic (:func:`restart_problem`); returns the final loss. The notebook
  hands out ``buggy_restart_run``, which re-creates the optimizer at each restart and so throws
  away the momentum buffer — a restart must reset only the learning rate. A find-the-bug
  exercise has no diagnoses: the self-check says on which input the result differs.
* ``range_test_lr(seed)`` (measure): run :func:`course_lib.experiments.lr_range.lr_range_test`
  on the digits MLP ``make_mlp(64, 32, 10, seed=seed)`` with SGD + momentum 0.9, trained on the
  validation-split training rows (``digits(holdout=True)``), lr from 1e-4 to 10 over 100 batches
  of 64 (batch order seeded with ``seed``), and return the ``"min/10"`` pick. Right within 15 %
  (one step of the test's lr grid is 12 %: a run that differs by one grid step is a different
  measurement).
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.problems import DTYPE, FIND_THE_BUG, MEASURE, uniform
from course_lib.exercises.sgd_measures import MeasuredNumberExercise
from course_lib.optim.schedules import CosineWarmRestarts

# ---------------------------------------------------------------------------------------------
# sgdr_lr (implement)
# ---------------------------------------------------------------------------------------------


def ref_sgdr_lr(step: int, lr: float, T_0: int, T_mult: int, lr_min: float) -> float:
    """SGDR's lr after ``step`` completed updates (torch's CosineAnnealingWarmRestarts)."""
    return CosineWarmRestarts(float(lr), int(T_0), int(T_mult), float(lr_min))(int(step))


def _cosine(lr, lr_min, t_cur, period):
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t_cur / period)) / 2


def _sgdr_no_growth(step, lr, T_0, T_mult, lr_min):
    return _cosine(lr, lr_min, step % T_0, T_0)


def _sgdr_late_growth(step, lr, T_0, T_mult, lr_min):
    """Cycle i lasts T_0·T_mult^(i+1): the first cycle is already multiplied."""
    start, length = 0, T_0 * T_mult
    while start + length <= step:
        start, length = start + length, length * T_mult
    return _cosine(lr, lr_min, step - start, length)


def _sgdr_one_based(step, lr, T_0, T_mult, lr_min):
    """T_cur counted from 1 within each cycle (the first step of a cycle is already annealed)."""
    i_cycle = CosineWarmRestarts(lr, T_0, T_mult, lr_min).cycle(step)
    return _cosine(lr, lr_min, i_cycle[1] + 1, i_cycle[2])


def _sgdr_no_restart(step, lr, T_0, T_mult, lr_min):
    """torch's CosineAnnealingLR(T_max=T_0) continued: the cosine rises back instead of jumping."""
    return _cosine(lr, lr_min, step, T_0)


def _sgdr_full_period(step, lr, T_0, T_mult, lr_min):
    _, t_cur, t_i = CosineWarmRestarts(lr, T_0, T_mult, lr_min).cycle(step)
    return _cosine(lr, lr_min, 2 * t_cur, t_i)


def _sgdr_ignores_floor(step, lr, T_0, T_mult, lr_min):
    return ref_sgdr_lr(step, lr, T_0, T_mult, 0.0)


def _sgdr_case(step, lr, T_0, T_mult, lr_min, label="") -> NumberCase:
    args = (step, lr, T_0, T_mult, lr_min)
    return NumberCase(
        label or f"step={step}, lr={lr}, T_0={T_0}, T_mult={T_mult}, lr_min={lr_min}", args
    )


def _sgdr_self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    fixed = [
        (0, 0.1, 10, 1, 0.0),  # the very first step: the peak
        (5, 0.1, 10, 1, 0.0),  # halfway through the first cycle
        (10, 0.1, 10, 1, 0.0),  # a restart
        (9, 0.1, 10, 2, 0.001),  # last step of the first cycle
        (10, 0.1, 10, 2, 0.001),  # the first restart with T_mult = 2
        (25, 0.1, 10, 2, 0.001),  # inside the second (20-step) cycle
        (70, 0.1, 10, 2, 0.001),  # the second restart (10 + 20 + 40 = 70)
        (100, 0.05, 3, 3, 0.0),
    ]
    return [_sgdr_case(*args) for args in fixed]


def _sgdr_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(8):
        T_0 = int(torch.randint(1, 30, (), generator=gen))
        T_mult = int(torch.randint(1, 4, (), generator=gen))
        step = int(torch.randint(0, 600, (), generator=gen))
        lr = round(10 ** uniform(gen, -3, 0), 6)
        lr_min = round(lr * uniform(gen, 0.0, 0.1), 8) if i % 2 else 0.0
        cases.append(
            _sgdr_case(
                step,
                lr,
                T_0,
                T_mult,
                lr_min,
                f"hidden case {i + 1}: step={step}, "
                f"lr={lr}, T_0={T_0}, T_mult={T_mult}, lr_min={lr_min}",
            )
        )
    # a restart exactly, where a floating-point cycle index can be off by one
    cases.append(
        _sgdr_case(2 + 4 + 8 + 16 + 32, 0.1, 2, 2, 0.0, "hidden restart: step=62, T_0=2, T_mult=2")
    )
    return cases


SGDR_LR = NumberExercise(
    name="sgdr_lr",
    reference=ref_sgdr_lr,
    variants={
        "the cycles never grow: cycle i lasts T_0·T_mult^i steps (T_0, then T_0·T_mult, ...)": (
            _sgdr_no_growth
        ),
        "the first cycle is already T_0·T_mult long: cycle i lasts T_0·T_mult^i, so the first one "
        "lasts T_0": _sgdr_late_growth,
        "off by one inside the cycle: the first step of a cycle (T_cur = 0) must use the full lr, "
        "T_cur counts the steps already taken in the cycle": _sgdr_one_based,
        "no restart: at the end of a cycle the lr jumps back to lr, it does not climb back along "
        "the cosine": _sgdr_no_restart,
        "the cosine runs a full period per cycle: use cos(π·T_cur/T_i), half a period from lr down "
        "to lr_min": _sgdr_full_period,
        "lr_min is ignored: the cosine goes from lr down to lr_min, "
        "lr_min + ½(lr − lr_min)(1 + cos(π·T_cur/T_i))": _sgdr_ignores_floor,
    },
    self_check_cases=_sgdr_self_check_cases,
    hidden_cases=_sgdr_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# noam_peak_lr (compute)
# ---------------------------------------------------------------------------------------------


def ref_noam_peak_lr(d_model: int, warmup: int) -> float:
    """The largest lr of d_model^-0.5 · min(n^-0.5, n · warmup^-1.5), reached at n = warmup."""
    return float(d_model) ** -0.5 * float(warmup) ** -0.5


def _noam_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(5):
        d_model = 2 ** int(torch.randint(6, 13, (), generator=gen))
        warmup = int(torch.randint(100, 20_000, (), generator=gen))
        cases.append(
            NumberCase(
                f"hidden case {i + 1}: d_model={d_model}, warmup={warmup}", (d_model, warmup)
            )
        )
    return cases


NOAM_PEAK_LR = NumberExercise(
    name="noam_peak_lr",
    reference=ref_noam_peak_lr,
    variants={
        "the factor d_model^-0.5 is missing: it multiplies both branches of the min": (
            lambda d, w: float(w) ** -0.5
        ),
        "that is the warmup branch at n = 1 (d_model^-0.5 · warmup^-1.5), the *first* lr; the "
        "peak is where the two branches meet": lambda d, w: float(d) ** -0.5 * float(w) ** -1.5,
        "that is the decay branch at n = 1 (d_model^-0.5), which the min never reaches during the "
        "warmup": lambda d, w: float(d) ** -0.5,
        "the exponents are upside down: (d_model · warmup)^-0.5, not its inverse": (
            lambda d, w: math.sqrt(float(d) * float(w))
        ),
    },
    self_check_cases=lambda gen: [
        NumberCase(f"d_model={d}, warmup={w}", (d, w))
        for d, w in ((256, 1000), (1024, 8000), (64, 100), (768, 10_000))
    ],
    hidden_cases=_noam_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# restart_run (find the bug)
# ---------------------------------------------------------------------------------------------

RESTART_CURVATURES = (0.2, 1.0, 5.0, 20.0)  # the quadratic's eigenvalues (condition number 100)


def restart_problem() -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, w0)``: the diagonal quadratic ½ wᵀAw of the exercise and its starting point."""
    A = torch.diag(torch.tensor(RESTART_CURVATURES, dtype=DTYPE))
    w0 = torch.ones(len(RESTART_CURVATURES), dtype=DTYPE)
    return A, w0


def ref_restart_run(T_0: int, T_mult: int, steps: int, lr: float) -> float:
    """SGD (momentum 0.9) + SGDR on the quadratic; only the lr restarts. Returns the final loss."""
    A, w0 = restart_problem()
    w = w0.clone().requires_grad_()
    schedule = CosineWarmRestarts(lr=float(lr), T_0=int(T_0), T_mult=int(T_mult))
    opt = torch.optim.SGD([w], lr=float(lr), momentum=0.9)
    for t in range(int(steps)):
        opt.param_groups[0]["lr"] = schedule(t)
        loss = 0.5 * w @ A @ w
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(0.5 * w.detach() @ A @ w.detach())


def _restart_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(4):
        T_0 = int(torch.randint(5, 30, (), generator=gen))
        T_mult = int(torch.randint(1, 3, (), generator=gen))
        steps = int(torch.randint(3 * T_0, 8 * T_0, (), generator=gen))
        lr = round(uniform(gen, 0.01, 0.09), 4)
        cases.append(
            NumberCase(
                f"hidden case {i + 1}: T_0={T_0}, T_mult={T_mult}, steps={steps}, lr={lr}",
                (T_0, T_mult, steps, lr),
            )
        )
    return cases


RESTART_RUN = NumberExercise(
    name="restart_run",
    reference=ref_restart_run,
    variants={},  # find the bug: the check says on which input, never what
    self_check_cases=lambda gen: [
        NumberCase(f"T_0={T_0}, T_mult={m}, steps={n}, lr={lr}", (T_0, m, n, lr))
        for T_0, m, n, lr in ((10, 1, 5, 0.05), (10, 1, 35, 0.05), (8, 2, 60, 0.03))
    ],
    hidden_cases=_restart_hidden_cases,
    kind=FIND_THE_BUG,
)

# ---------------------------------------------------------------------------------------------
# range_test_lr (measure)
# ---------------------------------------------------------------------------------------------

RANGE_TEST = {"lr_start": 1e-4, "lr_end": 10.0, "steps": 100, "batch_size": 64}


def ref_range_test_lr(seed: int) -> float:
    """The "min/10" pick of the lr range test on the digits MLP of ``seed`` (module docstring)."""
    from course_lib.experiments.lr_range import lr_range_test, suggest_lr
    from course_lib.experiments.schedules import digits
    from course_lib.train import make_mlp

    X, y, _, _ = digits(holdout=True)
    result = lr_range_test(
        make_mlp(64, 32, 10, seed=int(seed)),
        lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        X,
        y,
        seed=int(seed),
        **RANGE_TEST,
    )
    return suggest_lr(result, "min/10")


def prepare_range_test_lr() -> None:
    """Import the experiment modules and load the digits that :func:`ref_range_test_lr` uses."""
    from course_lib.experiments import lr_range  # noqa: F401
    from course_lib.experiments.schedules import digits

    digits(holdout=True)


RANGE_TEST_LR = MeasuredNumberExercise(
    name="range_test_lr",
    reference=ref_range_test_lr,
    prepare=prepare_range_test_lr,
    variants={},  # a measurement: the self-check reports how far off
    self_check_cases=lambda gen: [NumberCase("seed=0", (0,))],
    hidden_cases=lambda gen: [NumberCase(f"hidden seed {s}", (s,)) for s in (3, 5)],
    kind=MEASURE,
    rtol=0.15,  # one step of the test's lr grid is 10^(5/99) ≈ 1.12: a near-miss is not a pass
)
