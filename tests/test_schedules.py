"""Tests for course_lib.optim.schedules: pure schedules against torch.optim.lr_scheduler.

Convention under test: ``schedule(t)`` is the lr a torch scheduler puts into the optimizer after
``t`` calls of ``scheduler.step()`` (``last_epoch == t``), i.e. the lr of the (t+1)-th update.
"""

from __future__ import annotations

import io
import math
import random
import warnings

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as tls

from course_lib.optim.schedules import (
    Constant,
    CosineAnnealing,
    CosineWarmRestarts,
    ExponentialDecay,
    InverseSqrt,
    Join,
    LinearSchedule,
    MultiStepDecay,
    Noam,
    OneCycle,
    ReduceLROnPlateau,
    ScheduledLR,
    StepDecay,
    WarmupCosine,
    lr_at,
)

RTOL = 1e-12
ATOL = 1e-15


def _sgd(lr: float = 0.1, groups: int = 1) -> torch.optim.SGD:
    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for _ in range(groups)]
    return torch.optim.SGD(params, lr=lr)


def torch_lrs(make_scheduler, n: int, lr: float = 0.1) -> list[float]:
    """The lr in force before each of ``n`` updates, driven by a torch scheduler."""
    opt = _sgd(lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return lrs


def assert_lrs_close(ours: list[float], ref: list[float], rtol: float = RTOL) -> None:
    np.testing.assert_allclose(np.array(ours), np.array(ref), rtol=rtol, atol=ATOL)


def paper_noam(step_num: int, d_model: int = 512, warmup: int = 4000) -> float:
    """Vaswani et al. (2017), eq. 3, with the paper's step_num = 1, 2, ..."""
    return d_model**-0.5 * min(step_num**-0.5, step_num * warmup**-1.5)


# (id, our schedule, torch scheduler factory, steps, lr given to the torch optimizer)
TORCH_CASES = [
    ("step", StepDecay(0.1, step_size=30, gamma=0.5), lambda o: tls.StepLR(o, 30, 0.5), 300, 0.1),
    (
        "multistep",
        MultiStepDecay(0.1, milestones=[50, 120, 200], gamma=0.3),
        lambda o: tls.MultiStepLR(o, [50, 120, 200], 0.3),
        300,
        0.1,
    ),
    ("exponential", ExponentialDecay(0.1, 0.99), lambda o: tls.ExponentialLR(o, 0.99), 500, 0.1),
    (
        "linear-decay",
        LinearSchedule(0.1, total_iters=200, start_factor=1.0, end_factor=0.05),
        lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=200),
        300,
        0.1,
    ),
    (
        "linear-warmup",
        LinearSchedule(0.1, total_iters=150, start_factor=0.2, end_factor=1.0),
        lambda o: tls.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=150),
        300,
        0.1,
    ),
    (
        "cosine",
        CosineAnnealing(0.1, T_max=200, lr_min=1e-3),
        lambda o: tls.CosineAnnealingLR(o, T_max=200, eta_min=1e-3),
        201,
        0.1,
    ),
    (
        "sgdr-mult1",
        CosineWarmRestarts(0.1, T_0=25, T_mult=1, lr_min=1e-3),
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=25, T_mult=1, eta_min=1e-3),
        600,
        0.1,
    ),
    (
        "sgdr-mult2",
        CosineWarmRestarts(0.1, T_0=10, T_mult=2),
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2),
        700,
        0.1,
    ),
    (
        "sgdr-mult3",
        CosineWarmRestarts(0.05, T_0=1, T_mult=3, lr_min=1e-4),
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=3, eta_min=1e-4),
        400,
        0.05,
    ),
    *[
        (
            f"onecycle-{strategy}-{'3' if three else '2'}phase",
            OneCycle(
                0.1, total_steps=300, pct_start=pct, anneal_strategy=strategy, three_phase=three
            ),
            lambda o, s=strategy, t=three, p=pct: tls.OneCycleLR(
                o,
                max_lr=0.1,
                total_steps=300,
                pct_start=p,
                anneal_strategy=s,
                three_phase=t,
                cycle_momentum=False,
            ),
            300,
            0.1,
        )
        for strategy in ("cos", "linear")
        for three, pct in ((False, 0.3), (True, 0.25))
    ],
    (
        "onecycle-custom-divs",
        OneCycle(2.0, total_steps=250, pct_start=0.4, div_factor=10.0, final_div_factor=100.0),
        lambda o: tls.OneCycleLR(
            o,
            max_lr=2.0,
            total_steps=250,
            pct_start=0.4,
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        ),
        250,
        2.0,
    ),
    (
        "noam",
        Noam(d_model=512, warmup=4000),
        lambda o: tls.LambdaLR(o, lambda t: paper_noam(t + 1)),
        8000,
        1.0,
    ),
    (
        "warmup-cosine",
        WarmupCosine(0.1, warmup_steps=20, total_steps=300, lr_min=1e-4, start_factor=0.1),
        lambda o: tls.SequentialLR(
            o,
            [
                tls.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=20),
                tls.CosineAnnealingLR(o, T_max=280, eta_min=1e-4),
            ],
            milestones=[20],
        ),
        301,
        0.1,
    ),
    (
        "join-warmup-cosine",
        Join(
            [
                LinearSchedule(0.1, 20, start_factor=0.1, end_factor=1.0),
                CosineAnnealing(0.1, 280, lr_min=1e-4),
            ],
            boundaries=[20],
        ),
        lambda o: tls.SequentialLR(
            o,
            [
                tls.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=20),
                tls.CosineAnnealingLR(o, T_max=280, eta_min=1e-4),
            ],
            milestones=[20],
        ),
        301,
        0.1,
    ),
]


