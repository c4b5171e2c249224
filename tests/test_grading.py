"""Grader building blocks (fast): notebook markup, exercise sync, probes, submissions, sandbox."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from course_lib.grading import harness, notebook, probes
from course_lib.grading.cli import main as cli_main
from course_lib.grading.grader import (
    ReplyAssembler,
    find_submissions,
    load_assignment,
    scan_submissions,
)

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
CHAPTERS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

BOOTSTRAP = course.bootstrap_source(course.repo_url())


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


# ---------------------------------------------------------------------------------------------
# Authoring: markup, generation, sync
# ---------------------------------------------------------------------------------------------


def test_make_exercise_replaces_solutions_and_drops_hidden_tests():
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"nbgrader": {"solution": True}},
                "execution_count": 3,
                "outputs": [{"output_type": "stream", "text": "x"}],
                "source": "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n",
            },
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 4,
                "outputs": [],
                "source": "check(f)\n### BEGIN HIDDEN TESTS\nassert f(1) == 1\n### END HIDDEN TESTS",
            },
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": "Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    ex = notebook.make_exercise(nb)
    code0, code1, md = (_src(c) for c in ex["cells"])
    assert code0 == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert code1 == "check(f)"
    assert md == "Why?\nYOUR ANSWER HERE"
    assert all(c.get("outputs", []) == [] for c in ex["cells"])
    assert ex["cells"][0]["execution_count"] is None
    assert ex["cells"][0]["metadata"]["nbgrader"] == {"solution": True}
    assert nb["cells"][0]["outputs"], "the input notebook must not be modified"


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx = 1\n",
        "x = 1\n### END SOLUTION\n",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
    ],
)
def test_unbalanced_markup_is_an_error(source):
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "source": source}]}
    with pytest.raises(notebook.NotebookError):
        notebook.make_exercise(nb)


def test_exercises_are_in_sync_with_solutions(capsys):
    assert cli_main(["generate", "--check"]) == 0, capsys.readouterr()


def test_sync_check_checks_the_folder_it_runs_in(tmp_path, monkeypatch, capsys):
    """Regression: in a second clone, ``course-grade generate --check`` checked the repository
    ``course_lib`` is installed from instead of the current folder."""
    clone = tmp_path / "second-clone"
    (clone / "solutions").mkdir(parents=True)
    (clone / "exercises").mkdir()
    name = "01_gradient_descent.ipynb"
    (clone / "solutions" / name).write_bytes((SOLUTIONS / name).read_bytes())
    (clone / "exercises" / name).write_text(
        (EXERCISES / name).read_text().replace("YOUR CODE HERE", "YOUR CODE")
    )
    monkeypatch.chdir(clone)
    assert cli_main(["generate", "--check"]) == 1
    stale = capsys.readouterr()
    assert "out of sync" in stale.err and name in stale.out
    assert cli_main(["generate"]) == 0
    assert cli_main(["generate", "--check"]) == 0
    assert str(clone) in capsys.readouterr().out


def test_sync_check_detects_a_stale_exercise(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    (sol / "01_gradient_descent.ipynb").write_bytes(
        (SOLUTIONS / "01_gradient_descent.ipynb").read_bytes()
    )
    assert cli_main(["generate", "--solutions", str(sol), "--exercises", str(ex)]) == 0
    assert cli_main(["generate", "--solutions", str(sol), "--exercises", str(ex), "--check"]) == 0
    stale = ex / "01_gradient_descent.ipynb"
    stale.write_text(stale.read_text().replace("YOUR CODE HERE", "YOUR CODE"))
    assert cli_main(["generate", "--solutions", str(sol), "--exercises", str(ex), "--check"]) == 1
    (ex / "99_orphan.ipynb").write_text("{}")
    report = notebook.generate_exercises(sol, ex, check=True)
    assert any("out of date" in r for r in report) and any("no solutions" in r for r in report)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_exercise_notebooks_have_no_outputs_or_solutions(chapter):
    nb = json.loads((EXERCISES / f"{chapter}.ipynb").read_text())
    text = json.dumps(nb)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert text.count("raise NotImplementedError()") >= 2


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_notebook_layout(chapter):
    nb = json.loads((SOLUTIONS / f"{chapter}.ipynb").read_text())
    cells = nb["cells"]
    assert _src(cells[0]) == BOOTSTRAP
    setup = next(_src(c) for c in cells if "setup(" in _src(c))
    for line in (
        "import torch",
        "from course_lib import setup",
        "torch.set_num_threads(1)",
        "device = setup(seed=0)",
    ):
        assert line in setup
    graded = notebook.graded_cells(nb)
    assert len(graded) >= 2
    for g in graded:
        cell = cells[g.index]
        assert "course_lib.checks import check_" in _src(cell), "visible self-check"
        assert "### BEGIN HIDDEN TESTS" in _src(cell)
        assert g.grade_id in probes.PROBES
    solutions = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert len(solutions) >= 2 and all("### BEGIN SOLUTION" in _src(c) for c in solutions)
    assert all(c["outputs"] for c in cells if c["cell_type"] == "code" and "check_" in _src(c)), (
        "solutions are stored executed"
    )
    assert any(c["cell_type"] == "markdown" and "$" in _src(c) for c in cells), "LaTeX math"


def test_points_come_from_solutions():
    a = load_assignment("01_gradient_descent")
    assert [q.grade_id for q in a.questions] == [
        "sgd_step",
        "divergence_threshold",
        "fixed_sgd",
        "sgd_noise_floor",
        "stability_ratio",
    ]
    assert a.max_score == 10


def test_to_python_neutralises_magics():
    src = 'import sys\nif "google.colab" in sys.modules:\n    %pip install -q x\n!ls\nx = 1 % 2'
    out = notebook.to_python(src)
    compile(out, "<cell>", "exec")
    assert "    pass  #" in out and "x = 1 % 2" in out
    assert notebook.to_python("%%time\ny = 2") == "y = 2"
    assert notebook.to_python("%%bash\nrm -rf /") == ""


def test_read_notebook_refuses_junk(tmp_path):
    cases = {
        "binary.ipynb": (b"\xff\xfe\x00garbage", "not a text file"),
        "trunc.ipynb": (b'{"cells": [', "not valid notebook JSON"),
        "list.ipynb": (b"[1, 2]", "not a Jupyter notebook"),
        "badcell.ipynb": (b'{"cells": [{"cell_type": "code", "source": 3}]}', "not text"),
    }
    for name, (content, why) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(notebook.NotebookError, match=why):
            notebook.read_notebook(tmp_path / name)
    with pytest.raises(notebook.NotebookError, match="cannot read"):
        notebook.read_notebook(tmp_path / "missing.ipynb")


# ---------------------------------------------------------------------------------------------
# Probes: strict data, comparison in the grader
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"data": [1.0, True], "shape": [2]},
        {"data": [1.0, "2"], "shape": [2]},
        {"data": [1.0, 2.0], "shape": [3]},
        {"data": [[1.0], [2.0, 3.0]], "shape": [2, 1]},
        {"data": [1.0], "shape": [1], "extra": 1},
        {"data": {"__eq__": 1}, "shape": []},
        [1.0, 2.0],
    ],
)
def test_to_tensor_is_strict(entry):
    with pytest.raises(probes.Malformed):
        probes.to_tensor(entry)


def test_to_tensor_accepts_plain_data():
    t = probes.to_tensor({"data": [[1.0, 2], [3.5, -1e300]], "shape": [2, 2]})
    assert t.dtype == torch.float64 and t.shape == (2, 2)
    assert probes.to_tensor({"data": 0.5, "shape": []}).item() == 0.5


def test_cases_are_reproducible_and_hidden():
    p = probes.PROBES["adam_step"]
    assert p.make_cases("a") == p.make_cases("a")
    assert p.make_cases("a") != p.make_cases("b")
    labels = [c["label"] for c in p.make_cases("a")]
    assert any("trajectory" in label for label in labels)


def test_compare_case_diagnoses_and_refuses():
    p = probes.PROBES["sgd_step"]
    case = p.make_cases("t")[0]
    args = [
        torch.tensor(a, dtype=torch.float64) if isinstance(a, list) else a for a in case["args"]
    ]
    right = (args[0] - args[2] * args[1]).tolist()
    wrong = (args[0] + args[2] * args[1]).tolist()
    shape = list(args[0].shape)
    exp = {"out": [{"data": right, "shape": shape}], "mutated": []}
    assert probes.compare_case(p, case, exp, exp) == (True, "")
    ok, msg = probes.compare_case(
        p, case, exp, {"out": [{"data": wrong, "shape": shape}], "mutated": []}
    )
    assert not ok and "Diagnosis: wrong sign" in msg
    ok, msg = probes.compare_case(
        p, case, exp, {"out": [{"data": right, "shape": shape}], "mutated": ["g"]}
    )
    assert not ok and "in place" in msg
    ok, msg = probes.compare_case(p, case, exp, {"out": "everything"})
    assert not ok and "unusable" in msg
    ok, msg = probes.compare_case(
        p, case, exp, {"error": "NotImplementedError", "not_implemented": True}
    )
    assert not ok and "not implemented" in msg


# ---------------------------------------------------------------------------------------------
# Submissions on disk
# ---------------------------------------------------------------------------------------------


def test_find_submissions(tmp_path):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "alice.ipynb").write_text("{}")
    (tmp_path / "inbox" / "bob smith.ipynb").write_text("{}")
    (tmp_path / "inbox" / "carol").mkdir()
    (tmp_path / "inbox" / "carol" / "homework.ipynb").write_text("{}")
    (tmp_path / "inbox" / "carol" / "01_gradient_descent.ipynb").write_text("{}")
    (tmp_path / "inbox" / "dave").mkdir()
    (tmp_path / "inbox" / ".hidden").write_text("")
    (tmp_path / "alice.ipynb").write_text("{}")
    scan = scan_submissions(
        [tmp_path / "inbox", tmp_path / "alice.ipynb", tmp_path / "nope.ipynb"],
        "01_gradient_descent",
    )
    by_path = {s.path: s for s in scan.submissions}
    assert len(by_path) == 6 and len({s.student for s in scan.submissions}) == 6
    # two files named alice: neither takes the id, both are reported
    alices = [by_path[tmp_path / "inbox" / "alice.ipynb"], by_path[tmp_path / "alice.ipynb"]]
    assert all(a.student.startswith("alice~") and a.note for a in alices)
    assert any("2 submissions map to the student id 'alice'" in p for p in scan.problems)
    # a name that is not an id is graded under a marked id, never under a plain one
    bob = by_path[tmp_path / "inbox" / "bob smith.ipynb"].student
    assert bob.startswith("bob_smith~") and any("bob smith" in p for p in scan.problems)
    carol = next(s for s in scan.submissions if s.student == "carol")
    assert carol.path.name == "01_gradient_descent.ipynb"
    assert any("homework.ipynb" in line for line in scan.skipped)
    dave = next(s for s in scan.submissions if s.student == "dave")
    assert dave.error and "no notebook" in dave.error
    nope = next(s for s in scan.submissions if s.student == "nope")
    assert nope.error and "does not exist" in nope.error
    assert any(".hidden" in line and "hidden" in line for line in scan.skipped)
    assert [s.student for s in find_submissions([tmp_path / "inbox"])][:1] == ["alice"]


# ---------------------------------------------------------------------------------------------
# The sandbox's job runner, in-process (fork), on tiny jobs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_ready():
    harness._T.update(harness._bind_torch())


def _run(job: dict) -> dict:
    """Run ``job`` with harness.run_job in this process's forks; assemble the streamed reply."""
    asm = ReplyAssembler(len(job["cells"]), [p["name"] for p in job["probes"]])
    harness.run_job(job, asm.add)
    return asm.reply()


