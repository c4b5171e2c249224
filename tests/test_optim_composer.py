"""The composer (course_lib.optim.composer): named optimizers fall out as special cases.

Each named composition equals the course's named class AND its independent reference
(torch.optim / lion-pytorch) step by step, in float64, parameters and state, with two param
groups that differ in every hyperparameter and a parameter whose gradient is ``None`` on some
steps (tests/parity.py).
"""

from __future__ import annotations

import copy

import lion_pytorch
import pytest
import torch

import course_lib.optim as O
from course_lib.optim.composer import CONCEPTS, NAMED_COMPOSITIONS, Composition
from tests import optimizers as T
from tests.parity import make_groups, make_params, run_parity


def composed(name: str):
    composition, hyper = NAMED_COMPOSITIONS[name]
    return lambda groups: composition.build(groups, **hyper)


def _rename(groups, mapping):
    return [{mapping.get(k, k): v for k, v in g.items()} for g in groups]


def _rmsprop_groups(groups):
    return [{**{k: v for k, v in g.items() if k != "betas"}, "alpha": g["betas"][1]}
            for g in groups]  # fmt: skip


SGD_GROUPS = T.COMPOSED_SGD_GROUPS
ADAGRAD_GROUPS = tuple(
    {k: g[k] for k in ("lr", "eps", "weight_decay")} for g in T.ADAGRAD_GROUPS
)
STATE = {"m": "m", "v": "v", "step": "step"}

# name -> (groups, the named course class, the independent reference, its state names)
CASES = {
    "Adam": (T.ADAM_GROUPS, lambda g: O.Adam(g), lambda g: torch.optim.Adam(g), T.ADAM_STATE),
    "AdamW": (T.ADAM_GROUPS, lambda g: O.AdamW(g), lambda g: torch.optim.AdamW(g), T.ADAM_STATE),
    "AMSGrad": (T.ADAM_GROUPS, lambda g: O.Adam(g, amsgrad=True),
                lambda g: torch.optim.Adam(g, amsgrad=True),
                {**T.ADAM_STATE, "v_max": "max_exp_avg_sq"}),
    "RAdam": (T.ADAM_GROUPS, lambda g: O.RAdam(g), lambda g: torch.optim.RAdam(g), T.ADAM_STATE),
    "Lion": (T.LION_GROUPS, lambda g: O.Lion(g), lambda g: lion_pytorch.Lion(g),
             {"m": "exp_avg"}),
    "RMSprop": (T.COMPOSED_RMSPROP_GROUPS, lambda g: O.RMSprop(_rmsprop_groups(g)),
                lambda g: torch.optim.RMSprop(_rmsprop_groups(g)),
                {"v": "square_avg", "step": "step"}),
    "Momentum": (SGD_GROUPS, lambda g: O.SGD(_rename(g, {"momentum_coef": "momentum"}),
                                             momentum=0.9),
                 lambda g: torch.optim.SGD(_rename(g, {"momentum_coef": "momentum"})),
                 {"b": "momentum_buffer"}),
    "Nesterov": (SGD_GROUPS, lambda g: O.SGD(_rename(g, {"momentum_coef": "momentum"}),
                                             momentum=0.9, nesterov=True),
                 lambda g: torch.optim.SGD(_rename(g, {"momentum_coef": "momentum"}),
                                           momentum=0.9, nesterov=True),
                 {"b": "momentum_buffer"}),
    "AdaGrad": (ADAGRAD_GROUPS, lambda g: O.Adagrad(g), lambda g: torch.optim.Adagrad(g),
                {"G": "sum", "step": "step"}),
}  # fmt: skip
# the named class keeps SGD's velocity as "v", the composer as "b" (v is the second moment)
OURS_STATE = {"Momentum": {"b": "v"}, "Nesterov": {"b": "v"}, "Lion": {"m": "m"}}


@pytest.mark.parametrize("name", list(CASES))
def test_composed_equals_the_reference_step_by_step(name):
    groups, _, reference, state = CASES[name]
    run_parity(composed(name), reference, state, groups)


@pytest.mark.parametrize("name", list(CASES))
def test_composed_equals_the_named_course_class(name):
    groups, named, _, state = CASES[name]
    ours = OURS_STATE.get(name, {k: k for k in state})
    run_parity(composed(name), named, ours, groups, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["Adai", "AdaiW", "SGDW", "RMSpropBC"])
