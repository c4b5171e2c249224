"""The instructor's bulk grader: submissions in, a CSV gradebook and feedback files out.

How a grading run works:

1. :func:`load_assignment` reads ``solutions/<assignment>.ipynb``: its graded cells give the
   questions (``grade_id`` → probe, ``points`` → maximum score).
2. :func:`scan_submissions` lists the submissions without following links and without reading
   anything but regular files; ids that collide are reported, hidden files are listed.
3. A pool of workers starts (one per parallel box); each is a clean pre-loaded Python image that
   forks one isolated box per submission (see :mod:`~course_lib.grading.isolation` and
   :mod:`~course_lib.grading.harness`).
4. The solutions notebook runs in a box of its own: its answers to the probes' hidden cases are
   the expected values for this run (nothing is hard-coded). They stay in this process.
5. Every submission runs in a new box; its answers come back as plain data (capped in size, read
   linearly) and are compared with the expected values *here*, in the grader process.
6. ``gradebook.csv`` (student, assignment, question, score, max_score, feedback) and one
   ``feedback/<student>.txt`` per student are written. Rows are sorted, messages are scrubbed of
   memory addresses and temporary paths, so grading the same files twice gives the same files.

Nothing a submission does can stop the batch: an unreadable file, a crash, a flood of output, a
timeout, a memory bomb or a broken box turns into zero points with the reason in the feedback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.grading import isolation
from course_lib.grading.harness import (
    MAX_EVENTS,
    MAX_REPLY_BYTES,
    MAX_TEXT,
    Flood,
    LineReader,
    recv_message,
    send_message,
)
from course_lib.grading.notebook import (
    NotebookError,
    code_cells,
    graded_cells,
    parse_notebook,
    read_file_safely,
    read_notebook,
)
from course_lib.grading.probes import PROBES, Malformed, Probe, compare_case

COLUMNS = ["student", "assignment", "question", "score", "max_score", "feedback"]
DEFAULT_LIMITS = {
    "cell_timeout": 10.0,  # seconds per notebook cell
    "probe_timeout": 10.0,  # seconds per question (all its hidden cases)
    "job_timeout": 90.0,  # seconds per submission in total
    "memory_mb": 2048,  # memory a submission may add on top of torch & co (all its processes)
    "cpu_seconds": 120,
    "disk_mb": 256,  # size of a box's private /tmp (isolated mode)
    "shm_mb": 64,  # size of a box's private /dev/shm (isolated mode)
    "max_processes": 64,  # processes and threads of one box (isolated mode)
    "sandbox_user": "nobody",  # the host user submissions run as (root graders)
}
MAX_ENTRIES = 2000  # files and folders looked at inside one student's folder
MAX_DEPTH = 8


class GradingError(RuntimeError):
    """A problem with the grading setup itself (missing solutions, a broken reference)."""


class SandboxError(RuntimeError):
    """A worker or a box failed to start (the submission is retried once with a fresh worker)."""


@dataclass(frozen=True)
class Question:
    grade_id: str
    points: float
    probe: Probe


@dataclass(frozen=True)
class Assignment:
    name: str
    path: Path
    questions: tuple[Question, ...]

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    error: str | None = None
    note: str | None = None  # e.g. why the id differs from the file name


@dataclass
class Scan:
    """What :func:`scan_submissions` found."""

    submissions: list[Submission]
    skipped: list[str]  # files that were not graded, and why
    problems: list[str]  # ids that collide or had to be changed


@dataclass
class Row:
    student: str
    assignment: str
    question: str
    score: float
    max_score: float
    feedback: str

    def as_list(self) -> list[str]:
        return [
            _csv_safe(self.student),
            self.assignment,
            self.question,
            _num(self.score),
            _num(self.max_score),
            _csv_safe(self.feedback),
        ]


@dataclass
class Report:
    assignment: Assignment
    rows: list[Row]
    notes: dict[str, list[str]] = field(default_factory=dict)
    gradebook: Path | None = None
    feedback_dir: Path | None = None
    seconds: float = 0.0
    mode: str = isolation.MODE_BWRAP
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rows:
            out[r.student] = round(out.get(r.student, 0.0) + r.score, 4)
        return out


# ---------------------------------------------------------------------------------------------
# Assignments and submissions
# ---------------------------------------------------------------------------------------------


def course_dir(name: str) -> Path:
    """The course folder ``name`` (``solutions``, ``exercises``) of the checkout you work in: the
    working directory's when it has one (a second clone, whatever ``course_lib`` is installed
    from), else the one next to the installed ``course_lib`` package."""
    here = Path.cwd() / name
    if here.is_dir():
        return here
    installed = Path(__file__).resolve().parents[2] / name
    return installed if installed.is_dir() else here


def default_solutions_dir() -> Path:
    """The ``solutions/`` folder :func:`course_dir` finds."""
    return course_dir("solutions")


def load_assignment(name: str, solutions: str | Path | None = None) -> Assignment:
    """The assignment ``name`` (``01_gradient_descent``) or a path to its solutions notebook."""
    path = Path(name)
    if path.suffix != ".ipynb":
        path = Path(solutions or default_solutions_dir()) / f"{name}.ipynb"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.ipynb")) if path.parent.is_dir() else []
        raise GradingError(
            f"no solutions notebook {path}" + (f"; known: {', '.join(known)}" if known else "")
        )
    nb = read_notebook(path, follow_symlinks=True)
    questions = []
    for cell in graded_cells(nb):
        probe = PROBES.get(cell.grade_id)
        if probe is None:
            raise GradingError(
                f"{path.name}: graded cell {cell.grade_id!r} has no probe; add one to "
                "course_lib/grading/probes.py (PROBES) or fix the grade_id"
            )
        questions.append(Question(cell.grade_id, cell.points, probe))
    if not questions:
        raise GradingError(f"{path.name} has no graded cells (nbgrader metadata grade: true)")
    return Assignment(path.stem, path, tuple(questions))


_ID = re.compile(r"[^A-Za-z0-9._@+-]+")
MAX_ID = 80


def _student_id(name: str) -> str:
    sid = _ID.sub("_", name).strip("._") or "student"
    return sid[:MAX_ID]


def _escape(text: str) -> str:
    """Printable text: control characters (newlines included) are shown as escapes."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


