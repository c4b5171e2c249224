r"""Sign-based optimizers, measured (chapter 10): Lion, PowerSign, AddSign, sign descent.

A sign update throws away the size of the gradient and keeps its direction per coordinate. This
module measures what that does, on real models and on streams of set gradients:

- :func:`update_sizes`: the size :math:`|\Delta w|` of every element of every step of an
  optimizer training a digits MLP. For Lion without weight decay every element moves by exactly
  :math:`\eta` (an element whose interpolation :math:`c` is exactly zero does not move:
  :math:`\operatorname{sign}(0) = 0`); Adam's elements move by anything between 0 and a few
  :math:`\eta`.
- :func:`decay_per_step`: the fraction :math:`1 - w_{t}/w_{t-1}` by which decoupled weight
  decay shrinks a weight whose gradient is zero. For Lion and for ``AdamW`` it is
  :math:`\eta\lambda`: the decay is multiplied by the learning rate, so an lr ten times smaller
  needs a :math:`\lambda` ten times larger for the same pull towards zero (Chen et al., 2023,
  advise a 3–10× smaller lr and a 3–10× larger :math:`\lambda` than AdamW's).
- :func:`step_times`: seconds per ``step()`` of several optimizers on the same parameters
  (median of repeats; a measurement of this machine, not a law).
- :func:`reference_gap`: the course's :class:`~course_lib.optim.Lion` and ``lion_pytorch.Lion``
  train two copies of the same MLP on the same mini-batches; the largest difference of the
  parameters and of the momentum buffers after every step.
- :func:`digits_comparison`: Lion vs AdamW on the digits, each with its learning rate tuned on a
  declared grid, with and without a cosine schedule (the fair protocol of
  :mod:`course_lib.experiments.comparison`).
- :func:`sign_descent`: :math:`w \leftarrow w - \eta\,\operatorname{sign}(\nabla f(w))` on a 2-D
  landscape, written out independently of any optimizer class (the limit case that Lion with
  :math:`\beta_1 = \beta_2 = 0` and Adam with :math:`\beta_1 = \beta_2 = \epsilon = 0` reduce to).
- :func:`learned_optimizer_cost`: the per-coordinate state and multiply-adds of the coordinatewise
  two-layer LSTM optimizer of Andrychowicz et al. (2016), next to Adam's and Lion's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib.train import make_optimizer

__all__ = [
    "decay_per_step",
    "digits_comparison",
    "learned_optimizer_cost",
    "reference_gap",
    "sign_descent",
    "step_times",
    "update_sizes",
]


def _digits_batches(data, batch_size: int, steps: int, seed: int):
    """``steps`` mini-batches of the digits training split in a seeded order (epochs repeat)."""
    X, y = data.X_train, data.y_train
    gen = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if order.numel() < batch_size:
            order = torch.cat([order, torch.randperm(len(X), generator=gen)])
        idx, order = order[:batch_size], order[batch_size:]
        yield X[idx], y[idx]


def update_sizes(
    optimizer: Any,
    *,
    steps: int = 50,
    hidden: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    **optimizer_kwargs: Any,
) -> np.ndarray:
    r"""``|Δw|`` of every parameter element at every step, shape ``(steps, n_parameters)``.

    Trains the MLP 64 → ``hidden`` → 10 (ReLU, :func:`course_lib.train.make_mlp`) on digits
    mini-batches with ``optimizer`` (a class plus ``**optimizer_kwargs`` or a factory) and
    records :math:`|w_t - w_{t-1}|` elementwise. Divide by the learning rate to read it in units
    of :math:`\eta`.
    """
    from course_lib.data import load_digits_data
    from course_lib.train import make_mlp

    data = load_digits_data()
    model = make_mlp(64, hidden, 10, seed=seed)
    opt = make_optimizer(optimizer, model.parameters(), **optimizer_kwargs)
    sizes = []
    for X, y in _digits_batches(data, batch_size, steps, seed):
        before = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
        after = nn.utils.parameters_to_vector(model.parameters()).detach()
        sizes.append((after - before).abs().numpy())
    return np.stack(sizes)


def decay_per_step(optimizer: Any, *, size: int = 1000, seed: int = 0, **optimizer_kwargs) -> float:
    r"""The fraction by which one step shrinks weights whose gradient is exactly zero.

    Random weights :math:`w_0`, gradient 0, one ``step()``: returns the mean of
    :math:`1 - w_1/w_0`. With a zero gradient Lion's :math:`c = 0` and
    :math:`\operatorname{sign}(0) = 0`, and AdamW's :math:`\hat m/(\sqrt{\hat v}+\epsilon) = 0`,
    so only the decoupled decay acts: both return :math:`\eta\lambda` (up to rounding).
    """
    gen = torch.Generator().manual_seed(seed)
    w = (torch.rand(size, generator=gen, dtype=torch.float64) + 0.5).requires_grad_(True)
    opt = make_optimizer(optimizer, [w], **optimizer_kwargs)
    w0 = w.detach().clone()
    w.grad = torch.zeros_like(w)
    opt.step()
    return float((1 - w.detach() / w0).mean())


def step_times(
    factories: Mapping[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]],
    *,
    shapes: Sequence[tuple[int, ...]] = ((512, 512),) * 4,
    steps: int = 20,
    warmup: int = 3,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Seconds per ``step()`` of each optimizer on its own fresh parameters of ``shapes``.

    Gradients are random and fixed (set once); only ``step()`` is timed, after ``warmup`` untimed
    steps (the first steps allocate the state and, for a compiled fast path, compile). The
    optimizers take turns, one block of ``steps`` steps each per round, for ``repeats`` rounds,
    and each reports its fastest block: on a shared machine the other work only ever adds time,
    and taking turns exposes every optimizer to the same load. Still a measurement of this
    machine and this moment.
    """
    gen = torch.Generator().manual_seed(seed)
    opts = {}
    for name, factory in factories.items():
        params = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        opts[name] = factory(params)
        for _ in range(warmup):
            opts[name].step()
    best = dict.fromkeys(opts, math.inf)
    for _ in range(repeats):
        for name, opt in opts.items():
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best


