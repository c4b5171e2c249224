"""The ``torch.optim.Optimizer`` contract, for every optimizer that ``course_lib.optim`` exports.

Modelled on PyTorch's own optimizer test suite (``test/test_optim.py``): every configuration of the
registry (``tests/optimizers.py``) goes through every test, and a test fails when an exported
optimizer (every public :class:`~course_lib.optim.BlockOptimizer` subclass of ``course_lib.optim``)
has no configuration there.
"""

from __future__ import annotations

import copy
import inspect
import io
import re

import pytest
import torch

import course_lib.optim as O
from tests.optimizers import CONFIGS as REGISTRY
from tests.optimizers import exported_optimizers

torch_optim = torch.optim


OPTIMIZERS = exported_optimizers()
# Each registered configuration, with its first group's hyperparameters as the defaults.
CONFIGS = [pytest.param(c.cls, {**c.kwargs, **c.groups[0]}, id=c.id) for c in REGISTRY]


def test_discovery_finds_the_course_optimizers():
    expected = {"SGD", "SGDW", "Adagrad", "RMSprop", "RMSpropBC", "Adadelta"}
    expected |= {"Adam", "AdamW", "RAdam", "NAdam"}
    assert expected <= set(OPTIMIZERS)


def test_every_exported_optimizer_is_registered():
    missing = sorted(n for n, cls in OPTIMIZERS.items() if cls not in {c.cls for c in REGISTRY})
    assert not missing, f"no configuration in tests/optimizers.py for {missing}"


def test_every_optimizer_is_in_all():
    missing = [name for name in OPTIMIZERS if name not in O.__all__]
    assert not missing, f"exported optimizers missing from course_lib.optim.__all__: {missing}"


# --- a small problem --------------------------------------------------------------------------


def _problem(seed=0, dtype=torch.float64):
    """A linear least-squares model: weight (3, 4) and bias (3,), targets far from the start."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=g, dtype=dtype)
    y = 3 * torch.randn(16, 3, generator=g, dtype=dtype)
    weight = torch.randn(3, 4, generator=g, dtype=dtype).requires_grad_()
    bias = torch.randn(3, generator=g, dtype=dtype).requires_grad_()

    def loss_fn(params):
        w, b = params
        return ((x @ w.t() + b - y) ** 2).mean()

    return [weight, bias], loss_fn


def _groups(params, lrs=None):
    if lrs is None:
        return [{"params": params[:1]}, {"params": params[1:]}]
    return [{"params": params[:1], "lr": lrs[0]}, {"params": params[1:], "lr": lrs[1]}]


def _step(opt, params, loss_fn):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(params)
    loss.backward()
    opt.step()
    return loss.item()


def _clone(params):
    return [p.detach().clone().requires_grad_() for p in params]


def _without_weight_decay(cls, kwargs):
    if "weight_decay" in inspect.signature(cls).parameters:
        return {**kwargs, "weight_decay": 0.0}
    return kwargs


def _assert_states_equal(opt_a, params_a, opt_b, params_b):
    for pa, pb in zip(params_a, params_b):
        assert torch.equal(pa, pb)
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], torch.Tensor):
                assert torch.equal(sa[key], sb[key]), key
            else:
                assert sa[key] == sb[key], key


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
def test_loss_decreases(cls, kwargs, maximize):
    """Minimising lowers the loss; with ``maximize=True`` on the negated loss, it rises."""
    params, loss_fn = _problem()
    sign = -1.0 if maximize else 1.0
    opt = cls(params, **kwargs, maximize=maximize)
    start = loss_fn(params).item()
    for _ in range(20):
        _step(opt, params, lambda p: sign * loss_fn(p))
    end = loss_fn(params).item()
    assert end < start, f"{cls.__name__}: loss {start:.4f} -> {end:.4f}"


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_maximize_on_the_negated_loss_is_minimize(cls, kwargs):
    """``maximize=True`` on ``-L`` follows ``maximize=False`` on ``L`` step for step."""
    params, loss_fn = _problem()
    params2 = _clone(params)
    opt_max = cls(_groups(params), **kwargs, maximize=True)
    opt_min = cls(_groups(params2), **kwargs)
    for _ in range(6):
        _step(opt_max, params, lambda p: -loss_fn(p))
        _step(opt_min, params2, loss_fn)
    for a, b in zip(params, params2):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_complex_parameter_steps_as_its_real_view(cls, kwargs):
    """A complex parameter is updated with real and imaginary parts as independent coordinates,
    as ``torch.optim`` does: exactly like a real parameter holding ``view_as_real`` of it."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(3, 4, dtype=torch.complex128, generator=g).requires_grad_()
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    opt_z, opt_r = cls([z], **kwargs), cls([r], **kwargs)
    for _ in range(4):
        grad = torch.randn(3, 4, dtype=torch.complex128, generator=g)
        z.grad, r.grad = grad, torch.view_as_real(grad).clone()
        opt_z.step()
        opt_r.step()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=0, atol=0)
    for key, value in opt_r.state[r].items():
        other = opt_z.state[z][key]
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other), key
        else:
            assert value == other, key


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_zero_grad_does_not_move(cls, kwargs):
    params, _ = _problem()
    before = [p.detach().clone() for p in params]
    opt = cls(params, **_without_weight_decay(cls, kwargs))
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_per_group_lr(cls, kwargs):
    """A group with lr=1e-28 stays put while the other group moves."""
    params, loss_fn = _problem()
    before = [p.detach().clone() for p in params]
    opt = cls(_groups(params, lrs=(1e-28, 0.05)), **{k: v for k, v in kwargs.items() if k != "lr"})
    for _ in range(3):
        _step(opt, params, loss_fn)
    torch.testing.assert_close(params[0].detach(), before[0], rtol=1e-15, atol=1e-20)
    assert not torch.equal(params[1].detach(), before[1])


