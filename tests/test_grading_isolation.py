"""The box around a submission, probed from inside as an attacker would (isolated and process mode).

Each test runs a few cells in a real box of a real worker and reads back what the code inside
could see and do, as numbers (``value`` probes), or checks the host afterwards. Isolated-mode tests
skip with the reason where bubblewrap cannot be used (no bwrap, not root, not Linux); CI sets
``COURSE_REQUIRE_BWRAP=1`` so that they fail there instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from course_lib.grading import isolation
from course_lib.grading.grader import DEFAULT_LIMITS, Worker, choose_mode, grade_submissions

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LIMITS = {**DEFAULT_LIMITS, "cell_timeout": 20.0, "probe_timeout": 10.0, "job_timeout": 60.0}


def require_bwrap() -> None:
    problem = isolation.isolation_problem()
    if problem:
        if os.environ.get("COURSE_REQUIRE_BWRAP"):  # CI installs bubblewrap: never skip there
            pytest.fail(
                f"isolated mode unavailable although COURSE_REQUIRE_BWRAP is set: {problem}"
            )
        pytest.skip(f"isolated mode unavailable: {problem}")


def make_worker(mode: str) -> Worker:
    settings, _ = choose_mode(mode, "nobody")
    settings.secrets = [str(SOLUTIONS)]
    if mode == isolation.MODE_PROCESS:  # as the grader does: a folder the sandbox user can enter
        settings.scratch_root = tempfile.mkdtemp(prefix="course-grade-test-")
        os.chmod(settings.scratch_root, 0o711)
    worker = Worker(settings)
    worker.wait_ready()
    return worker


@pytest.fixture(scope="module")
def box():
    require_bwrap()
    worker = make_worker(isolation.MODE_BWRAP)
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def process_box():
    worker = make_worker(isolation.MODE_PROCESS)
    yield worker
    worker.close()
    shutil.rmtree(worker.settings.scratch_root)


def run(worker: Worker, cells: list[str], names: list[str], limits: dict | None = None, nb=None):
    """Run ``cells``; return ``{name: value}`` for the float variables ``names`` and the reply."""
    job = {
        "cells": cells,
        "probes": [
            {"name": n, "target": n, "runner": "value", "cases": [{"label": n}]} for n in names
        ],
        "limits": {**LIMITS, **(limits or {})},
    }
    reply = worker.run(job, nb if nb is not None else b"{}", {**LIMITS, **(limits or {})})
    values = {}
    for n in names:
        res = reply["probes"].get(n)
        cases = res.get("cases") if isinstance(res, dict) else None
        if cases and "out" in cases[0]:
            values[n] = cases[0]["out"][0]["data"]
    return values, reply


# ---------------------------------------------------------------------------------------------
# Who the submission is, and what it can reach
# ---------------------------------------------------------------------------------------------


def test_box_process_has_no_privileges(box):
    cells = [
        "import os, ctypes\n"
        "st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "caps = float(sum(int(st[k].strip(), 16) != 0 for k in "
        "('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')))\n"
        "nnp = float(st['NoNewPrivs'].strip())\n"
        "uid = float(os.getuid())\n"
        "parent = open(f'/proc/{os.getppid()}/status').read()\n"
        "ppid = float(parent.split('PPid:')[1].split()[0])\n"  # the box process's parent
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "nested = float(libc.unshare(0x10000000) == 0)\n"  # CLONE_NEWUSER
        "mntns = float(libc.unshare(0x00020000) == 0)\n"  # CLONE_NEWNS
    ]
    v, _ = run(box, cells, ["caps", "nnp", "uid", "ppid", "nested", "mntns"])
    assert v == {"caps": 0, "nnp": 1, "uid": 65534, "ppid": 0, "nested": 0, "mntns": 0}


def test_box_runs_as_the_sandbox_user_on_the_host(box):
    """Outside, student code runs as ``nobody``; its supervisor keeps only the box-local
    capabilities it needs (kill, switch user) and nothing in any other namespace."""
    cells = ["import time\nfor _ in range(60):\n    time.sleep(0.05)\nhold = 1.0"]
    seen: set[tuple[int, int]] = set()

    def watch():
        time.sleep(1.0)  # the box is running its cell by now (set-up takes milliseconds)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for pid in isolation.descendants(box.proc.pid):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = dict(
                            line.split(":", 1) for line in f.read().splitlines() if ":" in line
                        )
                except OSError:
                    continue
                if "python" in status["Name"]:
                    seen.add((int(status["Uid"].split()[0]), int(status["CapEff"], 16)))
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    run(box, cells, ["hold"])
    t.join()
    nobody = isolation.sandbox_ids("nobody")[0]
    supervisor = sum(1 << c for c in isolation.SUPERVISOR_CAPS)
    assert seen == {(nobody, 0), (0, supervisor)}


def test_box_sees_no_solutions_submissions_or_grader(box, tmp_path):
    """Findings 7, 10, 14: nothing but the environment is mounted; /proc shows only the box."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "classmate.ipynb").write_text("{}")
    cells = [
        "import os, glob\n"
        f"solutions = float(os.path.exists({str(SOLUTIONS)!r}))\n"
        f"inbox = float(os.path.exists({str(inbox)!r}))\n"
        f"repo = float(sorted(os.listdir({str(ROOT)!r})) != ['course_lib'] and "
        f"sorted(os.listdir({str(ROOT)!r})) != ['.venv', 'course_lib'])\n"
        "home = float(len(glob.glob('/root/*')) + len(glob.glob('/home/*')))\n"
        "etc = float(bool(set(os.listdir('/etc')) - {'ld.so.cache', 'ld.so.conf', 'localtime', "
        "'fonts'}))\n"
        "procs = float(len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
        "cmdlines = ' '.join(open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace') "
        "for p in os.listdir('/proc') if p.isdigit())\n"
        f"leak = float({str(inbox)!r} in cmdlines or 'classmate' in cmdlines)\n"
        "nb = float(open('/submission/submission.ipynb').read() == '{\"cells\": []}')\n"
    ]
    v, _ = run(
        box,
        cells,
        ["solutions", "inbox", "repo", "home", "etc", "procs", "leak", "nb"],
        nb=b'{"cells": []}',
    )
    assert v["solutions"] == 0 and v["inbox"] == 0 and v["repo"] == 0
    assert v["home"] == 0 and v["etc"] == 0 and v["leak"] == 0 and v["nb"] == 1
    assert v["procs"] <= 6  # bubblewrap's init, its placeholder, the box process, this attempt


