"""The sandbox side of the grader: a clean pre-loaded image, and the processes of one box.

Three kinds of processes, none of which ever holds an expected answer:

* the **clean image** (:func:`zygote_main`, one per worker, started by the grader as a fresh
  interpreter): it imports torch, NumPy, matplotlib and ``course_lib`` once and warms them up. It
  never runs student code, never receives a notebook and never sees a result: its only jobs are
  to fork a new box process per submission and to kill that box afterwards;
* the **box process** *G* (:func:`box_main`), forked from the clean image for exactly one
  submission and moved into that submission's box (see :mod:`~course_lib.grading.isolation`).
  It receives that submission's cells and the probes' hidden *inputs*, and supervises them;
* **attempt children** (:func:`_child`), forked by *G*: they switch to the box user, then run the
  cells and probes (so student code can neither signal nor read its supervisor). A step
  that runs past its time limit, floods its pipe or crashes the process (``os._exit``, a
  segfault, the memory limit) is marked as failed, and a new child replays the notebook without
  it (cells that were fine before it rebuild the state, questions already answered are skipped).
  So an infinite loop or ``os._exit`` costs only the cells and questions it touches.

The expected answers exist only in the grader: the solutions notebook runs in a box of its own
like any submission, its answers travel back to the grader, and comparisons happen there.

Why fork from a clean image instead of starting a fresh interpreter in every box: importing
torch costs about 2 s of CPU here, and the first optimizer another 1 s (``torch._dynamo``) — for
100 submissions on 2 cores that alone is over 2.5 minutes, beyond the grading budget. A fork of the
clean image costs a few milliseconds and gives the same state a fresh interpreter would have after
the same imports (the image has run nothing else). The price: the image's memory (about 400 MB of
imported modules) is shared copy-on-write with every box, and every box starts from a process that
imported the grader's own modules. Neither holds anything secret: no answer, no notebook, no path
of another submission ever reaches the image.

Protocol: *G* talks to the grader over a socket of its own, one JSON document per line::

    G -> grader   {"ready": {...}}                       (after checking its confinement)
    grader -> G   {"cells": [...], "probes": [...], "limits": {...}}
    G -> grader   {"begin": step} / {"end": step, "result": {...}} / {"event": text} ...
    G -> grader   {"finished": true}

Everything *G* and its children send is treated by the grader as hostile: replies are capped
(per step, per submission) and read linearly, and values are plain JSON validated strictly.
"""

from __future__ import annotations

import builtins
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time

try:  # imported here, by the image: a box process may not be able to read the environment later
    import resource
except ImportError:  # Windows: grading refuses to run there (no fork)
    resource = None

# Captured before any student code runs: a submission can rebind these names in the modules it
# sees, but not these module-level references.
_pipe, _close, _read, _write, _dup2 = os.pipe, os.close, os.read, os.write, os.dup2
_exit, _waitpid, _kill = os._exit, os.waitpid, os.kill
# POSIX only (grading refuses to start without fork; the module still imports on Windows)
_fork, _killpg, _setsid = (getattr(os, name, None) for name in ("fork", "killpg", "setsid"))
_open, _chdir, _monotonic, _select = os.open, os.chdir, time.monotonic, select.select
_dumps, _loads = json.dumps, json.loads
_type, _len, _float, _int, _str, _list, _dict = type, len, float, int, str, list, dict
_isinstance, _repr, _range, _enumerate = isinstance, repr, range, enumerate
_BaseException, _Exception = BaseException, Exception
_compile, _exec, _SyntaxError = compile, exec, SyntaxError
_NotImplementedError = NotImplementedError

MAX_STEP_BYTES = 8 * 2**20  # what one cell or question may send; more fails that step
MAX_JOB_BYTES = 32 * 2**20  # what all attempts of one submission may send together
MAX_REPLY_BYTES = MAX_JOB_BYTES + 8 * 2**20  # what the grader reads from one box at most
MAX_JOB_INPUT_BYTES = 64 * 2**20  # the job the grader sends (cells of a <= 20 MB notebook)
MAX_EVENTS = 20
MAX_TEXT = 400  # characters of an error message kept


class Flood(Exception):
    """A peer sent more than its byte budget."""


