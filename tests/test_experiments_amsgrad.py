"""course_lib.experiments.amsgrad: FTRL increments, the online problem, the sweep, conventions."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import optim
from course_lib.experiments import adaptivity, amsgrad


def test_inverse_lr_increments_add_up_to_the_inverse_rate():
    eta = np.array([0.5, 0.25, 0.4])
    sigma = amsgrad.inverse_lr_increments(eta)
    assert np.allclose(np.cumsum(sigma), 1 / eta)
    assert sigma[2] < 0
    with pytest.raises(ValueError):
        amsgrad.inverse_lr_increments([0.1, 0.0])


@pytest.mark.parametrize("rule, cls, kwargs", [
    ("adagrad", optim.Adagrad, {"eps": 0.0}),
    ("rmsprop", optim.RMSprop, {"alpha": 0.9, "eps": 0.0}),
])
def test_inverse_lrs_match_the_optimizers(rule, cls, kwargs):
    grads = np.random.default_rng(0).normal(0, 1, 50)
    measured = adaptivity.effective_lrs(cls, grads, lr=0.1, **kwargs)
    closed = amsgrad.inverse_lrs(grads, rule, lr=0.1, beta2=0.9)
    assert np.allclose(1 / measured, closed, rtol=1e-10)


def test_ftrl_proximal_is_the_gradient_step_even_with_negative_increments():
    grads = np.random.default_rng(1).normal(0, 1, 40)
    inverse_lr = amsgrad.inverse_lrs(grads, "rmsprop", lr=0.05, beta2=0.8)
    assert np.any(np.diff(inverse_lr) < 0)
    ftrl = amsgrad.ftrl_proximal_iterates(grads, inverse_lr, x1=0.3)
    gd = 0.3 - np.r_[0.0, np.cumsum(grads / inverse_lr)]
    assert np.allclose(ftrl, gd, atol=1e-12)


def test_periodic_coefficients():
    c = amsgrad.periodic_coefficients(3.0, 7)
    assert c.tolist() == [3.0, -1.0, -1.0, 3.0, -1.0, -1.0, 3.0]
    assert amsgrad.periodic_coefficients(5, 6, period=5).tolist() == [5, -1, -1, -1, -1, 5]
    with pytest.raises(ValueError):
        amsgrad.periodic_coefficients(2.0, 6)  # C must exceed period − 1


def test_online_linear_regret_matches_the_definition():
    c = amsgrad.periodic_coefficients(3.0, 60)
    run = amsgrad.online_linear(optim.Adam, c, lr=0.5, betas=(0.0, 0.1))
    grid = np.linspace(-1, 1, 2001)
    for t in (1, 7, 60):
        best = min(np.sum(c[:t]) * x for x in grid)
        assert run.regret[t - 1] == pytest.approx(np.sum(c[:t] * run.x[:t]) - best, abs=1e-9)
    assert np.all(np.abs(run.x) <= 1)


def test_adam_fails_and_amsgrad_succeeds_on_reddis_problem():
    c = amsgrad.periodic_coefficients(3.0, 1500)
    adam = amsgrad.online_linear(optim.Adam, c, lr=0.5, betas=(0.0, 0.1))
    ams = amsgrad.online_linear(optim.Adam, c, lr=0.5, betas=(0.0, 0.1), amsgrad=True)
    assert adam.x[-30:].mean() > 0.95 and ams.x[-30:].mean() < -0.95


@pytest.mark.parametrize("amsgrad_flag", [False, True])
def test_the_vectorized_sweep_is_the_course_adam(amsgrad_flag):
    """One cell of adam_online_sweep against optim.Adam run by online_linear."""
    C, beta1, beta2 = 10, 0.5, 0.7
    worst = amsgrad.adam_online_sweep([beta1], [beta2], [C], periods=30, min_steps=300,
                                      amsgrad=amsgrad_flag)
    steps = 300
    run = amsgrad.online_linear(optim.Adam, amsgrad.periodic_coefficients(C, steps, period=C),
                                lr=0.5, betas=(beta1, beta2), amsgrad=amsgrad_flag)
    assert worst[0, 0] == pytest.approx(run.x[-C:].mean(), abs=1e-10)


def test_v_hat_sequences_follow_the_conventions():
    g = np.r_[30.0, np.ones(50)]
    seqs = amsgrad.v_hat_sequences(g, 0.9)
    assert np.allclose(seqs["corrected"], 900.0)
    t = np.arange(1, 52)
    assert np.allclose(seqs["raw"], 90.0 / (1 - 0.9**t))  # max raw v = v_1 = 0.1·900
    assert np.all(seqs["raw"] <= seqs["corrected"] + 1e-9)
    const = amsgrad.v_hat_sequences(np.full(20, 2.0), 0.99)
    assert all(np.allclose(v, 4.0) for v in const.values())


def test_v_hat_sequences_are_what_the_optimizer_divides_by():
    g = np.random.default_rng(2).normal(1.0, 0.5, 30)
    for convention in ("raw", "corrected", "memory_free"):
        eta = adaptivity.effective_lrs(optim.Adam, g, lr=1.0, betas=(0.0, 0.95), eps=0.0,
                                       amsgrad=True, amsgrad_convention=convention)
        v_hat = amsgrad.v_hat_sequences(g, 0.95, (convention,))[convention]
        assert np.allclose(eta, 1 / np.sqrt(v_hat), rtol=1e-10), convention