@dataclass
class _Found:
    name: str  # what the id is made from (file stem or folder name)
    path: Path
    error: str | None = None


def _entry(path: Path, st: os.stat_result, assignment: str | None, skipped: list[str]) -> _Found:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        why = "is a symbolic link; links are never followed (submit the file itself)"
        return _Found(path.stem or path.name, path, f"{_escape(path.name)} {why}")
    if stat.S_ISDIR(mode):
        return _folder_submission(path, assignment, skipped)
    if stat.S_ISREG(mode):
        return _Found(path.stem or path.name, path)
    return _Found(path.stem or path.name, path, f"{_escape(path.name)} is not a regular file")


def scan_submissions(paths: list[str | Path], assignment: str | None = None) -> Scan:
    """One submission per file, or per sub-folder, of the given files and folders.

    * a file → one submission, student id = file name without extension (any name, any type:
      a non-notebook file is graded 0 with the reason);
    * a folder → each file in it is one submission, each sub-folder is one submission (id =
      sub-folder name, graded notebook = the ``*.ipynb`` inside, preferring one named after the
      assignment).

    Symbolic links are never followed (a link is graded 0 with the reason), nor are devices,
    pipes or sockets read. Hidden files (names starting with ``.``) are skipped and listed in
    :attr:`Scan.skipped`. A name with characters an id cannot hold, or two names that map to the
    same id, never take another student's id: they get ``<id>~<hash of the path>`` and are listed
    in :attr:`Scan.problems`.
    """
    found: list[_Found] = []
    skipped: list[str] = []
    for raw in paths:
        p = Path(raw)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            found.append(_Found(p.stem or p.name, p, f"{_escape(str(p))} does not exist"))
            continue
        except OSError as exc:
            found.append(_Found(p.stem or p.name, p, f"cannot read {_escape(p)}: {exc.strerror}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            _scan_folder(p, assignment, found, skipped)
        else:
            found.append(_entry(p, st, assignment, skipped))
    subs, problems = _assign_ids(found)
    return Scan(subs, skipped, problems)


def find_submissions(paths: list[str | Path], assignment: str | None = None) -> list[Submission]:
    """The submissions of :func:`scan_submissions` (without the lists of skipped files)."""
    return scan_submissions(paths, assignment).submissions


def _scan_folder(folder: Path, assignment, found: list[_Found], skipped: list[str]) -> None:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        found.append(_Found(folder.name, folder, f"cannot list {_escape(folder)}: {exc.strerror}"))
        return
    for e in entries:
        path = Path(e.path)
        if e.name.startswith("."):
            skipped.append(f"{_escape(path)}: hidden file or folder (name starts with '.')")
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError as exc:
            found.append(_Found(path.stem, path, f"cannot read {_escape(e.name)}: {exc.strerror}"))
            continue
        found.append(_entry(path, st, assignment, skipped))


def _folder_submission(folder: Path, assignment: str | None, skipped: list[str]) -> _Found:
    """The notebook of a student's folder, found without following links."""
    nbs: list[Path] = []
    todo, seen = [(folder, 0)], 0
    try:
        while todo:
            d, depth = todo.pop()
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                seen += 1
                if seen > MAX_ENTRIES:
                    return _Found(
                        folder.name, folder, f"the folder has more than {MAX_ENTRIES} entries"
                    )
                path = Path(e.path)
                if e.name.startswith("."):
                    if e.name.endswith(".ipynb"):
                        skipped.append(f"{_escape(path)}: hidden notebook")
                    continue
                if e.is_symlink():
                    skipped.append(f"{_escape(path)}: symbolic link, not followed")
                elif e.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
                    todo.append((path, depth + 1))
                elif e.is_file(follow_symlinks=False) and e.name.endswith(".ipynb"):
                    nbs.append(path)
    except OSError as exc:
        return _Found(folder.name, folder, f"cannot read the folder: {exc.strerror}")
    if not nbs:
        return _Found(folder.name, folder, "no notebook (*.ipynb) found in the submission folder")
    nbs.sort()
    preferred = [q for q in nbs if assignment and q.stem == assignment]
    chosen = (preferred or nbs)[0]
    for other in nbs:
        if other != chosen:
            skipped.append(f"{_escape(other)}: another notebook of the same student")
    return _Found(folder.name, chosen)


def _assign_ids(found: list[_Found]) -> tuple[list[Submission], list[str]]:
    """Unique ids that never take the id of a name that is exactly that id."""
    groups: dict[str, list[tuple[_Found, str]]] = {}
    for f in found:
        base = _student_id(f.name)
        groups.setdefault(base.lower(), []).append((f, base))  # case-insensitive file systems
    subs, problems = [], []
    for key in sorted(groups):
        members = groups[key]
        exact = [f for f, base in members if f.name == base]
        ids = []
        for f, base in members:
            if f.name == base and len(exact) == 1:
                sid = base
            else:
                digest = hashlib.sha256(str(f.path).encode("utf-8", "surrogateescape"))
                sid = f"{base}~{digest.hexdigest()[:8]}"
            ids.append(sid)
        if len(members) > 1:
            listing = "; ".join(f"{_escape(f.path)} -> {sid}" for (f, _), sid in zip(members, ids))
            problem = f"{len(members)} submissions map to the student id {members[0][1]!r}: "
            problem += listing
            problems.append(problem)
            notes = [problem] * len(members)
        else:
            (f, _), sid = members[0], ids[0]
            notes = [None]
            if sid != f.name:
                notes = [f"the name {_escape(f.name)!r} is not a valid student id; graded as {sid}"]
                problems.append(notes[0])
        for (f, _), sid, note in zip(members, ids, notes):
            subs.append(Submission(sid, f.path, f.error, note))
    return subs, problems


# ---------------------------------------------------------------------------------------------
# Workers: a clean pre-loaded image that forks one box per submission (see harness.py)
# ---------------------------------------------------------------------------------------------

_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p]; sys.path.insert(0, {root!r}); "
    "from course_lib.grading.harness import zygote_main; zygote_main({fd})"
)