class LineReader:
    """Split a byte stream into lines in linear time, refusing more than ``cap`` bytes in total.

    Each byte is scanned once (the search for a newline resumes where the last one stopped) and
    the buffer never holds more than one unfinished line.
    """

    def __init__(self, cap: int):
        self.cap, self.total = cap, 0
        self._buf = bytearray()
        self._scanned = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self.total += _len(chunk)
        if self.total > self.cap:
            raise Flood(f"more than {self.cap} bytes")
        self._buf += chunk
        lines, start = [], 0
        while True:
            i = self._buf.find(b"\n", max(start, self._scanned))
            if i < 0:
                break
            lines.append(bytes(self._buf[start:i]))
            start = i + 1
        if start:
            del self._buf[:start]
        self._scanned = _len(self._buf)
        return lines


def send_message(sock: socket.socket, msg: dict, fds: tuple[int, ...] = ()) -> None:
    """One JSON line on a socket; ``fds`` travel with it (SCM_RIGHTS)."""
    data = (_dumps(msg, allow_nan=True, ensure_ascii=True) + "\n").encode()
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    sock.sendall(data)


def recv_message(sock: socket.socket, timeout: float | None = None) -> tuple[dict, list[int]]:
    """One JSON line from a *trusted* peer (the clean image or the grader) and its fds."""
    buf, fds = b"", []
    deadline = None if timeout is None else _monotonic() + timeout
    while not buf.endswith(b"\n"):
        if deadline is not None:
            left = deadline - _monotonic()
            if left <= 0 or not _select([sock], [], [], left)[0]:
                raise TimeoutError("no answer in time")
        data, new_fds, _, _ = socket.recv_fds(sock, 1 << 20, 16)
        fds += new_fds
        if not data:
            raise EOFError("the peer closed the connection")
        buf += data
    msg = _loads(buf)
    if _type(msg) is not _dict:
        raise ValueError("not a message")
    return msg, fds


# ---------------------------------------------------------------------------------------------
# Child side: strict conversion of results to plain data
# ---------------------------------------------------------------------------------------------


def _bind_torch():
    import numpy as np
    import torch

    return {
        "torch": torch,
        "Tensor": torch.Tensor,
        "Parameter": torch.nn.Parameter,
        "ndarray": np.ndarray,
        "np_floats": (np.float64, np.float32, np.float16, np.int64, np.int32),
        "detach": torch.Tensor.detach,
        "to": torch.Tensor.to,
        "tolist": torch.Tensor.tolist,
        "clone": torch.Tensor.clone,
        "equal": torch.equal,
        "tensor": torch.tensor,
        "float64": torch.float64,
        "from_numpy": torch.from_numpy,
        "np_ascontiguous": np.ascontiguousarray,
        "is_floating": torch.Tensor.is_floating_point,
        "no_grad": torch.no_grad,
        "zeros_like": torch.zeros_like,
        "dot": torch.dot,
        "mv": torch.mv,
    }


_T: dict = {}


class Refused(Exception):
    """A value that the harness will not send back (wrong type, complex, …)."""


def _check_floats(x) -> None:
    t = _type(x)
    if t is _list:
        for y in x:
            _check_floats(y)
    elif t is not _float:
        raise Refused(f"non-float element of type {t.__name__}")


def _to_data(x, what: str):
    """Plain nested lists of floats from a real tensor, ndarray or number; refuse anything else."""
    t = _type(x)
    if t is _T["Tensor"] or t is _T["Parameter"]:
        if x.is_complex():
            raise Refused(f"{what} is a complex tensor")
        y = _T["to"](_T["detach"](x), device="cpu", dtype=_T["float64"])
        data, shape = _T["tolist"](y), _list(y.shape)
    elif t is _T["ndarray"]:
        if x.dtype.kind not in "fiu":
            raise Refused(f"{what} is an array of dtype {x.dtype}")
        y = _T["from_numpy"](_T["np_ascontiguous"](x)).to(_T["float64"])
        data, shape = _T["tolist"](y), _list(y.shape)
    elif t is _float or t is _int or t in _T["np_floats"]:
        data, shape = _float(x), []
    else:
        raise Refused(f"{what} is a {t.__module__}.{t.__qualname__}, not a tensor or a number")
    _check_floats(data)
    return {"data": data, "shape": shape}


def _text(exc) -> str:
    try:
        text = _str(exc)
        msg = f"{_type(exc).__name__}: {text}" if text else _type(exc).__name__
    except _BaseException:
        msg = "an exception that cannot be printed"
    return msg[:MAX_TEXT]