def test_composed_equals_the_named_class_without_torch_namesake(name):
    named = {
        "Adai": (T.ADAI_GROUPS, lambda g: O.Adai(g), {**STATE, "m": "m", "beta1_prod": "beta1_prod"}),
        "AdaiW": (T.ADAI_GROUPS, lambda g: O.AdaiW(g),
                  {**STATE, "m": "m", "beta1_prod": "beta1_prod"}),
        "SGDW": (SGD_GROUPS, lambda g: O.SGDW(_rename(g, {"momentum_coef": "momentum"}),
                                              momentum=0.9), {"b": "v"}),
        "RMSpropBC": (T.COMPOSED_RMSPROP_GROUPS, lambda g: O.RMSpropBC(_rmsprop_groups(g)),
                      {"v": "v", "step": "step"}),
    }  # fmt: skip
    groups, make, state = named[name]
    if name == "Adai" or name == "AdaiW":
        groups = tuple({k: v for k, v in g.items()} for g in groups)
    run_parity(composed(name), make, state, groups, rtol=1e-12, atol=1e-14)


def test_a_none_gradient_leaves_the_state_alone():
    params = [p.requires_grad_() for p in make_params()]
    opt = NAMED_COMPOSITIONS["Adam"][0].build(make_groups(params, T.ADAM_GROUPS))
    for p in params:
        p.grad = torch.ones_like(p)
    params[3].grad = None
    opt.step()
    assert params[3] not in opt.state or not opt.state[params[3]]
    assert opt.state[params[0]]["step"] == 1


def test_buffers_match_the_measured_state():
    for name, (composition, hyper) in NAMED_COMPOSITIONS.items():
        w = torch.zeros(100, requires_grad=True)
        opt = composition.build([w], **hyper)
        w.grad = torch.ones(100)
        opt.step()
        assert O.state_bytes(opt) == composition.buffers * 400, name


def test_every_choice_of_every_concept_runs_or_says_why_not():
    import itertools

    names = list(CONCEPTS)
    ran = refused = 0
    for values in itertools.product(*CONCEPTS.values()):
        concepts = dict(zip(names, values))
        try:
            composition = Composition(**concepts)
        except ValueError as err:
            assert "needs" in str(err) or "combine it with" in str(err)
            refused += 1
            continue
        w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
        opt = composition.build([w], lr=0.01, weight_decay=0.1)
        for _ in range(3):
            opt.zero_grad()
            (w**2).sum().backward()
            opt.step()
        assert torch.isfinite(w).all(), concepts
        ran += 1
    assert ran > 100 and refused > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": "polyak"}, "Invalid momentum"),
        ({"scaling": "adam"}, "Invalid scaling"),
        ({"bias_correction": "yes"}, "Invalid bias_correction"),
        ({"rectify": True}, "rectification"),
        ({"momentum": "adaptive_inertia", "scaling": "ema"}, "adaptive inertia"),
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1"),
        ({"momentum_coef": -0.1}, "Invalid momentum_coef"),
    ],
)
def test_invalid_arguments_raise_torch_style(kwargs, message):
    with pytest.raises(ValueError, match=message):
        O.ComposedOptimizer([torch.zeros(2, requires_grad=True)], **kwargs)


def test_adaptive_inertia_in_some_groups_only_is_refused():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="all groups or none"):
        O.ComposedOptimizer([{"params": [a]}, {"params": [b], "momentum": "adaptive_inertia"}])


def test_three_lines_of_code_build_the_same_optimizer():
    composition, hyper = NAMED_COMPOSITIONS["AdamW"]
    code = composition.code({"lr": 0.003, **hyper})
    assert len(code.splitlines()) == 3
    model = torch.nn.Linear(3, 2)
    namespace = {"model": model}
    exec(code, namespace)
    opt = namespace["optimizer"]
    assert opt.composition == composition
    assert opt.defaults["lr"] == 0.003 and opt.defaults["weight_decay"] == hyper["weight_decay"]


def test_deepcopy_and_state_dict_keep_the_concepts():
    w = torch.nn.Parameter(torch.ones(3))
    opt = NAMED_COMPOSITIONS["Adai"][0].build([w], betas=(0.1, 0.99), eps=1e-3)
    w.grad = torch.ones(3)
    opt.step()
    clone = copy.deepcopy(opt)
    assert clone.two_pass and clone.composition == opt.composition
    fresh = O.ComposedOptimizer([w], momentum="adaptive_inertia", betas=(0.1, 0.99))
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state[w]["step"] == 1


def test_the_fast_path_runs_the_composer_and_agrees_with_the_readable_step():
    previous = O.set_fast_path(True, compile=False, min_numel=1, direct_min=1 << 40)
    try:
        results, flat_steps = [], []
        for fast in (True, False):
            O.set_fast_path(fast)
            before = O.fast_path_stats()["eager_flat_steps"]
            w = torch.nn.Parameter(torch.linspace(-1, 1, 64, dtype=torch.float64))
            opt = NAMED_COMPOSITIONS["Adam"][0].build([w], lr=0.01)
            for _ in range(5):
                opt.zero_grad()
                (w**4).sum().backward()
                opt.step()
            results.append(w.detach().clone())
            flat_steps.append(O.fast_path_stats()["eager_flat_steps"] - before)
        assert flat_steps == [5, 0]
        torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-14)
    finally:
        O.set_fast_path(**previous)
