r"""Learning-rate schedules as pure functions of the step, and two ways to plug them in.

A schedule is a meta-algorithm on top of any optimizer: :math:`\eta_t = S(\eta, t)`. It does not
look at gradients or losses, only at the step counter, so in this module **every schedule is a
pure function** ``step -> lr``: a small frozen dataclass whose ``__call__`` evaluates a closed
form. Consequences worth stating in a lecture:

* Calling ``schedule(500)`` before ``schedule(3)`` gives the same numbers as calling them in order.
  (Stateful schedulers that update the lr by multiplying the previous value, like the ones in d2l,
  return wrong values when called out of order or twice per step.)
* ``repr(schedule)`` lists every hyperparameter, e.g. ``CosineAnnealing(lr=0.1, T_max=100,
  lr_min=0.0)``, so a plot legend can say exactly what was run.
* A schedule is trivially plotted: ``[schedule(t) for t in range(n)]``.

Conventions (chosen once, used everywhere, tested against ``torch.optim.lr_scheduler``):

1. **Step counting.** ``t = 0, 1, 2, ...`` is the number of optimizer steps *already taken*, so
   ``schedule(t)`` is the lr used by the ``(t+1)``-th call of ``optimizer.step()``. This is
   PyTorch's convention: after ``k`` calls of ``scheduler.step()`` a torch scheduler has
   ``last_epoch == k`` and the optimizer holds the lr for the next update. (When scheduling per
   epoch, ``t`` counts finished epochs.) Steps are non-negative integers. Beware of counters that
   are incremented *before* the update, like ``state["step"]`` in torch's Adam (1 during the
   first update): such code must evaluate ``schedule(step - 1)``.
2. **Absolute learning rates.** A schedule returns the lr itself (a Python ``float``), not a
   factor: the base value is a parameter (``lr``, or ``max_lr`` for :class:`OneCycle`).
   Every schedule here is *linear* in its lr parameters, so building it with ``lr=1.0`` (and
   ``lr_min`` as a fraction) gives the **multiplier** that ``torch.optim.lr_scheduler.LambdaLR``
   expects; ``ScheduledLR(..., relative=True)`` uses a schedule the same way.
3. **After the horizon.** Schedules with a length (cosine, linear, warmup-cosine, one-cycle) hold
   their final value afterwards. (``torch``'s ``CosineAnnealingLR`` instead rises again after
   ``T_max`` and ``OneCycleLR`` raises an error: both are rarely what one wants.)

Plugging a schedule into an optimizer:

* ``ScheduledLR(optimizer, schedule)`` is a real ``torch.optim.lr_scheduler.LRScheduler``: it
  works with every ``torch.optim.Optimizer`` (ours included), accepts one schedule per param group,
  and has ``state_dict``/``load_state_dict``. Call ``scheduler.step()`` after ``optimizer.step()``.
* Or call the schedule yourself (``lr_at(schedule, t)`` is the same with a check), e.g. to write
  ``group["lr"] = schedule(t)`` before each step, or inside an optimizer's lr-scaling block.

:class:`ReduceLROnPlateau` is the exception: it reacts to a validation metric, so it is
inherently *stateful* (best value so far, patience counter, cooldown). It is written from scratch
here with the semantics of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` and tested against it.

Example::

    >>> sched = WarmupCosine(lr=0.1, warmup_steps=10, total_steps=100)
    >>> sched(0), sched(10), sched(100)
    (0.0, 0.1, 0.0)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)   # doctest: +SKIP
    >>> scheduler = ScheduledLR(opt, sched)                  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import math
import numbers
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LRScheduler

from course_lib.optim.validation import check_hyperparameter

__all__ = [
    "Constant",
    "CosineAnnealing",
    "CosineWarmRestarts",
    "ExponentialDecay",
    "InverseSqrt",
    "Join",
    "LinearSchedule",
    "MultiStepDecay",
    "Noam",
    "OneCycle",
    "ReduceLROnPlateau",
    "Schedule",
    "ScheduledLR",
    "StepDecay",
    "WarmupCosine",
    "lr_at",
]


# --------------------------------------------------------------------------------------------
# Argument checks (torch's wording: "Invalid <name>: <value>")
# --------------------------------------------------------------------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _check_lr(lr: Any, name: str = "learning rate") -> None:
    if not _is_real(lr):
        raise ValueError(f"Invalid {name}: {lr}")
    check_hyperparameter(name, lr, label=name)


def _check_positive_int(x: Any, name: str) -> None:
    if not (_is_int(x) and x > 0):
        raise ValueError(f"Invalid {name}: {x} (must be a positive integer)")


def _check_positive(x: Any, name: str) -> None:
    if not _is_real(x):
        raise ValueError(f"Invalid {name}: {x} (must be > 0)")
    check_hyperparameter(name, x, low_inclusive=False, label=name)


def _check_step(step: Any) -> int:
    t = operator.index(step)  # ints and numpy ints; a float raises TypeError
    if t < 0:
        raise ValueError(f"Invalid step: {t} (steps count optimizer updates taken, from 0)")
    return t


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


class Schedule:
    """Base class of the pure schedules: ``schedule(step) -> lr`` as a Python float.

    Subclasses are frozen dataclasses (hyperparameters only, no state) and implement
    :meth:`lr_at_step` for a validated integer ``t >= 0``.
    """

    def __call__(self, step: int) -> float:
        return float(self.lr_at_step(_check_step(step)))

    def lr_at_step(self, t: int) -> float:
        """The learning rate for the update that follows ``t`` completed updates."""
        raise NotImplementedError


def lr_at(schedule: float | Callable[[int], float], step: int) -> float:
    """The lr of ``schedule`` at ``step`` as a Python float (``step`` must be an int >= 0).

    ``schedule`` may be a schedule of this module, any plain function ``step -> lr``, or a
    number (a constant lr), so code that accepts "an lr or a schedule" can always call this.
    """
    t = _check_step(step)
    return float(schedule(t)) if callable(schedule) else float(schedule)


# --------------------------------------------------------------------------------------------
# Classic decays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant(Schedule):
    r"""The same learning rate at every step, :math:`\eta_t = \eta`.

    The baseline of every schedule comparison: the practical recipe is to tune a constant lr
    first (always sweep it), and only then add a decay.
    """

    lr: float

    def __post_init__(self) -> None:
        _check_lr(self.lr)

    def lr_at_step(self, t: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    r"""Multiply the lr by ``gamma`` every ``step_size`` steps (torch's ``StepLR``).

    .. math:: \eta_t = \eta \cdot \gamma^{\lfloor t / \text{step\_size} \rfloor}

    The classic ImageNet recipe (ResNet, He et al. 2016) divides the lr by 10 every 30 epochs:
    ``StepDecay(lr=0.1, step_size=30, gamma=0.1)`` with ``t`` counting epochs.
    """

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        _check_positive_int(self.step_size, "step_size")
        _check_positive(self.gamma, "gamma")

    def lr_at_step(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class MultiStepDecay(Schedule):
    r"""Multiply the lr by ``gamma`` at each milestone (torch's ``MultiStepLR``).

    .. math:: \eta_t = \eta \cdot \gamma^{\#\{m \in \text{milestones} : m \le t\}}

    Milestones are strictly increasing step numbers; the decay takes effect *at* the milestone
    (the update after ``m`` completed steps already uses the smaller lr), as in torch.
    """

    lr: float
    milestones: Sequence[int]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        milestones = tuple(self.milestones)
        ok = all(_is_int(m) and m > 0 for m in milestones) and all(
            a < b for a, b in zip(milestones, milestones[1:])
        )
        if not ok:
            raise ValueError(
                f"Invalid milestones: {self.milestones} (must be strictly increasing positive ints)"
            )
        object.__setattr__(self, "milestones", milestones)  # a tuple: hashable and immutable
        _check_positive(self.gamma, "gamma")

    def lr_at_step(self, t: int) -> float:
        return self.lr * self.gamma ** bisect.bisect_right(self.milestones, t)


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    r"""Multiply the lr by ``gamma`` at every step (torch's ``ExponentialLR``).

    .. math:: \eta_t = \eta \cdot \gamma^{t}

    The half-life is :math:`\ln 2 / (-\ln\gamma)` steps: with ``gamma=0.999`` about 693 steps.
    """

    lr: float
    gamma: float

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        _check_positive(self.gamma, "gamma")

    def lr_at_step(self, t: int) -> float:
        return self.lr * self.gamma**t


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    r"""Decay as :math:`1/\sqrt{t}`, shifted by ``offset`` so that step 0 is finite.

    .. math:: \eta_t = \eta \sqrt{\frac{\tau}{t + \tau}}, \qquad \tau = \text{offset} \ge 1

    so :math:`\eta_0 = \eta` and :math:`\eta_t \approx \eta\sqrt{\tau}/\sqrt{t}` for
    :math:`t \gg \tau`. With ``offset=1`` this is :math:`\eta/\sqrt{t+1}`, the step size of the
    classic convergence proofs for (sub)gradient methods on convex problems. AdaGrad arrives at a
    :math:`1/\sqrt{t}` decay on its own: its accumulated squared gradients grow linearly in
    :math:`t`, so its effective lr shrinks like :math:`1/\sqrt{t}`.

    The Transformer-style "inverse square root" schedule (fairseq's ``inverse_sqrt``) is a linear
    warmup of ``W`` steps followed by ``InverseSqrt(lr, offset=W)``, joined with :class:`Join`:
    after the warmup it equals :math:`\eta\sqrt{W/t}`, continuous at the boundary.
    """

    lr: float
    offset: int = 1

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        _check_positive_int(self.offset, "offset")

    def lr_at_step(self, t: int) -> float:
        return self.lr * math.sqrt(self.offset / (t + self.offset))


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    r"""Move the lr linearly from ``start_factor * lr`` to ``end_factor * lr`` in ``total_iters``.

    .. math:: \eta_t = \eta \left(s + (e - s)\,\frac{\min(t, T)}{T}\right)

    with :math:`s` = ``start_factor``, :math:`e` = ``end_factor``, :math:`T` = ``total_iters``;
    the lr holds :math:`e\,\eta` from step :math:`T` on. The defaults give **linear decay to
    zero at step T** (BERT's schedule after its warmup); ``start_factor=0.1, end_factor=1.0`` is
    a linear warmup. Same formula as torch's ``LinearLR`` (whose defaults are ``1/3, 1.0, 5``).
    """

    lr: float
    total_iters: int
    start_factor: float = 1.0
    end_factor: float = 0.0

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        _check_positive_int(self.total_iters, "total_iters")
        _check_lr(self.start_factor, "start_factor")
        _check_lr(self.end_factor, "end_factor")

    def lr_at_step(self, t: int) -> float:
        s, e, T = self.start_factor, self.end_factor, self.total_iters
        return self.lr * (s + (e - s) * min(t, T) / T)


# --------------------------------------------------------------------------------------------
# Cosine family
# --------------------------------------------------------------------------------------------


def _cosine(lr_max: float, lr_min: float, t_cur: float, period: float) -> float:
    r""":math:`\eta_{\min} + \tfrac12(\eta_{\max} - \eta_{\min})(1 + \cos(\pi\, t_{cur}/T))`."""
    return lr_min + (lr_max - lr_min) * (1.0 + math.cos(math.pi * t_cur / period)) / 2.0


@dataclass(frozen=True)
class CosineAnnealing(Schedule):
    r"""Half a cosine wave from ``lr`` down to ``lr_min`` in ``T_max`` steps, then hold ``lr_min``.

    .. math::
        \eta_t = \eta_{\min} + \tfrac12(\eta_{\max} - \eta_{\min})
                 \left(1 + \cos\frac{\pi\, t}{T_{\max}}\right), \qquad 0 \le t \le T_{\max}

    and :math:`\eta_t = \eta_{\min}` for :math:`t > T_{\max}`. One cycle of SGDR (Loshchilov &
    Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017). The lr stays near
    :math:`\eta_{\max}` at first, falls fastest mid-way and flattens near the end.

    Equals torch's ``CosineAnnealingLR(optimizer, T_max, eta_min)`` for :math:`t \le T_{\max}`
    (torch's cosine rises again afterwards; this one stays at the floor).
    """

    lr: float
    T_max: int
    lr_min: float = 0.0

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        _check_positive_int(self.T_max, "T_max")
        _check_lr(self.lr_min, "lr_min")

    def lr_at_step(self, t: int) -> float:
        return _cosine(self.lr, self.lr_min, min(t, self.T_max), self.T_max)


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    r"""Linear warmup to ``lr`` in ``warmup_steps``, cosine decay to ``lr_min`` at ``total_steps``.

    With :math:`W` = ``warmup_steps``, :math:`T` = ``total_steps``, :math:`s` = ``start_factor``:

    1. warmup, :math:`0 \le t < W`: :math:`\eta_t = \eta\,(s + (1 - s)\,t/W)`;
    2. decay, :math:`W \le t \le T`: cosine from :math:`\eta` to :math:`\eta_{\min}` over
       :math:`T - W` steps, :math:`\eta_t = \eta_{\min} + \tfrac12(\eta - \eta_{\min})
       (1 + \cos(\pi (t - W)/(T - W)))`;
    3. floor, :math:`t > T`: :math:`\eta_t = \eta_{\min}`.

    The default ``start_factor=0`` starts from zero as Hugging Face's
    ``get_cosine_schedule_with_warmup`` and optax's ``warmup_cosine_decay_schedule`` do (so the
    very first update is a no-op); ``start_factor=1/(W+1)`` gives nanoGPT's
    :math:`\eta\,(t+1)/(W+1)`. Equivalent to ``Join([LinearSchedule(lr, W, s, 1.0),
    CosineAnnealing(lr, T - W, lr_min)], [W])`` and to torch's ``SequentialLR`` of ``LinearLR``
    and ``CosineAnnealingLR`` with milestone ``W``. Warmup tames the huge early steps of
    adaptive methods (their second-moment estimate is still noisy; see RAdam).
    """

    lr: float
    warmup_steps: int
    total_steps: int
    lr_min: float = 0.0
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        if not (_is_int(self.warmup_steps) and self.warmup_steps >= 0):
            raise ValueError(
                f"Invalid warmup_steps: {self.warmup_steps} (must be a non-negative integer)"
            )
        _check_positive_int(self.total_steps, "total_steps")
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"Invalid warmup_steps: {self.warmup_steps} "
                f"(must be < total_steps={self.total_steps})"
            )
        _check_lr(self.lr_min, "lr_min")
        if not (_is_real(self.start_factor) and 0.0 <= self.start_factor <= 1.0):
            raise ValueError(f"Invalid start_factor: {self.start_factor} (must be in [0, 1])")

    def lr_at_step(self, t: int) -> float:
        W, T, s = self.warmup_steps, self.total_steps, self.start_factor
        if t < W:  # 1. linear warmup
            return self.lr * (s + (1.0 - s) * t / W)
        # 2. cosine decay over the remaining T - W steps, 3. then hold the floor
        return _cosine(self.lr, self.lr_min, min(t - W, T - W), T - W)


@dataclass(frozen=True)
class CosineWarmRestarts(Schedule):
    r"""SGDR: cosine cycles restarting at ``lr``; cycle i lasts :math:`T_i = T_0 T_{mult}^i` steps.

    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017
    (the paper's CIFAR runs include :math:`T_0 = 1` and :math:`10` epochs with
    :math:`T_{mult} = 2`; :math:`T_{cur}` is updated after every batch, in fractions of an epoch).
    Within cycle :math:`i`, after :math:`T_{cur}` steps of it,

    .. math::
        \eta_t = \eta_{\min} + \tfrac12(\eta_{\max} - \eta_{\min})
                 \left(1 + \cos\frac{\pi\, T_{cur}}{T_i}\right).

    A restart resets the *learning rate*, not the weights: the model keeps training from where it
    is, with a suddenly large lr that can carry it to another basin (snapshot ensembles save the
    model at the end of each cycle, where the lr is lowest).

    **Closed form for the cycle index.** Cycle :math:`i` starts after
    :math:`S_i = T_0 (1 + T_{mult} + \dots + T_{mult}^{i-1}) = T_0 (T_{mult}^i - 1)/(T_{mult} - 1)`
    steps. Solving :math:`S_i \le t` for the largest :math:`i`:

    .. math::
        i = \left\lfloor \log_{T_{mult}}\!\left(\frac{t}{T_0}(T_{mult} - 1) + 1\right)
        \right\rfloor \quad (T_{mult} > 1), \qquad i = \lfloor t / T_0 \rfloor \quad (T_{mult} = 1),

    and :math:`T_{cur} = t - S_i`. (Floating-point logs can land a hair below an integer exactly
    at a restart; :meth:`cycle` corrects that with exact integer arithmetic.) No loop over past
    cycles and no state: any step can be evaluated directly. Equals torch's
    ``CosineAnnealingWarmRestarts(optimizer, T_0, T_mult, eta_min)`` stepped once per update;
    torch's per-batch usage ``scheduler.step(epoch + i / iters)`` (epochs as the unit, the
    paper's fractional :math:`T_{cur}`) is this schedule with ``T_0 = T_0_epochs * iters``.
    """

    lr: float
    T_0: int
    T_mult: int = 1
    lr_min: float = 0.0

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        _check_positive_int(self.T_0, "T_0")
        if not (_is_int(self.T_mult) and self.T_mult >= 1):
            raise ValueError(f"Invalid T_mult: {self.T_mult} (must be an integer >= 1)")
        _check_lr(self.lr_min, "lr_min")

    def _cycle_start(self, i: int) -> int:
        """:math:`S_i`, the number of steps before cycle ``i`` starts (exact integers)."""
        if self.T_mult == 1:
            return self.T_0 * i
        return self.T_0 * (self.T_mult**i - 1) // (self.T_mult - 1)

    def cycle(self, step: int) -> tuple[int, int, int]:
        """``(i, T_cur, T_i)``: cycle index, steps into the cycle, and the cycle's length.

        The last step of a cycle has ``T_cur == T_i - 1`` (the place to take a snapshot).
        """
        t = _check_step(step)
        if self.T_mult == 1:
            i = t // self.T_0
        else:
            i = math.floor(math.log(t / self.T_0 * (self.T_mult - 1) + 1) / math.log(self.T_mult))
            while self._cycle_start(i + 1) <= t:  # fix a log that rounded down at a restart
                i += 1
            while i > 0 and self._cycle_start(i) > t:  # ... or one that rounded up
                i -= 1
        return i, t - self._cycle_start(i), self.T_0 * self.T_mult**i

    def lr_at_step(self, t: int) -> float:
        _, t_cur, t_i = self.cycle(t)
        return _cosine(self.lr, self.lr_min, t_cur, t_i)


# --------------------------------------------------------------------------------------------
# One-cycle and the Transformer schedule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneCycle(Schedule):
    r"""1cycle: up from ``max_lr/div_factor`` to ``max_lr``, then down far below the start.

    Smith, "A disciplined approach to neural network hyper-parameters: Part 1" (2018), and Smith &
    Topin, "Super-Convergence" (2017/2019). Same phases, defaults and numbers as torch's
    ``OneCycleLR`` (the lr part; momentum cycling is not included). With :math:`N` =
    ``total_steps``, :math:`p` = ``pct_start``, :math:`\eta_0 = \eta_{\max}/`\ ``div_factor`` and
    :math:`\eta_{\text{end}} = \eta_0/`\ ``final_div_factor``:

    * two phases (default, as in fastai): :math:`\eta_0 \to \eta_{\max}` over steps
      :math:`0 \dots pN - 1`, then :math:`\eta_{\max} \to \eta_{\text{end}}` until step
      :math:`N - 1`;
    * ``three_phase=True`` (the paper): :math:`\eta_0 \to \eta_{\max}` until :math:`pN - 1`,
      back down to :math:`\eta_0` until :math:`2pN - 2` (symmetric), then
      :math:`\eta_0 \to \eta_{\text{end}}` until :math:`N - 1`.

    Each phase interpolates with ``anneal_strategy``: ``"cos"``,
    :math:`b + \tfrac12(a - b)(1 + \cos \pi x)`, or ``"linear"``, :math:`a + (b - a)x`, where
    :math:`x \in [0, 1]` is the fraction of the phase done. Steps :math:`\ge N - 1` hold
    :math:`\eta_{\text{end}}` (torch raises an error past :math:`N`).
    """

    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        _check_lr(self.max_lr, "max_lr")
        _check_positive_int(self.total_steps, "total_steps")
        if not (_is_real(self.pct_start) and 0.0 <= self.pct_start <= 1.0):
            raise ValueError(f"Invalid pct_start: {self.pct_start} (must be in [0, 1])")
        if self.three_phase and self.pct_start > 0.5:
            raise ValueError(
                f"Invalid pct_start: {self.pct_start} (must be <= 0.5 with three_phase=True)"
            )
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"Invalid anneal_strategy: {self.anneal_strategy!r} (must be 'cos' or 'linear')"
            )
        _check_positive(self.div_factor, "div_factor")
        _check_positive(self.final_div_factor, "final_div_factor")

    def phases(self) -> list[tuple[float, float, float]]:
        """``(end_step, start_lr, end_lr)`` per phase; a phase starts where the previous ended."""
        n, p = self.total_steps, self.pct_start
        initial_lr = self.max_lr / self.div_factor
        final_lr = initial_lr / self.final_div_factor
        if self.three_phase:
            return [
                (float(p * n) - 1, initial_lr, self.max_lr),
                (float(2 * p * n) - 2, self.max_lr, initial_lr),
                (n - 1, initial_lr, final_lr),
            ]
        return [(float(p * n) - 1, initial_lr, self.max_lr), (n - 1, self.max_lr, final_lr)]

    def _anneal(self, start: float, end: float, x: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * x) + 1)
        return (end - start) * x + start

    def lr_at_step(self, t: int) -> float:
        t = min(t, self.total_steps - 1)  # hold the final lr after the cycle
        phases = self.phases()
        phase_start = 0.0
        for k, (phase_end, lr_from, lr_to) in enumerate(phases):
            if t <= phase_end or k == len(phases) - 1:
                length = phase_end - phase_start
                x = (t - phase_start) / length if length > 0 else 1.0
                return self._anneal(lr_from, lr_to, x)
            phase_start = phase_end
        raise AssertionError("unreachable: the last phase always matches")


@dataclass(frozen=True)
class Noam(Schedule):
    r"""The Transformer schedule (Vaswani et al., "Attention Is All You Need", 2017, eq. 3).

    .. math::
        \eta = \text{scale}\cdot d_{\text{model}}^{-0.5}\cdot
               \min\left(n^{-0.5},\; n \cdot \text{warmup}^{-1.5}\right), \qquad n = t + 1

    Linear warmup for ``warmup`` steps, then :math:`1/\sqrt{n}` decay; the peak,
    :math:`(d_{\text{model}}\cdot\text{warmup})^{-0.5}` (about 7e-4 for the paper's
    :math:`d_{\text{model}} = 512`, warmup = 4000), is reached at :math:`n` = warmup. The paper used
    it with Adam, :math:`\beta_2 = 0.98`, :math:`\epsilon = 10^{-9}`.

    **Step 0.** The paper's ``step_num`` starts at 1 for the first update (at :math:`n = 0` the
    formula divides by zero). With this module's convention, ``t`` updates have been taken
    before update number :math:`n = t + 1`, so ``Noam()(0)`` is the paper's lr for step 1.
    (The Annotated Transformer instead clamps ``max(t, 1)``, using the step-1 lr twice.)
    ``scale`` is the extra factor many implementations multiply in (1.0 in the paper).
    """

    d_model: int = 512
    warmup: int = 4000
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_positive_int(self.d_model, "d_model")
        _check_positive_int(self.warmup, "warmup")
        _check_lr(self.scale, "scale")

    def lr_at_step(self, t: int) -> float:
        n = t + 1  # the paper's step_num of the next update
        return self.scale * self.d_model**-0.5 * min(n**-0.5, n * self.warmup**-1.5)


# --------------------------------------------------------------------------------------------
# Combinator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Join(Schedule):
    r"""Run ``schedules[0]`` until ``boundaries[0]``, then ``schedules[1]`` from 0, and so on.

    .. math:: \eta_t = S_k(t - b_{k-1}) \quad \text{for } b_{k-1} \le t < b_k
              \quad (b_{-1} = 0)

    Each piece sees its own step counter starting at 0, as in optax's ``join_schedules`` and
    torch's ``SequentialLR``. Typical use, warmup then anything::

        Join([LinearSchedule(0.1, 100, start_factor=0.01, end_factor=1.0),
              InverseSqrt(0.1, offset=100)], boundaries=[100])

    Pieces may be any callables ``step -> lr``.
    """

    schedules: Sequence[Callable[[int], float]]
    boundaries: Sequence[int]

    def __post_init__(self) -> None:
        schedules, boundaries = tuple(self.schedules), tuple(self.boundaries)
        if not schedules or not all(callable(s) for s in schedules):
            raise ValueError(f"Invalid schedules: {self.schedules} (need callables step -> lr)")
        ok = all(_is_int(b) and b > 0 for b in boundaries) and all(
            a < b for a, b in zip(boundaries, boundaries[1:])
        )
        if len(boundaries) != len(schedules) - 1 or not ok:
            raise ValueError(
                f"Invalid boundaries: {self.boundaries} (need {len(schedules) - 1} strictly "
                "increasing positive ints, one fewer than schedules)"
            )
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "boundaries", boundaries)

    def lr_at_step(self, t: int) -> float:
        k = bisect.bisect_right(self.boundaries, t)  # which piece is active at step t
        start = self.boundaries[k - 1] if k > 0 else 0
        return float(self.schedules[k](t - start))


# --------------------------------------------------------------------------------------------
# Plugging schedules into any torch.optim.Optimizer
# --------------------------------------------------------------------------------------------


class ScheduledLR(LRScheduler):
    """A ``torch.optim.lr_scheduler.LRScheduler`` that sets each group's lr from a pure schedule.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (the course's optimizers included).
        schedule: one callable ``step -> lr`` for all param groups, or a list with one per group.
        relative: if ``False`` (default) the schedule's value *is* the lr (the lr given to the
            optimizer's constructor is overwritten at once, as ``OneCycleLR`` does). If ``True``
            the value multiplies each group's initial lr, exactly like ``LambdaLR``: build the
            schedule with ``lr=1.0`` then.
        last_epoch: as in torch; ``-1`` starts a fresh schedule.

    After ``k`` calls of :meth:`step`, ``last_epoch == k`` and every group's lr is
    ``schedule(k)``: the lr for the ``(k+1)``-th ``optimizer.step()``. Because the schedules are
    closed forms, ``step(epoch)`` (deprecated in torch) jumps correctly too.

    ``state_dict`` holds plain numbers only (it loads with ``torch.load(weights_only=True)``); the
    schedules are code, not state: rebuild the scheduler with the same schedules, then call
    :meth:`load_state_dict` (it warns if the schedules' ``repr`` differ from the saved ones).

    Example::

        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = ScheduledLR(opt, CosineWarmRestarts(lr=0.1, T_0=10, T_mult=2))
        for batch in loader:
            ...; opt.step(); scheduler.step()
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Callable[[int], float] | Sequence[Callable[[int], float]],
        relative: bool = False,
        last_epoch: int = -1,
    ) -> None:
        n_groups = len(optimizer.param_groups)
        if isinstance(schedule, (list, tuple)):
            if len(schedule) != n_groups:
                raise ValueError(f"Expected {n_groups} schedules, but got {len(schedule)}")
            schedules = list(schedule)
        else:
            schedules = [schedule] * n_groups
        if not all(callable(s) for s in schedules):
            raise ValueError("Invalid schedule: each schedule must be a callable step -> lr")
        self.schedules = schedules
        self.relative = bool(relative)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if self.relative:
            return [float(base) * lr_at(s, t) for s, base in zip(self.schedules, self.base_lrs)]
        return [lr_at(s, t) for s in self.schedules]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedules")}
        state["schedules"] = [repr(s) for s in self.schedules]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved = state.pop("schedules", None)
        current = [repr(s) for s in self.schedules]
        if saved is not None and list(saved) != current:
            warnings.warn(
                f"ScheduledLR: loading a state saved with schedules {saved}, "
                f"but this scheduler runs {current}",
                UserWarning,
                stacklevel=2,
            )
        self.__dict__.update(state)


class ReduceLROnPlateau:
    r"""Cut the lr by ``factor`` when a monitored metric stops improving (stateful, by design).

    A from-scratch twin of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` with the same arguments,
    defaults and decisions (the test suite replays metric sequences through both). Unlike the
    schedules above it is not a function of the step: it reacts to the metric, so it keeps state.
    Call ``scheduler.step(val_metric)`` once per evaluation (usually per epoch).

    Each call:

    1. **improvement?** In ``mode="min"`` the metric :math:`a` improves on the best value
       :math:`b` if :math:`a < b(1 - \text{threshold})` (``threshold_mode="rel"``) or
       :math:`a < b - \text{threshold}` (``"abs"``); ``"max"`` mirrors this. Improvement: ``best =
       a`` and the bad-epoch counter resets; otherwise the counter grows by one.
    2. **cooldown:** during the ``cooldown`` evaluations after a cut, bad epochs are not counted.
    3. **cut:** when the counter exceeds ``patience``, every group gets
       :math:`\max(\eta\cdot\text{factor}, \text{min\_lr})`, unless that changes the lr by less
       than ``eps``; then the cooldown starts and the counter resets.

    ``patience=0`` cuts on the first evaluation that does not improve. The relative threshold
    assumes a positive metric (with a negative best value, :math:`b(1 - \text{threshold})` is
    *larger* than :math:`b`): use ``threshold_mode="abs"`` for metrics that can be negative.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if mode not in ("min", "max"):
            raise ValueError(f"Invalid mode: {mode!r} (must be 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"Invalid threshold_mode: {threshold_mode!r} (must be 'rel' or 'abs')")
        if not (_is_real(factor) and 0.0 <= factor < 1.0):
            raise ValueError(f"Invalid factor: {factor} (must be in [0, 1))")
        if not (_is_int(patience) and patience >= 0):
            raise ValueError(f"Invalid patience: {patience} (must be a non-negative integer)")
        if not (_is_int(cooldown) and cooldown >= 0):
            raise ValueError(f"Invalid cooldown: {cooldown} (must be a non-negative integer)")
        _check_lr(threshold, "threshold")
        _check_lr(eps, "eps")
        n_groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n_groups:
                raise ValueError(f"Expected {n_groups} min_lrs, got {len(min_lr)}")
            min_lrs = [float(m) for m in min_lr]
        else:
            min_lrs = [float(min_lr)] * n_groups
        for m in min_lrs:
            _check_lr(m, "min_lr")

        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.cooldown, self.min_lrs, self.eps = cooldown, min_lrs, eps
        # the state: what has been seen so far
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        """Is metric ``a`` a significant improvement on ``best``?"""
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if rel else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if rel else best + self.threshold)

    def step(self, metrics: float | Tensor) -> None:
        """Record one evaluation of the monitored metric (a number or a 0-dim tensor)."""
        current = float(metrics)
        self.last_epoch += 1
        # 1. improvement or one more bad epoch
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        # 2. cooldown: bad epochs right after a cut do not count
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        # 3. out of patience: cut the lr, start the cooldown
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                if isinstance(group["lr"], Tensor):
                    group["lr"].fill_(new_lr)
                else:
                    group["lr"] = new_lr

    def get_last_lr(self) -> list[float]:
        """The lr of each param group after the latest :meth:`step`."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and state as plain numbers (everything except the optimizer)."""
        state = {k: v for k, v in self.__dict__.items() if k != "optimizer"}
        state["min_lrs"], state["_last_lr"] = list(self.min_lrs), list(self._last_lr)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return (
            f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, "
            f"patience={self.patience}, threshold={self.threshold}, "
            f"threshold_mode={self.threshold_mode!r}, "
            f"cooldown={self.cooldown}, min_lr={self.min_lrs}, eps={self.eps})"
        )