def _probe_entry(name="sgd_step"):
    return probes.PROBES[name].job_entry("unit")


def test_sandbox_survives_loops_exits_and_errors(sandbox_ready):
    cells = [
        "x = 1",
        "while True:\n    pass",  # infinite loop at top level
        "import os\nos._exit(5)",  # kills the process
        "def sgd_step(p, g, lr):\n    return p - lr * g",
        "raise SystemExit(0)",
        "def broken(:",
        "y = x + 1",
    ]
    job = {
        "cells": cells,
        "probes": [_probe_entry()],
        "limits": {"cell_timeout": 1.0, "probe_timeout": 2.0, "job_timeout": 30},
    }
    reply = _run(job)
    status = {int(k): v["status"] for k, v in reply["cells"].items()}
    assert status == {0: "ok", 1: "error", 2: "error", 3: "ok", 4: "error", 5: "error", 6: "ok"}
    assert "timed out" in reply["cells"]["1"]["error"]
    assert "exited with code 5" in reply["cells"]["2"]["error"]
    assert "SyntaxError" in reply["cells"]["5"]["error"]
    cases = reply["probes"]["sgd_step"]["cases"]
    assert len(cases) == len(_probe_entry()["cases"]) and all("out" in c for c in cases)


def test_sandbox_probe_timeouts_and_refusals(sandbox_ready):
    cells = [
        "import torch\n"
        "def sgd_step(p, g, lr):\n    while True:\n        pass\n"
        "def momentum_step(p, g, v, lr, mu):\n    import os\n    os._exit(0)\n"
        "class Eq:\n    def __eq__(self, o):\n        return True\n"
        "def nesterov_step(p, g, v, lr, mu):\n    return Eq(), Eq()\n"
        "def adagrad_step(p, g, G, lr, eps):\n    G.add_(g * g)\n    return p - lr * g, G\n"
    ]
    job = {
        "cells": cells,
        "probes": [
            _probe_entry(n)
            for n in ("sgd_step", "momentum_step", "nesterov_step", "adagrad_step", "adam_step")
        ],
        "limits": {"cell_timeout": 5.0, "probe_timeout": 1.0, "job_timeout": 30},
    }
    reply = _run(job)
    pr = reply["probes"]
    assert "timed out" in pr["sgd_step"]["error"]
    assert "exited" in pr["momentum_step"]["error"]
    assert all("not a tensor" in c["error"] for c in pr["nesterov_step"]["cases"])
    assert all(c["mutated"] == ["G"] for c in pr["adagrad_step"]["cases"])
    assert pr["adam_step"] == {"missing": True}


