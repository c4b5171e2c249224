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


def test_readme_lists_every_exercise_notebook_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    for path in sorted(ROOT.glob("exercises/*.ipynb")):
        rel = f"exercises/{path.name}"
        assert course.colab_badge(course.repo_url(), rel) in readme, f"no badge for {rel}"
    for rel in re.findall(r"/blob/main/(exercises/[\w.-]+\.ipynb)\)", readme):
        assert (ROOT / rel).exists(), f"README links a missing notebook: {rel}"


ALL_NOTEBOOKS = sorted([*EXECUTED, *ROOT.glob("exercises/*.ipynb")])


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_notebooks_store_the_standard_kernelspec(path):
    """JupyterLab writes the running kernel's spec into the notebook it opens: with the same
    spec stored, opening and closing a notebook leaves no diff (``course.py sync`` fixes it)."""
    assert _load(path)["metadata"].get("kernelspec") == course.KERNELSPEC


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lessons_link_their_exercises_for_clones_and_for_colab(path):
    url = course.repo_url()
    for cell in _load(path)["cells"]:
        text = "".join(cell["source"]) if cell["cell_type"] == "markdown" else ""
        assert course.link_exercises(text, url) == text, "run `python3 tools/course.py sync`"
        for name in re.findall(r"\]\(\.\./exercises/([\w-]+\.ipynb)\)", text):
            assert (ROOT / "exercises" / name).exists(), f"{path.name} links a missing {name}"
            colab = course.colab_link(url, f"exercises/{name}")
            assert f"(../exercises/{name}) ([open in Colab]({colab}))" in text


def test_link_exercises_is_idempotent_and_links_plain_mentions():
    url = "https://github.com/someone/course"
    text = "See `exercises/01_a.ipynb` and [the others](../exercises/02_b.ipynb)."
    once = course.link_exercises(text, url)
    assert once == (
        "See [`exercises/01_a.ipynb`](../exercises/01_a.ipynb) ([open in Colab]("
        "https://colab.research.google.com/github/someone/course/blob/main/exercises/01_a.ipynb)) "
        "and [the others](../exercises/02_b.ipynb) ([open in Colab]("
        "https://colab.research.google.com/github/someone/course/blob/main/exercises/02_b.ipynb))."
    )
    assert course.link_exercises(once, url) == once
    moved = course.link_exercises(once, "https://github.com/elsewhere/course")
    assert "github/elsewhere/course/blob/main/exercises/02_b.ipynb" in moved
    assert "someone" not in moved


def test_sync_has_nothing_left_to_do():
    assert course.sync(check=True) == []


def test_execute_stores_the_standard_kernelspec(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    path = tmp_path / "tiny.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1 + 1)")])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    course.execute_inplace([str(path)])
    done = _load(path)
    assert done["metadata"]["kernelspec"] == course.KERNELSPEC
    assert "".join(done["cells"][0]["outputs"][0]["text"]) == "2\n"


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


# ---------------------------------------------------------------------------------------------
# Exercise notebooks as a student meets them: Run All on the untouched notebook
# ---------------------------------------------------------------------------------------------

EXERCISES = sorted(ROOT.glob("exercises/*.ipynb"))


def _execute(nb, path: Path, allow_errors: bool):
    """Run ``nb`` top to bottom in a fresh kernel, as JupyterLab's Run All does."""
    nbclient = pytest.importorskip("nbclient")
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def _texts(cell) -> list[str]:
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append(o["text"])
        elif o["output_type"] == "error":
            out.append("\n".join(o["traceback"]))
    return out


def _graded(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_run_all_on_an_untouched_exercise_notebook_reaches_every_exercise(path, monkeypatch):
    """One short ✗ line per unsolved exercise, the same for all; no traceback; no cell stops
    Run All (an error would abort the rest of the notebook, as JupyterLab and Colab do)."""
    import nbformat

    from course_lib.exercises.mistakes import NOT_IMPLEMENTED

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    nb = _execute(nbformat.read(path, as_version=4), path, allow_errors=False)
    graded = [c for c in nb.cells if c.cell_type == "code" and _graded(c)]
    assert graded, "no graded cells"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o["output_type"] == "error"], cell.source
        text = "".join(_texts(cell))
        assert "Traceback" not in text and "course_lib/" not in text, text
        lines = [line for line in text.splitlines() if line.startswith("✗")]
        if _graded(cell):
            assert len(lines) == 1, f"{cell.source}\n→ {text}"
            assert re.fullmatch(rf"✗ \w+: {re.escape(NOT_IMPLEMENTED)}", lines[0]), lines[0]
        else:
            assert not lines, f"{cell.source}\n→ {text}"


