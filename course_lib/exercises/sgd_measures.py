r"""Chapter 01: SGD's noise floor (a *derive* exercise) and the stability of a real net (*measure*).

* ``sgd_noise_floor(lr, curvature, noise_std)``: SGD on the 1-D quadratic
  :math:`f(w) = \frac h2 w^2` with stochastic gradients :math:`h w + \xi`, where :math:`\xi` is
  independent zero-mean noise of standard deviation :math:`\sigma`, with a constant learning rate
  :math:`\eta`. The iterates :math:`w_{k+1} = (1 - \eta h) w_k - \eta\xi_k` settle into a
  stationary distribution with :math:`\mathbb E w = 0` and

  .. math:: \mathbb E\,w^2 = (1-\eta h)^2\,\mathbb E\,w^2 + \eta^2\sigma^2
            \;\Longrightarrow\; \mathbb E\,w^2 = \frac{\eta\sigma^2}{h\,(2 - \eta h)}

  for :math:`0 < \eta h < 2` (the floor of a constant learning rate; it grows without bound as
  :math:`\eta h \to 2`, the divergence threshold). The lesson's :math:`\frac{\eta}{2B}
  \mathrm{tr}(H^{-1}S)` is its first-order approximation :math:`\eta\sigma^2/(2h)`.
* ``stability_ratio(seed)``: measured, not derived. At the weights of
  :func:`course_lib.experiments.stability.digits_checkpoint` (``seed``, 3 epochs, 16 hidden
  units) compute :math:`\lambda_{\max}` of the full-batch training loss by power iteration,
  find the smallest learning rate at which 20 steps of full-batch gradient descent diverge
  (:func:`~course_lib.experiments.stability.gd_diverges`, bisection to a relative 1e-3), and
  return that learning rate divided by :math:`2/\lambda_{\max}`. Answers within ``rtol``
  (3 %) of the reference measurement count as right: a different bisection bracket or
  power-iteration tolerance moves the result by far less.

:class:`MeasuredNumberExercise` is a :class:`~course_lib.exercises.number_answers.NumberExercise`
whose answer is compared within a tolerance band ``rtol``; the grader's probe for it uses the
same band (``course_lib/grading/probes.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.problems import uniform

# ---------------------------------------------------------------------------------------------
# sgd_noise_floor
# ---------------------------------------------------------------------------------------------


def ref_sgd_noise_floor(lr: float, curvature: float, noise_std: float) -> float:
    """Stationary E[w²] of constant-lr SGD on ½hw² with gradient noise of std σ."""
    return lr * noise_std**2 / (curvature * (2 - lr * curvature))


def _noise_floor_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(5):
        h = 10 ** uniform(gen, -1, 1)
        lr = uniform(gen, 0.3, 1.9) / h if i else uniform(gen, 0.01, 0.05) / h
        sigma = 10 ** uniform(gen, -1, 0.5)
        cases.append(
            NumberCase(
                f"hidden case {i + 1}: lr={lr:.4g}, h={h:.4g}, sigma={sigma:.3g}", (lr, h, sigma)
            )
        )
    return cases


SGD_NOISE_FLOOR = NumberExercise(
    name="sgd_noise_floor",
    reference=ref_sgd_noise_floor,
    variants={
        "that is the small-learning-rate approximation ησ²/(2h); keep the η²h² term of "
        "(1 − ηh)² and the answer is exact for every stable η": (
            lambda lr, h, sigma: lr * sigma**2 / (2 * h)
        ),
        "the variance recursion multiplies E[w²] by (1 − ηh)², not by (1 − ηh)": (
            lambda lr, h, sigma: lr * sigma**2 / h
        ),
        "σ is the standard deviation; the variance σ² enters the recursion": (
            lambda lr, h, sigma: lr * sigma / (h * (2 - lr * h))
        ),
        "the noise enters the step multiplied by η, so its variance is multiplied by η²": (
            lambda lr, h, sigma: sigma**2 / (h * (2 - lr * h) * lr)
        ),
    },
    self_check_cases=lambda gen: [
        NumberCase(f"lr={lr}, h={h}, sigma={s}", (lr, h, s))
        for lr, h, s in ((0.1, 1.0, 1.0), (0.5, 2.0, 0.3), (0.01, 10.0, 2.0), (1.8, 1.0, 1.0))
    ],
    hidden_cases=_noise_floor_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# stability_ratio (measured)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredNumberExercise(NumberExercise):
    """A number measured by an experiment: right when within ``rtol`` of the reference.

    ``prepare()`` imports and loads, once, what the experiment otherwise loads lazily in its first
    call; the grader runs it before any sandbox exists (see :func:`course_lib.exercises.prepare`).
    """

    rtol: float = 0.03
    prepare: Callable[[], None] | None = None

    def is_right(self, args: tuple, got: float) -> bool:
        return math.isclose(got, self.reference(*args), rel_tol=self.rtol, abs_tol=0.0)


STABILITY_STEPS = 20  # gradient-descent steps that decide "diverges"
STABILITY_EPOCHS = 3  # epochs of SGD before the measurement


def ref_stability_ratio(seed: int) -> float:
    """Measured divergence lr of full-batch GD at a digits checkpoint, in units of 2/λ_max."""
    from torch import nn

    from course_lib.experiments.sharpness import top_hessian_eigenvalue
    from course_lib.experiments.stability import digits_checkpoint, divergence_lr

    model, X, y = digits_checkpoint(int(seed), epochs=STABILITY_EPOCHS)
    lam = top_hessian_eigenvalue(model, nn.functional.cross_entropy, (X, y)).eigenvalue
    threshold = divergence_lr(model, X, y, 0.5 * 2 / lam, 8 * 2 / lam, steps=STABILITY_STEPS)
    return threshold / (2 / lam)


def prepare_stability_ratio() -> None:
    """Import the experiment modules and load the digits that :func:`ref_stability_ratio` uses."""
    import importlib

    from course_lib.data import load_digits_data
    from course_lib import optim, train  # noqa: F401
    from course_lib.experiments import sharpness, stability  # noqa: F401

    importlib.import_module("tqdm.auto")  # the training loop's progress bar, imported lazily
    load_digits_data()


# Seeds whose divergence boundary is a single switch on a fine scan of lr (checked in the tests):
# there every correct bisection lands on the same learning rate.
HIDDEN_STABILITY_SEEDS = (2, 4, 5, 6, 7)

STABILITY_RATIO = MeasuredNumberExercise(
    name="stability_ratio",
    reference=ref_stability_ratio,
    prepare=prepare_stability_ratio,
    variants={},  # a measurement: the self-check reports how far off, the lesson explains why
    self_check_cases=lambda gen: [NumberCase("seed=1", (1,))],
    hidden_cases=lambda gen: [
        NumberCase(f"hidden seed {seed}", (seed,))
        for seed in sorted(
            HIDDEN_STABILITY_SEEDS[int(i)]
            for i in torch.randperm(len(HIDDEN_STABILITY_SEEDS), generator=gen)[:2]
        )
    ],
    rtol=0.03,
)