@dataclass
class BoxSettings:
    """How boxes are made: the mode and what it needs."""

    mode: str
    sandbox_user: str | None
    bwrap: str | None = None
    box_uid: int | None = None
    box_gid: int | None = None
    scratch_root: str | None = None  # process mode: where box folders go
    image_tmp: str | None = None  # the clean images' TMPDIR (torch and matplotlib write there)
    secrets: list[str] = field(default_factory=list)  # paths no box may see


class ReplyAssembler:
    """Builds a submission's reply from what its box streams (hostile input: strict, bounded)."""

    def __init__(self, n_cells: int, probe_names: list[str]):
        self.n_cells, self.names = n_cells, list(probe_names)
        self.n_steps = n_cells + len(self.names)
        self.results: dict[int, object] = {}
        self.events: list[str] = []
        self.current: int | None = None
        self.done = False

    def add(self, msg) -> None:
        if type(msg) is not dict:
            return
        if "begin" in msg:
            s = msg["begin"]
            if type(s) is int and 0 <= s < self.n_steps:
                self.current = s
        elif "end" in msg:
            s = msg["end"]
            if type(s) is int and 0 <= s < self.n_steps and s not in self.results:
                self.results[s] = msg.get("result")
                if self.current == s:
                    self.current = None
        elif "event" in msg:
            if type(msg["event"]) is str and len(self.events) < MAX_EVENTS:
                self.events.append(msg["event"][:MAX_TEXT])
        elif "fatal" in msg:
            self.stop(f"sandbox error: {str(msg['fatal'])[:MAX_TEXT]}")
        elif msg.get("finished") is True:
            self.done = True

    def stop(self, reason: str) -> None:
        """The box was stopped: the step it was in fails with ``reason``; nothing more counts."""
        if self.current is not None and self.current not in self.results:
            self.results[self.current] = {"status": "error", "error": reason, "fatal": True}
        self.current = None
        if len(self.events) < MAX_EVENTS:
            self.events.append(reason)
        self.done = True

    def reply(self) -> dict:
        return {
            "cells": {str(s): r for s, r in self.results.items() if s < self.n_cells},
            "probes": {
                self.names[s - self.n_cells]: r
                for s, r in self.results.items()
                if s >= self.n_cells
            },
            "events": list(self.events),
        }


