"""Notebook plumbing: read submissions defensively, turn solutions into exercises.

Authoring markup (the same as nbgrader's, so nbgrader can use our notebooks unchanged):

* In a code cell, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` are the model
  answer. In the exercise they become ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the
  indentation of the ``BEGIN`` line. In a markdown cell they become ``YOUR ANSWER HERE``.
* Lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed from the
  exercise (nbgrader puts them back when it autogrades; our grader uses its own probes instead).
* Cell metadata ``nbgrader`` (``grade_id``, ``points``, ``solution``, ``grade``, ``locked``) is
  kept. The graded test cell's ``grade_id`` names the grader's probe and its ``points`` are the
  question's maximum score (read from ``solutions/``, never from a submission).

Exercise notebooks carry no outputs and no execution counts, and are written in nbformat's
canonical JSON layout, so regenerating them is byte-for-byte reproducible.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MAX_NOTEBOOK_BYTES = 20 * 2**20


class NotebookError(ValueError):
    """A file that is not a readable Jupyter notebook (the message says why)."""


@dataclass(frozen=True)
class GradedCell:
    """A graded (autograder-test) cell of a solutions notebook."""

    grade_id: str
    points: float
    index: int


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        if not all(isinstance(s, str) for s in src):
            raise NotebookError("a cell's source is not text")
        return "".join(src)
    if not isinstance(src, str):
        raise NotebookError("a cell's source is not text")
    return src


def _escape(text: str) -> str:
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def read_file_safely(
    path: str | Path, limit: int = MAX_NOTEBOOK_BYTES, follow_symlinks: bool = False
) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them, without following a link.

    Submissions are hostile input: a symbolic link (to the solutions, to a classmate's notebook,
    to ``/proc/self/pagemap``), a pipe that never ends, a device or a directory is refused with a
    :class:`NotebookError`, as is every ``OSError``.
    """
    path = Path(path)
    name = _escape(path.name)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):  # where O_NOFOLLOW does not exist
                raise NotebookError(f"{name} is a symbolic link; links are never followed")
        except OSError as exc:
            raise NotebookError(f"cannot read {name}: {exc.strerror}") from None
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotebookError(f"{name} is a symbolic link; links are never followed") from None
        raise NotebookError(f"cannot read {name}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotebookError(f"{name} is not a regular file")
        if st.st_size > limit:
            raise NotebookError(
                f"{name} is {st.st_size / 2**20:.0f} MB; notebooks above "
                f"{limit / 2**20:.0f} MB are refused"
            )
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise NotebookError(f"{name} is larger than {limit / 2**20:.0f} MB; refused")
        return b"".join(chunks)
    except OSError as exc:
        raise NotebookError(f"cannot read {name}: {exc.strerror}") from None
    finally:
        os.close(fd)


def parse_notebook(data: bytes, name: str = "the notebook") -> dict:
    """A notebook as plain JSON from its bytes, checking the parts the grader uses."""
    name = _escape(name)
    try:
        nb = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotebookError(f"{name} is not a text file (is it really a .ipynb?)") from None
    except (ValueError, RecursionError):
        raise NotebookError(f"{name} is not valid notebook JSON (corrupt or truncated)") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        if isinstance(nb, dict) and "worksheets" in nb:
            raise NotebookError(f"{name} uses the old nbformat 3; save it again in Jupyter")
        raise NotebookError(f"{name} is JSON but not a Jupyter notebook (no cell list)")
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"{name} has a malformed cell")
        _source(cell)
    return nb


def read_notebook(path: str | Path, follow_symlinks: bool = False) -> dict:
    """Load a notebook as plain JSON (safely: see :func:`read_file_safely`)."""
    path = Path(path)
    return parse_notebook(read_file_safely(path, follow_symlinks=follow_symlinks), path.name)


_MAGIC = re.compile(r"^(\s*)([%!].*)$")


def to_python(source: str) -> str:
    """IPython cell → plain Python: magics (``%pip``, ``!ls``) become ``pass``; ``%%`` cells go.

    The grader executes cells in a plain Python process, not a kernel, so line magics are
    neutralised (keeping the indentation, so an ``if`` block that contains one stays valid) and
    cell magics other than ``%%time``/``%%timeit``/``%%capture`` drop the whole cell.
    """
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].split()[0][2:]
        if magic not in ("time", "timeit", "capture"):
            return ""
        lines = lines[1:]
    out = []
    for line in lines:
        m = _MAGIC.match(line)
        out.append(f"{m.group(1)}pass  # {m.group(2)[:40]!r} skipped by the grader" if m else line)
    return "\n".join(out)


