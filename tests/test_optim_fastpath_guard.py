"""The fast path's guard: every private torch API it touches, removed or broken in turn.

``course_lib.optim.fastpath.torch_internals`` resolves each private piece once and checks that it
behaves as expected. Here each one is taken away (or replaced by something that behaves
differently) with ``monkeypatch``; the optimizer must then warn once that the fast path is off,
raise nothing, and step exactly like the readable path.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo.config as dynamo_config
import torch._dynamo.exc as dynamo_exc
import torch._inductor.compile_fx as compile_fx_module
import torch._inductor.config as inductor_config

import course_lib.optim as O
from course_lib.optim.fastpath import settings, torch_internals


@pytest.fixture(autouse=True)
def fresh_resolution():
    """Resolve the internals again before and after each test; fast path forced on."""
    torch_internals.reset()
    settings.forget_warnings()
    previous = O.set_fast_path(True, compile=True, min_numel=1, direct_min=1 << 40)
    yield
    O.set_fast_path(**previous)
    torch_internals.reset()
    settings.forget_warnings()


class Without:
    """A stand-in for a torch config module that lacks some of its settings (deleting a setting
    from the real config module cannot be undone)."""

    def __init__(self, target, *missing, **replaced):
        self._target, self._missing, self._replaced = target, set(missing), replaced

    def __getattr__(self, name):
        if name in self._missing:
            raise AttributeError(name)
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._target, name)


def _dynamo_config_without(mp, *missing, **replaced):
    mp.setattr(torch._dynamo, "config", Without(dynamo_config, *missing, **replaced))


def _inductor_config_without(mp, *missing, **replaced):
    mp.setattr(torch._inductor, "config", Without(inductor_config, *missing, **replaced))


def _no_compile_fx(mp):
    mp.setattr(compile_fx_module, "compile_fx", None)


def _no_restart_signal(mp):
    mp.delattr(dynamo_exc, "RestartAnalysis")


def _no_specialize_float(mp):
    _dynamo_config_without(mp, "specialize_float")


def _specialize_float_not_a_flag(mp):
    _dynamo_config_without(mp, specialize_float="yes")


def _no_recompile_limit(mp):
    _dynamo_config_without(mp, "recompile_limit", "cache_size_limit")


def _no_config_patch(mp):
    _dynamo_config_without(mp, "patch")


def _no_vec_isa_setting(mp):
    _inductor_config_without(mp, cpp=Without(inductor_config.cpp, "vec_isa_ok"))


def _no_precompiled_header_setting(mp):
    _inductor_config_without(mp, "cpp_cache_precompile_headers")


def _no_storage_use_count(mp):
    mp.delattr(torch._C, "_storage_Use_Count")


def _storage_use_count_lies(mp):
    mp.setattr(torch._C, "_storage_Use_Count", lambda cdata: 2)  # "nothing else shares it"


def _no_foreach_copy(mp):
    mp.delattr(torch, "_foreach_copy_")


def _foreach_copy_does_nothing(mp):
    mp.setattr(torch, "_foreach_copy_", lambda dst, src: None)


def _no_custom_op(mp):
    mp.setattr(torch_internals, "_BARRIER", None)  # as in a process that never made it
    mp.delattr(torch.library, "custom_op")


BREAKAGES = [
    _no_custom_op,
    _no_compile_fx,
    _no_restart_signal,
    _no_specialize_float,
    _specialize_float_not_a_flag,
    _no_recompile_limit,
    _no_config_patch,
    _no_vec_isa_setting,
    _no_precompiled_header_setting,
    _no_storage_use_count,
    _storage_use_count_lies,
    _no_foreach_copy,
    _foreach_copy_does_nothing,
]


def _train(fast: bool, steps: int = 5):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_()
              for s in ((6, 5), (7,))]
    opt = O.Adam([{"params": params, "fast": fast}], lr=0.01, weight_decay=0.1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        opt.step()
    return params, opt


def test_every_internal_resolves_on_this_torch():
    assert isinstance(torch_internals.resolve(), torch_internals.Internals)


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_a_missing_or_different_internal_turns_the_fast_path_off(breakage, monkeypatch):
    expected, _ = _train(fast=False)
    breakage(monkeypatch)
    torch_internals.reset()
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params, _ = _train(fast=True)
        _train(fast=True)  # a second optimizer: no second warning
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "the fast path is off with this torch" in messages[0], messages
    assert O.fast_path_stats() == before
    for a, b in zip(params, expected):
        assert torch.equal(a, b)
    assert isinstance(torch_internals.resolve(), str)


def test_the_config_modules_are_intact_afterwards():
    """The stand-ins leave torch's config modules as they were (this test runs after them)."""
    assert isinstance(dynamo_config.specialize_float, bool)
    assert hasattr(inductor_config.cpp, "vec_isa_ok")
    assert isinstance(inductor_config.cpp_cache_precompile_headers, bool)