def test_import_path_and_root_are_read_only(box):
    """Finding 1: nothing the submission can write is on the import path; '/' is read-only."""
    cells = [
        "import os, sys\n"
        "hits = 0\n"
        "for d in [*sys.path, os.getcwd(), '/', '/usr', '/etc', '/submission', '/var/tmp']:\n"
        "    try:\n"
        "        with open(os.path.join(d or '.', 'monkeytype.py'), 'w') as f:\n"
        "            f.write('x = 1')\n"
        "        hits += d in sys.path or d == ''\n"
        "    except OSError:\n"
        "        pass\n"
        "writable_on_path = float(hits)\n"
        "cwd_on_path = float('' in sys.path or os.getcwd() in sys.path)\n"
        "bytecode = float(sys.dont_write_bytecode)\n"
    ]
    v, _ = run(box, cells, ["writable_on_path", "cwd_on_path", "bytecode"])
    assert v == {"writable_on_path": 0, "cwd_on_path": 0, "bytecode": 1}


def test_tmp_and_shm_are_private_limited_and_gone_afterwards(box):
    """Findings 4, 9, 13: writes land in the box's own size-limited tmpfs and die with it."""
    token = f"stash-{os.getpid()}-{time.monotonic_ns()}"
    fill = (
        "import os\n"
        "def fill(d):\n"
        "    n = 0\n"
        "    try:\n"
        "        with open(os.path.join(d, 'fill'), 'wb') as f:\n"
        "            while n < 2**31:\n"
        "                f.write(b'x' * 2**20)\n"
        "                f.flush()\n"
        "                n += 2**20\n"
        "    except OSError:\n"
        "        pass\n"
        "    return float(n)\n"
        "tmp, shm = fill('/tmp'), fill('/dev/shm')\n"
        "var = 0.0\n"
        "try:\n"
        "    open('/var/tmp/x', 'w')\n"
        "    var = 1.0\n"
        "except OSError:\n"
        "    pass\n"
        f"open('/tmp/{token}', 'w').write('answers')\n"
    )
    limits = {"disk_mb": 48, "shm_mb": 16}
    v, _ = run(box, [fill], ["tmp", "shm", "var"], limits)
    assert v["tmp"] <= 48 * 2**20 and v["shm"] <= 16 * 2**20 and v["var"] == 0
    assert v["tmp"] >= 40 * 2**20, "the private /tmp holds what the limit allows"
    again, _ = run(box, [f"import os\nfound = float(os.path.exists('/tmp/{token}'))"], ["found"])
    assert again == {"found": 0}, "a later box starts with an empty /tmp"
    for host_dir in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not (Path(host_dir) / token).exists()


