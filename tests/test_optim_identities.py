"""Identities and hand-computed values the lessons state: each is a claim the course makes.

* RMSpropBC is Adam with β1 = 0, bit for bit; its first steps match a hand computation.
* SGD's EMA momentum form with lr/(1−β) retraces PyTorch's form with lr.
* SGDW multiplies the weights by 1 − lr·λ and is SGD when λ = 0.
* The two AMSGrad conventions agree while v̂ is non-decreasing and differ after a large early
  gradient; the memory-free variant keeps no extra buffer.
* Reddi, Kale & Kumar's counterexample: Adam drifts to the worst point +1, AMSGrad to −1.
* RAdam takes momentum-only steps while ρ_t ≤ 5 (t ≤ 5 for β2 = 0.999).
* State memory: SGD-momentum 1×, Adam 2×, AMSGrad 3× the parameters' bytes.
"""

from __future__ import annotations

import math

import pytest
import torch

import course_lib.optim as O
from course_lib.optim import blocks as B
from tests.parity import make_params, run_parity

WD_GROUPS = ({"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.003, "weight_decay": 0.0})


def _scalar_run(opt_factory, grads, w0=1.0):
    """Feed a fixed gradient sequence to a one-element parameter; return its trajectory."""
    w = torch.tensor([w0], dtype=torch.float64, requires_grad=True)
    opt = opt_factory([w])
    path = []
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        path.append(w.item())
    return path, opt.state[w]


# --- RMSprop with bias correction --------------------------------------------------------------


@pytest.mark.parametrize("maximize", [False, True])
def test_rmspropbc_is_adam_with_beta1_zero_bitwise(maximize, device):
    alpha, eps = 0.9, 1e-6
    run_parity(
        lambda g: O.RMSpropBC(g, alpha=alpha, eps=eps, maximize=maximize),
        lambda g: O.Adam(g, betas=(0.0, alpha), eps=eps, maximize=maximize),
        {"v": "v", "step": "step"},
        group_kwargs=WD_GROUPS,
        device=device,
        atol=0.0,
        rtol=0.0,
    )


def test_rmspropbc_hand_computed():
    lr, alpha, eps = 0.1, 0.9, 1e-8
    grads = [2.0, -1.0, 0.5, 0.0, 3.0]
    path, state = _scalar_run(lambda p: O.RMSpropBC(p, lr=lr, alpha=alpha, eps=eps), grads)
    w, v, expected = 1.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        v = alpha * v + (1 - alpha) * g * g
        w -= lr * g / (math.sqrt(v / (1 - alpha**t)) + eps)
        expected.append(w)
    assert path == pytest.approx(expected, rel=1e-14, abs=1e-15)
    assert state["v"].item() == pytest.approx(v, rel=1e-14)
    # The corrected first step is lr·sign(g); uncorrected RMSprop's is lr/sqrt(1-alpha) ≈ 3.16 lr.
    assert path[0] == pytest.approx(1.0 - lr, rel=1e-7)
    plain, _ = _scalar_run(lambda p: O.RMSprop(p, lr=lr, alpha=alpha, eps=eps), grads[:1])
    assert plain[0] == pytest.approx(1.0 - lr / math.sqrt(1 - alpha), rel=1e-7)


# --- EMA vs PyTorch momentum -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [O.SGD, O.SGDW])
@pytest.mark.parametrize("nesterov", [False, True])
def test_ema_momentum_with_rescaled_lr_retraces_pytorch_form(cls, nesterov, device):
    """v_ema = (1−β)·v_pytorch, so SGD(ema, lr/(1−β)) ≡ SGD(pytorch, lr) (L2 decay included).

    For SGDW the decoupled decay lr·λ must not change: λ becomes λ(1−β).
    """
    beta = 0.9
    wd_scale = (1 - beta) if cls is O.SGDW else 1.0

    def ema(groups):
        scaled = [
            {**g, "lr": g["lr"] / (1 - beta), "weight_decay": g["weight_decay"] * wd_scale}
            for g in groups
        ]
        return cls(scaled, momentum=beta, nesterov=nesterov, momentum_form="ema")

    run_parity(
        ema,
        lambda g: cls(g, momentum=beta, nesterov=nesterov),
        {"v": lambda ref_state: (1 - beta) * ref_state["v"]},
        group_kwargs=WD_GROUPS,
        device=device,
        atol=1e-12,
        rtol=1e-10,
    )


def test_ema_momentum_starts_at_zero():
    path, state = _scalar_run(lambda p: O.SGD(p, lr=0.1, momentum=0.9, momentum_form="ema"), [1.0])
    assert state["v"].item() == pytest.approx(0.1)  # (1 − β)·g, not g
    assert path == pytest.approx([1.0 - 0.1 * 0.1])


# --- SGDW ------------------------------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgdw_decay_multiplies_the_weights(nesterov):
    """With zero gradients and momentum: w_{t+1} = (1 − lr·λ)·w_t exactly, every step."""
    lr, wd = 0.1, 0.5
    w = make_params()[0].requires_grad_()
    opt = O.SGDW([w], lr=lr, momentum=0.9, weight_decay=wd, nesterov=nesterov)
    for _ in range(5):
        expected = w.detach() * (1 - lr * wd)
        w.grad = torch.zeros_like(w)
        opt.step()
        assert torch.equal(w.detach(), expected)
        assert torch.equal(opt.state[w]["v"], torch.zeros_like(w))  # decay never enters v


def test_sgdw_hand_computed():
    """w ← w − lr·v − lr·λ·w with v ← μv + g (Loshchilov & Hutter, Algorithm 1)."""
    lr, mu, wd = 0.1, 0.9, 0.2
    grads = [1.0, -2.0, 0.5]
    path, _ = _scalar_run(lambda p: O.SGDW(p, lr=lr, momentum=mu, weight_decay=wd), grads)
    w, v, expected = 1.0, None, []
    for g in grads:
        v = g if v is None else mu * v + g
        w = w - lr * v - lr * wd * w
        expected.append(w)
    assert path == pytest.approx(expected, rel=1e-14)


def test_sgdw_without_decay_is_sgd(device):
    kw = dict(momentum=0.9, dampening=0.1)
    run_parity(
        lambda g: O.SGDW(g, **kw),
        lambda g: O.SGD(g, **kw),
        {"v": "v"},
        device=device,
        atol=0.0,
        rtol=0.0,
    )


def test_sgdw_differs_from_l2_sgd_with_momentum():
    """L2 decay enters the velocity and is remembered; decoupled decay is not."""
    grads = [1.0, -2.0, 0.5, 0.25]
    kw = dict(lr=0.1, momentum=0.9, weight_decay=0.2)
    decoupled, _ = _scalar_run(lambda p: O.SGDW(p, **kw), grads)
    l2, _ = _scalar_run(lambda p: O.SGD(p, **kw), grads)
    assert abs(decoupled[-1] - l2[-1]) > 1e-3


# --- AMSGrad conventions -----------------------------------------------------------------------


def _adam(convention=None, **kw):
    if convention is None:
        return lambda p: O.Adam(p, lr=0.1, **kw)
    return lambda p: O.Adam(p, lr=0.1, amsgrad=True, amsgrad_convention=convention, **kw)


def test_amsgrad_conventions_agree_while_vhat_grows():
    """Growing |g| makes v̂_t non-decreasing: every AMSGrad variant is then plain Adam."""
    grads = [0.5 * t for t in range(1, 13)]
    adam, _ = _scalar_run(_adam(), grads)
    for convention in B.AMSGRAD_CONVENTIONS:
        path, _ = _scalar_run(_adam(convention), grads)
        assert path == pytest.approx(adam, rel=1e-13), convention


def test_amsgrad_conventions_differ_after_a_large_early_gradient():
    """After g_1 = 1 then small gradients: raw max v_1 decays as v_1/(1−β2^t), corrected stays."""
    beta2, eps = 0.9, 1e-8
    grads = [1.0] + [0.01] * 5
    raw, raw_state = _scalar_run(_adam("raw", betas=(0.0, beta2), eps=eps), grads)
    corrected, cor_state = _scalar_run(_adam("corrected", betas=(0.0, beta2), eps=eps), grads)
    assert raw_state["v_max"].item() == pytest.approx(1 - beta2)  # max of raw v: v_1
    assert cor_state["v_hat_max"].item() == pytest.approx(1.0)  # max of v̂: v̂_1 = g_1²
    # Hand-computed steps (β1 = 0, so m̂ = g): denominators sqrt(v_1/(1−β2^t)) vs sqrt(v̂_1).
    w_raw = w_cor = 1.0
    for t, g in enumerate(grads, start=1):
        w_raw -= 0.1 * g / (math.sqrt((1 - beta2) / (1 - beta2**t)) + eps)
        w_cor -= 0.1 * g / (1.0 + eps)
    assert raw[-1] == pytest.approx(w_raw, rel=1e-13)
    assert corrected[-1] == pytest.approx(w_cor, rel=1e-13)
    assert abs(raw[-1] - corrected[-1]) > 1e-3


def test_memory_free_amsgrad_keeps_v_non_decreasing_without_a_buffer():
    grads = [1.0, 0.1, 0.1, 2.0, 0.0, 0.3]
    w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = O.Adam([w], lr=0.1, betas=(0.9, 0.9), amsgrad=True, amsgrad_convention="memory_free")
    v_prev = 0.0
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        v = opt.state[w]["v"].item()
        assert v == pytest.approx(max(v_prev, 0.9 * v_prev + 0.1 * g * g), rel=1e-15)
        v_prev = v
    assert set(opt.state[w]) == {"m", "v", "step"}
    raw, _ = _scalar_run(_adam("raw", betas=(0.9, 0.9)), grads)
    free, _ = _scalar_run(_adam("memory_free", betas=(0.9, 0.9)), grads)
    assert abs(raw[-1] - free[-1]) > 1e-4  # the max feeds back into the EMA


def _reddi(opt_factory, steps=300, C=3.0, alpha=0.5):
    """Reddi et al.'s online problem: f_t(x) = C·x if t mod 3 = 1 else −x, x ∈ [−1, 1].

    The regret-minimising point is x = −1 (the average gradient (C − 2)/3 > 0). Step size
    α_t = α/√t through ``LambdaLR``; projection onto [−1, 1] after every step.
    """
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = opt_factory([x])
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / math.sqrt(k + 1))
    for t in range(1, steps + 1):
        x.grad = torch.full_like(x, C if t % 3 == 1 else -1.0)
        opt.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
    return x.item()


@pytest.mark.parametrize("convention", B.AMSGRAD_CONVENTIONS)
def test_reddi_counterexample(convention):
    """Theorem 1 of Reddi, Kale & Kumar (2018): C = 3, β1 = 0, β2 = 1/(1 + C²) = 0.1, α_t = α/√t.

    Adam goes to +1 (the worst point), AMSGrad to −1 (the best), in every convention; x_1 = 0,
    α = 0.5, 300 steps (a multiple of the period 3). Our Adam is bias-corrected with ε = 1e-8,
    unlike the paper's; β2^t vanishes after a few steps, so the outcome is the theorem's.
    """
    betas = (0.0, 1 / (1 + 3.0**2))
    adam = _reddi(lambda p: O.Adam(p, lr=0.5, betas=betas))
    ams = _reddi(lambda p: O.Adam(p, lr=0.5, betas=betas, amsgrad=True, amsgrad_convention=convention))
    assert adam > 0.99
    assert ams < -0.95


# --- RAdam's switch ---------------------------------------------------------------------------


def test_radam_rectification_switches_at_step_6():
    rect = B.radam_rectification(list(range(1, 9)), 0.999)
    assert rect[:5] == [None] * 5
    assert all(r is not None and 0 < r < 1 for r in rect[5:])
    # Hand check of r_6.
    rho_inf = 2 / (1 - 0.999) - 1
    rho = rho_inf - 2 * 6 * 0.999**6 / (1 - 0.999**6)
    assert rect[5] == pytest.approx(
        math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    )


def test_radam_first_steps_are_bias_corrected_momentum():
    grads = [1.0, -0.5, 2.0, 0.25, -1.0]
    path, _ = _scalar_run(lambda p: O.RAdam(p, lr=0.1), grads)
    w, m, expected = 1.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        w -= 0.1 * m / (1 - 0.9**t)
        expected.append(w)
    assert path == pytest.approx(expected, rel=1e-14)


# --- learning-rate blocks ---------------------------------------------------------------------


def test_scale_by_lr_evaluates_the_schedule_at_each_parameters_step():
    u = [torch.ones(3, dtype=torch.float64), 2 * torch.ones(2, dtype=torch.float64)]
    scaled = B.scale_by_lr(u, lambda t: 1.0 / t, [2, 4])
    assert torch.equal(scaled[0], torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.equal(scaled[1], torch.full((2,), 0.5, dtype=torch.float64))


def test_rms_scale_eps_inside_and_outside():
    x, v = [torch.tensor([1.0], dtype=torch.float64)], [torch.tensor([1e-8], dtype=torch.float64)]
    outside = B.rms_scale(x, v, 1e-8)[0].item()
    inside = B.rms_scale(x, v, 1e-8, eps_inside=True)[0].item()
    assert outside == pytest.approx(1 / (1e-4 + 1e-8))
    assert inside == pytest.approx(1 / math.sqrt(2e-8))


# --- memory ----------------------------------------------------------------------------------


def _bytes_after_one_step(factory):
    model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    params = list(model.parameters())
    opt = factory(params)
    model(torch.randn(4, 7)).sum().backward()
    opt.step()
    return opt.state_bytes(), sum(p.numel() * p.element_size() for p in params)


@pytest.mark.parametrize(
    "factory, multiple",
    [
        (lambda p: O.SGD(p), 0),
        (lambda p: O.SGD(p, momentum=0.9), 1),
        (lambda p: O.SGDW(p, momentum=0.9, weight_decay=0.1), 1),
        (lambda p: O.Adagrad(p), 1),
        (lambda p: O.RMSprop(p), 1),
        (lambda p: O.RMSprop(p, centered=True, momentum=0.9), 3),
        (lambda p: O.RMSpropBC(p), 1),
        (lambda p: O.Adadelta(p), 2),
        (lambda p: O.Adam(p), 2),
        (lambda p: O.AdamW(p), 2),
        (lambda p: O.Adam(p, amsgrad=True), 3),
        (lambda p: O.Adam(p, amsgrad=True, amsgrad_convention="corrected"), 3),
        (lambda p: O.Adam(p, amsgrad=True, amsgrad_convention="memory_free"), 2),
        (lambda p: O.RAdam(p), 2),
        (lambda p: O.NAdam(p), 2),
    ],
    ids=[
        "sgd", "sgd-momentum", "sgdw", "adagrad", "rmsprop", "rmsprop-centered-momentum",
        "rmspropbc", "adadelta", "adam", "adamw", "amsgrad", "amsgrad-corrected",
        "amsgrad-memory_free", "radam", "nadam",
    ],
)
def test_state_bytes_multiple_of_params(factory, multiple):
    """Step counters (and NAdam's μ product) are Python numbers, so the ratio is exact."""
    state, params = _bytes_after_one_step(factory)
    assert state == multiple * params