@pytest.mark.parametrize(
    ("schedule", "make_torch", "n", "lr"),
    [pytest.param(*case[1:], id=case[0]) for case in TORCH_CASES],
)
def test_matches_torch_scheduler(schedule, make_torch, n, lr):
    ours = [schedule(t) for t in range(n)]
    assert_lrs_close(ours, torch_lrs(make_torch, n, lr))


@pytest.mark.parametrize(
    ("schedule", "make_torch"),
    [
        (StepDecay(0.1, 7, 0.5), lambda o: tls.StepLR(o, 7, 0.5)),
        (MultiStepDecay(0.1, [5, 9], 0.5), lambda o: tls.MultiStepLR(o, [5, 9], 0.5)),
        (ExponentialDecay(0.1, 0.95), lambda o: tls.ExponentialLR(o, 0.95)),
        (
            LinearSchedule(0.1, 40, 0.5, 0.1),
            lambda o: tls.LinearLR(o, start_factor=0.5, end_factor=0.1, total_iters=40),
        ),
        (CosineAnnealing(0.1, 50, 1e-3), lambda o: tls.CosineAnnealingLR(o, 50, 1e-3)),
    ],
    ids=["step", "multistep", "exponential", "linear", "cosine"],
)
def test_matches_torch_closed_form(schedule, make_torch):
    """torch's own closed forms (used when stepping to an explicit epoch) agree at every step."""
    sched = make_torch(_sgd(0.1))
    for t in range(51):  # up to the cosine's horizon (torch's cosine rises again after T_max)
        sched.last_epoch = t
        (ref,) = sched._get_closed_form_lr()
        assert schedule(t) == pytest.approx(ref, rel=RTOL, abs=ATOL), t


# ---------------------------------------------------------------------------------------------
# Closed forms where torch has no equivalent, and behaviour past the horizon
# ---------------------------------------------------------------------------------------------


def test_constant():
    s = Constant(0.03)
    assert [s(t) for t in (0, 1, 10**9)] == [0.03] * 3