def test_sandbox_memory_limit_per_process(sandbox_ready):
    cells = ["big = bytearray(8 * 2**30)", "value = 3.0"]
    entry = {"name": "value", "target": "value", "runner": "value", "cases": [{"label": "v"}]}
    job = {
        "cells": cells,
        "probes": [entry],
        "limits": {"cell_timeout": 5, "probe_timeout": 5, "job_timeout": 30, "memory_mb": 512},
    }
    reply = _run(job)
    assert "MemoryError" in reply["cells"]["0"]["error"]
    assert reply["probes"]["value"]["cases"][0]["out"][0]["data"] == 3.0


def test_a_step_that_floods_its_pipe_fails_alone(sandbox_ready):
    """Finding 2, in the box: output beyond the per-step cap fails that step only."""
    flood = (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, b'x' * (10 * 2**20))\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    entry = {"name": "value", "target": "value", "runner": "value", "cases": [{"label": "v"}]}
    job = {
        "cells": ["value = 2.0", flood, "value = value + 1"],
        "probes": [entry],
        "limits": {"cell_timeout": 20, "probe_timeout": 5, "job_timeout": 60},
    }
    t0 = time.monotonic()
    reply = _run(job)
    assert time.monotonic() - t0 < 20
    assert "more than 8 MB of output" in reply["cells"]["1"]["error"]
    assert reply["probes"]["value"]["cases"][0]["out"][0]["data"] == 3.0


