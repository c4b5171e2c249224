"""End-to-end grading of hostile submissions, re-grading, and every chapter (slow).

The fixtures (``tests/grading_fixtures``) are generated from ``solutions/01_gradient_descent.ipynb``
and the exercise at test time, so they follow the notebooks when they change. ``ATTACKS`` are the
sandbox escapes of issue #11, one or more per finding: each batch below grades them together with
honest submissions (which must keep full marks), twice, the second time with
``--sandbox-user ''``, and then looks at the host for anything that got out.

Isolated mode needs bubblewrap and root; without them those tests skip with the reason (CI sets
``COURSE_REQUIRE_BWRAP=1`` so that they fail instead). Process mode runs everywhere, with the
attacks it is meant to stop.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from course_lib.grading import grade_submissions, isolation
from tests.grading_fixtures import (
    ATTACKS,
    EXERCISE,
    FULL,
    MAX_SCORE,
    QUESTIONS,
    SOLUTION,
    ZERO,
    write_attacks,
    write_fixtures,
)
from tests.test_grading_isolation import require_bwrap

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LIMITS = {"cell_timeout": 6.0, "probe_timeout": 6.0, "job_timeout": 90.0, "memory_mb": 768}

pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _totals(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in _rows(path):
        out[r["student"]] = out.get(r["student"], 0.0) + float(r["score"])
    return out


class Listener:
    """A TCP listener on the grader's localhost that records whatever reaches it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(1 << 16) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _special_files(inbox: Path) -> dict[str, tuple[dict, str]]:
    """Links, special files and spoofed names (findings 7, 8, 15, 17): name -> (scores, id)."""
    solution, exercise = SOLUTION.read_bytes(), EXERCISE.read_bytes()
    (inbox / "link_solutions.ipynb").symlink_to(SOLUTIONS / "01_gradient_descent.ipynb")
    (inbox / "link_classmate.ipynb").symlink_to(inbox / "correct.ipynb")
    (inbox / "link_folder").symlink_to(SOLUTIONS, target_is_directory=True)
    (inbox / "nested_link").mkdir()
    (inbox / "nested_link" / "01_gradient_descent.ipynb").symlink_to(
        SOLUTIONS / "01_gradient_descent.ipynb"
    )
    (inbox / "pagemap.ipynb").symlink_to("/proc/self/pagemap")
    os.mkfifo(inbox / "fifo.ipynb")
    (inbox / "good_a.ipynb").write_bytes(solution)
    (inbox / "good_a!.ipynb").write_bytes(exercise)
    (inbox / "newline\nTotal: 6 \u2215 6.ipynb").write_bytes(exercise)  # U+2215 looks like /
    (inbox / ".sneaky.ipynb").write_bytes(solution)
    link = {q: (0.0, "symbolic link") for q in QUESTIONS}
    return {
        "link_solutions": (link, "link_solutions"),
        "link_classmate": (link, "link_classmate"),
        "link_folder": (link, "link_folder"),
        "nested_link": ({q: (0.0, "no notebook") for q in QUESTIONS}, "nested_link"),
        "pagemap": (link, "pagemap"),
        "fifo": ({q: (0.0, "not a regular file") for q in QUESTIONS}, "fifo"),
        "good_a": (FULL, "good_a"),
        "good_a!": (ZERO, "good_a~"),
        "newline": (ZERO, "newline_Total_6_6~"),
    }


def _host_processes_named(name: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(pid))
            except OSError:
                pass
    return out


@dataclass
class Runs:
    mode: str
    ctx: dict
    inbox: Path
    expected: dict  # fixture name -> {question: (score, needle)}
    specials: dict
    outs: list[Path]
    reports: list
    survivors: list[list[int]]
    tmpdir_left: list[list[str]]
    plant_bytes: bytes | None
    received: list[bytes]