def test_no_network_not_even_the_hosts_localhost(box):
    """Finding 11: a listener on the grader's localhost receives nothing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    received: list[bytes] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            received.append(conn.recv(100))
            conn.close()

    t = threading.Thread(target=accept)
    t.start()
    cells = [
        "import socket\n"
        "sent = 0.0\n"
        "for host in ('127.0.0.1', 'localhost', '10.0.2.2', '8.8.8.8'):\n"
        "    try:\n"
        f"        s = socket.create_connection((host, {port}), timeout=1)\n"
        "        s.sendall(b'hidden test inputs')\n"
        "        sent += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "ifaces = float(len(socket.if_nameindex()))\n"
    ]
    try:
        v, _ = run(box, cells, ["sent", "ifaces"])
    finally:
        stop.set()
        t.join()
        server.close()
    assert v == {"sent": 0, "ifaces": 1} and received == []


# ---------------------------------------------------------------------------------------------
# Limits of the whole box
# ---------------------------------------------------------------------------------------------


def test_fork_limit_counts_the_whole_box(box):
    cells = [
        "import os, time\n"
        "kids = []\n"
        "for _ in range(500):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "forked = float(len(kids))\n"
    ]
    v, _ = run(box, cells, ["forked"], {"max_processes": 24})
    assert 5 <= v["forked"] < 24


def _memory_bomb(children: int, mb: int) -> str:
    return (
        "import os, time\n"
        f"for _ in range({children}):\n"
        "    if os.fork() == 0:\n"
        f"        block = b'x' * ({mb} * 2**20)\n"
        "        time.sleep(20)\n"
        "        os._exit(0)\n"
        "time.sleep(15)\n"
        "survived = 1.0\n"
    )


@pytest.mark.parametrize("mode", [isolation.MODE_BWRAP, isolation.MODE_PROCESS])
def test_memory_limit_covers_all_processes_of_a_box(request, mode):
    """Finding 12: 6 forked children x 200 MB do not pass a 512 MB limit."""
    worker = request.getfixturevalue("box" if mode == isolation.MODE_BWRAP else "process_box")
    t0 = time.monotonic()
    v, reply = run(
        worker, ["before = 1.0", _memory_bomb(6, 200)], ["before", "survived"], {"memory_mb": 512}
    )
    assert time.monotonic() - t0 < 12, "the box is stopped, not waited for"
    assert "survived" not in v
    assert any("more than 512 MB of memory" in e for e in reply["events"])
    assert "more than 512 MB" in reply["cells"]["1"]["error"]


# ---------------------------------------------------------------------------------------------
# Nothing survives a box
# ---------------------------------------------------------------------------------------------

CHAIN = (
    "import ctypes, os, time\n"
    "def chain(depth):\n"
    "    if os.fork():\n"
    "        return\n"
    "    os.setsid()\n"
    "    ctypes.CDLL(None).prctl(15, b'%s', 0, 0, 0)\n"  # PR_SET_NAME
    "    if depth:\n"
    "        chain(depth - 1)\n"
    "    while True:\n"
    "        time.sleep(0.5)\n"
    "        if %s:\n"  # in a box: kill everything it may (never on the host: shared machine)
    "            os.kill(-1, 9)\n"
    "chain(40)\n"
    "time.sleep(1)\n"
    "done = 1.0\n"
)


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


@pytest.mark.parametrize("mode", [isolation.MODE_BWRAP, isolation.MODE_PROCESS])
def test_a_40_deep_fork_chain_does_not_outlive_its_box(request, mode):
    """Finding 6: every process a submission starts dies with its box."""
    worker = request.getfixturevalue("box" if mode == isolation.MODE_BWRAP else "process_box")
    name = f"chain{os.getpid() % 100000}"
    run(worker, [CHAIN % (name.encode(), mode == isolation.MODE_BWRAP)], ["done"])
    time.sleep(0.5)
    assert _host_processes_named(name) == []
    v, _ = run(worker, ["after = 2.0"], ["after"])
    assert v == {"after": 2.0}, "the next box is unaffected"


# ---------------------------------------------------------------------------------------------
# Determinism and the environment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [isolation.MODE_BWRAP, isolation.MODE_PROCESS])
def test_hash_seed_is_fixed_and_environment_clean(request, mode, monkeypatch):
    """Finding 16: str hashes (set order) are those of PYTHONHASHSEED=0, in every box."""
    worker = request.getfixturevalue("box" if mode == isolation.MODE_BWRAP else "process_box")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    want = subprocess.run(
        [sys.executable, "-c", "print(hash('course') % 1000003)"],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
    ).stdout.strip()
    cells = [
        "import os\n"
        "h = float(hash('course') % 1000003)\n"
        "secret = float(any('SECRET' in k for k in os.environ))\n"
        "tmpdir = float(os.environ['TMPDIR'] == os.getcwd() == os.environ['HOME'])\n"
    ]
    first, _ = run(worker, cells, ["h", "secret", "tmpdir"])
    second, _ = run(worker, cells, ["h", "secret", "tmpdir"])
    assert first == second == {"h": float(want), "secret": 0, "tmpdir": 1}


def test_process_mode_import_path_is_not_writable_by_the_sandbox_user(process_box):
    """Finding 1 in process mode: the box's cwd is not on sys.path, nor anything it may write."""
    if os.geteuid() != 0:
        pytest.skip("without root, process mode runs submissions as you (documented as unsafe)")
    cells = [
        "import os, sys\n"
        "writable = float(sum(os.access(p or '.', os.W_OK) for p in sys.path if os.path.exists(p or '.')))\n"
        "cwd_on_path = float('' in sys.path or os.getcwd() in sys.path)\n"
    ]
    v, _ = run(process_box, cells, ["writable", "cwd_on_path"])
    assert v == {"writable": 0, "cwd_on_path": 0}


