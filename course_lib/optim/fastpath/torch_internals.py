"""Every private torch API the fast path touches, behind one check.

The fast path needs a few things torch does not promise to keep: dynamo and inductor settings, the
inductor entry point, dynamo's restart signal, the storage use count (to see whether anything
else shares a parameter's memory), ``torch._foreach_copy_``, and a custom op (the barrier of
``hoisting.py``, which also reads dynamo's ``example_value`` of each traced node). Nothing else in
:mod:`course_lib.optim.fastpath` reaches past torch's public API; everything here is resolved
once by :func:`resolve`, which also checks that each piece *behaves* as expected. If anything is
missing or different (a newer or older torch), :func:`resolve` says what, the fast path warns once
and every optimizer takes its readable path — never an exception.

Exercised on torch 2.13 (CPU); see the README's performance section for the versions tested.
``tests/test_optim_fastpath_guard.py`` removes or breaks each of them in turn and checks that the
optimizers still step correctly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Internals", "reset", "resolve"]


@dataclass(frozen=True)
class Internals:
    """Handles to the private pieces, checked."""

    compile_fx: Callable  # inductor's compiler, called by our backend
    restart_analysis: type[BaseException]  # dynamo's "trace again" signal, not a failure
    dynamo_settings: dict[str, Any]  # constant floats; enough graphs per optimizer method
    dynamo_patch: Callable[[dict[str, Any]], Any]  # -> context manager
    inductor_patch: Callable[[dict[str, Any]], Any]
    trust_cpu_isa: dict[str, Any]  # skip inductor's per-process ISA probe (0.7 s)
    no_precompiled_headers: dict[str, Any]  # the retry setting after a failed C++ build
    storage_use_count: Callable[[torch.Tensor], int]  # tensors sharing a tensor's storage
    foreach_copy: Callable[[list[torch.Tensor], list[torch.Tensor]], None]
    scalar_barrier: Callable  # an identity the compiler cannot inline (hoisting.py)

    def dynamo(self):
        """The dynamo settings of every compiled call (a context manager)."""
        return self.dynamo_patch(self.dynamo_settings)

    def trusted_isa(self):
        """Compile with the vector ISA the CPU reports instead of inductor's probe."""
        if not self.trust_cpu_isa:
            return contextlib.nullcontext()
        return self.inductor_patch(self.trust_cpu_isa)


GRAPHS_PER_METHOD = 64  # compiled graphs kept per optimizer method (dynamo's default: 8)

_RESOLVED: Internals | str | None = None
_BARRIER: Callable | None = None  # registered once per process: an op name cannot be reused


def _scalar_barrier() -> Callable:
    """``course_lib::scalar_barrier``: the identity on a 0-d tensor, as an opaque custom op."""
    global _BARRIER
    if _BARRIER is None:
        custom_op = getattr(torch.library, "custom_op", None)
        _need(callable(custom_op), "torch.library.custom_op is missing")

        @custom_op("course_lib::scalar_barrier", mutates_args=())
        def scalar_barrier(x: torch.Tensor) -> torch.Tensor:
            return x.clone()

        @scalar_barrier.register_fake
        def _(x: torch.Tensor) -> torch.Tensor:
            return torch.empty_like(x)

        _BARRIER = torch.ops.course_lib.scalar_barrier.default
    return _BARRIER


def reset() -> None:
    """Forget what :func:`resolve` found (tests change torch and resolve again)."""
    global _RESOLVED
    _RESOLVED = None


def resolve() -> Internals | str:
    """The checked handles, or a one-line reason why the fast path cannot use this torch."""
    global _RESOLVED
    if _RESOLVED is None:
        try:
            _RESOLVED = _resolve()
        except Exception as exc:  # any surprise is a reason, never an error for the user
            _RESOLVED = f"{type(exc).__name__}: {exc}"
    return _RESOLVED


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise LookupError(what)


def _resolve() -> Internals:
    import torch._dynamo
    import torch._dynamo.config as dynamo_config
    import torch._dynamo.exc as dynamo_exc
    import torch._inductor.config as inductor_config
    from torch._inductor.compile_fx import compile_fx

    _need(callable(compile_fx), "torch._inductor.compile_fx.compile_fx is not callable")
    restart = getattr(dynamo_exc, "RestartAnalysis", None)
    _need(
        isinstance(restart, type) and issubclass(restart, BaseException),
        "torch._dynamo.exc.RestartAnalysis is missing",
    )
    _need(
        isinstance(getattr(dynamo_config, "specialize_float", None), bool),
        "torch._dynamo.config.specialize_float is missing",
    )
    # Floats are constants of a graph (a new value recompiles, under a guard): dynamo's dynamic
    # floats miscompiled a changed beta1 in torch 2.13. Float hyperparameters that a scheduler
    # changes enter as 0-d tensors instead (see compiler.py).
    settings: dict[str, Any] = {"specialize_float": True}
    limit = next(
        (n for n in ("recompile_limit", "cache_size_limit") if hasattr(dynamo_config, n)), None
    )
    _need(limit is not None, "torch._dynamo.config.recompile_limit is missing")
    settings[limit] = max(getattr(dynamo_config, limit), GRAPHS_PER_METHOD)
    _need(callable(getattr(dynamo_config, "patch", None)), "torch._dynamo.config.patch")
    _need(callable(getattr(inductor_config, "patch", None)), "torch._inductor.config.patch")
    cpp = getattr(inductor_config, "cpp", None)
    _need(cpp is not None and hasattr(cpp, "vec_isa_ok"), "torch._inductor.config.cpp.vec_isa_ok")
    _need(
        isinstance(getattr(inductor_config, "cpp_cache_precompile_headers", None), bool),
        "torch._inductor.config.cpp_cache_precompile_headers is missing",
    )
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    _need(callable(use_count), "torch._C._storage_Use_Count is missing")

    def storage_use_count(t: torch.Tensor) -> int:
        return use_count(t.untyped_storage()._cdata) - 1  # minus the storage object we made

    probe = torch.zeros(4)
    alone = storage_use_count(probe)
    view = probe[1:]
    shared = storage_use_count(probe)
    del view
    _need(alone == 1 and shared == 2, f"storage use counts {alone}, {shared} instead of 1, 2")
    foreach_copy = getattr(torch, "_foreach_copy_", None)
    _need(callable(foreach_copy), "torch._foreach_copy_ is missing")
    a, b = [torch.zeros(2), torch.zeros(3)], [torch.ones(2), torch.full((3,), 2.0)]
    foreach_copy(a, b)
    _need(all(torch.equal(x, y) for x, y in zip(a, b)), "torch._foreach_copy_ does not copy")
    return Internals(
        compile_fx=compile_fx,
        restart_analysis=restart,
        dynamo_settings=settings,
        dynamo_patch=dynamo_config.patch,
        inductor_patch=inductor_config.patch,
        trust_cpu_isa={"cpp.vec_isa_ok": True} if cpp.vec_isa_ok is None else {},
        no_precompiled_headers={"cpp_cache_precompile_headers": False},
        storage_use_count=storage_use_count,
        foreach_copy=foreach_copy,
        scalar_barrier=_scalar_barrier(),
    )