def _grade_twice(base: Path, mode: str) -> Runs:
    token = secrets.token_hex(6)
    inbox = base / "inbox"
    listener = Listener()
    ctx = {
        "token": token,
        "solutions": str(SOLUTIONS),
        "inbox": str(inbox),
        "port": listener.port,
        "chain": f"chain{token[:8]}",
        "kill_all": mode == isolation.MODE_BWRAP,  # never kill(-1) as a shared host user
        "shared_dirs": '"/tmp", "/var/tmp", "/dev/shm",' if mode == isolation.MODE_BWRAP else "",
    }
    expected = write_fixtures(inbox, slow=mode == isolation.MODE_BWRAP)
    expected.update(write_attacks(inbox, ctx, mode))
    specials = _special_files(inbox)
    plant = inbox / "plant_modules.ipynb"
    plant_bytes = plant.read_bytes() if plant.exists() else None
    # a private TMPDIR the sandbox user may enter: whatever a run leaves in it shows up
    tmpdir = tempfile.mkdtemp(prefix="course-grade-tmpdir-")
    os.chmod(tmpdir, 0o755)
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"], tempfile.tempdir = tmpdir, None
    outs, reports, survivors, left = [], [], [], []
    try:
        for i, user in enumerate(("nobody", "")):
            if mode == isolation.MODE_PROCESS and not user:
                user = "nobody"  # process mode refuses to run submissions as root (tested below)
            out = base / f"out{i + 1}"
            reports.append(
                grade_submissions(
                    "01_gradient_descent",
                    [inbox],
                    out_dir=out,
                    limits={**LIMITS, "sandbox_user": user},
                    progress=False,
                    isolation_mode=mode,
                    jobs=2,
                )
            )
            outs.append(out)
            time.sleep(0.5)
            survivors.append(_host_processes_named(ctx["chain"]))
            left.append(sorted(os.listdir(tmpdir)))
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old
        tempfile.tempdir = None
        shutil.rmtree(tmpdir, ignore_errors=True)
        listener.close()
    return Runs(
        mode,
        ctx,
        inbox,
        expected,
        specials,
        outs,
        reports,
        survivors,
        left,
        plant_bytes,
        listener.received,
    )


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    require_bwrap()
    return _grade_twice(tmp_path_factory.mktemp("isolated"), isolation.MODE_BWRAP)


@pytest.fixture(scope="module")
def process(tmp_path_factory):
    return _grade_twice(tmp_path_factory.mktemp("process"), isolation.MODE_PROCESS)


MODES = [isolation.MODE_BWRAP, isolation.MODE_PROCESS]


@pytest.fixture(params=MODES)
def runs(request) -> Runs:
    return request.getfixturevalue("isolated" if request.param == "bwrap" else "process")


def _student_rows(out: Path, prefix: str, exact: bool) -> list[dict]:
    rows = _rows(out / "gradebook.csv")
    return [
        r for r in rows if (r["student"] == prefix if exact else r["student"].startswith(prefix))
    ]


# ---------------------------------------------------------------------------------------------
# Everything, as a gradebook
# ---------------------------------------------------------------------------------------------


def test_every_submission_is_graded_as_expected_in_both_runs(runs):
    for out in runs.outs:
        rows = _rows(out / "gradebook.csv")
        problems = []
        by_student = {}
        for r in rows:
            by_student.setdefault(r["student"], []).append(r)
        for name, exp in runs.expected.items():
            got = by_student.get(name)
            if got is None:
                problems.append(f"{name}: no rows")
                continue
            for r in got:
                score, needle = exp[r["question"]]
                if float(r["score"]) != score or needle not in r["feedback"]:
                    problems.append(
                        f"{name}/{r['question']}: got {r['score']} ({r['feedback'][:200]}), "
                        f"expected {score} with {needle!r}"
                    )
        for name, (exp, sid) in runs.specials.items():
            got = [
                r
                for r in rows
                if r["student"] == sid or (sid.endswith("~") and r["student"].startswith(sid))
            ]
            if len(got) != len(QUESTIONS):
                problems.append(f"{name}: {len(got)} rows for id {sid!r}")
            for r in got:
                score, needle = exp[r["question"]]
                if float(r["score"]) != score or needle not in r["feedback"]:
                    problems.append(
                        f"{name}/{r['question']}: got {r['score']} ({r['feedback'][:200]})"
                    )
        assert not problems, f"{out.name}:\n" + "\n".join(problems)
        for r in rows:
            assert r["max_score"] == "2", r


def test_every_attack_of_the_mode_ran(runs):
    ran = {n for n, (_, _, modes, _) in ATTACKS.items() if runs.mode in modes}
    assert ran <= set(runs.expected)
    findings = {f for n, (_, _, modes, f) in ATTACKS.items() if runs.mode in modes}
    if runs.mode == isolation.MODE_BWRAP:
        assert findings == {1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 16}


# ---------------------------------------------------------------------------------------------
# One test per finding of issue #11
# ---------------------------------------------------------------------------------------------