def test_inverse_sqrt_closed_form():
    s = InverseSqrt(0.1)
    for t in range(200):
        assert s(t) == pytest.approx(0.1 / math.sqrt(t + 1), rel=RTOL)
    s = InverseSqrt(0.2, offset=50)
    assert s(0) == 0.2
    assert s(150) == pytest.approx(0.2 * math.sqrt(50 / 200), rel=RTOL)


def test_join_warmup_then_inverse_sqrt_is_fairseq_schedule():
    W, lr = 100, 5e-4
    s = Join([LinearSchedule(lr, W, start_factor=0.0, end_factor=1.0), InverseSqrt(lr, W)], [W])
    for t in range(0, 1000, 7):
        expected = lr * t / W if t < W else lr * math.sqrt(W / t)
        assert s(t) == pytest.approx(expected, rel=RTOL, abs=ATOL)


def test_join_three_pieces_each_restart_at_zero():
    s = Join([Constant(1.0), ExponentialDecay(2.0, 0.5), Constant(3.0)], boundaries=[3, 6])
    assert [s(t) for t in range(8)] == [1.0, 1.0, 1.0, 2.0, 1.0, 0.5, 3.0, 3.0]


def test_noam_peak_and_step_convention():
    s = Noam(d_model=512, warmup=4000)
    # t updates taken -> the paper's step_num = t + 1; the peak is at step_num = warmup
    assert s(0) == pytest.approx(paper_noam(1), rel=RTOL)
    assert s(3999) == pytest.approx((512 * 4000) ** -0.5, rel=RTOL)
    assert max(s(t) for t in range(10000)) == s(3999)
    assert Noam(scale=2.0)(10) == pytest.approx(2 * s(10), rel=RTOL)


def test_warmup_cosine_defaults_start_at_zero():
    s = WarmupCosine(0.1, warmup_steps=10, total_steps=110)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.05, rel=RTOL)
    assert s(10) == pytest.approx(0.1, rel=RTOL)
    assert s(60) == pytest.approx(0.05, rel=RTOL)  # half way through the cosine
    # nanoGPT's warmup: lr * (t + 1) / (W + 1)
    nano = WarmupCosine(0.1, warmup_steps=10, total_steps=110, start_factor=1 / 11)
    for t in range(10):
        assert nano(t) == pytest.approx(0.1 * (t + 1) / 11, rel=RTOL)
    # no warmup at all: plain cosine annealing
    plain = WarmupCosine(0.1, warmup_steps=0, total_steps=50, lr_min=0.01)
    assert [plain(t) for t in range(60)] == [CosineAnnealing(0.1, 50, 0.01)(t) for t in range(60)]


@pytest.mark.parametrize(
    ("schedule", "horizon", "final"),
    [
        (CosineAnnealing(0.1, 100, 0.002), 100, 0.002),
        (WarmupCosine(0.1, 10, 100, lr_min=0.003), 100, 0.003),
        (LinearSchedule(0.1, 50, 1.0, 0.0), 50, 0.0),
        (OneCycle(0.1, 100), 99, 0.1 / 25 / 1e4),
        (OneCycle(0.1, 100, anneal_strategy="linear", three_phase=True), 99, 0.1 / 25 / 1e4),
    ],
    ids=["cosine", "warmup-cosine", "linear", "onecycle", "onecycle-3phase-linear"],
)
def test_holds_final_value_after_horizon(schedule, horizon, final):
    for t in (horizon, horizon + 1, 2 * horizon + 7, 10**6):
        assert schedule(t) == pytest.approx(final, rel=RTOL, abs=ATOL)


def brute_force_cycles(T_0: int, T_mult: int, n: int) -> list[tuple[int, int, int]]:
    """Walk the cycles one step at a time (the stateful way) to check the closed form."""
    out, i, t_cur, t_i = [], 0, 0, T_0
    for _ in range(n):
        out.append((i, t_cur, t_i))
        t_cur += 1
        if t_cur == t_i:
            i, t_cur, t_i = i + 1, 0, t_i * T_mult
    return out


