"""Loading another implementation's state: translated and continued exactly, or refused clearly.

Regression for the fuzzing finding "state dicts across libraries": ``torch.optim``'s state loaded
into ours was accepted and the moments silently restarted from zero (``exp_avg`` is not ``m``), or
the first step failed with a bare ``KeyError`` on a group key we have and torch has not.
"""

from __future__ import annotations

import copy
import io

import pytest
import pytorch_optimizer
import torch

import course_lib.optim as O
from tests.optimizers import CONFIGS
from tests.parity import make_groups, make_params

TRANSLATED = [c for c in CONFIGS if c.reference is not None and c.id in {
    "SGD", "SGD-nesterov", "Adagrad", "RMSprop", "RMSprop-centered", "Adadelta", "Adam",
    "Adam-decoupled", "Adam-amsgrad", "AdamW", "AdamW-amsgrad", "RAdam", "NAdam", "Lion",
}]


def _grads(params, step):
    g = torch.Generator().manual_seed(500 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("through_file", [False, True], ids=["in-memory", "weights-only-file"])
@pytest.mark.parametrize("config", [c.param() for c in TRANSLATED])
def test_reference_state_continues_exactly_like_the_reference(config, through_file):
    base = make_params()
    ref_p = [p.clone().requires_grad_() for p in base]
    ref = config.build_reference(make_groups(ref_p, config.groups))
    for step in range(4):
        _grads(ref_p, step)
        ref.step()
    saved = ref.state_dict()
    if through_file:
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
    else:
        saved = copy.deepcopy(saved)
    ours_p = [p.detach().clone().requires_grad_() for p in ref_p]
    ours = config.build(make_groups(ours_p, config.groups))
    ours.load_state_dict(saved)
    for p in ours_p:
        assert set(ours.state[p]) <= set(config.reference.state) | {"step"}
        if "step" in ours.state[p]:
            assert type(ours.state[p]["step"]) is int
    assert all(k not in g for g in ours.param_groups for k in ("foreach", "fused"))
    for step in range(4, 9):
        _grads(ref_p, step)
        _grads(ours_p, step)
        ref.step()
        ours.step()
    for a, b in zip(ours_p, ref_p):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(ours_p, ref_p):
        for key, ref_key in config.reference.state.items():
            if key == "step" or callable(ref_key) or ref_key not in ref.state[b]:
                continue
            torch.testing.assert_close(
                torch.as_tensor(ours.state[a][key]), torch.as_tensor(ref.state[b][ref_key])
            )


@pytest.mark.parametrize(
    "ours, theirs",
    [(O.Adai, pytorch_optimizer.Adai), (O.Adan, pytorch_optimizer.Adan)],
    ids=["Adai", "Adan"],
)
def test_untranslatable_state_is_refused_with_the_keys_named(ours, theirs):
    params = [p.requires_grad_() for p in make_params()]
    other = theirs(params)
    _grads(params, 0)
    other.step()
    opt = ours(params)
    with pytest.raises(ValueError, match=r"state keys \['exp_avg'") as info:
        opt.load_state_dict(other.state_dict())
    assert "another implementation" in str(info.value)
    assert not opt.state  # nothing was loaded


def test_our_own_state_is_loaded_as_it_is():
    params = [p.requires_grad_() for p in make_params()]
    opt = O.Adam(params, lr=0.01)
    _grads(params, 0)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    again = O.Adam(params, lr=0.01)
    again.load_state_dict(saved)
    assert again.state_dict()["state"].keys() == saved["state"].keys()
    assert sorted(again.state[params[0]]) == ["m", "step", "v"]


def test_a_group_saved_without_our_options_gets_the_defaults():
    """torch's SGD groups have no ``momentum_form`` (the old ``KeyError`` on the first step)."""
    params = [p.requires_grad_() for p in make_params()]
    ref = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    _grads(params, 0)
    ref.step()
    opt = O.SGD(params, lr=0.1, momentum=0.9)
    opt.load_state_dict(ref.state_dict())
    assert opt.param_groups[0]["momentum_form"] == "pytorch"
    assert opt.param_groups[0]["decoupled_weight_decay"] is False
    opt.step()


def test_adai_state_saved_with_the_old_flag_name_keeps_its_meaning():
    params = [p.requires_grad_() for p in make_params()]
    opt = O.AdaiW(params, weight_decay=0.1)
    _grads(params, 0)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    for group in saved["param_groups"]:
        group["decoupled"] = group.pop("decoupled_weight_decay")
    again = O.Adai(params, weight_decay=0.1)
    again.load_state_dict(saved)
    assert again.param_groups[0]["decoupled_weight_decay"] is True
    assert "decoupled" not in again.param_groups[0]


class AdamWithATrace(O.Adam):
    """A user's subclass that keeps state of its own."""

    def update(self, group, params, grads, states):
        for state, g in zip(states, grads):
            state["last_grad_norm"] = float(g.norm())
        return super().update(group, params, grads, states)


def test_a_subclass_with_state_of_its_own_still_loads_ours_and_torchs():
    params = [p.requires_grad_() for p in make_params()]
    opt = AdamWithATrace(params, lr=0.01)
    _grads(params, 0)
    opt.step()
    again = AdamWithATrace(params, lr=0.01)
    again.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert "last_grad_norm" in again.state[params[0]]
    ref = torch.optim.Adam(params, lr=0.01)
    ref.step()
    again.load_state_dict(ref.state_dict())
    assert sorted(again.state[params[0]]) == ["m", "step", "v"]
