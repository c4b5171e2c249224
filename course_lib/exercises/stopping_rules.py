r"""Chapter 00: when to stop. A *derive* exercise and a *find-the-bug* exercise.

* ``gradient_tolerance(m, L, delta)``: the largest tolerance :math:`\varepsilon` such that
  stopping at :math:`\lVert\nabla f(w)\rVert \le \varepsilon` guarantees
  :math:`\lVert w - w^\star\rVert \le \delta` for *every* :math:`m`-strongly convex,
  :math:`L`-smooth function (the course writes the strong-convexity constant :math:`m`, since
  :math:`\mu` is the momentum). Strong convexity gives
  :math:`\langle\nabla f(w), w - w^\star\rangle \ge m\lVert w - w^\star\rVert^2`, hence
  :math:`\lVert\nabla f(w)\rVert \ge m\lVert w - w^\star\rVert`, so
  :math:`\varepsilon = m\delta`; it is the largest because :math:`f(w) = \frac m2\lVert w\rVert^2` attains the bound.
  :math:`L` plays no part (it bounds the gradient from above, the wrong direction).
* ``early_stopping_epoch(val_losses, patience)``: the epoch whose weights early stopping keeps.
  After every epoch ``k`` (0-based) the validation loss ``val_losses[k]`` is compared with the
  best so far; an epoch *improves* when its loss is strictly lower. Training stops after
  ``patience`` consecutive epochs without improvement, and the weights of the best epoch are
  restored; if it never stops, the best epoch of the whole list is kept. The notebook gives a
  flawed version to fix; as a find-the-bug exercise it has no diagnoses (the self-check says
  on which input it is wrong, never why).
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises.number_answers import NumberCase, NumberExercise
from course_lib.exercises.problems import DTYPE, uniform

# ---------------------------------------------------------------------------------------------
# gradient_tolerance
# ---------------------------------------------------------------------------------------------


def ref_gradient_tolerance(m: float, L: float, delta: float) -> float:
    """Largest ε with ‖∇f‖ ≤ ε ⇒ ‖w − w*‖ ≤ δ for every m-strongly convex, L-smooth f."""
    return m * delta


def _gradient_tolerance_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = []
    for i in range(5):
        m = 10 ** uniform(gen, -3, 1)
        L = m * 10 ** uniform(gen, 0.5, 3)
        delta = 10 ** uniform(gen, -4, 0)
        cases.append(
            NumberCase(
                f"hidden case {i + 1}: m={m:.4g}, L={L:.4g}, delta={delta:.3g}", (m, L, delta)
            )
        )
    return cases


GRADIENT_TOLERANCE = NumberExercise(
    name="gradient_tolerance",
    reference=ref_gradient_tolerance,
    variants={
        "you used L: smoothness bounds the gradient from above (‖∇f‖ ≤ L‖w − w*‖), which "
        "cannot certify that w is close; a lower bound on ‖∇f‖ needs the strong-convexity "
        "constant m": (lambda m, L, delta: L * delta),
        "the ratio is upside down: a flatter function (smaller m) needs a *smaller* gradient "
        "tolerance, so ε grows with m": lambda m, L, delta: delta / m,
        "that tolerance certifies f(w) − f* ≤ δ (from f − f* ≤ ‖∇f‖²/(2m)); the question asks "
        "for the distance ‖w − w*‖ ≤ δ": lambda m, L, delta: math.sqrt(2 * m * delta),
        "mδ/2 is safe but not the largest: strong convexity gives ‖∇f(w)‖ ≥ m‖w − w*‖ directly, "
        "and f(w) = m‖w‖²/2 shows nothing larger works": lambda m, L, delta: m * delta / 2,
    },
    self_check_cases=lambda gen: [
        NumberCase(f"m={m}, L={L}, delta={delta}", (m, L, delta))
        for m, L, delta in ((1.0, 10.0, 0.1), (0.01, 5.0, 1e-3), (2.0, 2.0, 0.5), (0.3, 30.0, 2.0))
    ],
    hidden_cases=_gradient_tolerance_hidden_cases,
)

# ---------------------------------------------------------------------------------------------
# early_stopping_epoch (find the bug)
# ---------------------------------------------------------------------------------------------


def ref_early_stopping_epoch(val_losses, patience: int) -> int:
    """The epoch whose weights early stopping with this ``patience`` keeps (module docstring)."""
    best, best_epoch, waited = math.inf, 0, 0
    for epoch, loss in enumerate(torch.as_tensor(val_losses, dtype=DTYPE).tolist()):
        if loss < best:
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
            if waited == patience:
                break
    return best_epoch


def _curve(gen: torch.Generator, epochs: int, noise: float) -> torch.Tensor:
    """A validation curve: falls, bottoms out at a random epoch, rises; plus noise."""
    bottom = uniform(gen, 0.3, 0.7) * epochs
    t = torch.arange(epochs, dtype=DTYPE)
    clean = 1.0 + 2.0 * torch.exp(-t / (0.25 * bottom)) + 0.02 * torch.relu(t - bottom)
    return clean + noise * torch.randn(epochs, generator=gen, dtype=DTYPE)


def _losses(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPE)


def _early_stopping_self_check_cases(gen: torch.Generator) -> list[NumberCase]:
    fixed = [
        ((3.0, 2.0, 1.5, 1.4, 1.6, 1.7, 1.8), 2),
        ((5.0, 4.0, 4.1, 3.0, 3.1, 3.2, 2.0, 2.1), 3),
        ((2.0, 2.5, 1.9, 2.6, 1.8, 2.7, 1.7, 2.8, 2.9, 3.0), 2),
        ((1.0, 1.0, 1.0, 0.9), 2),
    ]
    cases = [
        NumberCase(f"val_losses={list(losses)}, patience={p}", (_losses(*losses), p))
        for losses, p in fixed
    ]
    cases.append(NumberCase("a noisy curve of 40 epochs, patience=5", (_curve(gen, 40, 0.05), 5)))
    return cases


def _early_stopping_hidden_cases(gen: torch.Generator) -> list[NumberCase]:
    cases = [
        NumberCase(
            "hidden zig-zag curve, patience=2",
            (_losses(4.0, 3.0, 3.5, 2.5, 3.6, 2.4, 3.7, 3.8, 3.9, 2.0), 2),
        )
    ]
    for i in range(5):
        epochs = int(torch.randint(30, 80, (), generator=gen))
        patience = int(torch.randint(2, 8, (), generator=gen))
        cases.append(
            NumberCase(
                f"hidden noisy curve {i + 1} ({epochs} epochs), patience={patience}",
                (_curve(gen, epochs, uniform(gen, 0.01, 0.1)), patience),
            )
        )
    return cases


EARLY_STOPPING_EPOCH = NumberExercise(
    name="early_stopping_epoch",
    reference=ref_early_stopping_epoch,
    variants={},  # find the bug: the check says where it fails, never why
    self_check_cases=_early_stopping_self_check_cases,
    hidden_cases=_early_stopping_hidden_cases,
)
