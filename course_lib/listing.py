"""Code listings in lessons: show the library's own source next to the math.

A lesson that teaches an update rule prints the code that runs it, with :func:`show_source`. Each
listing starts with a header line naming what it shows (``# source: course_lib.optim.…``), so a
test (``tests/test_notebooks.py``) can compare every listing stored in a notebook with the current
source and fail when they drift apart.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from typing import Any

__all__ = ["HEADER", "qualified_name", "resolve", "show_source", "source_text"]

HEADER = "# source: "


def source_text(obj: Any, docstring: bool = False) -> str:
    """The source code of a function, method or class, dedented, without its docstring unless
    ``docstring``.

    >>> print(source_text(source_text).splitlines()[0])
    def source_text(obj: Any, docstring: bool = False) -> str:
    """
    src = textwrap.dedent(inspect.getsource(obj))
    if docstring or not inspect.getdoc(obj):
        return src.rstrip()
    for quote in ('r"""', '"""', "r'''", "'''"):
        start = src.find(quote)
        if start == -1:
            continue
        end = src.find(quote[-3:], start + len(quote))
        if end != -1:
            line_end = src.find("\n", end)
            return (src[:start].rstrip(" ") + src[line_end + 1 :]).rstrip()
    return src.rstrip()


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a function, method or class (where :func:`resolve` finds it)."""
    return f"{obj.__module__}.{obj.__qualname__}"


def resolve(name: str) -> Any:
    """The object a :func:`qualified_name` names."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot resolve {name!r}")


def show_source(*objs: Any, docstring: bool = False) -> None:
    """Print the source of each object under a header line naming it."""
    for i, obj in enumerate(objs):
        if i:
            print()
        print(HEADER + qualified_name(obj))
        print(source_text(obj, docstring=docstring))