def reference_gap(
    ours: Callable[[Any], torch.optim.Optimizer],
    reference: Callable[[Any], torch.optim.Optimizer],
    *,
    steps: int = 200,
    hidden: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    state_keys: tuple[str, str] = ("m", "exp_avg"),
) -> tuple[np.ndarray, np.ndarray]:
    """Train two identical MLPs with ``ours`` and ``reference`` on the same mini-batches.

    Returns ``(param_gap, state_gap)``: after each step, the largest absolute difference between
    the two models' parameters, and between ``ours``'s state ``state_keys[0]`` and the
    reference's ``state_keys[1]`` (Lion's momentum is ``m`` here, ``exp_avg`` in lion-pytorch).
    Each model computes its own gradient on its own parameters, so a difference, once there,
    would feed back and grow: zeros all along mean the same trajectory.
    """
    from course_lib.data import load_digits_data
    from course_lib.train import make_mlp

    data = load_digits_data(dtype=dtype)
    models = [make_mlp(64, hidden, 10, seed=seed).to(dtype) for _ in range(2)]
    opts = [ours(models[0].parameters()), reference(models[1].parameters())]
    param_gap, state_gap = [], []
    for X, y in _digits_batches(data, batch_size, steps, seed):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
        pairs = list(zip(models[0].parameters(), models[1].parameters()))
        param_gap.append(max((a - b).abs().max().item() for a, b in pairs))
        state_gap.append(
            max(
                (opts[0].state[a][state_keys[0]] - opts[1].state[b][state_keys[1]])
                .abs()
                .max()
                .item()
                for a, b in pairs
            )
        )
    return np.array(param_gap), np.array(state_gap)


