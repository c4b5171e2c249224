"""Step-by-step parity with the reference implementations: parameters *and* state, every step.

Each registered configuration with a reference (``tests/optimizers.py``: ``torch.optim``,
``lion-pytorch``, ``pytorch-optimizer``) runs side by side with it through
:func:`tests.parity.run_parity`: float64, 12 steps, two param groups in which every
hyperparameter takes a different value, a ``None`` gradient for one parameter on steps 2, 5 and 6
(where the reference counts steps like us), ``maximize`` off and on (where the reference has it).
Twelve steps take RAdam past its switch from momentum-only to rectified steps (step 6).

The places where we differ from a reference on purpose are pinned here too, with both behaviours.
"""

from __future__ import annotations

import numbers

import pytest
import pytorch_optimizer
import torch

import course_lib.optim as O
from tests.optimizers import CONFIGS, exported_optimizers
from tests.parity import make_groups, make_params, run_parity

CASES = [
    pytest.param(config, maximize, id=f"{config.id}-{'max' if maximize else 'min'}")
    for config in CONFIGS
    if config.reference is not None
    for maximize in ((False, True) if config.reference.maximize else (False,))
]


@pytest.fixture(autouse=True)
def float64_default():
    """torch keeps scalar state (``step``, NAdam's ``mu_product``) in the default dtype; float64
    makes its scalar arithmetic as exact as ours (our counters are Python numbers)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("config, maximize", CASES)
def test_matches_reference(config, maximize, device):
    extra = {"maximize": True} if maximize else {}
    ref = config.reference
    opt, _ = run_parity(
        lambda groups: config.build(groups, **extra),
        lambda groups: config.build_reference(groups, **extra),
        ref.state,
        group_kwargs=config.groups,
        device=device,
        none_grad_steps=(2, 5, 6) if ref.none_grads else (),
    )
    # Every state entry of ours is accounted for by the state map (nothing unchecked).
    for state in opt.state.values():
        assert set(state) <= set(ref.state) | {"step"}, sorted(state)


@pytest.mark.parametrize("config", [c.param() for c in CONFIGS])
def test_groups_differ_in_every_hyperparameter(config):
    """A group that silently used the other group's value (or the default) must show."""
    p = [torch.zeros(2, requires_grad=True)]
    defaults = config.cls(p, **config.kwargs).defaults
    numbers_ = [
        k for k, v in defaults.items()
        if (k not in config.kwargs or any(k in g for g in config.groups))
        and not isinstance(v, bool) and isinstance(v, (numbers.Number, tuple))
    ]
    first, second = config.groups
    same = [k for k in numbers_ if first.get(k, defaults[k]) == second.get(k, defaults[k])]
    assert not same, f"{config.id}: both groups use the same {same}"


def test_every_torch_namesake_has_a_torch_reference():
    covered = {c.cls for c in CONFIGS if c.reference and c.reference.same_arguments}
    for name, cls in exported_optimizers().items():
        if hasattr(torch.optim, name):
            assert cls in covered, f"{name} has no parity case against torch.optim.{name}"


# --- deliberate differences, both behaviours pinned -------------------------------------------


def _adagrad_accumulators(factory):
    params = [p.requires_grad_() for p in make_params()]
    groups = make_groups(params, ({"initial_accumulator_value": 0.5}, {}))
    opt = factory(groups)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return [float(opt.state[p]["G" if "G" in opt.state[p] else "sum"].flatten()[0])
            for p in params]


def test_adagrad_honours_a_per_group_initial_accumulator_unlike_torch():
    """torch fills every accumulator in its constructor from the constructor's value and ignores
    the group's; ours creates it on the first gradient from the group's value."""
    ours = _adagrad_accumulators(lambda g: O.Adagrad(g, initial_accumulator_value=0.1))
    torch_ = _adagrad_accumulators(lambda g: torch.optim.Adagrad(g, initial_accumulator_value=0.1))
    assert ours == pytest.approx([1.5, 1.5, 1.1, 1.1])  # group 0's own 0.5, group 1's 0.1
    assert torch_ == pytest.approx([1.1, 1.1, 1.1, 1.1])  # the constructor's 0.1 everywhere


def test_adai_counts_steps_per_parameter_unlike_pytorch_optimizer():
    """With a ``None`` gradient on some steps, the official code's per-parameter step counter
    (ours) and pytorch-optimizer's per-group counter bias-correct differently."""
    from tests.test_optim_frontier import ADAI_STATE, OfficialAdai

    groups = ({"lr": 0.01}, {"lr": 0.003})
    run_parity(O.Adai, OfficialAdai, ADAI_STATE, group_kwargs=groups)  # equal, with None grads
    with pytest.raises(AssertionError):
        run_parity(O.Adai, pytorch_optimizer.Adai, {"m": "exp_avg"}, group_kwargs=groups)
