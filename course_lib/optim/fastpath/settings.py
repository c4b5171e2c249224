"""The fast path's switch, its settings and its counters."""

from __future__ import annotations

import os
import warnings
from typing import Any

__all__ = ["fast_path_config", "fast_path_stats", "set_fast_path"]


def _env_flag() -> tuple[bool, bool]:
    value = os.environ.get("COURSE_LIB_FAST_PATH", "1").strip().lower()
    enabled = value not in ("0", "false", "off", "no")
    return enabled, enabled and value != "eager"


_ENABLED, _COMPILE = _env_flag()
CONFIG: dict[str, Any] = {
    "enabled": _ENABLED,
    "compile": _COMPILE,
    "min_numel": 100_000,
    "direct_min": 1 << 19,
}
STATS = {
    "compiles": 0,
    "compiled_steps": 0,
    "eager_flat_steps": 0,
    "layouts": 0,
    "grad_copies": 0,
    "segmented_steps": 0,
}
_WARNED: set[str] = set()


def set_fast_path(
    enabled: bool | None = None,
    *,
    compile: bool | None = None,
    min_numel: int | None = None,
    direct_min: int | None = None,
) -> dict[str, Any]:
    """Switch the fast path for every course optimizer; returns the previous settings.

    ``enabled=False``: always the readable per-tensor path. ``compile=False``: flat layout but no
    :func:`torch.compile` (no compiler, no warm-up; for tests: not faster than readable).
    ``min_numel``: smallest group (total elements) that takes the fast path. ``direct_min``:
    smallest parameter (elements, default 2**19) whose gradient a compiled step on the CPU reads
    where it is instead of copying it into the flat buffer (one more compiled call, ~45 µs,
    against a copy of 8 bytes per element; applies to new layouts). Restore with
    ``set_fast_path(**previous)``. The environment variable ``COURSE_LIB_FAST_PATH=0`` (or
    ``=eager``) sets the default at import. A single group opts out with
    ``{"params": ..., "fast": False}``. Switching off and on again between steps is safe: the
    readable steps taken meanwhile are picked up.
    """
    previous = dict(CONFIG)
    if enabled is not None:
        CONFIG["enabled"] = bool(enabled)
    if compile is not None:
        CONFIG["compile"] = bool(compile)
    if min_numel is not None:
        CONFIG["min_numel"] = int(min_numel)
    if direct_min is not None:
        CONFIG["direct_min"] = max(2, int(direct_min))
    return previous


def fast_path_config() -> dict[str, Any]:
    """The current settings (see :func:`set_fast_path`)."""
    return dict(CONFIG)


def fast_path_stats(reset: bool = False) -> dict[str, int]:
    """Counters since import (or the last reset): graphs compiled, compiled and uncompiled flat
    steps, flat layouts built, steps that copied gradients into a flat buffer, compiled steps
    that read some gradients in place (one call per large parameter)."""
    out = dict(STATS)
    if reset:
        for key in STATS:
            STATS[key] = 0
    return out


def warn_once(key: str, message: str) -> None:
    """One ``RuntimeWarning`` per ``key`` and process."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=5)


def forget_warnings() -> None:
    """Let every warning be issued again (tests)."""
    _WARNED.clear()
