"""Frontier optimizers against their references, step by step (params *and* state every step).

The step-by-step parity with ``lion-pytorch`` and ``pytorch-optimizer`` is in
``test_optim_parity.py`` (the registry of ``tests/optimizers.py``); here is what is specific:

* Lion: every move is exactly ``lr``; one state buffer.
* Adai / AdaiW: a transcription of the official code (``zeke-xie/adaptive-inertia-adai``), also
  where ``pytorch_optimizer.Adai`` differs from it (per-parameter step counter, unclipped mean of
  v̂ — both matter with ``None`` grads or small gradients); the mean over all param groups; both
  passes on the fast path.
* Adan: the group step of the official ``sail-sg/Adan`` code, the zero first difference.
* PowerSign / AddSign: three hand-computed steps, with and without sign decay.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import re
import warnings

import pytest
import pytorch_optimizer
import torch

import course_lib.optim as O
from course_lib.optim import Adai, AdaiW, Adan, AddSign, Lion, PowerSign
from course_lib.optim import blocks as B
from tests.parity import make_groups, make_params, run_parity

TWO_GROUPS = ({"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.003, "weight_decay": 0.02})
NO_DECAY = ({"lr": 0.01}, {"lr": 0.003})


# ---------------------------------------------------------------------------------------------
# Lion
# ---------------------------------------------------------------------------------------------


def test_lion_every_move_is_exactly_lr(device):
    lr = 1e-3
    params = [p.requires_grad_() for p in make_params(device)]
    opt = Lion(params, lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        before = [p.detach().clone() for p in params]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype).to(device)
        opt.step()
        for p, w in zip(params, before):
            move = (p.detach() - w).abs()
            ulp = torch.nextafter(w.abs(), torch.full_like(w, math.inf)) - w.abs()
            # w - lr*sign(c) is rounded once; the difference is then exact (Sterbenz).
            assert torch.all((move - lr).abs() <= ulp), (move - lr).abs().max()


def test_lion_state_is_one_buffer():
    p = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    opt = Lion([p])
    p.grad = torch.ones_like(p)
    opt.step()
    assert set(opt.state[p]) == {"m"}


# ---------------------------------------------------------------------------------------------
# Adai and AdaiW
# ---------------------------------------------------------------------------------------------


class OfficialAdai(torch.optim.Optimizer):
    """The official Adai update (``zeke-xie/adaptive-inertia-adai``), transcribed.

    ``adai_optim/adai.py``: a first loop over *every* group advances each parameter's own step,
    applies L2 (into the gradient) or, with ``decoupled``, the decay ``w *= 1 - lr*wd``, updates
    ``exp_avg_sq`` and sums ``exp_avg_sq / (1 - beta2**step)``; the mean over all elements is *not*
    clipped; a second loop over every group computes ``beta1 = clamp(1 - beta0 * v_hat / mean, 0,
    1 - eps)``, updates ``beta1_prod`` and ``exp_avg`` and moves by ``lr * exp_avg / (1 -
    beta1_prod)``. ``adai_optim/adaiw.py`` (``adaiw=True``) decays in the second loop instead.
    (A reference may write into ``p.grad`` as the original does; the course optimizer never does.)
    """

    def __init__(self, params, lr=1e-3, betas=(0.1, 0.99), eps=1e-3, weight_decay=0.0,
                 decoupled=False, adaiw=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled=decoupled or adaiw, adaiw=adaiw)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        numel, v_hat_sum = 0, 0.0
        for group in self.param_groups:
            beta2, wd = group["betas"][1], group["weight_decay"]
            for p in (p for p in group["params"] if p.grad is not None):
                numel += p.numel()
                st = self.state[p]
                if not st:
                    st.update(step=0, exp_avg=torch.zeros_like(p),
                              exp_avg_sq=torch.zeros_like(p), beta1_prod=torch.ones_like(p))
                st["step"] += 1
                if wd != 0 and not group["decoupled"]:
                    p.grad.add_(p, alpha=wd)
                elif wd != 0 and not group["adaiw"]:
                    p.mul_(1 - group["lr"] * wd)
                st["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                v_hat_sum += st["exp_avg_sq"].sum() / (1 - beta2 ** st["step"])
        mean = v_hat_sum / numel
        for group in self.param_groups:
            beta0, beta2 = group["betas"]
            for p in (p for p in group["params"] if p.grad is not None):
                if group["weight_decay"] != 0 and group["adaiw"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                st = self.state[p]
                v_hat = st["exp_avg_sq"] / (1 - beta2 ** st["step"])
                beta1 = (1.0 - (v_hat / mean).mul(beta0)).clamp(0.0, 1 - group["eps"])
                st["beta1_prod"].mul_(beta1)
                st["exp_avg"].mul_(beta1).addcmul_(1 - beta1, p.grad)
                p.add_(st["exp_avg"] / (1 - st["beta1_prod"]), alpha=-group["lr"])


ADAI_STATE = {"m": "exp_avg", "v": "exp_avg_sq", "beta1_prod": "beta1_prod", "step": "step"}


@pytest.mark.parametrize("decoupled", [False, True], ids=["l2", "decoupled"])
def test_adai_matches_official_code_with_none_grads(device, decoupled):
    run_parity(
        lambda g: Adai(g, decoupled=decoupled),
        lambda g: OfficialAdai(g, decoupled=decoupled),
        ADAI_STATE, group_kwargs=TWO_GROUPS, device=device,
    )


def test_adaiw_matches_official_adaiw_with_none_grads(device):
    run_parity(AdaiW, lambda g: OfficialAdai(g, adaiw=True), ADAI_STATE,
               group_kwargs=TWO_GROUPS, device=device)


def test_adaiw_equals_adai_decoupled(device):
    run_parity(
        AdaiW, lambda g: Adai(g, decoupled=True),
        {"m": "m", "v": "v", "beta1_prod": "beta1_prod", "step": "step"},
        group_kwargs=TWO_GROUPS, device=device, atol=0, rtol=0,
    )


def _adai_small_gradient_run(factory, device):
    params = [p.requires_grad_() for p in make_params(device)]
    opt = factory(make_groups(params, NO_DECAY))
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        for p in params:
            p.grad = 1e-3 * torch.randn(p.shape, generator=g, dtype=p.dtype).to(device)
        opt.step()
    return [p.detach() for p in params]


def test_adai_mean_is_not_clipped_like_official(device):
    """With gradients ~1e-3, mean(v̂) ~1e-6 < eps: pytorch-optimizer clamps the mean at eps (so
    every β1 ≈ 1 - 1e-4), the official code does not. We follow the official code."""
    ours = _adai_small_gradient_run(Adai, device)
    official = _adai_small_gradient_run(OfficialAdai, device)
    clamped = _adai_small_gradient_run(pytorch_optimizer.Adai, device)
    for a, b in zip(ours, official):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=1e-12)
    assert not all(torch.allclose(a, c, atol=1e-13, rtol=1e-12) for a, c in zip(ours, clamped))


def test_adai_mean_is_over_all_groups(device):
    """Group 2's gradients change group 1's step: v̂ is compared with the mean over *all* groups."""

    def first_param_after_two_steps(scale_second_group):
        params = [p.requires_grad_() for p in make_params(device)]
        opt = Adai(make_groups(params, NO_DECAY))
        for step in range(2):
            for i, p in enumerate(params):
                scale = scale_second_group if i >= 2 else 1.0
                p.grad = torch.full_like(p, (-2.0) ** step * scale)
            opt.step()
        return params[0].detach().clone()

    assert not torch.allclose(first_param_after_two_steps(1.0), first_param_after_two_steps(3.0))


def test_adai_zero_gradients_do_not_produce_nan(device):
    # The official code divides 0/0 when every gradient so far is zero; we take the ratio as 0.
    p = torch.ones(3, dtype=torch.float64, device=device, requires_grad=True)
    opt = Adai([p])
    p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(p.detach(), torch.ones_like(p))
    assert torch.all(opt.state[p]["beta1_prod"] == 1 - 1e-3)


@pytest.fixture
def fast_everywhere():
    """The fast path on (compiled) for any size, as in ``tests/test_optim_fast.py``; restored."""
    previous = O.set_fast_path(True, compile=True, min_numel=1)
    yield
    O.set_fast_path(**previous)


def _no_compile_failure(caught) -> None:
    failures = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert not failures, failures


@pytest.mark.parametrize(
    "factories",
    [
        pytest.param((lambda g: Adai(g), lambda g: OfficialAdai(g)), id="Adai-l2"),
        pytest.param(
            (lambda g: Adai(g, decoupled=True), lambda g: OfficialAdai(g, decoupled=True)),
            id="Adai-decoupled",
        ),
        pytest.param((AdaiW, lambda g: OfficialAdai(g, adaiw=True)), id="AdaiW"),
    ],
)
def test_adai_fast_path_matches_official_code_with_none_grads(factories, fast_everywhere):
    """The compiled path against the official code; a ``None`` grad sends the second group to the
    readable path on that step, so the mean then combines a flat and a readable share."""
    ours, official = factories
    before = O.fast_path_stats()["compiled_steps"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_parity(ours, official, ADAI_STATE, group_kwargs=TWO_GROUPS)
    _no_compile_failure(caught)
    assert O.fast_path_stats()["compiled_steps"] - before >= 12


def test_adai_state_dict_moves_between_fast_and_readable(fast_everywhere):
    """A state_dict saved on the fast path continues on the readable path, and back."""
    base = make_params("cpu")
    runs = []
    for fast_first in (True, False):
        params = [p.clone().requires_grad_() for p in base]
        opt = AdaiW(make_groups(params, TWO_GROUPS))
        for step in range(8):
            if step == 4:  # switch paths through a state_dict round trip
                saved = copy.deepcopy(opt.state_dict())
                for st in saved["state"].values():
                    assert list(st) == ["step", "v", "m", "beta1_prod"]
                    assert type(st["step"]) is int
                opt = AdaiW(make_groups(params, TWO_GROUPS))
                opt.load_state_dict(saved)
            for group in opt.param_groups:
                group["fast"] = fast_first == (step < 4)
            g = torch.Generator().manual_seed(7 + step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            opt.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# Adan
# ---------------------------------------------------------------------------------------------

def test_adan_group_step_advances_even_without_gradients(device):
    # Official convention (and pytorch-optimizer's): k counts step() calls, per group, so a group
    # with no gradient at all on some step is bias-corrected with the larger k afterwards.
    def run(factory):
        params = [p.requires_grad_() for p in make_params(device)]
        opt = factory(make_groups(params, TWO_GROUPS))
        g = torch.Generator().manual_seed(5)
        for step in range(5):
            for i, p in enumerate(params):
                skip = step in (1, 2) and i >= 2  # the whole second group
                p.grad = None if skip else torch.randn(p.shape, generator=g,
                                                       dtype=p.dtype).to(device)
            opt.step()
        return params, opt

    ours, opt = run(Adan)
    ref, ref_opt = run(pytorch_optimizer.Adan)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert [g["step"] for g in opt.param_groups] == [g["step"] for g in ref_opt.param_groups]
    assert [g["step"] for g in opt.param_groups] == [5, 5]


def test_adan_first_difference_is_zero(device):
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, device=device, requires_grad=True)
    opt = Adan([p], lr=0.1)
    p.grad = torch.tensor([0.5, 4.0], dtype=torch.float64, device=device)
    opt.step()
    st = opt.state[p]
    assert torch.equal(st["v"], torch.zeros_like(p))
    torch.testing.assert_close(st["n"], 0.01 * p.grad**2, atol=0, rtol=1e-15)
    # Step 1: m̂ = g, v̂ = 0, n̂ = g²: the first move is lr * g / (|g| + eps) ≈ lr * sign(g).
    torch.testing.assert_close(
        p.detach(), torch.tensor([1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 - 0.1 * 4 / (4 + 1e-8)],
                                 dtype=torch.float64, device=device),
        atol=0, rtol=1e-15,
    )


# ---------------------------------------------------------------------------------------------
# PowerSign and AddSign: three steps by hand
# ---------------------------------------------------------------------------------------------

# w0 = [1, -2]; gradients g1 = [0.5, -1], g2 = [-0.25, -1], g3 = [-0.5, 0]; lr = 0.1, beta = 0.9.
# m1 = [0.05, -0.1]          sign(g)sign(m) = [+1, +1]
# m2 = [0.02, -0.19]         sign(g)sign(m) = [-1, +1]
# m3 = [-0.032, -0.171]      sign(g)sign(m) = [+1,  0]   (g3[1] = 0: no move at all)
GRADS = ([0.5, -1.0], [-0.25, -1.0], [-0.5, 0.0])
E = math.e


def assert_steps(got, expected):
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64),
                               torch.tensor(expected, dtype=torch.float64), atol=1e-15, rtol=1e-14)


def _three_steps(opt_factory, device):
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, device=device, requires_grad=True)
    opt = opt_factory([p])
    out = []
    for g in GRADS:
        p.grad = torch.tensor(g, dtype=torch.float64, device=device)
        opt.step()
        out.append(p.detach().tolist())
    return out, opt.state[p]


def test_powersign_by_hand(device):
    got, state = _three_steps(functools.partial(PowerSign, lr=0.1), device)
    w1 = [1 - 0.1 * 0.5 * E, -2 + 0.1 * E]  # agree: e * g
    w2 = [w1[0] + 0.1 * 0.25 / E, w1[1] + 0.1 * E]  # disagree: g / e ; agree: e * g
    w3 = [w2[0] + 0.1 * 0.5 * E, w2[1]]  # agree: e * g ; zero gradient
    assert_steps(got, [w1, w2, w3])
    torch.testing.assert_close(state["m"].cpu(), torch.tensor([-0.032, -0.171], dtype=torch.float64),
                               atol=1e-16, rtol=1e-14)
    assert state["step"] == 3


def test_addsign_by_hand(device):
    got, _ = _three_steps(functools.partial(AddSign, lr=0.1), device)
    # (1 + s) * g: agree -> 2g, disagree -> 0, s = 0 -> g.
    expected = [[0.9, -1.8], [0.9, -1.6], [1.0, -1.6]]
    assert_steps(got, expected)


def test_sign_decay_by_hand(device):
    decay = functools.partial(B.linear_sign_decay, decay_steps=2)  # f(0)=1, f(1)=0.5, f(2)=0
    got, _ = _three_steps(functools.partial(AddSign, lr=0.1, sign_decay=decay), device)
    # step 2: (1 - 0.5) * -0.25 and (1 + 0.5) * -1 ; step 3: f = 0, plain SGD step.
    expected = [[0.9, -1.8], [0.9125, -1.65], [0.9625, -1.65]]
    assert_steps(got, expected)

    got, _ = _three_steps(functools.partial(PowerSign, lr=0.1, sign_decay=decay), device)
    w1 = [1 - 0.05 * E, -2 + 0.1 * E]
    w2 = [w1[0] + 0.025 * E**-0.5, w1[1] + 0.1 * E**0.5]
    w3 = [w2[0] + 0.05, w2[1]]
    assert_steps(got, [w1, w2, w3])


def test_sign_decay_functions():
    lin = functools.partial(B.linear_sign_decay, decay_steps=10)
    assert [lin(t) for t in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]
    cos = functools.partial(B.cosine_sign_decay, decay_steps=10)
    assert cos(0) == 1.0 and abs(cos(5) - 0.5) < 1e-15 and cos(10) == 0.0 and cos(30) == 0.0
    cyc = functools.partial(B.cosine_sign_decay, decay_steps=10, num_periods=2)
    assert [round(cyc(t), 12) for t in (0, 2.5, 5, 7.5, 10)] == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_sign_decay_by_name_equals_the_function():
    named, _ = _three_steps(
        functools.partial(AddSign, lr=0.1, sign_decay="linear", decay_steps=2), "cpu"
    )
    decay = functools.partial(B.linear_sign_decay, decay_steps=2)
    by_function, _ = _three_steps(functools.partial(AddSign, lr=0.1, sign_decay=decay), "cpu")
    assert named == by_function


@pytest.mark.parametrize("cls", [PowerSign, AddSign])
def test_named_sign_decay_survives_a_weights_only_round_trip(device, cls):
    """Regression: a sign decay given as a function could not be read back with
    ``torch.load(weights_only=True)``; a named decay is plain data in the param group."""
    p0 = torch.tensor([1.0, -2.0], dtype=torch.float64, device=device)
    straight, state = _three_steps(
        functools.partial(cls, lr=0.1, sign_decay="linear", decay_steps=2), device
    )
    p = p0.clone().requires_grad_()
    first = cls([p], lr=0.1, sign_decay="linear", decay_steps=2)
    p.grad = torch.tensor(GRADS[0], dtype=torch.float64, device=device)
    first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = cls([p], lr=0.1)  # no decay until the saved groups come back
    second.load_state_dict(torch.load(buffer, weights_only=True))
    for g in GRADS[1:]:
        p.grad = torch.tensor(g, dtype=torch.float64, device=device)
        second.step()
    assert_steps(p.detach().tolist(), straight[-1])
    torch.testing.assert_close(second.state[p]["m"], state["m"])


# ---------------------------------------------------------------------------------------------
# Constructor checks (torch's wording)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (Lion, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (Lion, {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
        (Lion, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        (Adai, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (Adai, {"betas": (-0.1, 0.99)}, "Invalid beta parameter at index 0: -0.1"),
        (Adai, {"betas": (0.1, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
        (Adai, {"eps": -1e-3}, "Invalid epsilon value: -0.001"),
        (AdaiW, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        (Adan, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (Adan, {"betas": (0.98, 0.92, 1.5)}, "Invalid beta parameter at index 2: 1.5"),
        (Adan, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
        (Adan, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        (PowerSign, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (PowerSign, {"beta": 1.5}, "Invalid beta value: 1.5"),
        (PowerSign, {"base": 0.0}, "Invalid base value: 0.0"),
        (AddSign, {"beta": -0.5}, "Invalid beta value: -0.5"),
        (AddSign, {"sign_decay": "linear"}, "sign_decay='linear' needs decay_steps"),
        (AddSign, {"sign_decay": "exponential", "decay_steps": 5}, "Invalid sign_decay"),
        (Adai, {"decoupled_weight_decay": True, "decoupled": False}, "contradicts"),
        (Adan, {"betas": (0.98, 0.92)}, "Invalid betas: expected 3 values, got 2"),
        (AddSign, {"alpha": -1.0}, "Invalid alpha value: -1.0"),
    ],
)
def test_invalid_arguments(cls, kwargs, message):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=re.escape(message)):
        cls([p], **kwargs)


def test_defaults_are_the_papers():
    p = [torch.zeros(2, requires_grad=True)]
    assert Lion(p).defaults["lr"] == 1e-4 and Lion(p).defaults["betas"] == (0.9, 0.99)
    assert Adai(p).defaults["betas"] == (0.1, 0.99) and Adai(p).defaults["eps"] == 1e-3
    assert Adan(p).defaults["betas"] == (0.98, 0.92, 0.99) and Adan(p).defaults["eps"] == 1e-8
    assert PowerSign(p).defaults["base"] == math.e and PowerSign(p).defaults["beta"] == 0.9
    assert AddSign(p).defaults["alpha"] == 1.0