def _continue_after_reload(cls, kwargs, reload):
    params, loss_fn = _problem()
    opt = cls(_groups(params), **kwargs)
    opt.param_groups[1]["lr"] = opt.param_groups[0]["lr"] * 0.5  # groups differ
    for _ in range(3):
        _step(opt, params, loss_fn)
    params2 = _clone(params)
    opt2 = cls(_groups(params2), **kwargs)
    opt2.load_state_dict(reload(opt.state_dict()))
    assert opt2.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    _assert_states_equal(opt, params, opt2, params2)
    for _ in range(3):
        _step(opt, params, loss_fn)
        _step(opt2, params2, loss_fn)
        _assert_states_equal(opt, params, opt2, params2)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_dict_round_trip(cls, kwargs):
    """Reloading the state dict continues bit for bit."""
    _continue_after_reload(cls, kwargs, copy.deepcopy)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_dict_save_load_weights_only(cls, kwargs):
    """Also through ``torch.save`` / ``torch.load(weights_only=True)``: the state is plain data."""

    def through_file(state_dict):
        buffer = io.BytesIO()
        torch.save(state_dict, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=True)

    _continue_after_reload(cls, kwargs, through_file)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_deepcopy(cls, kwargs):
    params, loss_fn = _problem()
    opt = cls(_groups(params), **kwargs)
    for _ in range(2):
        _step(opt, params, loss_fn)
    clone = copy.deepcopy(opt)
    public = {k for k in vars(opt) if not k.startswith("_")}
    assert public == {k for k in vars(clone) if not k.startswith("_")}
    for key in public:
        assert type(getattr(opt, key)) is type(getattr(clone, key)), key
    clone_params = [p for group in clone.param_groups for p in group["params"]]
    _assert_states_equal(opt, params, clone, clone_params)
    # Independent: stepping the original leaves the copy alone.
    snapshot = copy.deepcopy(clone.state_dict())
    _step(opt, params, loss_fn)
    for key, value in clone.state_dict()["state"].items():
        for name, x in value.items():
            expected = snapshot["state"][key][name]
            assert torch.equal(torch.as_tensor(x), torch.as_tensor(expected)), name


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_repr(cls, kwargs):
    params, _ = _problem()
    text = repr(cls(_groups(params), **kwargs))
    assert text.startswith(f"{cls.__name__} (")
    assert "Parameter Group 0" in text and "Parameter Group 1" in text
    assert "lr:" in text and "maximize:" in text


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_non_contiguous_params(cls, kwargs):
    """A strided (non-contiguous) leaf steps exactly like its contiguous copy."""
    g = torch.Generator().manual_seed(3)
    strided = torch.randn(4, 6, generator=g, dtype=torch.float64)[:, ::2].detach().requires_grad_()
    assert not strided.is_contiguous()
    dense = strided.detach().clone().requires_grad_()
    opt_s, opt_d = cls([strided], **kwargs), cls([dense], **kwargs)
    for k in range(3):
        grad = torch.randn(4, 6, generator=g, dtype=torch.float64)[:, ::2]
        strided.grad = grad
        dense.grad = grad.contiguous()
        opt_s.step()
        opt_d.step()
        torch.testing.assert_close(strided, dense, rtol=1e-12, atol=1e-14, msg=f"step {k}")
    assert strided.stride() == (6, 2)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_closure(cls, kwargs):
    """The closure is called once, with gradients enabled, and its loss is returned."""
    params, loss_fn = _problem()
    opt = cls(params, **kwargs)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == [True]
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(_problem()[1](_problem()[0]).item())
    assert opt.step() is None  # no closure, no loss


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_step_lr_scheduler(cls, kwargs):
    """``torch.optim.lr_scheduler.StepLR`` drives the lr exactly as setting it by hand does."""
    params, loss_fn = _problem()
    params2 = _clone(params)
    opt = cls(_groups(params), **kwargs)
    opt2 = cls(_groups(params2), **kwargs)
    scheduler = torch_optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    lr0 = opt.param_groups[0]["lr"]
    for _ in range(3):
        _step(opt, params, loss_fn)
        scheduler.step()
        _step(opt2, params2, loss_fn)
        for group in opt2.param_groups:
            group["lr"] *= 0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(lr0 * 0.125)
    for a, b in zip(params, params2):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_grad_is_never_written(cls, kwargs):
    """``p.grad`` is the same tensor with the same values after ``step`` (maximize + decay on)."""
    params, loss_fn = _problem()
    if "weight_decay" in inspect.signature(cls).parameters:
        kwargs = {**kwargs, "weight_decay": 0.1}
    opt = cls(params, **kwargs, maximize=True)
    for _ in range(3):
        opt.zero_grad()
        loss_fn(params).backward()
        grads = [p.grad for p in params]
        saved = [g.clone() for g in grads]
        opt.step()
        for p, g, s in zip(params, grads, saved):
            assert p.grad is g
            assert torch.equal(p.grad, s)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_sparse_grad_raises(cls, kwargs):
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    p.grad = torch.sparse_coo_tensor(
        [[1, 3]], [1.0, 2.0], (5,), dtype=torch.float64, check_invariants=True
    )
    opt = cls([p], **kwargs)
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_bytes_is_reported(cls, kwargs):
    params, loss_fn = _problem()
    opt = cls(params, **kwargs)
    assert opt.state_bytes() == 0  # lazily created
    _step(opt, params, loss_fn)
    n = opt.state_bytes()
    assert isinstance(n, int) and n % 8 == 0 and n == O.state_bytes(opt)