@pytest.mark.parametrize(("T_0", "T_mult"), [(1, 1), (10, 1), (1, 2), (10, 2), (3, 3), (7, 5)])
def test_sgdr_closed_form_cycle_index(T_0, T_mult):
    s = CosineWarmRestarts(1.0, T_0=T_0, T_mult=T_mult)
    n = 5000
    assert [s.cycle(t) for t in range(n)] == brute_force_cycles(T_0, T_mult, n)


def test_sgdr_restart_boundaries_far_out():
    """Exact integer correction of the float log right at restarts, far into the schedule."""
    for T_0, T_mult in ((1, 2), (3, 3), (5, 10)):
        s = CosineWarmRestarts(1.0, T_0=T_0, T_mult=T_mult)
        for i in range(1, 40):
            start = T_0 * (T_mult**i - 1) // (T_mult - 1)
            assert s.cycle(start) == (i, 0, T_0 * T_mult**i)
            assert s.cycle(start - 1) == (
                i - 1,
                T_0 * T_mult ** (i - 1) - 1,
                T_0 * T_mult ** (i - 1),
            )
            assert s(start) == 1.0  # a restart resets the lr to its maximum


# ---------------------------------------------------------------------------------------------
# Purity: order does not matter, values are Python floats, hyperparameters are visible
# ---------------------------------------------------------------------------------------------

ALL_SCHEDULES = [
    Constant(0.1),
    StepDecay(0.1, 10),
    MultiStepDecay(0.1, [10, 40]),
    ExponentialDecay(0.1, 0.99),
    InverseSqrt(0.1, offset=10),
    LinearSchedule(0.1, 100),
    CosineAnnealing(0.1, 100, 0.001),
    WarmupCosine(0.1, 10, 200),
    CosineWarmRestarts(0.1, 10, 2),
    OneCycle(0.1, 300),
    OneCycle(0.1, 300, anneal_strategy="linear", three_phase=True),
    Noam(64, 100),
    Join([LinearSchedule(0.1, 10, 0.1, 1.0), CosineAnnealing(0.1, 90)], [10]),
]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_out_of_order_equals_in_order(schedule):
    steps = list(range(1000)) + [5000, 123456]
    in_order = {t: schedule(t) for t in steps}
    shuffled = steps * 2
    random.Random(0).shuffle(shuffled)
    for t in shuffled:
        assert schedule(t) == in_order[t]
    assert [lr_at(schedule, t) for t in reversed(steps)] == [in_order[t] for t in reversed(steps)]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_returns_python_float_and_checks_step(schedule):
    for step in (0, 17, np.int64(17)):
        assert type(schedule(step)) is float
    with pytest.raises(ValueError, match="Invalid step: -1"):
        schedule(-1)
    with pytest.raises(TypeError):
        schedule(1.5)
    hash(schedule)  # frozen: usable as a dict key, e.g. to cache runs per schedule


def test_lr_at_accepts_plain_functions_and_numbers():
    assert lr_at(lambda t: 0.5**t, 3) == 0.125
    assert lr_at(0.3, 12) == 0.3  # a constant lr is a schedule too
    with pytest.raises(ValueError, match="Invalid step"):
        lr_at(Constant(1.0), -2)