def test_line_reader_is_linear_and_capped():
    """Finding 2: no quadratic re-scanning of a line that never ends, and a hard byte cap."""
    reader = harness.LineReader(cap=200 * 2**20)
    chunk = b"x" * (1 << 16)
    t0 = time.perf_counter()
    for _ in range(1600):  # 100 MB without a newline, in 64 KiB chunks
        assert reader.feed(chunk) == []
    assert time.perf_counter() - t0 < 5.0, "reading must stay linear"
    assert reader.feed(b"\n{}\n") == [b"x" * (100 * 2**20), b"{}"]
    capped = harness.LineReader(cap=1000)
    capped.feed(b"a\n" * 400)
    with pytest.raises(harness.Flood):
        capped.feed(b"b" * 300)


def test_reply_assembler_ignores_forged_and_malformed_messages():
    asm = ReplyAssembler(2, ["q"])
    for msg in (
        [1, 2],
        {"begin": "0"},
        {"begin": 99},
        {"end": 7, "result": {"status": "ok"}},
        {"event": {"not": "text"}},
        {"begin": 0},
        {"end": 0, "result": {"status": "ok"}},
        {"end": 0, "result": {"status": "forged second answer"}},
        {"begin": 2},
    ):
        asm.add(msg)
    asm.stop("the box was stopped")
    reply = asm.reply()
    assert reply["cells"] == {"0": {"status": "ok"}}
    assert reply["probes"] == {
        "q": {"status": "error", "error": "the box was stopped", "fatal": True}
    }
    assert reply["events"] == ["the box was stopped"]
    asm.add({"end": 1, "result": {"status": "ok"}})
    assert asm.done


