"""AdaMax (chapter 04): torch's arguments and messages, torch's state, the step bound.

Parity step by step against ``torch.optim.Adamax`` (readable path, fast path, compiled) runs from
the shared registry (``tests/optimizers.py``); this file pins what the registry does not: the
validation messages, loading torch's state dict, and the bound on the step the docstring states.
"""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch

import course_lib.optim as O
from tests.optimizers import BY_ID
from tests.parity import make_groups, make_params


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _grads(params, step):
    gen = torch.Generator().manual_seed(700 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def test_defaults_are_torchs():
    w = [torch.zeros(2, requires_grad=True)]
    ours, theirs = O.Adamax(w).defaults, torch.optim.Adamax(w).defaults
    for key in ("lr", "betas", "eps", "weight_decay", "maximize"):
        assert ours[key] == theirs[key], key
    assert ours["lr"] == 2e-3  # the paper's default for AdaMax, not Adam's 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
        ({"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ],
)
def test_invalid_hyperparameters_give_torchs_message(kwargs, message):
    w = [torch.zeros(2, requires_grad=True)]
    for cls in (O.Adamax, torch.optim.Adamax):
        with pytest.raises(ValueError, match=re.escape(message)):
            cls(w, **kwargs)


@pytest.mark.parametrize("through_file", [False, True], ids=["in-memory", "weights-only-file"])
def test_torchs_state_dict_continues_exactly_like_torch(through_file, tmp_path):
    config = BY_ID["Adamax"]
    ref_p = [p.clone().requires_grad_() for p in make_params()]
    ref = torch.optim.Adamax(make_groups(ref_p, config.groups))
    for step in range(4):
        _grads(ref_p, step)
        ref.step()
    saved = copy.deepcopy(ref.state_dict())  # torch's own buffers would be shared otherwise
    if through_file:
        torch.save(saved, tmp_path / "adamax.pt")
        saved = torch.load(tmp_path / "adamax.pt", weights_only=True)
    ours_p = [p.detach().clone().requires_grad_() for p in ref_p]
    ours = O.Adamax(make_groups(ours_p, config.groups))
    ours.load_state_dict(saved)
    assert set(ours.state[ours_p[0]]) == {"step", "m", "u"}
    for step in range(4, 9):
        _grads(ref_p, step)
        _grads(ours_p, step)
        ref.step()
        ours.step()
    for a, b in zip(ours_p, ref_p):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.state[a]["u"], ref.state[b]["exp_inf"])


def _largest_step_ratio(gradients, beta1, beta2, lr=1.0):
    """max_t |Δw_t| / lr of AdaMax fed ``gradients`` (one coordinate, eps = 0)."""
    w = torch.zeros(1, requires_grad=True)
    opt = O.Adamax([w], lr=lr, betas=(beta1, beta2), eps=0.0)
    largest = 0.0
    for g in gradients:
        before = w.detach().clone()
        w.grad = torch.tensor([g])
        opt.step()
        largest = max(largest, abs((w.detach() - before).item()) / lr)
    return largest


def test_step_bound_is_reached_by_a_gradient_shrinking_by_beta2_per_step():
    """Docstring: |Δw| ≤ η(1−β1)/(1−β1/β2), about 1.009η for the defaults, approached when
    every past gradient ties in the maximum (g_s ∝ β2^s); never above."""
    beta1, beta2 = 0.9, 0.999
    bound = (1 - beta1) / (1 - beta1 / beta2)
    assert bound == pytest.approx(1.00909, abs=1e-5)
    tied = _largest_step_ratio([beta2**s for s in range(400)], beta1, beta2)
    assert 1.0 < tied <= bound * (1 + 1e-12)
    assert tied == pytest.approx(bound, rel=1e-6)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        noise = (torch.randn(300, generator=gen) * torch.logspace(0, -3, 300)).tolist()
        assert _largest_step_ratio(noise, beta1, beta2) <= bound * (1 + 1e-12)


def test_first_step_is_the_learning_rate_and_u_needs_no_correction():
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = O.Adamax([w], lr=0.1, eps=0.0)
    w.grad = torch.tensor([0.5, -4.0, 1e-6])
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9, 2.9]))
    torch.testing.assert_close(opt.state[w]["u"], torch.tensor([0.5, 4.0, 1e-6]))
    assert math.isclose(opt.state[w]["m"][1].item(), -0.4)
