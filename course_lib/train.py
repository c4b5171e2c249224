"""A small, honest training loop, and the glue that turns "an optimizer" into an optimizer.

Every experiment in the course needs the same three things: build an optimizer for some
parameters, run it for a fixed budget, and write down what happened. This module does exactly that
and nothing more, so you can read it top to bottom.

**Optimizer specs.** Wherever the course asks for "an optimizer" it accepts any of

- a class, ``torch.optim.Adam`` (or one of ours), plus keyword arguments: ``lr=1e-3, ...``;
- a factory, ``lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)``;
- (only where the parameters already exist, as in :func:`train`) a ready optimizer instance.

:func:`make_optimizer` resolves a spec and :func:`optimizer_label` writes the full
hyperparameters of the result into a legend-ready string, read back from the optimizer's own
``param_groups`` so the label can never disagree with what actually ran.

**The loop.** :func:`train` runs mini-batch training for a number of epochs and returns a
:class:`History` with the loss, accuracy and learning rate of every step, plus the time each step
took. It is deterministic for a given ``seed`` (the batch order comes from a seeded generator) and
runs on the CPU unless you pass a device.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "History",
    "format_value",
    "evaluate",
    "make_mlp",
    "make_optimizer",
    "optimizer_hyperparameters",
    "optimizer_label",
    "train",
]

# param_groups entries that are implementation switches, not hyperparameters of the algorithm.
_IMPLEMENTATION_KEYS = {
    "params",
    "foreach",
    "fused",
    "capturable",
    "differentiable",
    "initial_lr",
    "name",
}


def make_optimizer(
    spec: Any, params: Iterable[torch.Tensor], **kwargs: Any
) -> torch.optim.Optimizer:
    """Build an optimizer for ``params`` from a class (+ ``kwargs``) or a factory.

    >>> w = torch.zeros(2, requires_grad=True)
    >>> make_optimizer(torch.optim.SGD, [w], lr=0.1).param_groups[0]["lr"]
    0.1
    >>> make_optimizer(lambda p: torch.optim.Adam(p, lr=0.01), [w]).param_groups[0]["lr"]
    0.01
    """
    params = list(params)
    if isinstance(spec, torch.optim.Optimizer):
        raise ValueError(
            "got an optimizer instance, but this function needs to create the optimizer for its "
            "own parameters: pass the class (torch.optim.Adam, lr=...) or a factory "
            "(lambda params: torch.optim.Adam(params, lr=...)) instead"
        )
    if inspect.isclass(spec):
        if not issubclass(spec, torch.optim.Optimizer):
            raise ValueError(f"{spec.__name__} is not a torch.optim.Optimizer subclass")
        return spec(params, **kwargs)
    if callable(spec):
        if kwargs:
            raise ValueError(
                f"keyword arguments {sorted(kwargs)} were given together with a factory; put the "
                "hyperparameters inside the factory (lambda params: Opt(params, lr=...))"
            )
        opt = spec(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValueError(
                f"the optimizer factory returned {type(opt).__name__}, not a torch.optim.Optimizer"
            )
        return opt
    raise ValueError(
        f"cannot build an optimizer from {spec!r}: expected an Optimizer class or a factory "
        "callable(params) -> Optimizer"
    )


def optimizer_hyperparameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The algorithm's hyperparameters of the first param group (implementation switches dropped).

    Booleans that are ``False`` and ``None`` values are dropped too (``amsgrad=False`` says nothing
    about the run); ``True`` ones stay (``nesterov=True`` matters).
    """
    group = optimizer.param_groups[0]
    out: dict[str, Any] = {}
    for key, value in group.items():
        if key in _IMPLEMENTATION_KEYS or value is None or value is False:
            continue
        if isinstance(value, torch.Tensor):
            value = value.item() if value.numel() == 1 else value.tolist()
        out[key] = value
    return out


