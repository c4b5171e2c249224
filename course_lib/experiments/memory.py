"""How much memory does an optimizer's state take? Measured, not assumed.

Plain SGD keeps nothing; momentum keeps one buffer the size of the parameters; Adam keeps two;
AMSGrad three; Lion one. On a model with a billion parameters each buffer is 4 GB in float32, so
this is often the reason to choose one optimizer over another.

:func:`optimizer_state_bytes` walks ``optimizer.state`` and adds up the bytes of every tensor it
finds (in nested lists/dicts too), counting each underlying storage only once, so a buffer that
two entries share is not counted twice. 0-d ``step`` tensors count (PyTorch keeps the step count
as a tensor). :func:`measure_state_memory` builds the state first (state is created lazily, at the
first ``step()``), then reports the bytes both absolutely and in multiples of the parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from course_lib.optim.base import tensor_bytes
from course_lib.train import make_optimizer, optimizer_label

__all__ = ["MemoryReport", "measure_state_memory", "optimizer_state_bytes", "tensor_bytes"]


def _walk(obj: Any):
    """Yield every tensor inside ``obj`` (tensors, dicts, lists, tuples, nested)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk(v)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of all tensors in ``optimizer.state``, nested ones too (shared storage counted once;
    any ``torch.optim.Optimizer``, where :func:`course_lib.optim.state_bytes` reads the state of
    ours)."""
    return tensor_bytes(_walk(dict(optimizer.state)))


@dataclass
class MemoryReport:
    """State memory of one optimizer on one set of parameters.

    ``state_per_param`` is state bytes / parameter bytes (momentum ≈ 1, Adam ≈ 2);
    ``total_per_param`` adds the parameters themselves (momentum ≈ 2×, Adam ≈ 3×: "Adam triples
    the stored numbers"). ``by_key`` splits the bytes by state name (``exp_avg``, ``step``, ...).
    """

    label: str
    state_bytes: int
    param_bytes: int
    param_count: int
    by_key: dict[str, int] = field(default_factory=dict)

    @property
    def state_per_param(self) -> float:
        return self.state_bytes / self.param_bytes

    @property
    def total_per_param(self) -> float:
        return (self.state_bytes + self.param_bytes) / self.param_bytes

    def __str__(self) -> str:
        return (
            f"{self.label}: state {self.state_bytes:,} B = {self.state_per_param:.3f}× the "
            f"{self.param_count:,} parameters ({self.param_bytes:,} B); "
            f"params + state = {self.total_per_param:.3f}×"
        )


def _by_key(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    keys: dict[str, list[torch.Tensor]] = {}
    for st in optimizer.state.values():
        for k, v in st.items():
            keys.setdefault(str(k), []).extend(_walk(v))
    return {k: tensor_bytes(v) for k, v in keys.items()}


def measure_state_memory(
    optimizer: Any,
    model: nn.Module | Iterable[torch.Tensor] | None = None,
    *,
    steps: int | None = None,
    seed: int = 0,
    label: str | None = None,
    **optimizer_kwargs: Any,
) -> MemoryReport:
    """Measure the state memory of an optimizer after ``steps`` steps.

    ``optimizer`` is an instance (measured as it is; pass ``steps`` to take that many steps
    with random gradients first, which changes its parameters), or a class (with
    ``**optimizer_kwargs``) or a factory. A class or factory is built on copies of ``model``'s
    parameters (default model: a 100→50→10 MLP, 5,560 float32 parameters) and stepped once
    (``steps=1``), since state is created lazily at the first step. The gradients are random
    (seeded): the state size does not depend on their values. Your model is not changed.

    >>> r = measure_state_memory(torch.optim.Adam, lr=1e-3)
    >>> round(r.state_per_param, 2)   # exp_avg + exp_avg_sq (+ two tiny step tensors)
    2.0
    """
    is_instance = isinstance(optimizer, torch.optim.Optimizer)
    if steps is None:
        steps = 0 if is_instance else 1
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if is_instance:
        if optimizer_kwargs:
            raise ValueError("hyperparameters cannot be applied to an optimizer instance")
        opt = optimizer
        params = [p for g in opt.param_groups for p in g["params"]]
    else:
        if model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
        source = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
        if not source:
            raise ValueError("the model has no parameters")
        params = [p.detach().clone().requires_grad_(True) for p in source]
        opt = make_optimizer(optimizer, params, **optimizer_kwargs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            if p.requires_grad:
                g = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
                p.grad = g
        opt.step()
    param_bytes = tensor_bytes(params)
    return MemoryReport(
        label=label or optimizer_label(opt),
        state_bytes=optimizer_state_bytes(opt),
        param_bytes=param_bytes,
        param_count=sum(p.numel() for p in params),
        by_key=_by_key(opt),
    )