def test_finding_01_planted_modules_are_never_imported(runs):
    assert not Path(f"/var/tmp/pwned-{runs.ctx['token']}").exists()
    assert (runs.inbox / "plant_modules.ipynb").read_bytes() == runs.plant_bytes
    for out in runs.outs:
        assert _totals(out / "gradebook.csv")["plant_modules"] == 0
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        for name in ("monkeytype.py", "sitecustomize.py", "usercustomize.py", "_pwn.py", "tqdm.py"):
            p = Path(d) / name
            assert not (p.exists() and runs.ctx["token"] in p.read_text(errors="replace")), p


def test_finding_02_a_flood_costs_only_the_flooder(runs):
    for out in runs.outs:
        text = (out / "feedback" / "flood_protocol.txt").read_text()
        assert f"Total: 0 / {MAX_SCORE:g}" in text and "MB of output" in text
        assert _totals(out / "gradebook.csv")["correct"] == MAX_SCORE


def test_finding_03_no_expected_answer_in_reach(runs):
    for out in runs.outs:
        assert _totals(out / "gradebook.csv")["steal_from_memory"] == 0


def test_finding_04_nothing_survives_for_an_accomplice(isolated):
    for out in isolated.outs:
        totals = _totals(out / "gradebook.csv")
        assert totals["stash_answers"] == MAX_SCORE and totals["accomplice"] == 0
    token = isolated.ctx["token"]
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not (Path(d) / f"stash-{token}.py").exists()


def test_finding_05_boxes_cannot_kill_each_other(isolated):
    for out in isolated.outs:
        rows = _rows(out / "gradebook.csv")
        honest = [n for n, exp in isolated.expected.items() if exp == FULL]
        totals = _totals(out / "gradebook.csv")
        assert len(honest) >= 8 and all(totals[n] == MAX_SCORE for n in honest)
        assert "killed (SIGKILL" in (out / "feedback" / "killer_daemon.txt").read_text()
        for r in rows:
            if r["student"] not in ("killer_daemon", "fork_memory"):
                assert "SIGKILL" not in r["feedback"] and "ended early" not in r["feedback"], r


def test_finding_06_no_process_outlives_its_box(runs):
    assert runs.survivors == [[], []]
    for out in runs.outs:
        assert _totals(out / "gradebook.csv")["fork_chain"] == MAX_SCORE


def test_finding_07_links_are_never_followed(runs):
    for out in runs.outs:
        for sid in ("link_solutions", "link_classmate", "link_folder", "nested_link"):
            rows = _student_rows(out, sid, exact=True)
            assert len(rows) == len(QUESTIONS) and all(r["score"] == "0" for r in rows), sid
    assert any("nested_link" in s and "symbolic link" in s for s in runs.reports[0].skipped)


def test_finding_08_special_files_are_rows_not_crashes(runs):
    for out in runs.outs:
        for sid, why in (("pagemap", "symbolic link"), ("fifo", "not a regular file")):
            rows = _student_rows(out, sid, exact=True)
            assert len(rows) == len(QUESTIONS) and all(
                r["score"] == "0" and why in r["feedback"] for r in rows
            )


def test_finding_09_writes_stay_in_the_box(isolated):
    token = isolated.ctx["token"]
    for d in ("/tmp", "/var/tmp", "/dev/shm", "/", os.path.expanduser("~")):
        assert not (Path(d) / f"written-{token}").exists(), d
    for out in isolated.outs:
        assert _totals(out / "gradebook.csv")["write_everywhere"] == MAX_SCORE


def test_finding_10_classmates_and_solutions_are_out_of_reach(isolated):
    for out in isolated.outs:
        totals = _totals(out / "gradebook.csv")
        assert totals["read_classmates"] == 0 and totals["kill_the_grader"] == 0


def test_finding_11_no_network(isolated):
    assert isolated.received == []
    for out in isolated.outs:
        assert _totals(out / "gradebook.csv")["exfiltrate"] == MAX_SCORE


def test_finding_12_memory_limit_covers_forked_children(runs):
    for out in runs.outs:
        text = (out / "feedback" / "fork_memory.txt").read_text()
        assert f"Total: 0 / {MAX_SCORE:g}" in text and "more than 768 MB of memory together" in text
        assert _totals(out / "gradebook.csv")["correct"] == MAX_SCORE


def test_finding_13_disk_is_limited_and_private(isolated):
    token = isolated.ctx["token"]
    for d in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~")):
        assert not list(Path(d).glob(f"fill-{token}-*")), d
    for out in isolated.outs:
        assert _totals(out / "gradebook.csv")["fill_disk"] == MAX_SCORE


def test_finding_14_an_empty_sandbox_user_is_still_isolated(isolated):
    """The second run used --sandbox-user '': a gradebook for everyone, nothing gained."""
    second = _totals(isolated.outs[1] / "gradebook.csv")
    assert second == _totals(isolated.outs[0] / "gradebook.csv")
    assert second["kill_the_grader"] == 0 and second["correct"] == MAX_SCORE


