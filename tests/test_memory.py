"""State memory is measured from the tensors the optimizer really holds."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

from course_lib.experiments import memory
from course_lib.experiments.memory import measure_state_memory, optimizer_state_bytes, tensor_bytes
from tests.optimizers import CONFIGS


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))


N_PARAMS = 7 * 5 + 5 + 5 * 3 + 3  # 58
PARAM_BYTES = 4 * N_PARAMS
STEP = 4  # torch keeps `step` as a float32 0-d tensor per parameter tensor


@pytest.mark.parametrize(
    "opt,kwargs,buffers,steps",
    [
        (torch.optim.SGD, {"lr": 0.1}, 0, 0),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, 1, 0),
        (torch.optim.Adagrad, {"lr": 0.1}, 1, 1),
        (torch.optim.RMSprop, {"lr": 0.1}, 1, 1),
        (torch.optim.Adam, {"lr": 0.1}, 2, 1),
        (torch.optim.Adam, {"lr": 0.1, "amsgrad": True}, 3, 1),
        (torch.optim.AdamW, {"lr": 0.1}, 2, 1),
    ],
)
def test_state_bytes_match_buffer_count(opt, kwargs, buffers, steps):
    r = measure_state_memory(opt, _model(), **kwargs)
    assert r.param_count == N_PARAMS and r.param_bytes == PARAM_BYTES
    assert r.state_bytes == buffers * PARAM_BYTES + steps * 4 * STEP
    assert r.total_per_param == pytest.approx(1 + buffers, abs=0.1)
    assert r.state_per_param == pytest.approx(buffers, abs=0.1)
    assert str(r).startswith(opt.__name__ + "(")


def test_by_key_breakdown():
    r = measure_state_memory(torch.optim.Adam, _model(), lr=0.1)
    assert r.by_key == {"step": 4 * STEP, "exp_avg": PARAM_BYTES, "exp_avg_sq": PARAM_BYTES}


def test_shared_storage_counted_once():
    buf = torch.zeros(100)
    assert tensor_bytes([buf, buf, buf[:10], buf.view(10, 10)]) == 400
    assert tensor_bytes([buf, torch.zeros(100)]) == 800
    assert tensor_bytes([torch.tensor(1.0, dtype=torch.float64)]) == 8  # 0-d counts

    p = torch.zeros(10, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    shared = torch.zeros(10)
    opt.state[p] = {"a": shared, "b": shared, "nested": [shared, {"c": torch.zeros(3)}]}
    assert optimizer_state_bytes(opt) == 40 + 12


def test_instance_is_measured_as_is_and_factory_leaves_model_alone():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    assert measure_state_memory(opt).state_bytes == 0  # lazy state: nothing before step()
    measure_state_memory(lambda ps: torch.optim.Adam(ps, lr=0.1), model)
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)
    r = measure_state_memory(opt, steps=1)
    assert r.state_bytes == 2 * PARAM_BYTES + 4 * STEP


def test_bad_input():
    with pytest.raises(ValueError, match="instance"):
        measure_state_memory(torch.optim.SGD(_model().parameters(), lr=0.1), lr=0.2)
    with pytest.raises(ValueError, match="steps"):
        measure_state_memory(torch.optim.SGD, lr=0.1, steps=-1)
    with pytest.raises(ValueError, match="no parameters"):
        measure_state_memory(torch.optim.SGD, nn.ReLU(), lr=0.1)


@pytest.mark.parametrize("config", [c.param() for c in CONFIGS])
def test_course_optimizers_hold_the_registered_number_of_buffers(config):
    """Every course optimizer, measured from the tensors it really holds: its registered number
    of per-element buffers (our step counters are Python numbers, 0 bytes), and its own
    ``state_bytes()`` agrees with the measurement."""
    opt = config.cls(_model().parameters(), **{**config.kwargs, **config.groups[0]})
    r = measure_state_memory(opt, steps=2)
    assert r.state_bytes == config.buffers * PARAM_BYTES, config.id
    assert opt.state_bytes() == r.state_bytes


def test_docstring_examples():
    assert doctest.testmod(memory).failed == 0
