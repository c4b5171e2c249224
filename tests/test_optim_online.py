"""The online RMSprop family (Mukkamala & Hein, 2017): identities and hand-computed steps.

* ``OnlineRMSprop(gamma=1, delta=d)`` *is* ``torch.optim.Adagrad(eps=d)``: identical trajectories
  up to float64 round-off, with L2, two groups and ``None`` grads (``t v_t`` = AdaGrad's sum).
* ``SCRMSprop(gamma=1)`` *is* ``SCAdagrad``.
* Three steps of each optimizer computed by hand from the update rules.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from course_lib.optim import OnlineRMSprop, SCAdagrad, SCRMSprop
from tests.parity import run_parity
from tests.test_optim_frontier import assert_steps

TWO_GROUPS = ({"lr": 0.05, "weight_decay": 0.1}, {"lr": 0.01, "weight_decay": 0.0})
ROUND_OFF = {"atol": 1e-15, "rtol": 1e-13}  # float64 round-off over 12 steps, nothing more


@pytest.mark.parametrize("delta", [1e-10, 0.1])
def test_online_rmsprop_with_gamma_one_is_adagrad(device, delta):
    run_parity(
        lambda g: OnlineRMSprop(g, gamma=1.0, delta=delta),
        lambda g: torch.optim.Adagrad(g, eps=delta),
        {"v": lambda s: s["sum"] / s["step"], "step": "step"},  # v_t = (1/t) * sum of g^2
        group_kwargs=TWO_GROUPS,
        device=device,
        **ROUND_OFF,
    )


def test_sc_rmsprop_with_gamma_one_is_sc_adagrad(device):
    run_parity(
        lambda g: SCRMSprop(g, gamma=1.0, xi1=0.1, xi2=0.5),
        lambda g: SCAdagrad(g, xi1=0.1, xi2=0.5),
        {"v": lambda s: s["v"] / s["step"], "step": "step"},
        group_kwargs=TWO_GROUPS,
        device=device,
        **ROUND_OFF,
    )


def test_gamma_below_one_is_not_adagrad(device):
    with pytest.raises(AssertionError):
        run_parity(
            lambda g: OnlineRMSprop(g, gamma=0.9),
            lambda g: torch.optim.Adagrad(g, eps=1e-8),
            {},
            group_kwargs=TWO_GROUPS,
            device=device,
        )


# w0 = 1; gradients 2, 1, -1; lr = 0.1.
GRADS = (2.0, 1.0, -1.0)


def _three_steps(opt_factory, device):
    p = torch.tensor([1.0], dtype=torch.float64, device=device, requires_grad=True)
    opt = opt_factory([p])
    out = []
    for g in GRADS:
        p.grad = torch.tensor([g], dtype=torch.float64, device=device)
        opt.step()
        out.append(p.item())
    return out, opt.state[p]


def test_online_rmsprop_by_hand(device):
    got, state = _three_steps(functools.partial(OnlineRMSprop, lr=0.1, gamma=0.5, delta=0.1),
                              device)
    # beta_t = 1 - 0.5/t:  v1 = 0.5*4 = 2 ;  v2 = 0.75*2 + 0.25*1 = 1.75 ;
    # v3 = (5/6)*1.75 + (1/6)*1 = 1.625.   Step: 0.1 * g / (sqrt(t * v_t) + 0.1).
    w1 = 1 - 0.1 * 2 / (math.sqrt(2.0) + 0.1)
    w2 = w1 - 0.1 * 1 / (math.sqrt(3.5) + 0.1)
    w3 = w2 + 0.1 * 1 / (math.sqrt(4.875) + 0.1)
    assert_steps(got, [w1, w2, w3])
    assert state["v"].item() == pytest.approx(1.625, rel=1e-15) and state["step"] == 3


def test_sc_adagrad_by_hand(device):
    got, state = _three_steps(functools.partial(SCAdagrad, lr=0.1, xi1=0.1, xi2=0.1), device)
    # v = 4, 5, 6 ; step 0.1 * g / (v + 0.1 * exp(-0.1 * v)).
    w1 = 1 - 0.1 * 2 / (4 + 0.1 * math.exp(-0.4))
    w2 = w1 - 0.1 * 1 / (5 + 0.1 * math.exp(-0.5))
    w3 = w2 + 0.1 * 1 / (6 + 0.1 * math.exp(-0.6))
    assert_steps(got, [w1, w2, w3])
    assert state["v"].item() == 6.0


def test_sc_rmsprop_by_hand(device):
    got, _ = _three_steps(functools.partial(SCRMSprop, lr=0.1, gamma=0.5, xi1=0.1, xi2=0.1),
                          device)
    # v_t as for OnlineRMSprop; s = t * v_t = 2, 3.5, 4.875 ; step 0.1 * g / (s + 0.1 exp(-0.1 s)),
    # i.e. (0.1 / t) * g / (v_t + delta_t / t).
    w1 = 1 - 0.1 * 2 / (2 + 0.1 * math.exp(-0.2))
    w2 = w1 - 0.1 * 1 / (3.5 + 0.1 * math.exp(-0.35))
    w3 = w2 + 0.1 * 1 / (4.875 + 0.1 * math.exp(-0.4875))
    assert_steps(got, [w1, w2, w3])


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (OnlineRMSprop, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (OnlineRMSprop, {"gamma": 0.0}, "Invalid gamma value: 0.0"),
        (OnlineRMSprop, {"gamma": 1.5}, "Invalid gamma value: 1.5"),
        (OnlineRMSprop, {"delta": -1.0}, "Invalid delta value: -1.0"),
        (OnlineRMSprop, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        (SCAdagrad, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (SCAdagrad, {"xi1": -1.0}, "Invalid xi1 value: -1.0"),
        (SCAdagrad, {"xi2": 0.0}, "Invalid xi2 value: 0.0"),
        (SCRMSprop, {"gamma": 2.0}, "Invalid gamma value: 2.0"),
        (SCRMSprop, {"xi2": -1.0}, "Invalid xi2 value: -1.0"),
        (SCRMSprop, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ],
)
def test_invalid_arguments(cls, kwargs, message):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls([p], **kwargs)


def test_defaults_are_the_authors():
    p = [torch.zeros(2, requires_grad=True)]
    defaults = OnlineRMSprop(p).defaults
    assert (defaults["lr"], defaults["gamma"], defaults["delta"]) == (1e-2, 0.9, 1e-8)
    assert SCAdagrad(p).defaults["xi1"] == SCAdagrad(p).defaults["xi2"] == 0.1
    assert SCRMSprop(p).defaults["gamma"] == 0.9