def test_repr_shows_all_hyperparameters():
    assert (
        repr(CosineAnnealing(lr=0.1, T_max=100)) == "CosineAnnealing(lr=0.1, T_max=100, lr_min=0.0)"
    )
    assert repr(CosineWarmRestarts(0.1, 10, 2)) == (
        "CosineWarmRestarts(lr=0.1, T_0=10, T_mult=2, lr_min=0.0)"
    )
    assert repr(MultiStepDecay(0.1, [30, 60])) == (
        "MultiStepDecay(lr=0.1, milestones=(30, 60), gamma=0.1)"
    )
    assert repr(Noam()) == "Noam(d_model=512, warmup=4000, scale=1.0)"
    assert "three_phase=False" in repr(OneCycle(0.1, 100))
    with pytest.raises(AttributeError):
        CosineAnnealing(0.1, 100).lr = 1.0  # frozen


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Constant(-1.0), "Invalid learning rate: -1.0"),
        (lambda: StepDecay(0.1, 0), "Invalid step_size: 0"),
        (lambda: StepDecay(0.1, 10, gamma=0.0), "Invalid gamma: 0.0"),
        (lambda: MultiStepDecay(0.1, [30, 10]), "Invalid milestones"),
        (lambda: MultiStepDecay(0.1, [10, 10]), "Invalid milestones"),
        (lambda: ExponentialDecay(0.1, -0.5), "Invalid gamma: -0.5"),
        (lambda: InverseSqrt(0.1, offset=0), "Invalid offset: 0"),
        (lambda: LinearSchedule(0.1, 0), "Invalid total_iters: 0"),
        (lambda: LinearSchedule(0.1, 10, start_factor=-0.1), "Invalid start_factor: -0.1"),
        (lambda: CosineAnnealing(0.1, 0), "Invalid T_max: 0"),
        (lambda: CosineAnnealing(0.1, 10.5), "Invalid T_max: 10.5"),
        (lambda: CosineAnnealing(0.1, 10, lr_min=-1e-3), "Invalid lr_min: -0.001"),
        (lambda: WarmupCosine(0.1, 100, 100), "Invalid warmup_steps: 100"),
        (lambda: WarmupCosine(0.1, -1, 100), "Invalid warmup_steps: -1"),
        (lambda: WarmupCosine(0.1, 10, 100, start_factor=2.0), "Invalid start_factor: 2.0"),
        (lambda: CosineWarmRestarts(0.1, T_0=0), "Invalid T_0: 0"),
        (lambda: CosineWarmRestarts(0.1, T_0=10, T_mult=0), "Invalid T_mult: 0"),
        (lambda: CosineWarmRestarts(0.1, T_0=10, T_mult=1.5), "Invalid T_mult: 1.5"),
        (lambda: OneCycle(-0.1, 100), "Invalid max_lr: -0.1"),
        (lambda: OneCycle(0.1, 0), "Invalid total_steps: 0"),
        (lambda: OneCycle(0.1, 100, pct_start=1.5), "Invalid pct_start: 1.5"),
        (lambda: OneCycle(0.1, 100, pct_start=0.6, three_phase=True), "Invalid pct_start: 0.6"),
        (lambda: OneCycle(0.1, 100, anneal_strategy="exp"), "Invalid anneal_strategy: 'exp'"),
        (lambda: OneCycle(0.1, 100, div_factor=0), "Invalid div_factor: 0"),
        (lambda: Noam(d_model=0), "Invalid d_model: 0"),
        (lambda: Noam(warmup=-5), "Invalid warmup: -5"),
        (lambda: Join([Constant(1.0), Constant(2.0)], []), "Invalid boundaries"),
        (lambda: Join([Constant(1.0), Constant(2.0)], [0]), "Invalid boundaries"),
        (lambda: Join([], []), "Invalid schedules"),
        (lambda: Join([Constant(1.0), 3.0], [5]), "Invalid schedules"),
    ],
)
def test_invalid_parameters_raise(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        make()


# ---------------------------------------------------------------------------------------------
# ScheduledLR: a real torch LRScheduler
# ---------------------------------------------------------------------------------------------


def _train(opt, sched, model, steps: int) -> list[list[float]]:
    """A few SGD steps on a fixed regression problem; the lrs in force before each update."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, generator=g), torch.randn(64, 1, generator=g)
    lrs = []
    for _ in range(steps):
        lrs.append([float(group["lr"]) for group in opt.param_groups])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return lrs


def _model() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1)


def test_scheduled_lr_drives_sgd_like_torch_scheduler():
    m_ref, m_ours = _model(), _model()
    opt_ref = torch.optim.SGD(m_ref.parameters(), lr=0.1, momentum=0.9)
    opt_ours = torch.optim.SGD(m_ours.parameters(), lr=0.1, momentum=0.9)
    ref = tls.CosineAnnealingWarmRestarts(opt_ref, T_0=5, T_mult=2, eta_min=0.001)
    ours = ScheduledLR(opt_ours, CosineWarmRestarts(0.1, T_0=5, T_mult=2, lr_min=0.001))
    assert isinstance(ours, tls.LRScheduler)
    lrs_ref, lrs_ours = _train(opt_ref, ref, m_ref, 160), _train(opt_ours, ours, m_ours, 160)
    assert_lrs_close([r[0] for r in lrs_ours], [r[0] for r in lrs_ref])
    assert ours.last_epoch == ref.last_epoch == 160
    assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=RTOL)
    for p_ours, p_ref in zip(m_ours.parameters(), m_ref.parameters()):
        torch.testing.assert_close(p_ours, p_ref)


def test_scheduled_lr_per_group_schedules():
    m = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD([{"params": [m.weight]}, {"params": [m.bias]}], lr=1.0)
    schedules = [CosineAnnealing(0.1, 50), StepDecay(0.02, 10, 0.5)]
    sched = ScheduledLR(opt, schedules)
    lrs = _train(opt, sched, m, 80)
    assert lrs == [[schedules[0](t), schedules[1](t)] for t in range(80)]


def test_scheduled_lr_relative_matches_lambda_lr():
    """relative=True multiplies each group's initial lr, exactly like LambdaLR."""
    multiplier = WarmupCosine(1.0, warmup_steps=10, total_steps=100, start_factor=0.1)

    def make():
        m = _model()
        return m, torch.optim.AdamW(
            [{"params": [m.weight], "lr": 0.01}, {"params": [m.bias]}], lr=0.1
        )

    m_ref, opt_ref = make()
    m_ours, opt_ours = make()
    ref = tls.LambdaLR(opt_ref, multiplier)
    ours = ScheduledLR(opt_ours, multiplier, relative=True)
    lrs_ref, lrs_ours = _train(opt_ref, ref, m_ref, 120), _train(opt_ours, ours, m_ours, 120)
    np.testing.assert_allclose(lrs_ours, lrs_ref, rtol=RTOL, atol=ATOL)
    assert lrs_ours[10] == pytest.approx([0.01, 0.1], rel=RTOL)


def test_schedule_is_a_lambda_lr_multiplier_with_state_dict():
    """Built with lr=1, a schedule plugs into LambdaLR directly; its state_dict round-trips."""
    opt = _sgd(0.5)
    sched = tls.LambdaLR(opt, CosineAnnealing(1.0, 20))
    for _ in range(7):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * CosineAnnealing(1.0, 20)(7), rel=RTOL)
    state = sched.state_dict()
    sched2 = tls.LambdaLR(_sgd(0.5), CosineAnnealing(1.0, 20))
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 7