def _where(exc) -> str:
    """``code cell 4, line 7`` for the innermost frame that belongs to the notebook."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.startswith("<code cell "):
            where = f"{name[1:-1]}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where


# ---------------------------------------------------------------------------------------------
# Child side: probes (the grader's hidden calls into the student's code)
# ---------------------------------------------------------------------------------------------


def _tensorize(v):
    if _type(v) is _list:
        return _T["tensor"](v, dtype=_T["float64"])
    return v


def _run_rule(fn, case):
    """Call ``fn(*args)``; return its outputs and the names of inputs it modified in place."""
    args = [_tensorize(a) for a in case["args"]]
    saved = [_T["clone"](a) if _type(a) is _T["Tensor"] else None for a in args]
    with _T["no_grad"]():
        out = fn(*args)
    n = case["n_out"]
    if n == 1:
        out = (out,)
    elif _type(out) not in (tuple, _list) or _len(out) != n:
        raise Refused(f"expected a tuple of {n} results, got {_type(out).__name__}")
    mutated = [
        case["names"][i]
        for i, a in _enumerate(args)
        if saved[i] is not None and not _T["equal"](a, saved[i])
    ]
    return {"out": [_to_data(o, f"result {i + 1}") for i, o in _enumerate(out)], "mutated": mutated}


def _run_number_fn(fn, case):
    args = [_tensorize(a) for a in case["args"]]
    return {"out": [_to_data(fn(*args), "the result")], "mutated": []}


def _run_value(value, case):
    return {"out": [_to_data(value, "the value")], "mutated": []}


def _run_optimizer_class(cls, case):
    """Minimise ``f(w) = ½ wᵀAw − bᵀw`` with ``cls([w], **hyper)``; return the trajectory."""
    torch = _T["torch"]
    A = _T["tensor"](case["A"], dtype=_T["float64"])
    b = _T["tensor"](case["b"], dtype=_T["float64"])
    w = torch.nn.Parameter(_T["tensor"](case["w0"], dtype=_T["float64"]))
    opt = cls([w], **case["hyper"])
    traj = []
    for _ in _range(case["steps"]):
        opt.zero_grad()
        loss = 0.5 * _T["dot"](w, _T["mv"](A, w)) - _T["dot"](b, w)
        loss.backward()
        opt.step()
        traj.append(_T["clone"](_T["detach"](w)))
    return {"out": [_to_data(torch.stack(traj), "the trajectory")], "mutated": []}


RUNNERS = {
    "rule": _run_rule,
    "number_fn": _run_number_fn,
    "value": _run_value,
    "optimizer_class": _run_optimizer_class,
}


def _run_probe(probe: dict, ns: dict) -> dict:
    target = probe["target"]
    if target not in ns:
        return {"missing": True}
    obj = ns[target]
    runner = RUNNERS[probe["runner"]]
    if probe["runner"] in ("rule", "number_fn") and not callable(obj):
        return {"error": f"`{target}` is a {_type(obj).__name__}, not a function"}
    if probe["runner"] == "optimizer_class" and not _isinstance(obj, _type):
        return {"error": f"`{target}` is a {_type(obj).__name__}, not a class"}
    cases = []
    for case in probe["cases"]:
        try:
            cases.append(runner(obj, case))
        except _NotImplementedError:
            cases.append({"error": "NotImplementedError", "not_implemented": True})
        except Refused as exc:
            cases.append({"error": f"an unusable return value: {_str(exc)[:MAX_TEXT]}"})
        except _BaseException as exc:  # noqa: BLE001 - anything the student's code raises
            cases.append({"error": _text(exc), "where": _where(exc)})
    return {"cases": cases}


# ---------------------------------------------------------------------------------------------
# Attempt child: run the job's steps
# ---------------------------------------------------------------------------------------------


def _emit(fd: int, msg: dict) -> None:
    data = (_dumps(msg, allow_nan=True, ensure_ascii=True) + "\n").encode()
    view = memoryview(data)
    while view:
        n = _write(fd, view)
        view = view[n:]


def _set_limits(limits: dict) -> None:
    def lower(which, value):  # soft and hard: student code cannot raise it again
        soft, hard = resource.getrlimit(which)
        value = _int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # macOS does not enforce every limit
            pass

    if limits.get("memory_mb") and os.path.exists("/proc/self/statm"):
        with open("/proc/self/statm") as f:  # on top of what the image already maps
            mapped = _int(f.read().split()[0]) * resource.getpagesize()
        lower(resource.RLIMIT_AS, mapped + _int(limits["memory_mb"]) * 2**20)
    if limits.get("cpu_seconds"):
        lower(resource.RLIMIT_CPU, limits["cpu_seconds"])
    lower(resource.RLIMIT_FSIZE, limits.get("file_bytes", 64 * 2**20))
    lower(resource.RLIMIT_NOFILE, 1024)  # also the hard limit: no million open files per process
    lower(resource.RLIMIT_CORE, 0)


def _child(job: dict, skip: set, done: set, fd: int, prepare) -> None:
    """Run the job's steps in this (forked) process, reporting on ``fd``; never returns.

    ``prepare()`` (when given) drops this process to the box user before any student code runs
    and returns what is wrong with its confinement (nothing runs if anything is).
    """
    try:
        _setsid()
        os.closerange(3, fd)
        os.closerange(fd + 1, 65536)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        problems = prepare() if prepare is not None else []
        if problems:
            _emit(fd, {"fatal": "refusing to run: " + "; ".join(problems)[:MAX_TEXT]})
            _exit(3)
        _set_limits(job.get("limits", {}))
        _T["torch"].manual_seed(0)
        ns = {"__name__": "__main__", "__builtins__": builtins}
    except _BaseException as exc:
        _emit(fd, {"fatal": _text(exc)})
        _exit(3)
    cells, probes = job["cells"], job["probes"]
    for s in _range(_len(cells) + _len(probes)):
        if s in skip or s in done:
            continue
        _emit(fd, {"begin": s})
        if s < _len(cells):
            result = {"status": "ok"}
            try:
                code = _compile(cells[s], f"<code cell {s + 1}>", "exec")
                _exec(code, ns)  # this *is* the sandbox
            except _SyntaxError as exc:
                result = {
                    "status": "error",
                    "error": _text(exc),
                    "where": f"code cell {s + 1}, line {exc.lineno}",
                }
            except _BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
                result = {"status": "error", "error": _text(exc), "where": _where(exc)}
        else:
            probe = probes[s - _len(cells)]
            try:
                result = _run_probe(probe, ns)
            except _BaseException as exc:  # noqa: BLE001
                result = {"error": _text(exc)}
        try:
            _emit(fd, {"end": s, "result": result})
        except _BaseException as exc:  # unserialisable (should not happen: data is plain)
            _emit(fd, {"end": s, "result": {"error": "could not send the result: " + _text(exc)}})
    _emit(fd, {"finished": True})
    _exit(0)


# ---------------------------------------------------------------------------------------------
# Box process G: supervise one submission (possibly over several attempt children)
# ---------------------------------------------------------------------------------------------


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = {
            signal.SIGKILL: "killed (SIGKILL: the memory limit, or killed from inside the box)",
            signal.SIGSEGV: "crashed (segmentation fault)",
            signal.SIGXCPU: "killed: CPU time limit",
            signal.SIGXFSZ: "killed: file size limit",
        }.get(sig, f"killed by signal {sig}")
        return name
    return f"exited with code {os.WEXITSTATUS(status)} (os._exit / sys.exit outside a cell?)"


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


_REAPED: dict[int, int] = {}  # exit statuses collected early where waitid is missing (macOS)


def _exited(pid: int) -> bool:
    """Has the child ``pid`` exited? (Its status stays available to :func:`_kill_attempt`.)"""
    try:
        if hasattr(os, "waitid"):
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        done, status = _waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    if done:
        _REAPED[pid] = status
    return bool(done)


def _kill_attempt(pid: int, cleanup) -> int:
    """Kill an attempt child, its process group and (``cleanup``) all it left; return its status."""
    try:
        _killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        _, status = _waitpid(pid, 0)
    except ChildProcessError:
        status = _REAPED.pop(pid, 0)
    if cleanup is not None:
        cleanup()
    return status


def run_job(job: dict, emit, prepare=None, cleanup=None) -> None:
    """Run all steps of ``job``, replaying around failures; stream results through ``emit``.

    ``prepare`` runs in every attempt child before student code (see :func:`_child`);
    ``cleanup`` runs after every attempt: in a box it kills every process the attempt left
    behind, so a replay never shares the box with a survivor of the attempt before.
    """
    cells, probes = job["cells"], job["probes"]
    n_cells = _len(cells)
    n_steps = n_cells + _len(probes)
    limits = job.get("limits", {})
    cell_timeout = float(limits.get("cell_timeout", 10))
    probe_timeout = float(limits.get("probe_timeout", 10))
    job_deadline = _monotonic() + float(limits.get("job_timeout", 60))
    answered: set[int] = set()
    skip: set[int] = set()
    budget = MAX_JOB_BYTES
    attempts = 0
    while attempts <= n_steps + 1:
        attempts += 1
        done = {s for s in answered if s >= n_cells}
        r, w = _pipe()
        pid = _fork()
        if pid == 0:
            _close(r)
            _child(job, skip, done, w, prepare)
        _close(w)
        reader = LineReader(budget)
        st = {"current": None, "started": 0.0, "step_bytes": 0, "finished": False}

        def take(chunk: bytes, st=st, reader=reader) -> str | None:
            """Handle a chunk of the child's output; return a failure or None."""
            try:
                lines = reader.feed(chunk)
            except Flood:
                return "job_flood"
            st["step_bytes"] += _len(chunk)
            if st["current"] is not None and st["step_bytes"] > MAX_STEP_BYTES:
                return "step_flood"
            for line in lines:
                try:
                    msg = _loads(line)
                except (ValueError, RecursionError):
                    continue
                if _type(msg) is not _dict:
                    continue
                current = st["current"]
                if "begin" in msg and _type(msg["begin"]) is _int and 0 <= msg["begin"] < n_steps:
                    st.update(current=msg["begin"], started=_monotonic(), step_bytes=0)
                    emit({"begin": msg["begin"]})
                elif "end" in msg and current is not None and msg.get("end") == current:
                    if current not in answered:
                        answered.add(current)
                        emit({"end": current, "result": msg.get("result")})
                    st["current"] = None
                elif msg.get("finished") is True:
                    st["finished"] = True
                elif "fatal" in msg:
                    emit({"event": f"sandbox setup failed: {_str(msg['fatal'])[:MAX_TEXT]}"})
            return None

        # The child's exit is watched on its own (a pidfd, else polling): what it started may
        # hold the pipe open after it died, and the death must not pass for a time-out.
        exit_fd = _pidfd(pid)
        watched = [r] if exit_fd is None else [r, exit_fd]
        failure = None
        while True:
            now = _monotonic()
            if st["current"] is not None:
                limit = cell_timeout if st["current"] < n_cells else probe_timeout
                step_deadline = st["started"] + limit
            else:
                step_deadline = now + cell_timeout
            deadline = min(step_deadline, job_deadline)
            wait = max(0.0, deadline - now)
            ready, _, _ = _select(watched, [], [], wait if exit_fd is not None else min(wait, 0.1))
            if r in ready:
                chunk = _read(r, 1 << 16)
                if not chunk:
                    break
                failure = take(chunk)
                if failure:
                    break
                continue
            if (exit_fd is not None and exit_fd in ready) or (exit_fd is None and _exited(pid)):
                while not failure and _select([r], [], [], 0)[0]:  # what it wrote before dying
                    chunk = _read(r, 1 << 16)
                    if not chunk:
                        break
                    failure = take(chunk)
                break
            if _monotonic() >= deadline:
                failure = "timeout" if deadline == step_deadline else "job_timeout"
                break
        if exit_fd is not None:
            _close(exit_fd)
        current, finished = st["current"], st["finished"]
        _close(r)
        status = _kill_attempt(pid, cleanup)
        budget -= reader.total
        if finished:
            return
        if failure == "job_timeout":
            emit({"event": "the submission ran out of its total time limit"})
            return
        if failure == "job_flood":
            emit(
                {
                    "event": f"the submission produced more than {MAX_JOB_BYTES >> 20} MB of "
                    "output in total and was stopped"
                }
            )
            return
        if current is None:  # died between steps (or before the first one)
            emit({"event": f"the sandbox process {_status_text(status)}"})
            return
        if failure == "timeout":
            limit = cell_timeout if current < n_cells else probe_timeout
            why = f"timed out after {limit:g} s"
        elif failure == "step_flood":
            why = f"produced more than {MAX_STEP_BYTES >> 20} MB of output and was stopped"
        else:
            why = f"the process {_status_text(status)}"
        answered.add(current)
        emit({"end": current, "result": {"status": "error", "error": why, "fatal": True}})
        skip.add(current)