def format_value(value: Any) -> str:
    """A hyperparameter value as labels show it: floats to 4 significant digits, tuples in ()."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(format_value(v) for v in value)
        return f"({inner})"
    return str(value)


def optimizer_label(optimizer: torch.optim.Optimizer, exclude: Iterable[str] = ()) -> str:
    """``"Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-08, weight_decay=0)"``: name + hyperparameters."""
    hp = optimizer_hyperparameters(optimizer)
    skip = set(exclude)
    body = ", ".join(f"{k}={format_value(v)}" for k, v in hp.items() if k not in skip)
    return f"{type(optimizer).__name__}({body})"


def make_mlp(
    n_in: int, n_hidden: int | Iterable[int], n_out: int, seed: int = 0, activation=nn.ReLU
) -> nn.Sequential:
    """A small fully connected network, initialised deterministically from ``seed``."""
    hidden = [n_hidden] if isinstance(n_hidden, int) else list(n_hidden)
    sizes = [n_in, *hidden, n_out]
    if any((not isinstance(s, int)) or s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be positive ints, got {sizes}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        return nn.Sequential(*layers)


@dataclass
class History:
    """What happened during :func:`train`. Per-step lists have one entry per optimizer step.

    ``loss``/``accuracy``/``lr``/``step_time`` are per step (training mini-batches);
    ``epoch_loss`` is the mean training loss of each epoch; ``test_loss``/``test_accuracy`` are
    measured on ``test_data`` after each epoch (empty without it). ``accuracy`` is ``nan`` for
    regression losses. ``diverged`` is set (and training stops) when the loss becomes non-finite.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    step_time: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    label: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    diverged: bool = False
    diverged_at: int | None = None

    @property
    def steps(self) -> int:
        return len(self.loss)

    @property
    def mean_step_time(self) -> float:
        """Mean seconds per step, ignoring the first (warm-up) step when there are several."""
        times = self.step_time[1:] if len(self.step_time) > 1 else self.step_time
        return float(sum(times) / len(times)) if times else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _as_tensors(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(data, "X_train") and hasattr(data, "y_train"):
        return data.X_train, data.y_train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
        if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
            raise ValueError(f"{name} must hold two tensors (X, y)")
        if len(X) != len(y):
            raise ValueError(f"{name}: X has {len(X)} rows but y has {len(y)}")
        return X, y
    raise ValueError(
        f"{name} must be a pair of tensors (X, y) or a course_lib.data.Dataset, "
        f"got {type(data).__name__}"
    )


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    if out.ndim == 2 and out.shape[1] > 1 and y.dtype in (torch.int64, torch.int32):
        return (out.argmax(1) == y).float().mean().item()
    if y.dtype in (torch.float32, torch.float64) and out.shape == y.shape and _looks_binary(y):
        return ((out > 0).to(y.dtype) == y).float().mean().item()
    return float("nan")


def _looks_binary(y: torch.Tensor) -> bool:
    return bool(((y == 0) | (y == 1)).all())


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Any, loss_fn: Callable | None = None, batch_size: int = 1024
) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on ``data`` without gradients, in evaluation mode."""
    X, y = _as_tensors(data, "data")
    loss_fn = loss_fn or _default_loss(y)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0.0, 0
    for i in range(0, len(X), batch_size):
        xb, yb = X[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        out = model(xb)
        total += loss_fn(out, yb).item() * len(xb)
        acc = _accuracy(out, yb)
        correct += acc * len(xb)
        n += len(xb)
    model.train(was_training)
    return total / n, correct / n


def _default_loss(y: torch.Tensor) -> Callable:
    if y.dtype in (torch.int64, torch.int32):
        return nn.functional.cross_entropy
    if _looks_binary(y):
        return nn.functional.binary_cross_entropy_with_logits
    return nn.functional.mse_loss


def train(
    model: nn.Module,
    optimizer: Any,
    data: Any,
    epochs: int = 5,
    *,
    scheduler: Any = None,
    scheduler_interval: str = "step",
    lr_schedule: Callable[[int], float] | None = None,
    loss_fn: Callable | None = None,
    batch_size: int = 64,
    test_data: Any = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    label: str | None = None,
    **optimizer_kwargs: Any,
) -> History:
    """Mini-batch training of ``model`` for ``epochs`` epochs; returns a :class:`History`.

    Parameters
    ----------
    optimizer
        An optimizer instance already built on ``model.parameters()``, an optimizer class (with
        hyperparameters in ``**optimizer_kwargs``) or a factory ``params -> optimizer``.
    data, test_data
        ``(X, y)`` tensors or a :class:`course_lib.data.Dataset`. A ``Dataset`` as ``data``
        trains on its training split and, unless ``test_data`` is given, evaluates on its test
        split after every epoch. ``data`` may also be a ``torch.utils.data.DataLoader`` (then
        it decides batch size and order; ``batch_size`` and the seeded shuffle are unused).
        Integer ``y`` means classification (cross-entropy), 0/1 float ``y`` binary logistic,
        anything else mean squared error.
    scheduler
        ``None``, an ``LRScheduler`` instance or a factory ``optimizer -> scheduler``;
        ``scheduler_interval`` is ``"step"`` or ``"epoch"`` (when ``scheduler.step()`` is called).
    lr_schedule
        A pure schedule ``step -> lr`` (as in ``course_lib.optim.schedules``; step counts from 0),
        applied by writing the lr into every param group before each step. Use this *or*
        ``scheduler``.
    seed
        Seeds the batch order (and the global torch RNG, for dropout). Same seed, same run.
    device
        Where to train; default: the CPU (lessons are CPU-sized). The model is moved there.
    progress
        Show a ``tqdm.auto`` bar (a widget in Jupyter, text elsewhere).
    """
    from tqdm.auto import tqdm

    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if scheduler_interval not in ("step", "epoch"):
        raise ValueError(
            f"scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}"
        )
    device = torch.device(device) if device is not None else torch.device("cpu")
    model.to(device)
    loader = data if isinstance(data, torch.utils.data.DataLoader) else None
    if loader is None:
        X, y = _as_tensors(data, "data")
    else:
        if len(loader) == 0:
            raise ValueError("the DataLoader is empty")
        y = next(iter(loader))[1]
    loss_fn = loss_fn or _default_loss(y)

    if isinstance(optimizer, torch.optim.Optimizer):
        if optimizer_kwargs:
            raise ValueError("keyword hyperparameters cannot be applied to an optimizer instance")
        opt = optimizer
    else:
        opt = make_optimizer(optimizer, model.parameters(), **optimizer_kwargs)

    if scheduler is not None and lr_schedule is not None:
        raise ValueError(
            "pass either scheduler (torch-style) or lr_schedule (step -> lr), not both"
        )
    sched = None
    if scheduler is not None:
        sched = scheduler if hasattr(scheduler, "step") else scheduler(opt)
        if not hasattr(sched, "step"):
            raise ValueError(f"scheduler factory returned {type(sched).__name__}, not a scheduler")
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError("lr_schedule must be a callable step -> lr")
    schedule_fn = lr_schedule
    if test_data is None and hasattr(data, "X_test"):
        test_data = (data.X_test, data.y_test)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    hist = History(
        label=label or optimizer_label(opt), hyperparameters=optimizer_hyperparameters(opt)
    )
    steps_per_epoch = len(loader) if loader is not None else math.ceil(len(X) / batch_size)

    def batches():
        """One epoch of (xb, yb): the loader's order, or a seeded shuffle of the tensors."""
        if loader is not None:
            yield from loader
            return
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), batch_size):
            idx = perm[i : i + batch_size]
            yield X[idx], y[idx]

    bar = tqdm(
        total=epochs * steps_per_epoch, disable=not progress, desc=hist.label[:40], leave=False
    )
    step = 0
    model.train()
    try:
        for _epoch in range(epochs):
            losses = []
            for xb, yb in batches():
                xb, yb = xb.to(device), yb.to(device)
                if schedule_fn is not None:
                    lr_now = float(schedule_fn(step))
                    for g in opt.param_groups:
                        g["lr"] = lr_now
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = loss_fn(out, yb)
                loss.backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                hist.step_time.append(time.perf_counter() - t0)
                loss_value = loss.item()
                hist.loss.append(loss_value)
                hist.accuracy.append(_accuracy(out.detach(), yb))
                hist.lr.append(float(opt.param_groups[0]["lr"]))
                losses.append(loss_value)
                step += 1
                bar.update(1)
                if sched is not None and scheduler_interval == "step":
                    sched.step()
                if not math.isfinite(loss_value):
                    hist.diverged, hist.diverged_at = True, step
                    break
            hist.epoch_loss.append(float(sum(losses) / len(losses)))
            if hist.diverged:
                break
            if sched is not None and scheduler_interval == "epoch":
                sched.step()
            if test_data is not None:
                tl, ta = evaluate(model, test_data, loss_fn)
                hist.test_loss.append(tl)
                hist.test_accuracy.append(ta)
            bar.set_postfix(loss=f"{hist.epoch_loss[-1]:.4g}")
    finally:
        bar.close()
    return hist