def test_process_mode_leaves_no_scratch_folder(process_box):
    root = Path(process_box.settings.scratch_root)
    run(process_box, ["import os\nopen('big', 'wb').write(b'x' * 2**20)\nok = 1.0"], ["ok"])
    assert list(root.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Choosing the mode
# ---------------------------------------------------------------------------------------------


def test_isolated_mode_is_the_default_where_available(tmp_path, capsys):
    require_bwrap()
    (tmp_path / "ada.ipynb").write_bytes((SOLUTIONS / "01_gradient_descent.ipynb").read_bytes())
    report = grade_submissions("01_gradient_descent", [tmp_path], progress=False, jobs=1)
    assert report.mode == isolation.MODE_BWRAP and report.warnings == []
    assert "WARNING" not in capsys.readouterr().err
    assert report.totals() == {"ada": 10.0}


def test_process_mode_warns_once_saying_what_is_not_isolated(tmp_path, capsys):
    (tmp_path / "ada.ipynb").write_bytes((SOLUTIONS / "01_gradient_descent.ipynb").read_bytes())
    (tmp_path / "ben.ipynb").write_bytes((SOLUTIONS / "01_gradient_descent.ipynb").read_bytes())
    report = grade_submissions(
        "01_gradient_descent", [tmp_path], progress=False, jobs=2, isolation_mode="process"
    )
    err = capsys.readouterr().err
    assert report.mode == isolation.MODE_PROCESS and report.totals() == {"ada": 10.0, "ben": 10.0}
    assert err.count("WARNING") == 1 and len(report.warnings) == 1
    for what in ("NOT isolated", "network", "/tmp", "other submissions", "container"):
        assert what in err, what


@pytest.mark.parametrize("mode", [isolation.MODE_BWRAP, isolation.MODE_PROCESS])
def test_limits_cannot_be_raised_from_inside(request, mode):
    worker = request.getfixturevalue("box" if mode == isolation.MODE_BWRAP else "process_box")
    # without root, process mode cannot limit processes per submission (documented)
    nproc = mode == isolation.MODE_BWRAP or os.geteuid() == 0
    cells = [
        "import resource\n"
        "raised = 0.0\n"
        "for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE,\n"
        f"              resource.RLIMIT_NOFILE{', resource.RLIMIT_NPROC' if nproc else ''}):\n"
        "    soft, hard = resource.getrlimit(which)\n"
        "    try:\n"
        "        resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "        raised += 1\n"
        "    except (ValueError, OSError):\n"
        "        pass\n"
        "nofile = float(resource.getrlimit(resource.RLIMIT_NOFILE)[1])\n"
    ]
    v, _ = run(worker, cells, ["raised", "nofile"])
    assert v == {"raised": 0, "nofile": 1024}


@pytest.mark.parametrize("mode", [isolation.MODE_BWRAP, isolation.MODE_PROCESS])
def test_a_restarted_worker_imports_nothing_a_box_planted(request, mode):
    """Findings 1 and 2: modules planted in every reachable folder are never imported, also not
    by a restarted worker (the old grader restarted its sandbox into the planted folder)."""
    from tests.grading_fixtures import PLANT

    worker = request.getfixturevalue("box" if mode == isolation.MODE_BWRAP else "process_box")
    token = f"{os.getpid()}{time.monotonic_ns()}"
    plant = PLANT.format(
        token=token,
        solutions=str(SOLUTIONS),
        inbox="/nonexistent",
        shared_dirs='"/tmp", "/var/tmp", "/dev/shm",' if mode == isolation.MODE_BWRAP else "",
    ).replace("os.kill(os.getppid(), 9)", "planted = 1.0")
    v, _ = run(worker, [plant], ["planted"])
    assert v == {"planted": 1.0}
    worker.restart()
    cells = [
        "import sys\n"
        "imported = float(any(m in sys.modules for m in ('_pwn', 'monkeytype')))\n"
    ]
    v, _ = run(worker, cells, ["imported"])
    assert v == {"imported": 0}
    assert not Path(f"/var/tmp/pwned-{token}").exists()


def test_the_environment_is_mounted_after_the_private_tmp():
    """Regression: with the course checked out under /tmp (a CI clone), the box's private /tmp
    was mounted over the Python environment, and any module not imported before the box
    started could not be imported in it."""
    binds = ["/tmp/clone/.venv", "/tmp/clone/course_lib", "/opt/python"]
    cmd = isolation.bwrap_command(
        "bwrap", binds, userns_fd=3, info_fd=4, notebook_fd=None, disk_bytes=1, shm_bytes=1
    )
    tmpfs = {cmd[i + 1]: i for i, arg in enumerate(cmd) if arg == "--tmpfs"}
    for b in binds:
        bound = max(i for i, arg in enumerate(cmd) if arg == "--ro-bind" and cmd[i + 1] == b)
        for mount, at in tmpfs.items():
            if b.startswith(mount + "/"):
                assert at < bound, f"{b} is bound before the tmpfs on {mount} hides it"
    # the folder that leads to the environment in the private /tmp is read-only afterwards
    assert "/tmp/clone" in tmpfs and "--dir" not in cmd[cmd.index("/tmp/clone") - 1 :][:1]
    remount = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--remount-ro"]
    last_bind = max(i for i, arg in enumerate(cmd) if arg == "--ro-bind")
    assert "/tmp/clone" in remount
    assert cmd.index("/tmp/clone", last_bind) > last_bind


def test_a_module_first_imported_inside_the_box_is_found(box):
    """Nothing is imported for the submission in advance except torch & co: the rest of the
    environment must be reachable from inside the box, wherever the course lives."""
    v, reply = run(
        box,
        ["import importlib\nimportlib.import_module('course_lib.experiments.geometry')\nok = 1.0\n"],
        ["ok"],
    )
    assert v.get("ok") == 1.0, reply
