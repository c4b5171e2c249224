"""Loading another library's optimizer state: ``torch.optim`` and ``lion-pytorch`` names → ours.

A course optimizer names its state after the papers (``m``, ``v``, ``G`` …); ``torch.optim`` uses
``exp_avg``, ``exp_avg_sq``, ``sum`` … and keeps ``step`` as a tensor. :func:`translate_state_dict`
rewrites a ``state_dict`` saved by the reference implementation into ours, so that
``ours.load_state_dict(torch_opt.state_dict())`` continues exactly where torch stopped (tested
step by step). State that is neither ours nor a known translation raises a ``ValueError`` that
names the keys, instead of silently restarting the moments from zero.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor

__all__ = ["STATE_KEYS", "TORCH_STATE_NAMES", "translate_state_dict"]

_ADAM = {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "v_max"}

# Reference key -> our key, per course optimizer that has a reference with other names.
TORCH_STATE_NAMES: dict[str, dict[str, str]] = {
    "SGD": {"momentum_buffer": "v"},
    "Adagrad": {"sum": "G"},
    "RMSprop": {"square_avg": "v", "grad_avg": "m", "momentum_buffer": "b"},
    "Adadelta": {"square_avg": "v", "acc_delta": "u"},
    "Adam": _ADAM,
    "AdamW": _ADAM,
    "RAdam": {"exp_avg": "m", "exp_avg_sq": "v"},
    "NAdam": {"exp_avg": "m", "exp_avg_sq": "v"},
    "Adamax": {"exp_avg": "m", "exp_inf": "u"},
    "Lion": {"exp_avg": "m"},  # lion-pytorch
}

# Every per-parameter state key each course optimizer may create.
STATE_KEYS: dict[str, set[str]] = {
    "SGD": {"v"},
    "Adagrad": {"step", "G"},
    "RMSprop": {"step", "v", "m", "b"},
    "RMSpropBC": {"step", "v"},
    "Adadelta": {"step", "v", "u"},
    "Adam": {"step", "m", "v", "v_max", "v_hat_max"},
    "RAdam": {"step", "m", "v"},
    "NAdam": {"step", "m", "v", "mu_product"},
    "Adamax": {"step", "m", "u"},
    "Lion": {"m"},
    "PowerSign": {"step", "m"},
    "AddSign": {"step", "m"},
    "Adai": {"step", "v", "m", "beta1_prod"},
    "Adan": {"m", "v", "n", "prev_grad"},
    "OnlineRMSprop": {"step", "v"},
    "SCAdagrad": {"step", "v"},
    "SCRMSprop": {"step", "v"},
}

# torch.optim's implementation switches: not hyperparameters of the algorithm.
_TORCH_SWITCHES = ("foreach", "fused", "capturable", "differentiable")
_SCALARS = ("step", "mu_product")  # torch keeps them as 0-d tensors, we as Python numbers


def _known(cls: type, table: dict[str, Any]) -> Any:
    """The entry of the nearest class in ``cls``'s MRO that ``table`` knows, else ``None``."""
    for klass in cls.__mro__:
        if klass.__name__ in table:
            return table[klass.__name__]
    return None


def translate_state_dict(optimizer: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` with reference names translated to ``optimizer``'s (a shallow-copied dict;
    the same dict if it already uses ours). For a course optimizer, a state key that is neither
    its own nor translatable raises ``ValueError`` naming it; a user's subclass may keep state of
    its own, so for it only the reference's names are translated."""
    cls = type(optimizer)
    ours = STATE_KEYS.get(cls.__name__) if cls.__module__.startswith("course_lib.optim") else None
    names = _known(cls, TORCH_STATE_NAMES) or {}
    found = {key for st in state_dict.get("state", {}).values() for key in st}
    if ours is not None:
        unknown = found - ours - set(names)
        if unknown:
            raise ValueError(
                f"cannot load this state into course_lib.optim.{cls.__name__}: state keys "
                f"{sorted(unknown)} are not {cls.__name__}'s ({', '.join(sorted(ours))}); it was "
                "saved by another implementation whose state course_lib cannot translate"
            )
    if not found & set(names):
        return state_dict
    out = dict(state_dict)
    out["state"] = {
        pid: {names.get(k, k): _scalar(names.get(k, k), v) for k, v in st.items()}
        for pid, st in state_dict["state"].items()
    }
    out["param_groups"] = [
        {k: v for k, v in copy.copy(group).items() if k not in _TORCH_SWITCHES}
        for group in state_dict["param_groups"]
    ]
    return out


def _scalar(key: str, value: Any) -> Any:
    if key in _SCALARS and isinstance(value, Tensor) and value.numel() == 1:
        number = value.item()
        return int(round(number)) if key == "step" else number
    return value