# --- invalid hyperparameters: torch's messages ------------------------------------------------


@pytest.mark.parametrize(
    "cls", [c for c in OPTIMIZERS.values() if "betas" in inspect.signature(c).parameters]
)
@pytest.mark.parametrize("extra", [1, -1], ids=["one-more", "one-less"])
def test_betas_of_the_wrong_length_raise_at_construction(cls, extra):
    """Regression: three betas for Adam were accepted and failed at the first step."""
    params, _ = _problem()
    betas = cls(params).defaults["betas"]
    wrong = (betas + (0.5,)) if extra > 0 else betas[:-1]
    with pytest.raises(ValueError, match=re.escape(f"expected {len(betas)} values")):
        cls(params, betas=wrong)


@pytest.mark.parametrize("cls", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
def test_negative_lr_raises(cls):
    params, _ = _problem()
    with pytest.raises(ValueError, match=re.escape("Invalid learning rate: -1.0")):
        cls(params, lr=-1.0)


# (class name, kwargs, message); classes with a torch namesake must give torch's message.
INVALID = [
    ("SGD", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    (
        "SGD",
        {"momentum": 0.9, "dampening": 0.1, "nesterov": True},
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    ("SGD", {"momentum_form": "cs231n"}, "Invalid momentum_form: 'cs231n'"),
    ("SGD", {"momentum": 0.9, "dampening": 0.1, "momentum_form": "ema"}, "dampening=0"),
    ("SGD", {"momentum": 1.5, "momentum_form": "ema"}, "Invalid momentum value: 1.5"),
    ("SGDW", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("Adagrad", {"lr_decay": -0.5}, "Invalid lr_decay value: -0.5"),
    ("Adagrad", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    (
        "Adagrad",
        {"initial_accumulator_value": -0.5},
        "Invalid initial_accumulator_value value: -0.5",
    ),
    ("Adagrad", {"eps": -1e-10}, "Invalid epsilon value: -1e-10"),
    ("RMSprop", {"alpha": -0.5}, "Invalid alpha value: -0.5"),
    ("RMSprop", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("RMSprop", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("RMSprop", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("RMSpropBC", {"alpha": 1.0}, "Invalid alpha value: 1.0"),
    ("RMSpropBC", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("Adadelta", {"rho": 1.5}, "Invalid rho value: 1.5"),
    ("Adadelta", {"rho": -0.5}, "Invalid rho value: -0.5"),
    ("Adadelta", {"eps": -1e-6}, "Invalid epsilon value: -1e-06"),
    ("Adadelta", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("Adam", {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("Adam", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("Adam", {"amsgrad": True, "amsgrad_convention": "optax"}, "Invalid amsgrad_convention"),
    ("AdamW", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    ("AdamW", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("RAdam", {"betas": (-0.1, 0.999)}, "Invalid beta parameter at index 0: -0.1"),
    ("RAdam", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("RAdam", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("NAdam", {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
    ("NAdam", {"momentum_decay": -0.1}, "Invalid momentum_decay value: -0.1"),
    ("NAdam", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
]

_COURSE_ONLY = {"momentum_form", "amsgrad_convention"}


@pytest.mark.parametrize(
    "name, kwargs, message",
    [pytest.param(*case, id=f"{case[0]}-{'-'.join(case[1])}") for case in INVALID],
)
def test_invalid_hyperparameters(name, kwargs, message):
    params, _ = _problem()
    with pytest.raises(ValueError, match=re.escape(message)):
        OPTIMIZERS[name](params, **kwargs)
    reference = getattr(torch_optim, name, None)
    if reference is not None and not _COURSE_ONLY & set(kwargs):
        with pytest.raises(ValueError, match=re.escape(message)):
            reference(params, **kwargs)