def test_scheduled_lr_works_with_course_optimizer():
    """Schedules plug into the course's own optimizers (torch.optim.Optimizer subclasses)."""
    from course_lib.optim import SGD

    m = _model()
    opt = SGD(m.parameters(), lr=0.1)
    schedule = OneCycle(0.1, total_steps=40)
    lrs = _train(opt, ScheduledLR(opt, schedule), m, 40)
    assert [r[0] for r in lrs] == [schedule(t) for t in range(40)]


def test_scheduled_lr_state_dict_round_trip():
    schedule = CosineWarmRestarts(0.1, T_0=8, T_mult=2, lr_min=1e-3)

    m_full = _model()
    opt_full = torch.optim.SGD(m_full.parameters(), lr=0.1, momentum=0.9)
    full = _train(opt_full, ScheduledLR(opt_full, schedule), m_full, 80)

    m1 = _model()
    opt1 = torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    sched1 = ScheduledLR(opt1, schedule)
    first = _train(opt1, sched1, m1, 37)
    buffer = io.BytesIO()
    torch.save(
        {"model": m1.state_dict(), "opt": opt1.state_dict(), "sched": sched1.state_dict()}, buffer
    )
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)  # plain numbers only: the safe loader works

    m2 = _model()
    opt2 = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    sched2 = ScheduledLR(opt2, schedule)  # build the scheduler first, then load (torch's advice)
    m2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.load_state_dict(ckpt["sched"])
    assert sched2.last_epoch == 37
    assert opt2.param_groups[0]["lr"] == pytest.approx(schedule(37), rel=RTOL)
    # _train restarts its data generator, fine: only the schedule's continuation is compared
    rest = _train(opt2, sched2, m2, 43)
    assert first + rest == full


