"""course_lib: the library behind the *Optimization for Deep Learning* course.

Layers, each importing only from the layers above it in this list (``tests/test_layers.py``
checks it, and that there is no import circle):

1. ``course_lib.utils``       seeding, devices, the setup cell, the repository URL
2. ``course_lib.optim``       from-scratch optimizers built from small blocks, LR schedules, and the
   fast path as a plug-in
3. problems: ``course_lib.data`` (offline datasets), ``course_lib.train`` (models and a small
   training loop), ``course_lib.landscapes`` (2-D test functions and trajectories on them)
4. ``course_lib.experiments`` measurements the lessons run, one module per topic
5. presentation: ``course_lib.plotting``, ``course_lib.widgets`` (dashboards, each with a static
   twin), ``course_lib.listing`` (code listings)
6. exercises: ``course_lib.exercises`` (each exercise once: reference, classic mistakes, cases) and
   ``course_lib.checks`` (the self-checks exercise cells call)
7. ``course_lib.grading``     the instructor's bulk grader

``import course_lib`` imports nothing else and reads no file: every name below is loaded on first
use, and submodules are imported where they are needed.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["REPO_URL", "__version__", "default_device", "repo_url", "seed_everything", "setup"]

_FROM_UTILS = ("default_device", "repo_url", "seed_everything", "setup")


def __getattr__(name: str) -> Any:
    if name in _FROM_UTILS:
        from course_lib import utils

        return getattr(utils, name)
    if name == "REPO_URL":  # defined once, in pyproject.toml's [project.urls]
        from course_lib.utils import repo_url

        return repo_url()
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