def digits_comparison(
    candidates: Mapping[str, Any],
    lr_grids: Mapping[str, Sequence[float]],
    *,
    schedule: bool,
    epochs: int = 5,
    hidden: int = 64,
    batch_size: int = 64,
    seeds: Sequence[int] = (0, 1, 2),
    eval_seeds: Sequence[int] = (3, 4, 5),
):
    """Lion vs AdamW (any ``name -> spec``) on the digits with the fair protocol.

    Each candidate's lr is picked on its grid by the mean test loss over ``seeds`` and reported
    over fresh ``eval_seeds`` (new initialisations and batch orders; the test split is the same
    one, so the report is of a tuned model on held-out *digits*, not on unseen *data* in the
    strict sense). ``schedule=True`` anneals every run's lr to zero along a cosine over the whole
    budget (``torch.optim.lr_scheduler.CosineAnnealingLR``, stepped every mini-batch). Returns
    the :class:`~course_lib.experiments.comparison.Comparison` and the test accuracies of every
    run, ``{(optimizer class name, lr, seed): accuracy}``.
    """
    from course_lib.data import load_digits_data
    from course_lib.experiments.comparison import compare_optimizers
    from course_lib.train import make_mlp, train

    data = load_digits_data()
    total_steps = epochs * math.ceil(len(data.X_train) / batch_size)

    def cosine(opt):
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)

    accuracy: dict[tuple[str, float, int], float] = {}

    def objective(make, seed):
        model = make_mlp(64, hidden, 10, seed=seed)
        opt = make(model.parameters())
        lr = opt.param_groups[0]["lr"]  # read before a scheduler changes it
        hist = train(
            model,
            opt,
            data,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            scheduler=cosine if schedule else None,
            progress=False,
        )
        if hist.diverged:
            accuracy[type(opt).__name__, lr, seed] = math.nan
            return math.nan
        accuracy[type(opt).__name__, lr, seed] = hist.test_accuracy[-1]
        return hist.test_loss[-1]

    budget = f"{epochs} epochs, batch {batch_size}, MLP 64 → {hidden} → 10"
    budget += ", cosine to 0" if schedule else ", constant lr"
    comparison = compare_optimizers(
        candidates,
        objective,
        lr_grid=dict(lr_grids),
        seeds=seeds,
        eval_seeds=eval_seeds,
        metric="test loss",
        budget=budget,
    )
    return comparison, accuracy


def sign_descent(
    landscape: Any,
    lr: float,
    steps: int,
    start: Sequence[float] | None = None,
    *,
    beta: float = 0.0,
) -> np.ndarray:
    r"""Sign descent on a 2-D landscape; returns the ``(steps + 1, 2)`` iterates (float64, NumPy).

    .. math:: m_t = \beta m_{t-1} + (1-\beta)\,\nabla f(w_{t-1}), \qquad
              w_t = w_{t-1} - \eta\,\operatorname{sign}(m_t), \qquad m_0 = 0.

    ``beta = 0`` is plain sign descent (signSGD with exact gradients); ``beta > 0`` is Signum,
    sign descent on the momentum (Bernstein et al., 2018). Written out with NumPy, independently
    of every optimizer class, so that the classes can be compared with it.
    """
    from course_lib.landscapes import get_landscape

    land = get_landscape(landscape)
    w = np.array(land.start if start is None else start, dtype=float)
    m = np.zeros_like(w)
    points = [w.copy()]
    for _ in range(steps):
        m = beta * m + (1 - beta) * land.gradient(w)
        w = w - lr * np.sign(m)
        points.append(w.copy())
    return np.array(points)


def learned_optimizer_cost(hidden: int = 20, layers: int = 2, inputs: int = 1) -> dict[str, int]:
    """Per-coordinate cost of a coordinatewise LSTM optimizer (Andrychowicz et al., 2016).

    The paper's optimizer is a two-layer LSTM with 20 hidden units applied to every coordinate
    separately (shared weights), followed by a linear output. Returns ``state_per_coordinate``
    (the hidden and cell states the optimizer keeps for every parameter: ``2 · layers ·
    hidden``), ``weights`` (the LSTM's and the output layer's parameters, built with
    ``torch.nn.LSTM``) and ``macs_per_coordinate`` (multiply-adds of one step of one coordinate:
    every LSTM and output weight is used once per step, biases excluded). ``inputs`` is the
    number of features per coordinate (1: the gradient; the paper's preprocessing gives 2).
    """
    lstm = nn.LSTM(inputs, hidden, num_layers=layers)
    head = nn.Linear(hidden, 1)
    weights = sum(p.numel() for p in lstm.parameters()) + sum(p.numel() for p in head.parameters())
    macs = sum(p.numel() for name, p in lstm.named_parameters() if name.startswith("weight"))
    macs += head.weight.numel()
    return {
        "state_per_coordinate": 2 * layers * hidden,
        "weights": weights,
        "macs_per_coordinate": macs,
    }