def test_scheduled_lr_warns_when_loading_another_schedule():
    sched = ScheduledLR(_sgd(), CosineAnnealing(0.1, 100))
    state = sched.state_dict()
    other = ScheduledLR(_sgd(), CosineAnnealing(0.1, 200))
    with pytest.warns(UserWarning, match="CosineAnnealing"):
        other.load_state_dict(state)


def test_scheduled_lr_jumps_to_an_explicit_epoch():
    schedule = OneCycle(0.1, total_steps=100, three_phase=True)
    opt = _sgd()
    sched = ScheduledLR(opt, schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates step(epoch); our closed form is exact
        sched.step(63)
    assert opt.param_groups[0]["lr"] == schedule(63)


def test_scheduled_lr_invalid_arguments():
    with pytest.raises(ValueError, match="Expected 2 schedules, but got 1"):
        ScheduledLR(_sgd(groups=2), [Constant(0.1)])
    with pytest.raises(ValueError, match="Invalid schedule"):
        ScheduledLR(_sgd(), 0.1)


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau: same decisions as torch's on fixed metric sequences
# ---------------------------------------------------------------------------------------------


def _metric_sequence(n: int = 80, seed: int = 0, sign: float = 1.0) -> list[float]:
    """Improves, plateaus with noise, improves a little, plateaus again."""
    rng = random.Random(seed)
    values, v = [], 2.0
    for k in range(n):
        if k < 15 or 40 <= k < 48:
            v *= 0.9
        values.append(sign * (v + rng.uniform(-0.01, 0.01)))
    return values


PLATEAU_CONFIGS = [
    ({}, 1, 1.0),
    ({"patience": 2}, 1, 1.0),
    ({"patience": 0, "factor": 0.5}, 1, 1.0),
    ({"mode": "max", "threshold_mode": "abs", "threshold": 0.005, "patience": 3}, 1, -1.0),
    ({"patience": 1, "cooldown": 3, "factor": 0.3, "min_lr": [1e-3, 5e-4]}, 2, 1.0),
    ({"patience": 1, "min_lr": 0.02, "factor": 0.5}, 1, 1.0),
    ({"patience": 1, "eps": 0.05}, 1, 1.0),
    ({"threshold": 0.05, "patience": 2}, 1, 1.0),
]


@pytest.mark.parametrize(("kwargs", "groups", "sign"), PLATEAU_CONFIGS)
def test_reduce_on_plateau_matches_torch(kwargs, groups, sign):
    opt_ref, opt_ours = _sgd(0.1, groups), _sgd(0.1, groups)
    ref = tls.ReduceLROnPlateau(opt_ref, **kwargs)
    ours = ReduceLROnPlateau(opt_ours, **kwargs)
    lrs_seen = set()
    for metric in _metric_sequence(sign=sign):
        ref.step(metric)
        ours.step(torch.tensor(metric, dtype=torch.float64))  # 0-dim tensors work, as in torch
        assert [g["lr"] for g in opt_ours.param_groups] == pytest.approx(
            [g["lr"] for g in opt_ref.param_groups], rel=RTOL
        )
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == (
            ref.best,
            ref.num_bad_epochs,
            ref.cooldown_counter,
            ref.last_epoch,
        )
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=RTOL)
        lrs_seen.add(opt_ours.param_groups[0]["lr"])
    if "eps" not in kwargs:
        assert len(lrs_seen) > 1  # the sequence does trigger at least one cut