# ---------------------------------------------------------------------------------------------
# One end-to-end smoke run through the real command (the full adversarial set is in the slow tests)
# ---------------------------------------------------------------------------------------------


def test_course_grade_end_to_end_smoke(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ada.ipynb").write_bytes((SOLUTIONS / "01_gradient_descent.ipynb").read_bytes())
    (inbox / "ben.ipynb").write_bytes((EXERCISES / "01_gradient_descent.ipynb").read_bytes())
    (inbox / "cy.ipynb").write_bytes(b"not a notebook")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "course_lib.grade",
            "grade",
            "-a",
            "01_gradient_descent",
            str(inbox),
            "-o",
            str(out),
            "--jobs",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert list(rows[0]) == ["student", "assignment", "question", "score", "max_score", "feedback"]
    total = {}
    for r in rows:
        total[r["student"]] = total.get(r["student"], 0) + float(r["score"])
    assert total == {"ada": 10.0, "ben": 0.0, "cy": 0.0}
    assert {r["max_score"] for r in rows} == {"2"}
    assert "Total: 10 / 10" in (out / "feedback" / "ada.txt").read_text()
    assert "not implemented" in (out / "feedback" / "ben.txt").read_text()


@pytest.mark.parametrize("module", ["course_lib.grading", "course_lib.grade"])
def test_module_entry_points(module):
    proc = subprocess.run(
        [sys.executable, "-m", module, "grade", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "--assignment" in proc.stdout


def test_unknown_assignment_is_a_clear_error(capsys):
    assert cli_main(["grade", "-a", "99_nothing", str(SOLUTIONS)]) == 2
    err = capsys.readouterr().err
    assert "no solutions notebook" in err and "01_gradient_descent" in err


# ---------------------------------------------------------------------------------------------
# Chapter 03: full marks for the solutions, none for the untouched exercises, and the find-the-bug
# class left unfixed loses its points without the feedback naming the bug
# ---------------------------------------------------------------------------------------------


def _with_buggy_adagrad_left_in(solution_nb: dict) -> dict:
    nb = json.loads(json.dumps(solution_nb))
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "fixed_adagrad_code":
            cell["source"] = ["class FixedAdagrad(BuggyAdagrad):\n", "    pass\n"]
    return nb


def test_course_grade_chapter_03(tmp_path):
    chapter = "03_adagrad_rmsprop"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    solved = json.loads((SOLUTIONS / f"{chapter}.ipynb").read_text())
    (inbox / "ada.ipynb").write_text(json.dumps(solved))
    (inbox / "ben.ipynb").write_bytes((EXERCISES / f"{chapter}.ipynb").read_bytes())
    (inbox / "cy.ipynb").write_text(json.dumps(_with_buggy_adagrad_left_in(solved)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "course_lib.grade", "grade", "-a", chapter, str(inbox),
           "-o", str(out), "--jobs", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir()
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    total, by_question = {}, {}
    for r in rows:
        total[r["student"]] = total.get(r["student"], 0) + float(r["score"])
        by_question[r["student"], r["question"]] = r
    assert load_assignment(chapter).max_score == 11
    assert total == {"ada": 11.0, "ben": 0.0, "cy": 9.0}
    unfixed = by_question["cy", "fixed_adagrad"]
    assert float(unfixed["score"]) == 0 and "Diagnosis" not in unfixed["feedback"]
    assert "hidden quadratic" in unfixed["feedback"]


# --- chapter 04 (appended) --------------------------------------------------------------------


def test_chapter_04_points_come_from_solutions():
    a = load_assignment("04_adam")
    assert [q.grade_id for q in a.questions] == [
        "adam_step", "uncorrected_peak_step", "adam_bug_hunt", "state_bytes"
    ]
    assert a.max_score == 6


# ---------------------------------------------------------------------------------------------
# Chapters 00-01 (issue #12): the new assignments are graded from their solutions
# ---------------------------------------------------------------------------------------------


def test_chapter_00_assignment_lists_its_three_questions():
    a = load_assignment("00_orientation")
    assert [q.grade_id for q in a.questions] == [
        "classify_critical_point",
        "gradient_tolerance",
        "early_stopping_epoch",
    ]
    assert a.max_score == 6


@pytest.mark.slow
@pytest.mark.parametrize("chapter, full", [("00_orientation", 6), ("01_gradient_descent", 10)])
def test_chapters_00_01_solutions_full_marks_blank_exercises_zero(tmp_path, chapter, full):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "teacher.ipynb").write_bytes((SOLUTIONS / f"{chapter}.ipynb").read_bytes())
    (inbox / "blank.ipynb").write_bytes((EXERCISES / f"{chapter}.ipynb").read_bytes())
    out = tmp_path / "out"
    assert cli_main(["grade", "-a", chapter, str(inbox), "-o", str(out), "--no-progress"]) == 0
    totals: dict[str, float] = {}
    with open(out / "gradebook.csv", newline="") as f:
        for row in csv.DictReader(f):
            totals[row["student"]] = totals.get(row["student"], 0.0) + float(row["score"])
    assert totals == {"teacher": full, "blank": 0}


# ---------------------------------------------------------------------------------------------
# The grader's clean image: measure exercises find everything loaded before a box exists
# ---------------------------------------------------------------------------------------------


def _measure_exercises() -> list[str]:
    from course_lib.exercises import NUMBER_EXERCISES

    return [n for n, e in NUMBER_EXERCISES.items() if getattr(e, "prepare", None) is not None]


@pytest.mark.parametrize("name", _measure_exercises())
def test_after_the_warm_up_a_measure_exercise_imports_nothing_new(name):
    """Boxes are forked from the warmed-up image; a late import would run as the sandbox user, who
    may not read the interpreter's own library (a Python installed under /root), and would cost
    every submission its import time."""
    code = (
        "import sys\n"
        "from course_lib.grading import harness\n"
        "harness._T.update(harness._bind_torch())\n"
        "harness._warm_up()\n"
        "from course_lib.exercises import NUMBER_EXERCISES\n"
        "before = set(sys.modules)\n"
        f"NUMBER_EXERCISES[{name!r}].reference(1)\n"
        "late = sorted(m for m in set(sys.modules) - before\n"
        "              if m.split('.')[0] in {'course_lib', 'sklearn', 'tqdm', 'joblib', 'scipy'}\n"
        "              or m.split('.')[0] in sys.stdlib_module_names)\n"
        "print(late)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- chapter 05 ---------------------------------------------------------------------------------


def test_chapter_05_points_come_from_solutions():
    a = load_assignment("05_weight_decay")
    assert [q.grade_id for q in a.questions] == ["adamw_step", "adamw_bug_hunt", "decay_half_life"]
    assert a.max_score == 5


# --- chapter 06 -------------------------------------------------------------------------------


def test_chapter_06_probes_reject_every_classic_mistake():
    """Each diagnosed mistake of the chapter-06 number exercises fails at least one hidden case."""
    from course_lib.exercises import NUMBER_EXERCISES

    for name in ("first_negative_increment", "amsgrad_state_bytes"):
        exercise = NUMBER_EXERCISES[name]
        cases = exercise.hidden_cases(torch.Generator().manual_seed(0))
        for why, wrong in exercise.variants.items():
            assert any(not exercise.is_right(c.args, wrong(*c.args)) for c in cases), (name, why)


# --- chapter 09 ---


def test_chapter_09_points_come_from_solutions():
    a = load_assignment("09_adai")
    assert [q.grade_id for q in a.questions] == [
        "adai_beta1",
        "sgd_saddle_escape_step",
        "median_escape_steps",
    ]
    assert a.max_score == 6


# --- chapter 07 ---


def test_chapter_07_assignment_lists_its_four_questions():
    a = load_assignment("07_schedules")
    assert [q.grade_id for q in a.questions] == [
        "sgdr_lr",
        "noam_peak_lr",
        "restart_run",
        "range_test_lr",
    ]
    assert a.max_score == 6


# --- chapter 11 ---


def test_chapter_11_assignment_lists_its_three_questions():
    a = load_assignment("11_putting_it_together")
    assert [q.grade_id for q in a.questions] == [
        "adamw_from_blocks",
        "composed_state_bytes",
        "ftrl_weight",
    ]
    assert a.max_score == 5
