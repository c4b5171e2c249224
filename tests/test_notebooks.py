"""Notebook conventions (CONTRIBUTING.md), enforced on every committed notebook."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from course_lib.listing import HEADER, resolve, source_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

EXECUTED = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb")])
LESSONS = sorted(ROOT.glob("notebooks/*.ipynb"))
MAX_BYTES = 3_000_000
MAX_FUNCTION_LINES = 15  # a notebook helper longer than this belongs in course_lib


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _load(path):
    return json.loads(path.read_text())


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _python_source(cell):
    # Drop IPython magics so the rest parses as Python.
    lines = [
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
        else line
        for line in "".join(cell["source"]).splitlines()
    ]
    return "\n".join(lines)


def test_there_is_an_orientation_notebook():
    assert (ROOT / "notebooks" / "00_orientation.ipynb").exists()


@pytest.mark.parametrize("path", EXECUTED, ids=_ids(EXECUTED))
def test_first_cell_is_the_colab_bootstrap(path):
    nb = _load(path)
    first = nb["cells"][0]
    assert first["cell_type"] == "code"
    assert "".join(first["source"]) == course.bootstrap_source(course.repo_url())


@pytest.mark.parametrize("path", EXECUTED, ids=_ids(EXECUTED))
def test_setup_cell_seeds_and_fixes_threads(path):
    cells = _code_cells(_load(path))
    setup = "".join(cells[1]["source"])
    assert "torch.set_num_threads(1)" in setup, "the setup cell must fix the thread count"
    assert re.search(r"\bsetup\(seed=\d+", setup), "the setup cell must seed via course_lib.setup"
    assert cells[1]["outputs"], "the setup cell prints the device"


@pytest.mark.parametrize("path", EXECUTED, ids=_ids(EXECUTED))
def test_executed_in_order_with_outputs_and_no_errors(path):
    cells = _code_cells(_load(path))
    counts = [c["execution_count"] for c in cells]
    assert None not in counts, "unexecuted cells: run `python3 tools/course.py execute`"
    assert counts == list(range(1, len(counts) + 1)), f"executed out of order: {counts}"
    for cell in cells:
        tags = cell.get("metadata", {}).get("tags", [])
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if "raises-exception" not in tags:
            assert not errors, f"error output in cell {cell['execution_count']}"


@pytest.mark.parametrize("path", EXECUTED, ids=_ids(EXECUTED))
def test_no_object_reprs_and_widgets_marked(path):
    for cell in _code_cells(_load(path)):
        src = "".join(cell["source"])
        n = cell["execution_count"]
        if re.search(r"\binteract(ive)?\(|\.dashboard\(|playground\(|explorer\(", src):
            assert src.lstrip().startswith("# NBVAL_IGNORE_OUTPUT"), f"cell {n}: widget not marked"
        for out in cell["outputs"]:
            text = "".join(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"<matplotlib\.\w+.* at 0x|\[<matplotlib", text), (
                f"cell {n} leaks a matplotlib repr: use `_ = ax.plot(...)`"
            )


@pytest.mark.parametrize("path", EXECUTED, ids=_ids(EXECUTED))
def test_size_is_reasonable(path):
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lessons_define_no_library_code(path):
    for cell in _code_cells(_load(path)):
        tree = ast.parse(_python_source(cell))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not any("Optimizer" in b for b in bases), (
                    f"{path.name}: optimizer class {node.name} belongs in course_lib"
                )
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_FUNCTION_LINES, (
                    f"{path.name}: {node.name} has {length} lines; move it into course_lib"
                )


def test_readme_lists_every_lesson_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    for path in LESSONS:
        rel = f"notebooks/{path.name}"
        assert course.colab_badge(course.repo_url(), rel) in readme, f"no badge for {rel}"
    for rel in re.findall(r"/blob/main/(notebooks/[\w.-]+\.ipynb)\)", readme):
        assert (ROOT / rel).exists(), f"README links a missing notebook: {rel}"


def _listings(text: str) -> list[tuple[str, str]]:
    """``(qualified name, code)`` of every listing :func:`course_lib.listing.show_source` printed
    into ``text``."""
    out, name, lines = [], None, []
    for line in text.splitlines():
        if line.startswith(HEADER):
            if name:
                out.append((name, "\n".join(lines).rstrip()))
            name, lines = line[len(HEADER):].strip(), []
        elif name is not None:
            lines.append(line)
    if name:
        out.append((name, "\n".join(lines).rstrip()))
    return out


def test_listing_parser_finds_every_listing():
    text = f"{HEADER}a.b\ndef b():\n    pass\n\n{HEADER}a.c\nclass C: ...\n"
    assert _listings(text) == [("a.b", "def b():\n    pass"), ("a.c", "class C: ...")]


LISTED = [p for p in EXECUTED if "show_source(" in p.read_text()]


@pytest.mark.parametrize("path", LISTED, ids=_ids(LISTED))
def test_committed_code_listings_match_the_source(path):
    """A listing stored in a notebook must be the current source: an outdated listing (one that
    still shows code the library no longer runs) fails here until the notebook is re-executed."""
    found = 0
    for cell in _code_cells(_load(path)):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            for name, printed in _listings("".join(output.get("text", ""))):
                current = source_text(resolve(name))  # the cell may print more after it
                assert printed == current or printed.startswith(current + "\n"), (
                    f"the listing of {name} in {path.name} is outdated: re-execute the notebook"
                )
                found += 1
    assert found, f"{path.name} calls show_source but stores no listing"