def test_finding_14_process_mode_refuses_root_without_a_sandbox_user(tmp_path):
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        pytest.skip("only a root grader could run submissions as root")
    (tmp_path / "a.ipynb").write_bytes(SOLUTION.read_bytes())
    with pytest.raises(Exception, match="refusing to run submissions as root"):
        grade_submissions(
            "01_gradient_descent",
            [tmp_path],
            limits={"sandbox_user": ""},
            progress=False,
            isolation_mode="process",
        )


def test_finding_15_spoofed_names_never_take_an_id(runs):
    for report, out in zip(runs.reports, runs.outs):
        totals = _totals(out / "gradebook.csv")
        assert totals["good_a"] == MAX_SCORE
        spoofs = [s for s in totals if s.startswith("good_a~")]
        assert len(spoofs) == 1 and totals[spoofs[0]] == 0
        assert any("good_a!" in p and spoofs[0] in p for p in report.problems)
        assert "File graded: good_a.ipynb" in (out / "feedback" / "good_a.txt").read_text()


def test_finding_16_regrading_is_byte_identical(runs):
    first, second = runs.outs
    assert (first / "gradebook.csv").read_bytes() == (second / "gradebook.csv").read_bytes()
    names = sorted(p.name for p in (first / "feedback").iterdir())
    assert names == sorted(p.name for p in (second / "feedback").iterdir())
    for name in names:
        assert (first / "feedback" / name).read_bytes() == (second / "feedback" / name).read_bytes()
    text = (first / "feedback" / "set_in_error.txt").read_text()
    assert "unexpected keys {" in text and f"Total: {MAX_SCORE:g} / {MAX_SCORE:g}" in text


def test_finding_17_names_are_escaped_hidden_files_listed_nothing_left(runs):
    for report, out in zip(runs.reports, runs.outs):
        [feedback] = [p for p in (out / "feedback").iterdir() if p.name.startswith("newline_")]
        lines = feedback.read_text().splitlines()
        assert [line for line in lines if line.startswith("Total:")] == [
            f"Total: 0 / {MAX_SCORE:g}"
        ]
        assert "File graded: newline\\nTotal: 6 \u2215 6.ipynb" in lines
        assert any(".sneaky.ipynb" in s and "hidden" in s for s in report.skipped)
        assert not any(s.startswith(".sneaky") for s in _totals(out / "gradebook.csv"))
    assert runs.tmpdir_left == [[], []], "temporary folders left behind"


# ---------------------------------------------------------------------------------------------
# Every chapter: solutions get full marks, exercises zero, re-grading is idempotent
# ---------------------------------------------------------------------------------------------

FULL_MARKS = {
    "00_orientation": 6,
    "01_gradient_descent": 10,
    "02_momentum": 7,
    "03_adagrad_rmsprop": 11,
    "04_adam": 6,
    "05_weight_decay": 5,
    "06_amsgrad": 4,
    "07_schedules": 6,
    "08_radam_nadam_adan": 5,
    "09_adai": 6,
    "10_sign_optimizers": 5,
    "11_putting_it_together": 5,
}


def test_every_solutions_notebook_is_graded_below():
    assert set(FULL_MARKS) == {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}


@pytest.mark.parametrize("chapter, full", sorted(FULL_MARKS.items()))
def test_solutions_full_marks_exercises_zero_and_regrading_is_idempotent(tmp_path, chapter, full):
    inbox = tmp_path / "inbox"
    (inbox / "teacher").mkdir(parents=True)
    (inbox / "teacher" / f"{chapter}.ipynb").write_bytes(
        (ROOT / "solutions" / f"{chapter}.ipynb").read_bytes()
    )
    (inbox / "blank.ipynb").write_bytes((ROOT / "exercises" / f"{chapter}.ipynb").read_bytes())
    first, second = tmp_path / "a", tmp_path / "b"
    grade_submissions(chapter, [inbox], out_dir=first, progress=False)
    grade_submissions(chapter, [inbox], out_dir=second, progress=False)
    assert _totals(first / "gradebook.csv") == {"teacher": full, "blank": 0}
    assert (first / "gradebook.csv").read_bytes() == (second / "gradebook.csv").read_bytes()
    for name in ("teacher", "blank"):
        assert (first / "feedback" / f"{name}.txt").read_text() == (
            second / "feedback" / f"{name}.txt"
        ).read_text()
