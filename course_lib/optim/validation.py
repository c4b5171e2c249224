"""Checks of hyperparameters at construction, with ``torch.optim``'s wording.

Every course optimizer validates its arguments with these two functions, so a bad value raises a
``ValueError`` before anything runs and says the same thing torch says: ``Invalid learning rate:
-1``, ``Invalid epsilon value: -1e-08``, ``Invalid beta parameter at index 1: 1.0``, ``Invalid
weight_decay value: -0.1`` …
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

__all__ = ["check_betas", "check_hyperparameter"]

# How torch.optim names a hyperparameter in its messages; anything else is "<name> value".
_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def _number(value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {value} must be 1-element")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}: {value!r}")
    return float(value)


def check_hyperparameter(
    name: str,
    value: Any,
    low: float = 0.0,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    label: str | None = None,
) -> None:
    """Raise ``ValueError(f"Invalid {label}: {value}")`` unless ``low <= value <= high``.

    ``low_inclusive``/``high_inclusive`` make either end strict. ``label`` defaults to torch's
    name for the hyperparameter (``"learning rate"`` for ``lr``, ``"epsilon value"`` for ``eps``,
    ``"<name> value"`` otherwise). A tensor must hold one element (torch allows a tensor lr).
    """
    if isinstance(value, Tensor) and value.numel() != 1:
        raise ValueError(f"Tensor {name} must be 1-element")
    x = _number(value)
    above = x >= low if low_inclusive else x > low
    below = x <= high if high_inclusive else x < high
    if not (above and below):  # also rejects NaN
        raise ValueError(f"Invalid {label or _LABELS.get(name, f'{name} value')}: {value}")


def check_betas(
    betas: Sequence[Any],
    count: int = 2,
    high_inclusive: bool = False,
    unbounded: Sequence[int] = (),
) -> tuple:
    """Check that ``betas`` holds ``count`` numbers, each in [0, 1) (or [0, 1] with
    ``high_inclusive``; indices in ``unbounded`` only need to be >= 0), with torch's message
    ``Invalid beta parameter at index i: b``. Returns them as a tuple."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence):
        raise ValueError(f"Invalid betas: expected a tuple of {count} numbers, got {betas!r}")
    if len(betas) != count:
        raise ValueError(
            f"Invalid betas: expected {count} values, got {len(betas)}: {tuple(betas)}"
        )
    for i, beta in enumerate(betas):
        check_hyperparameter(
            "betas",
            beta,
            high=math.inf if i in unbounded else 1.0,
            high_inclusive=high_inclusive,
            label=f"beta parameter at index {i}",
        )
    return tuple(betas)