def test_under_nbgrader_an_unsolved_exercise_fails_its_test_cell(monkeypatch):
    """nbgrader autograde sets NBGRADER_EXECUTION: then every unsolved test cell is an error (0
    points), shown as one ✗ line without a traceback into course_lib."""
    import nbformat

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    path = ROOT / "exercises" / "01_gradient_descent.ipynb"
    nb = _execute(nbformat.read(path, as_version=4), path, allow_errors=True)
    for cell in (c for c in nb.cells if c.cell_type == "code" and _graded(c)):
        errors = [o for o in cell.outputs if o["output_type"] == "error"]
        assert errors, f"{cell.source} passed under nbgrader without an answer"
        if errors[0]["ename"] == "ExerciseNotSolved":
            assert len(errors[0]["traceback"]) == 1 and "✗" in errors[0]["traceback"][0]


def test_notebook_display_of_failed_asserts_and_unsolved_helpers(tmp_path, monkeypatch):
    """A failed assert says what was expected and the values; a cell needing an unsolved
    function is skipped, and so is one needing what that cell would have defined; a
    NotImplementedError with a message, or from a library, stays a real error."""
    import nbformat

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    cells = [
        "import course_lib.checks",
        "ratio = 0.5\nassert ratio > 0.9",
        'assert ratio > 0.9, "the ratio should be close to 1"',
        "def f():\n    raise NotImplementedError()",
        "y = f()",
        "print(y)",
        'raise NotImplementedError("not on this device")',
        "import numbers\nnumbers.Complex.real.fget(1)",  # `raise NotImplementedError` in a library
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    _execute(nb, tmp_path / "t.ipynb", allow_errors=True)
    out = [_texts(c) for c in nb.cells]
    kinds = [[o["output_type"] for o in c.outputs] for c in nb.cells]
    assert "✗ this check failed: ratio > 0.9" in out[1][0] and "with ratio = 0.5" in out[1][0]
    assert kinds[1] == ["error"]  # still an error: Run All stops at a wrong result
    assert "the ratio should be close to 1" in out[2][0]
    assert kinds[3] == []
    assert out[4] == ["↷ skipped: this cell needs `f`, which is not implemented yet.\n"]
    assert out[5] == ["↷ skipped: this cell needs `y`, which a skipped cell did not define.\n"]
    assert kinds[4] == kinds[5] == ["stream"]
    assert kinds[6] == ["error"] and "not on this device" in out[6][0]
    assert kinds[7] == ["error"] and "NotImplementedError" in out[7][0]


def test_a_check_that_raises_plain_asserts_gets_the_same_display(tmp_path, monkeypatch):
    """A ``check_*`` appended to checks.py without ``self_check``: its AssertionError for a stub
    still gives the one unsolved line (and Run All goes on), a wrong answer its message without a
    traceback into course_lib."""
    import nbformat

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    appended = (
        "def check_plain(fn):\n"
        "    try:\n"
        "        got = fn()\n"
        "    except NotImplementedError:\n"
        '        raise AssertionError("plain is not implemented yet") from None\n'
        '    assert got == 2, f"plain(): expected 2, got {got}"\n'
    )
    cells = [
        "import course_lib.checks as checks_module\n"
        f"exec(compile({appended!r}, checks_module.__file__, 'exec'), vars(checks_module))\n"
        "check_plain = checks_module.check_plain",
        "def plain():\n    raise NotImplementedError()",
        "check_plain(plain)",
        "def plain():\n    return 3",
        "check_plain(plain)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    _execute(nb, tmp_path / "t.ipynb", allow_errors=True)
    out = [_texts(c) for c in nb.cells]
    kinds = [[o["output_type"] for o in c.outputs] for c in nb.cells]
    from course_lib.checks import NOT_IMPLEMENTED

    assert out[2] == [f"✗ plain: {NOT_IMPLEMENTED}\n"] and kinds[2] == ["stream"]
    assert kinds[4] == ["error"]
    (shown,) = out[4]
    assert "✗ plain(): expected 2, got 3" in shown
    assert "Traceback" not in shown and "checks.py" not in shown, shown