def _read_job(sock: socket.socket) -> dict:
    reader = LineReader(MAX_JOB_INPUT_BYTES)
    while True:
        data = sock.recv(1 << 20)
        if not data:
            raise EOFError("the grader closed the connection")
        lines = reader.feed(data)
        if lines:
            job = _loads(lines[0])
            if _type(job) is not _dict:
                raise ValueError("the job is not a JSON object")
            return job


def _quiet_stdio() -> None:
    devnull = _open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        _dup2(devnull, target)
    if devnull > 2:
        _close(devnull)


def _box_environment(home: str) -> None:
    os.environ.clear()
    os.environ.update(
        {
            "HOME": home,
            "TMPDIR": home,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "USER": "nobody",
            "LOGNAME": "nobody",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "COURSE_GRADING": "1",
        }
    )
    tempfile.tempdir = home
    sys.argv = ["submission.ipynb"]
    sys.dont_write_bytecode = True


def box_main(chan_fd: int, mode: str, drop: dict | None) -> None:
    """Process G, a box's supervisor: check it, run one submission's job, report; never returns.

    G itself runs no student code: every attempt child switches to the box user first (``drop``:
    ``{"box": max_processes}`` in isolated mode, ``{"uid", "gid", "max_processes"}`` for a root
    grader in process mode, ``None`` without root). So a submission cannot signal, trace or kill
    its supervisor, and whatever it leaves behind is killed before the next attempt (G adopts
    orphans as a subreaper).
    """
    from course_lib.grading import isolation

    sock = None
    try:
        sock = socket.socket(fileno=chan_fd)
        _quiet_stdio()
        _box_environment(os.getcwd())
        subreaper = isolation.become_subreaper()
        problems, prepare = [], None
        if mode == isolation.MODE_BWRAP:
            supervisor = sum(1 << c for c in isolation.SUPERVISOR_CAPS)
            problems = isolation.confinement_problems(0, supervisor, outside_parent=True)
            max_processes = drop["box"] if drop else None

            def prepare():
                isolation.become_box_user(max_processes)
                return isolation.confinement_problems(isolation.BOX_UID, 0)

        elif drop is not None:
            uid, gid, max_processes = drop["uid"], drop["gid"], drop["max_processes"]

            def prepare():
                isolation.become_user(uid, gid, max_processes)
                return isolation.writable_import_path()

        if problems:
            send_message(sock, {"fatal": "refusing to run: " + "; ".join(problems)[:MAX_TEXT]})
            _exit(4)
        send_message(sock, {"ready": {"mode": mode, "uid": os.getuid(), "pid": os.getpid()}})
        job = _read_job(sock)
        cleanup = isolation.kill_descendants if subreaper else None
        run_job(job, lambda msg: send_message(sock, msg), prepare, cleanup)
        send_message(sock, {"finished": True})
    except _BaseException as exc:  # noqa: BLE001 - report anything, never hang the grader
        try:
            if sock is not None:
                send_message(sock, {"fatal": _text(exc)})
        except _BaseException:
            pass
    _exit(0)