def code_cells(nb: dict) -> list[str]:
    """The notebook's code cells as plain Python, in order."""
    return [to_python(_source(c)) for c in nb["cells"] if c.get("cell_type") == "code"]


def graded_cells(nb: dict) -> list[GradedCell]:
    """The nbgrader-graded cells of a (solutions) notebook, with their points."""
    out, seen = [], set()
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        gid = meta.get("grade_id")
        if not isinstance(gid, str) or not gid:
            raise NotebookError(f"graded cell {i} has no grade_id")
        if gid in seen:
            raise NotebookError(f"grade_id {gid!r} is used twice")
        points = meta.get("points")
        if not isinstance(points, (int, float)) or isinstance(points, bool) or points < 0:
            raise NotebookError(f"graded cell {gid!r} has no valid points")
        seen.add(gid)
        out.append(GradedCell(gid, float(points), i))
    return out


# ---------------------------------------------------------------------------------------------
# Solutions → exercises
# ---------------------------------------------------------------------------------------------


def _strip_regions(source: str, begin: str, end: str, replacement) -> str:
    """Replace every ``begin``…``end`` region (marker lines included) by ``replacement(indent)``."""
    out, inside, indent = [], False, ""
    for n, line in enumerate(source.split("\n"), 1):
        marker = line.strip()
        if marker == begin:
            if inside:
                raise NotebookError(f"line {n}: nested {begin!r}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            continue
        if marker == end:
            if not inside:
                raise NotebookError(f"line {n}: {end!r} without {begin!r}")
            inside = False
            out.extend(replacement(indent))
            continue
        if not inside:
            out.append(line)
    if inside:
        raise NotebookError(f"{begin!r} is never closed")
    return "\n".join(out)


def make_exercise(solution: dict) -> dict:
    """The student version of a solutions notebook (a new dict; the input is not changed)."""
    nb = json.loads(json.dumps(solution))
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] == "code":
            src = _strip_regions(src, BEGIN_HIDDEN, END_HIDDEN, lambda indent: [])
            src = _strip_regions(
                src,
                BEGIN_SOLUTION,
                END_SOLUTION,
                lambda indent: [
                    f"{indent}# YOUR CODE HERE",
                    f"{indent}raise NotImplementedError()",
                ],
            )
            cell["outputs"] = []
            cell["execution_count"] = None
        elif cell["cell_type"] == "markdown":
            src = _strip_regions(
                src, BEGIN_SOLUTION, END_SOLUTION, lambda indent: ["YOUR ANSWER HERE"]
            )
        cell["source"] = src.splitlines(keepends=True)  # nbformat's on-disk form
        cell.get("metadata", {}).pop("execution", None)
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def dumps(nb: dict) -> str:
    """nbformat's canonical on-disk JSON (``nbformat.writes`` produces the same text)."""
    return (
        json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False, separators=(",", ": ")) + "\n"
    )


def generate_exercises(
    solutions: str | Path, exercises: str | Path, check: bool = False
) -> list[str]:
    """Write ``exercises/<name>.ipynb`` for every ``solutions/<name>.ipynb``.

    With ``check=True`` nothing is written; the return value lists the problems (exercises that
    are missing, stale or have no solution). Otherwise it lists the files written.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise NotebookError(f"no solutions notebooks (*.ipynb) in {solutions}")
    report = []
    for src in sources:
        text = dumps(make_exercise(read_notebook(src, follow_symlinks=True)))
        dst = exercises / src.name
        current = dst.read_text(encoding="utf-8") if dst.exists() else None
        if current == text:
            continue
        if check:
            report.append(f"{dst} is {'missing' if current is None else 'out of date'}")
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text, encoding="utf-8")
            report.append(str(dst))
    if check:
        names = {s.name for s in sources}
        report += [
            f"{ex} has no solutions notebook"
            for ex in sorted(exercises.glob("*.ipynb"))
            if ex.name not in names
        ]
    return report