def test_reduce_on_plateau_state_dict_round_trip():
    metrics = _metric_sequence()
    opt_full = _sgd()
    full = ReduceLROnPlateau(opt_full, patience=2, cooldown=1)
    full_lrs = []
    for m in metrics:
        full.step(m)
        full_lrs.append(opt_full.param_groups[0]["lr"])

    opt1 = _sgd()
    first = ReduceLROnPlateau(opt1, patience=2, cooldown=1)
    lrs = []
    for m in metrics[:33]:
        first.step(m)
        lrs.append(opt1.param_groups[0]["lr"])
    buffer = io.BytesIO()
    torch.save({"opt": opt1.state_dict(), "sched": first.state_dict()}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)

    opt2 = _sgd()
    second = ReduceLROnPlateau(opt2)  # hyperparameters come back with the state
    opt2.load_state_dict(ckpt["opt"])
    second.load_state_dict(ckpt["sched"])
    assert (second.patience, second.cooldown) == (2, 1)
    for m in metrics[33:]:
        second.step(m)
        lrs.append(opt2.param_groups[0]["lr"])
    assert lrs == full_lrs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "avg"}, "Invalid mode: 'avg'"),
        ({"threshold_mode": "pct"}, "Invalid threshold_mode: 'pct'"),
        ({"factor": 1.0}, "Invalid factor: 1.0"),
        ({"patience": -1}, "Invalid patience: -1"),
        ({"cooldown": -2}, "Invalid cooldown: -2"),
        ({"threshold": -1e-4}, "Invalid threshold"),
        ({"min_lr": [0.0, 0.0]}, "Expected 1 min_lrs, got 2"),
        ({"min_lr": -1.0}, "Invalid min_lr: -1.0"),
    ],
)
def test_reduce_on_plateau_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ReduceLROnPlateau(_sgd(), **kwargs)


# --- chapter 07 ---


@pytest.mark.parametrize(("T_0_epochs", "T_mult", "iters"), [(2, 2, 11), (1, 2, 7), (3, 1, 5)])
def test_sgdr_in_updates_equals_torch_stepped_with_fractional_epochs(T_0_epochs, T_mult, iters):
    """The paper updates T_cur every batch; torch documents ``step(epoch + i / iters)`` for it."""
    opt = _sgd(0.1)
    sched = tls.CosineAnnealingWarmRestarts(opt, T_0=T_0_epochs, T_mult=T_mult, eta_min=0.001)
    theirs = []
    for epoch in range(20):
        for i in range(iters):
            sched.step(epoch + i / iters)
            theirs.append(float(opt.param_groups[0]["lr"]))
    ours = CosineWarmRestarts(0.1, T_0=T_0_epochs * iters, T_mult=T_mult, lr_min=0.001)
    assert_lrs_close([ours(k) for k in range(20 * iters)], theirs, rtol=1e-9)


def test_noam_published_constants():
    """Vaswani et al. 2017: d_model = 512, warmup = 4000: peak (512 · 4000)^-0.5 at step 4000."""
    noam = Noam()
    assert (noam.d_model, noam.warmup, noam.scale) == (512, 4000, 1.0)
    lrs = [noam(t) for t in range(8000)]
    assert int(np.argmax(lrs)) + 1 == 4000
    assert max(lrs) == pytest.approx((512 * 4000) ** -0.5, rel=1e-12)