# ---------------------------------------------------------------------------------------------
# The clean image: fork one box per submission
# ---------------------------------------------------------------------------------------------


def _close_fds_except(keep: set[int]) -> None:
    try:
        fds = [_int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(_range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                _close(fd)
            except OSError:
                pass


def _readline(fd: int, timeout: float) -> str:
    buf = b""
    deadline = _monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - _monotonic()
        if left <= 0 or not _select([fd], [], [], left)[0]:
            raise TimeoutError("the box process did not answer in time")
        chunk = _read(fd, 4096)
        if not chunk:
            raise EOFError("the box process ended during set-up")
        buf += chunk
    return buf.decode().strip()


def _enter_and_run(chan_fd: int, to_z: int, from_z: int, max_processes: int) -> None:
    """Process C (isolated mode): join the box prepared by bubblewrap, fork G; never returns."""
    from course_lib.grading import isolation

    try:
        _close_fds_except({chan_fd, to_z, from_z})
        _quiet_stdio()
        isolation.unshare_user_namespace()
        _write(to_z, b"unshared\n")
        if _readline(from_z, 30) != "mapped":
            raise isolation.IsolationError("no id map")
        isolation.forbid_user_namespaces()
        _write(to_z, b"limited\n")
        target = _int(_readline(from_z, 60))
        isolation.join_box(target)
        isolation.become_box_supervisor()
        _chdir("/tmp")
        g = _fork()
        if g == 0:
            _close(to_z)
            _close(from_z)
            box_main(chan_fd, isolation.MODE_BWRAP, {"box": max_processes})
        _write(to_z, f"g {g}\n".encode())
        _exit(0)
    except _BaseException as exc:  # noqa: BLE001
        try:
            _write(to_z, f"error {_text(exc)}\n".replace("\n", " ").encode() + b"\n")
        finally:
            _exit(1)


class _Image:
    """State of the clean image: its settings and the box it is currently serving."""

    def __init__(self, config: dict):
        self.config = config
        self.bwrap: object | None = None  # the bubblewrap process of the current box
        self.g: int | None = None
        self.scratch: str | None = None

    # -- isolated mode
    def spawn_bwrap(self, chan_fd: int, nb_fd: int | None, limits: dict) -> dict:
        import subprocess

        from course_lib.grading import isolation

        cfg = self.config
        c_in, z_out = _pipe()  # Z -> C
        z_in, c_out = _pipe()  # C -> Z
        c = _fork()
        if c == 0:
            _close(z_out)
            _close(z_in)
            _enter_and_run(chan_fd, c_out, c_in, _int(limits["max_processes"]))
        _close(c_in)
        _close(c_out)
        _close(chan_fd)
        box = None
        try:
            self._expect(z_in, "unshared")
            isolation.write_id_maps(c, cfg["box_uid"], cfg["box_gid"])
            _write(z_out, b"mapped\n")
            self._expect(z_in, "limited")
            userns = _open(f"/proc/{c}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            info_r, info_w = _pipe()
            try:
                cmd = isolation.bwrap_command(
                    cfg["bwrap"],
                    cfg["binds"],
                    userns_fd=userns,
                    info_fd=info_w,
                    notebook_fd=nb_fd,
                    disk_bytes=_int(limits["disk_mb"]) * 2**20,
                    shm_bytes=_int(limits["shm_mb"]) * 2**20,
                )
                fds = (userns, info_w) + ((nb_fd,) if nb_fd is not None else ())
                box = subprocess.Popen(
                    cmd,
                    pass_fds=fds,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            finally:
                _close(userns)
                _close(info_w)
            self.bwrap = box
            info = self._bwrap_info(info_r, box)
            pid1 = _int(info["child-pid"])
            deadline = _monotonic() + 30
            while not isolation.child_pids(pid1):
                if _monotonic() > deadline or box.poll() is not None:
                    raise isolation.IsolationError("bubblewrap did not start its placeholder")
                time.sleep(0.002)
            _write(z_out, f"{isolation.child_pids(pid1)[0]}\n".encode())
            answer = _readline(z_in, 60)
            if not answer.startswith("g "):
                raise isolation.IsolationError(answer.removeprefix("error ").strip())
            self.g = _int(answer[2:])
            return {"spawned": {"g": self.g}}
        except _BaseException:
            try:
                _kill(c, signal.SIGKILL)
            except OSError:
                pass
            raise
        finally:
            _close(z_in)
            _close(z_out)
            try:
                _waitpid(c, 0)
            except ChildProcessError:
                pass

    @staticmethod
    def _expect(fd: int, word: str) -> None:
        answer = _readline(fd, 30)
        if answer != word:
            raise RuntimeError(answer.removeprefix("error ").strip() or f"expected {word!r}")

    @staticmethod
    def _bwrap_info(fd: int, box) -> dict:
        buf = b""
        deadline = _monotonic() + 60
        try:
            while True:
                left = deadline - _monotonic()
                if left <= 0 or not _select([fd], [], [], left)[0]:
                    raise TimeoutError("bubblewrap did not set up the box in time")
                chunk = _read(fd, 4096)
                if chunk:
                    buf += chunk
                    try:
                        info = _loads(buf)
                    except ValueError:
                        continue
                    if _type(info) is _dict and "child-pid" in info:
                        return info
                    continue
                box.wait(timeout=30)
                err = box.stderr.read().decode("utf-8", "replace").strip()
                raise RuntimeError(f"bubblewrap failed: {err[-MAX_TEXT:]}")
        finally:
            _close(fd)

    # -- process mode
    def spawn_process(self, chan_fd: int, limits: dict) -> dict:
        cfg = self.config
        self.scratch = tempfile.mkdtemp(prefix="box-", dir=cfg["scratch_root"])
        root = hasattr(os, "geteuid") and os.geteuid() == 0 and cfg.get("box_uid") is not None
        if root:
            os.chown(self.scratch, cfg["box_uid"], cfg["box_gid"])
        os.chmod(self.scratch, 0o700)
        g = _fork()
        if g == 0:
            try:
                _close_fds_except({chan_fd})
                _setsid()
                _chdir(self.scratch)
            except _BaseException:
                _exit(5)
            from course_lib.grading import isolation

            drop = None
            if root:  # the attempt children run as the sandbox user, G stays the image's user
                drop = {"uid": cfg["box_uid"], "gid": cfg["box_gid"], "max_processes": 512}
            box_main(chan_fd, isolation.MODE_PROCESS, drop)
        _close(chan_fd)
        self.g = g
        return {"spawned": {"g": g}}

    # -- both
    def end(self) -> dict:
        from course_lib.grading import isolation

        if self.bwrap is not None:
            self.bwrap.kill()
            self.bwrap.wait()
            self.bwrap.stderr.close()
            self.bwrap = None
        killed = isolation.kill_descendants()
        if self.g is not None:
            try:  # where /proc is missing (macOS): the box's session
                _killpg(self.g, signal.SIGKILL)
            except OSError:
                pass
            try:
                _waitpid(self.g, 0)
            except ChildProcessError:
                pass
            self.g = None
        isolation.reap()
        if self.scratch is not None:
            _rmtree(self.scratch)
            self.scratch = None
        return {"ended": {"killed": killed}}


def _rmtree(path: str) -> None:
    import shutil

    def retry_writable(func, p, _exc):
        try:  # a submission may have removed the write bit from its own folders
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry_writable)


def _warm_up() -> None:
    """Pay one-off costs once in the image instead of once per submission.

    Measured on the course notebooks: the first ``torch.optim.Optimizer`` imports ``torch._dynamo``
    (1–5 s) and the first matplotlib figure loads fonts (~0.5 s); after this warm-up a chapter's
    notebook runs in well under a second. No threads are started and no autograd graph is run, so
    forking afterwards is safe.
    """
    for mod in ("course_lib", "course_lib.checks", "course_lib.exercises", "torch._dynamo"):
        try:
            __import__(mod)
        except ImportError:
            pass
    torch = _T["torch"]
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    try:
        from course_lib.exercises import prepare

        prepare()  # what measure exercises load lazily (experiments, the digits)
    except ImportError:
        pass
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 2], label="a")
    ax.contour([[0.0, 1.0], [1.0, 0.0]])
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("warm-up")
    fig.canvas.draw()
    plt.close(fig)


def zygote_main(control_fd: int) -> None:
    """The clean image: load, warm up, then fork and end boxes on the grader's request."""
    from course_lib.grading import isolation

    ctrl = socket.socket(fileno=control_fd)
    isolation.die_with_parent()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray prints from imports go to the grader's log, never into a protocol
    os.environ["MPLBACKEND"] = "Agg"
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    _T.update(_bind_torch())
    _T["torch"].set_num_threads(1)
    _warm_up()
    subreaper = isolation.become_subreaper()
    msg, _ = recv_message(ctrl)
    config = msg.get("config", {})
    if config.get("mode") == isolation.MODE_BWRAP:
        import course_lib

        package = os.path.dirname(os.path.realpath(course_lib.__file__))
        config["binds"] = isolation.environment_binds(sys.path, package)
        leaks = isolation.exposed(config["binds"], config.get("secrets", []))
        if leaks:
            send_message(
                ctrl,
                {
                    "error": f"the sandbox would see {leaks[0]}: it lies inside the Python "
                    f"environment or /usr that boxes need ({', '.join(config['binds'])}); "
                    "move it elsewhere"
                },
            )
            return
    image = _Image(config)
    send_message(ctrl, {"ready": {"pid": os.getpid(), "subreaper": subreaper}})
    while True:
        try:
            msg, fds = recv_message(ctrl)
        except (EOFError, ConnectionError, ValueError):
            break
        try:
            if msg.get("cmd") == "spawn":
                limits = msg.get("limits", {})
                if config.get("mode") == isolation.MODE_BWRAP:
                    nb_fd = fds[1] if _len(fds) > 1 else None
                    try:
                        reply = image.spawn_bwrap(fds[0], nb_fd, limits)
                    finally:
                        if nb_fd is not None:
                            _close(nb_fd)
                else:
                    for fd in fds[1:]:
                        _close(fd)
                    reply = image.spawn_process(fds[0], limits)
            elif msg.get("cmd") == "end":
                reply = image.end()
            else:
                reply = {"error": f"unknown command {msg.get('cmd')!r}"}
        except Exception as exc:  # a failed box must not take the image down
            try:
                image.end()
            except Exception:
                pass
            reply = {"error": _text(exc)}
        send_message(ctrl, reply)
    image.end()


if __name__ == "__main__":
    zygote_main(_int(sys.argv[1]))