class Worker:
    """One clean image (a ``zygote_main`` process) and the boxes it forks, one at a time."""

    def __init__(self, settings: BoxSettings, startup_timeout: float = 300.0):
        self.settings = settings
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.ctrl: socket.socket | None = None
        self.baseline = 0
        self.broken = False
        self.last_ready: dict = {}
        self._ready = False
        self._log = tempfile.TemporaryFile()
        self.start()

    def start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/"),  # matplotlib's font cache
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0",  # boxes inherit it: re-grades are byte-identical
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONSAFEPATH": "1",
            "PYTHONNOUSERSITE": "1",
        }
        if "MPLCONFIGDIR" in os.environ:
            env["MPLCONFIGDIR"] = os.environ["MPLCONFIGDIR"]
        if self.settings.image_tmp:  # removed with the run: nothing is left in the temp folder
            env["TMPDIR"] = self.settings.image_tmp
        self._log.seek(0)
        self._log.truncate()
        mine, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                # -s -B, a clean environment and "/" as working directory: nothing writable or
                # shared is on the image's import path (the boot line drops the '' entry too)
                [sys.executable, "-s", "-B", "-c", _BOOT.format(root=root, fd=theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                cwd="/",
                env=env,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.ctrl = mine
        s = self.settings
        config = {
            "mode": s.mode,
            "bwrap": s.bwrap,
            "box_uid": s.box_uid,
            "box_gid": s.box_gid,
            "scratch_root": s.scratch_root,
            "secrets": s.secrets,
        }
        try:
            send_message(mine, {"config": config})
        except OSError:
            pass  # the image died at once: wait_ready() reports it with its log
        self._ready, self.broken = False, False

    def _log_tail(self) -> str:
        self._log.seek(0)
        tail = self._log.read()[-1500:].decode("utf-8", "replace").strip()
        return f":\n{tail}" if tail else ""

    def wait_ready(self) -> None:
        if self._ready:
            return
        assert self.ctrl is not None and self.proc is not None
        try:
            msg, _ = recv_message(self.ctrl, self.startup_timeout)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            raise SandboxError(f"the worker did not start ({exc}){self._log_tail()}") from None
        if "error" in msg:
            raise GradingError(f"cannot grade safely: {msg['error']}")
        self.baseline = isolation.pss_bytes(self.proc.pid)
        self._ready = True

    def restart(self) -> None:
        self.close()
        self.start()

    def close(self) -> None:
        if self.proc is None:
            return
        if self.ctrl is not None:
            self.ctrl.close()  # the image ends on EOF (and its atexit handlers run)
            self.ctrl = None
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self.proc = None

    # -- one box
    def run(self, job: dict, notebook: bytes | None, limits: dict) -> dict:
        """Run ``job`` in a new box; return the assembled reply (plain, unvalidated data)."""
        if self.broken:
            self.restart()
        self.wait_ready()
        assert self.ctrl is not None
        mine, theirs = socket.socketpair()
        fds = [theirs.fileno()]
        nb_fd = None
        if self.settings.mode == isolation.MODE_BWRAP and notebook is not None:
            nb_fd = os.memfd_create("submission.ipynb", getattr(os, "MFD_CLOEXEC", 0))
            view = memoryview(notebook)
            while view:
                view = view[os.write(nb_fd, view) :]
            os.lseek(nb_fd, 0, os.SEEK_SET)
            fds.append(nb_fd)
        box_limits = {k: limits[k] for k in ("disk_mb", "shm_mb", "max_processes")}
        try:
            send_message(self.ctrl, {"cmd": "spawn", "limits": box_limits}, tuple(fds))
            reply, _ = recv_message(self.ctrl, 180)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            mine.close()
            self.broken = True
            raise SandboxError(f"the worker failed: {exc}{self._log_tail()}") from None
        finally:
            theirs.close()
            if nb_fd is not None:
                os.close(nb_fd)
        if "spawned" not in reply:
            mine.close()
            raise SandboxError(f"could not create a box: {reply.get('error')}")
        try:
            return self._converse(mine, job, limits)
        finally:
            mine.close()
            self._end()

    def _end(self) -> None:
        try:
            assert self.ctrl is not None
            send_message(self.ctrl, {"cmd": "end"})
            reply, _ = recv_message(self.ctrl, 120)
            if "ended" not in reply:
                self.broken = True
        except (OSError, EOFError, TimeoutError, ValueError, AssertionError):
            self.broken = True  # restarted before its next box

    def _converse(self, sock: socket.socket, job: dict, limits: dict) -> dict:
        asm = ReplyAssembler(len(job["cells"]), [p["name"] for p in job["probes"]])
        reader = LineReader(MAX_REPLY_BYTES)
        deadline = time.monotonic() + 120  # to start
        ready = False
        memory_limit = int(limits["memory_mb"]) * 2**20
        watch = self.proc is not None and isolation.memory_supported()
        next_check = 0.0
        while not asm.done:
            now = time.monotonic()
            if now >= deadline:
                if not ready:
                    raise SandboxError("the box did not start in time")
                asm.stop("the submission ran out of its total time limit")
                break
            readable, _, _ = select.select([sock], [], [], min(0.25, deadline - now))
            if readable:
                try:
                    data = sock.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    if not ready:
                        raise SandboxError("the box ended before it started")
                    asm.stop("the box's supervisor stopped unexpectedly")
                    break
                try:
                    lines = reader.feed(data)
                except Flood:
                    asm.stop(
                        f"the submission sent more than {MAX_REPLY_BYTES >> 20} MB to the grader "
                        "and was stopped"
                    )
                    break
                for line in lines:
                    try:
                        msg = json.loads(line)
                    except (ValueError, RecursionError):
                        continue
                    if ready:
                        asm.add(msg)
                    elif type(msg) is dict and "fatal" in msg:
                        raise SandboxError(f"the box refused to start: {msg['fatal']}")
                    elif type(msg) is dict and type(msg.get("ready")) is dict:
                        ready, self.last_ready = True, msg["ready"]
                        sock.sendall((json.dumps(job) + "\n").encode())
                        deadline = time.monotonic() + float(limits["job_timeout"]) + 30
            if ready and watch and now >= next_check:
                next_check = now + 0.25
                assert self.proc is not None
                used = isolation.box_memory(self.proc.pid, self.baseline, memory_limit)
                if used > memory_limit:
                    asm.stop(
                        f"the submission's processes used more than {limits['memory_mb']} MB "
                        "of memory together and were stopped"
                    )
        return asm.reply()

    def selftest(self, limits: dict) -> str | None:
        """Run an empty job in a box; return why that failed (``None``: boxes work)."""
        try:
            self.run({"cells": [], "probes": [], "limits": {}}, b"{}", limits)
        except SandboxError as exc:
            return str(exc)
        if self.last_ready.get("mode") != self.settings.mode:
            return f"the box reports mode {self.last_ready.get('mode')!r}"
        return None


# ---------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------

_ADDR = re.compile(r"0x[0-9a-fA-F]{6,}")
_TMP = re.compile(r"/[^\s'\"]*?(course-grade-|sub-|box-)[^\s'\"]*")


def _clean(text: str, limit: int = 700) -> str:
    text = _ADDR.sub("0x…", str(text))
    text = _TMP.sub("<scratch>", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text.replace("\n", " | "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _csv_safe(text: str) -> str:
    """Defuse spreadsheet formulas in student-controlled text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _num(x: float) -> str:
    return f"{x:.4g}" if x != int(x) else str(int(x))


def _job(assignment: Assignment, cells: list[str], limits: dict) -> dict:
    keys = ("cell_timeout", "probe_timeout", "job_timeout", "memory_mb", "cpu_seconds")
    return {
        "cells": cells,
        "probes": [q.probe.job_entry(assignment.name) for q in assignment.questions],
        "limits": {k: limits[k] for k in keys},
    }


def _run_with_retry(pool_get, pool_put, job: dict, notebook: bytes, limits: dict) -> dict:
    last = None
    for _ in range(2):
        worker = pool_get()
        try:
            return worker.run(job, notebook, limits)
        except SandboxError as exc:
            last = exc
            worker.restart()  # a fresh clean image, never one a submission could have touched
        finally:
            pool_put(worker)
    raise SandboxError(str(last))


def _cell_errors(reply: dict) -> list[str]:
    """``code cell 6: NameError: … (at code cell 3, line 4)`` for every cell that failed."""
    cells = reply.get("cells")
    out = []
    if not isinstance(cells, dict):
        return out
    keys = sorted((int(k), k) for k in cells if isinstance(k, str) and k.isdigit())
    for i, key in keys:
        res = cells[key]
        if isinstance(res, dict) and res.get("status") == "error":
            msg = f"code cell {i + 1}: {str(res.get('error'))[:200]}"
            where = res.get("where")
            if isinstance(where, str) and where and not where.startswith(f"code cell {i + 1},"):
                msg += f" (raised at {where[:40]})"
            out.append(msg)
    return out


def reference_answers(assignment: Assignment, worker: Worker, limits: dict) -> dict:
    """Run the solutions notebook in a box; its answers are the expected values."""
    data = read_file_safely(assignment.path, follow_symlinks=True)
    nb = parse_notebook(data, assignment.path.name)
    reply = worker.run(_job(assignment, code_cells(nb), limits), data, limits)
    expected = {}
    problems = _cell_errors(reply) + [str(e) for e in reply.get("events", [])]
    for q in assignment.questions:
        res = reply.get("probes", {}).get(q.grade_id)
        cases = res.get("cases") if isinstance(res, dict) else None
        if not isinstance(cases, list) or any(
            not isinstance(c, dict) or "error" in c for c in cases
        ):
            raise GradingError(
                f"the solutions notebook {assignment.path.name} does not answer question "
                f"{q.grade_id!r} ({q.probe.what}): {res!r:.300}; notebook problems: {problems}"
            )
        for c in cases:
            try:
                from course_lib.grading.probes import case_outputs

                case_outputs(c)
            except Malformed as exc:
                raise GradingError(f"reference answer for {q.grade_id!r} unusable: {exc}") from None
        expected[q.grade_id] = cases
    return expected


def grade_reply(assignment: Assignment, reply: dict, expected: dict) -> list[tuple[float, str]]:
    """Score every question from a sandbox reply: a list of ``(score, feedback)``."""
    probes = reply.get("probes") if isinstance(reply.get("probes"), dict) else {}
    events = (
        [str(e) for e in reply.get("events", [])] if isinstance(reply.get("events"), list) else []
    )
    errors = _cell_errors(reply)
    out = []
    for q in assignment.questions:
        res = probes.get(q.grade_id)
        cases = q.probe.make_cases(assignment.name)
        if res is None:
            why = "; ".join(events) or "the grader never reached this question"
            out.append((0.0, f"not graded: {why}"))
            continue
        if not isinstance(res, dict):
            out.append((0.0, "unusable answer from the sandbox"))
            continue
        if res.get("missing") is True:
            msg = f"{q.probe.what} not found: define it with exactly this name"
            if errors:
                msg += ". Cells that failed: " + "; ".join(errors[:3])
            out.append((0.0, msg))
            continue
        got = res.get("cases")
        if not isinstance(got, list) or len(got) != len(cases):
            why = res.get("error") if isinstance(res.get("error"), str) else "no usable answer"
            out.append((0.0, f"{q.probe.what}: {why}"))
            continue
        passed, first = 0, ""
        for case, want, have in zip(cases, expected[q.grade_id], got):
            ok, msg = compare_case(q.probe, case, want, have)
            passed += ok
            first = first or msg
        score = round(q.points * passed / len(cases), 2)
        if passed == len(cases):
            out.append((score, f"correct: {q.probe.what} passes all {len(cases)} hidden cases"))
        else:
            out.append((score, f"{passed}/{len(cases)} hidden cases correct. {first}"))
    return out


def choose_mode(isolation_mode: str, sandbox_user: str | None) -> tuple[BoxSettings, list[str]]:
    """The box settings for ``isolation_mode`` (auto, bwrap, process) and the warnings to show."""
    if isolation_mode not in isolation.MODES:
        raise GradingError(f"unknown isolation {isolation_mode!r}: one of {isolation.MODES}")
    if not hasattr(os, "fork"):
        raise GradingError(
            "grading needs Linux or macOS (it forks processes); on Windows use WSL or a container"
        )
    if isolation_mode == isolation.MODE_PROCESS:
        problem = "process mode was requested"
    else:
        problem = isolation.isolation_problem(sandbox_user=sandbox_user or None)
    if problem is None:
        uid, gid = isolation.sandbox_ids(sandbox_user or None)
        settings = BoxSettings(isolation.MODE_BWRAP, sandbox_user or "nobody", bwrap=None)
        settings.bwrap, settings.box_uid, settings.box_gid = isolation.find_bwrap(), uid, gid
        return settings, []
    if isolation_mode == isolation.MODE_BWRAP:
        raise GradingError(f"isolated mode is not available: {problem}")
    return _process_settings(problem, sandbox_user)


def _process_settings(problem: str, sandbox_user: str | None) -> tuple[BoxSettings, list[str]]:
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    settings = BoxSettings(isolation.MODE_PROCESS, sandbox_user if root else None)
    if root:
        if not sandbox_user:
            raise GradingError(
                "refusing to run submissions as root without isolation: give a --sandbox-user "
                f"(e.g. nobody) or make isolated mode available ({problem})"
            )
        try:
            settings.box_uid, settings.box_gid = isolation.sandbox_ids(sandbox_user)
        except KeyError:
            raise GradingError(f"the sandbox user {sandbox_user!r} does not exist") from None
    return settings, [isolation.process_mode_warning(problem, settings.sandbox_user)]


def grade_submissions(
    assignment: str | Assignment,
    paths: list[str | Path],
    out_dir: str | Path | None = None,
    solutions: str | Path | None = None,
    jobs: int | None = None,
    limits: dict | None = None,
    progress: bool = True,
    isolation_mode: str = "auto",
) -> Report:
    """Grade every submission under ``paths``; write the gradebook and feedback into ``out_dir``.

    ``isolation_mode``: ``"auto"`` (isolated boxes where available, else the process sandbox with
    one warning), ``"bwrap"`` (isolated boxes or an error) or ``"process"``.
    """
    from tqdm.auto import tqdm

    t0 = time.monotonic()
    if not isinstance(assignment, Assignment):
        assignment = load_assignment(assignment, solutions)
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    scan = scan_submissions(paths, assignment.name)
    subs = scan.submissions
    settings, warnings = choose_mode(isolation_mode, limits["sandbox_user"])
    secrets = [str(assignment.path.parent), *map(str, paths)]
    settings.secrets = secrets + ([str(out_dir)] if out_dir is not None else [])
    for w in warnings:
        print(w, file=sys.stderr)
    n_workers = max(1, min(jobs or os.cpu_count() or 1, max(1, len(subs))))
    results: dict[str, tuple[Submission, list[tuple[float, str]], list[str]]] = {}
    workers: list[Worker] = []
    run_dir = _run_dir(settings)
    try:
        workers = [Worker(settings) for _ in range(n_workers)]
        problem = workers[0].selftest(limits) if settings.mode == isolation.MODE_BWRAP else None
        if problem is not None:
            if isolation_mode == isolation.MODE_BWRAP:
                raise GradingError(f"isolated mode does not work here: {problem}")
            for w in workers:
                w.close()
            why = f"a test box failed: {problem}"
            new, warnings = _process_settings(why, settings.sandbox_user)
            new.secrets, settings = settings.secrets, new
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir = _run_dir(settings)
            for w in warnings:
                print(w, file=sys.stderr)
            workers = [Worker(settings) for _ in range(n_workers)]
        pool: list[Worker] = list(workers)
        lock = threading.Condition()

        def get() -> Worker:
            with lock:
                while not pool:
                    lock.wait()
                return pool.pop()

        def put(worker: Worker) -> None:
            with lock:
                pool.append(worker)
                lock.notify()

        worker = get()
        try:
            expected = reference_answers(assignment, worker, limits)
        except SandboxError as exc:
            raise GradingError(f"cannot run the solutions notebook: {exc}") from None
        finally:
            put(worker)

        def one(sub: Submission) -> tuple[Submission, list[tuple[float, str]], list[str]]:
            notes = [sub.note] if sub.note else []
            n = len(assignment.questions)
            if sub.error:
                return sub, [(0.0, sub.error)] * n, [*notes, sub.error]
            try:
                data = read_file_safely(sub.path)
                cells = code_cells(parse_notebook(data, sub.path.name))
            except NotebookError as exc:
                return sub, [(0.0, str(exc))] * n, [*notes, str(exc)]
            try:
                reply = _run_with_retry(get, put, _job(assignment, cells, limits), data, limits)
            except SandboxError as exc:
                msg = f"grader infrastructure error, please re-grade: {exc}"
                return sub, [(0.0, msg)] * n, [*notes, msg]
            notes += _cell_errors(reply) + [str(e) for e in reply.get("events", [])]
            return sub, grade_reply(assignment, reply, expected), notes

        with ThreadPoolExecutor(max_workers=n_workers) as ex:
            futures = [ex.submit(one, s) for s in subs]
            bar = tqdm(
                total=len(subs), desc=f"grading {assignment.name}", unit="nb", disable=not progress
            )
            for fut in as_completed(futures):
                sub, scores, notes = fut.result()
                results[sub.student] = (sub, scores, notes)
                bar.update(1)
            bar.close()
    finally:
        for w in workers:
            w.close()
        shutil.rmtree(run_dir, ignore_errors=True)

    rows, notes_by_student = [], {}
    for student in sorted(results):
        sub, scores, notes = results[student]
        notes_by_student[student] = [_clean(n, 300) for n in notes]
        for q, (score, feedback) in zip(assignment.questions, scores):
            rows.append(
                Row(student, assignment.name, q.grade_id, score, q.points, _clean(feedback))
            )
    report = Report(assignment, rows, notes_by_student, mode=settings.mode, warnings=warnings)
    report.skipped, report.problems = scan.skipped, scan.problems
    if out_dir is not None:
        write_outputs(report, Path(out_dir), {s: r[0] for s, r in results.items()})
    report.seconds = time.monotonic() - t0
    return report


def _run_dir(settings: BoxSettings) -> str:
    """A private folder for one grading run, removed at its end (nothing is left behind).

    It holds the clean images' temporary files and, in process mode, the boxes' scratch folders
    (a box may enter its own folder but not list the others).
    """
    run_dir = tempfile.mkdtemp(prefix="course-grade-")
    os.chmod(run_dir, 0o711)
    settings.image_tmp = os.path.join(run_dir, "image")
    os.mkdir(settings.image_tmp, 0o700)
    if settings.mode == isolation.MODE_PROCESS:
        settings.scratch_root = os.path.join(run_dir, "boxes")
        os.mkdir(settings.scratch_root)
        os.chmod(settings.scratch_root, 0o711)
    return run_dir


def write_outputs(report: Report, out_dir: Path, subs: dict[str, Submission]) -> None:
    """``gradebook.csv`` and ``feedback/<student>.txt`` (previous feedback files are replaced)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fb_dir = out_dir / "feedback"
    fb_dir.mkdir(exist_ok=True)
    for old in fb_dir.glob("*.txt"):
        old.unlink()
    path = out_dir / "gradebook.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in report.rows:
            w.writerow(r.as_list())
    totals = report.totals()
    a = report.assignment
    for student, total in totals.items():
        lines = [
            f"Assignment {a.name} — feedback for {student}",
            f"File graded: {_escape(subs[student].path.name)}",
            f"Total: {_num(total)} / {_num(a.max_score)}",
            "",
        ]
        for r in report.rows:
            if r.student == student:
                lines += [
                    f"[{r.question}] {_num(r.score)} / {_num(r.max_score)}",
                    f"    {r.feedback}",
                    "",
                ]
        notes = report.notes.get(student) or []
        if notes:
            lines.append("Problems while running the notebook:")
            lines += [f"  - {n}" for n in notes]
        (fb_dir / f"{student}.txt").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    report.gradebook, report.feedback_dir = path, fb_dir
