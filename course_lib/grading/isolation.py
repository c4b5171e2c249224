"""Isolation of one submission: a bubblewrap box, entered by a fork of a clean Python image.

Every submission runs in a box of its own. The grader never executes student code; the code runs
in processes that live inside the box and die with it.

**Isolated mode** (Linux, ``bwrap`` installed, grader running as root — a throwaway container is
fine). Per submission:

1. the worker's clean image (see :mod:`~course_lib.grading.harness`) forks a process *C*, which
   creates a new user namespace. The image writes its id map: uid/gid 0 for the set-up, and the
   box user (``65534`` inside) mapped to the sandbox user outside (``nobody`` by default). *C* sets
   the namespace's ``max_user_namespaces`` to 0, so nothing inside can create another one;
2. ``bwrap --userns`` builds the box *in that user namespace* — bubblewrap, the maintained tool
   that Flatpak uses, does all namespace and mount work: new PID, mount, network (loopback only),
   IPC and UTS namespaces; a root that is a read-only tmpfs holding only ``/usr`` (and the ``/bin``
   & co. links), a few files of ``/etc``, the Python environment and ``course_lib``, read-only;
   the notebook being graded, read-only, as ``/submission/submission.ipynb``; a private ``/proc``
   and ``/dev``; a size-limited private ``/tmp`` and ``/dev/shm``. ``--die-with-parent`` and the
   PID namespace make the box die as a whole: killing ``bwrap`` kills everything in it;
3. *C* joins the box's namespaces (``setns``) and root, keeps only the capabilities a supervisor
   needs inside the box (:data:`SUPERVISOR_CAPS`: signal and switch user, nothing else, and only
   over the box's own namespaces), sets ``no_new_privs`` and forks *G*, the box's supervisor;
4. *G* checks its own confinement (exact capabilities, ``no_new_privs``, read-only root, no
   writable directory on ``sys.path``, parent outside its PID namespace) and refuses to run when
   a check fails. Every attempt child it forks switches to the box user before any student code
   runs — a real uid change, so the kernel drops every capability and counts the box's processes
   under its own user namespace — and checks that it holds nothing. Student code thus cannot
   signal, trace or feed its supervisor, and the supervisor kills whatever an attempt leaves
   behind before the next one.

Limits of the whole box: processes (``RLIMIT_NPROC``, counted per box because each box has its
own user namespace), memory (the grader adds up the proportional set size of every process of the
box and kills the box above the limit; every process also has an address-space limit), disk (the
tmpfs sizes), time (per cell, per question, per submission). No cgroups: they need a delegated
cgroup v2 subtree, which a grader cannot count on (the CI machine runs under a cgroup v1 hierarchy
owned by its host). The price: memory is sampled (4 times a second) rather than enforced by the
kernel, and CPU is shared with the boxes graded at the same time.

**Process mode** (no bubblewrap, not root, macOS): the same clean image and fork, without
namespaces. Submissions run in a scratch directory with resource limits, as ``nobody`` when the
grader is root. Not isolated: the file system (everything the sandbox user may read or write),
the network, other submissions running at the same time (same user), and (without root) the
grader's own files and processes. :func:`process_mode_warning` says so.

Everything here except :func:`isolation_problem`, :func:`process_mode_warning` and the
process-tree helpers is Linux-only and is called only in isolated mode.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MODE_BWRAP = "bwrap"
MODE_PROCESS = "process"
MODES = ("auto", MODE_BWRAP, MODE_PROCESS)

BOX_UID = 65534  # uid and gid of a submission inside its box
NOTEBOOK_IN_BOX = "/submission/submission.ipynb"

# bubblewrap options the box needs (all present in bubblewrap >= 0.8)
REQUIRED_BWRAP_OPTIONS = (
    "--userns",
    "--assert-userns-disabled",
    "--size",
    "--perms",
    "--ro-bind-data",
    "--remount-ro",
    "--info-fd",
    "--die-with-parent",
    "--new-session",
)

_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CLONE_NEWUSER = 0x10000000
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class IsolationError(RuntimeError):
    """Setting up or entering a box failed (the message says which step and why)."""


# ---------------------------------------------------------------------------------------------
# Is isolated mode available here?
# ---------------------------------------------------------------------------------------------


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def sandbox_ids(user: str | None) -> tuple[int, int]:
    """uid and gid of the host user that submissions run as (``nobody`` unless configured)."""
    import pwd

    entry = pwd.getpwnam(user or "nobody")
    return entry.pw_uid, entry.pw_gid


def isolation_problem(bwrap: str | None = None, sandbox_user: str | None = None) -> str | None:
    """Why isolated mode cannot be used on this machine, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = bwrap or find_bwrap()
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install -y bubblewrap)"
    if os.geteuid() != 0:
        return (
            "the grader is not running as root: a box runs its submission as a separate user, "
            "which needs root (a throwaway container is enough)"
        )
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read().strip() or 0) == 0:
                return "user namespaces are disabled on this machine (user.max_user_namespaces=0)"
    except (OSError, ValueError):
        return "cannot read /proc/sys/user/max_user_namespaces"
    try:
        uid, _ = sandbox_ids(sandbox_user)
    except KeyError:
        return f"the sandbox user {sandbox_user or 'nobody'!r} does not exist"
    if uid == 0:
        return "the sandbox user must not be root"
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {bwrap}: {exc}"
    missing = [o for o in REQUIRED_BWRAP_OPTIONS if o not in out.stdout + out.stderr]
    if missing:
        return f"{bwrap} is too old (no {', '.join(missing)}); bubblewrap 0.8 or newer is needed"
    return None


def process_mode_warning(reason: str, sandbox_user: str | None) -> str:
    """The one warning printed when submissions are graded without isolation."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    who = (
        f"as the user {sandbox_user!r}"
        if root and sandbox_user
        else "with YOUR user rights: they can read and change your files (including the "
        "Python environment), signal your processes (including the grader) and read the "
        "grader's memory"
    )
    return (
        f"WARNING: submissions are NOT isolated ({reason}). They run in a process sandbox "
        f"{who}. Not isolated: every file that user may read (solutions and other students' "
        "notebooks if they are readable by it) or write (/tmp, /var/tmp, /dev/shm), the "
        "network, and the other submissions graded at the same time. Grade untrusted "
        "submissions in a throwaway container with bubblewrap as root (see the README)."
    )


# ---------------------------------------------------------------------------------------------
# The box: what bubblewrap mounts, and its command line
# ---------------------------------------------------------------------------------------------


def _under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def environment_binds(sys_path: list[str], package_dir: str) -> list[str]:
    """Host directories the box sees read-only: the Python environment and ``course_lib``.

    ``sys_path`` is the clean image's import path. The directory that holds ``course_lib`` is not
    bound itself (in a source checkout it also holds ``solutions/``): only the package is.
    Directories under ``/usr`` are covered by the ``/usr`` bind.
    """
    package_parent = os.path.dirname(package_dir)
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, package_dir}
    for entry in sys_path:
        if entry and os.path.isabs(entry) and entry != package_parent and os.path.exists(entry):
            wanted.add(entry)
    real = sorted({os.path.realpath(p) for p in wanted if os.path.exists(p)} | wanted)
    binds: list[str] = []
    for p in real:
        if not os.path.exists(p) or _under(p, "/usr") or p == "/":
            continue
        if any(_under(p, b) for b in binds):
            continue
        binds = [b for b in binds if not _under(b, p)] + [p]
    return sorted(binds)


def exposed(binds: list[str], secrets: list[str]) -> list[str]:
    """The secret paths (solutions, submissions, output) that a bind would make visible."""
    out = []
    for s in secrets:
        s = os.path.realpath(s)
        if _under(s, "/usr") or any(_under(s, b) for b in binds):
            out.append(s)
    return out


def _system_links() -> list[str]:
    args: list[str] = []
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/fonts"):
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    return args


def _top_below(path: str, mount: str) -> str:
    """The first folder of ``path`` below ``mount`` (``/tmp/a/b`` below ``/tmp``: ``/tmp/a``)."""
    rest = Path(path).relative_to(mount).parts
    return str(Path(mount, rest[0]))


def _parents(binds: list[str]) -> list[str]:
    out: list[str] = []
    for b in binds:
        parts = Path(b).parts
        for i in range(2, len(parts)):
            d = str(Path(*parts[:i]))
            if d not in out:
                out.append(d)
    return out


def placeholder_command() -> list[str]:
    """What bubblewrap runs in the box until the submission's process joins it (it sleeps)."""
    for candidate in ("/usr/bin/sleep", "/bin/sleep"):
        if os.path.exists(candidate):
            return [os.path.realpath(candidate), "2147483647"]
    raise IsolationError("no `sleep` program in /usr/bin or /bin")


def bwrap_command(
    bwrap: str,
    binds: list[str],
    *,
    userns_fd: int,
    info_fd: int,
    notebook_fd: int | None,
    disk_bytes: int,
    shm_bytes: int,
) -> list[str]:
    """The ``bwrap`` command line for one box (see the module docstring)."""
    cmd = [
        bwrap,
        "--userns",
        str(userns_fd),
        "--assert-userns-disabled",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "box",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--ro-bind",
        "/usr",
        "/usr",
        *_system_links(),
    ]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--perms", "1777", "--size", str(int(shm_bytes)), "--tmpfs", "/dev/shm"]
    cmd += ["--perms", "1777", "--size", str(int(disk_bytes)), "--tmpfs", "/tmp"]
    # The environment after the private /tmp: a course checked out under /tmp stays visible. The
    # folders that lead to it there get a read-only tmpfs of their own, so that nothing on the
    # import path is writable, not even by the box's supervisor.
    private = ("/tmp", "/dev/shm")
    tops = sorted(
        {_top_below(b, m) for b in binds for m in private if b != m and _under(b, m)} - set(binds)
    )
    for top in tops:
        cmd += ["--perms", "0755", "--size", "65536", "--tmpfs", top]
    for d in _parents(binds):
        if d not in tops and not any(d == m for m in private):
            cmd += ["--perms", "0755", "--dir", d]
    for b in binds:
        cmd += ["--ro-bind", b, b]
    for top in tops:
        cmd += ["--remount-ro", top]
    if notebook_fd is not None:
        cmd += ["--perms", "0755", "--dir", os.path.dirname(NOTEBOOK_IN_BOX)]
        cmd += ["--perms", "0444", "--ro-bind-data", str(notebook_fd), NOTEBOOK_IN_BOX]
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/"]
    cmd += ["--cap-drop", "ALL", "--info-fd", str(info_fd), "--", *placeholder_command()]
    return cmd


# ---------------------------------------------------------------------------------------------
# Kernel calls (Linux)
# ---------------------------------------------------------------------------------------------

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise IsolationError(f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def become_subreaper() -> bool:
    """Linux: orphans of this process's descendants are re-parented to it (so it can kill them)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (IsolationError, OSError, AttributeError):
        return False
    return True


def unshare_user_namespace() -> None:
    _check(_libc().unshare(_CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")


def write_id_maps(pid: int, uid: int, gid: int) -> None:
    """Map 0 to the grader (for bubblewrap's set-up) and the box user to ``uid``/``gid``."""
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"0 {os.geteuid()} 1\n{BOX_UID} {uid} 1\n")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"0 {os.getegid()} 1\n{BOX_UID} {gid} 1\n")


def forbid_user_namespaces() -> None:
    """In the current (new) user namespace: no process may create a user namespace."""
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")


def join_box(target: int) -> None:
    """Enter the namespaces and the root of ``target`` (the box's placeholder process)."""
    fds = []
    try:
        for ns in ("ipc", "uts", "net", "pid", "mnt"):
            fds.append((ns, os.open(f"/proc/{target}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)))
        root = os.open(f"/proc/{target}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(("root", root))
        for ns, fd in fds[:-1]:
            _check(_libc().setns(fd, 0), f"setns({ns})")
        os.fchdir(root)
        os.chroot(".")
        os.chdir("/")
    finally:
        for _, fd in fds:
            os.close(fd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


# What the box's supervisor (the process that runs the attempts, uid 0 of the box's user
# namespace) keeps: signal the box user's processes, switch a child to the box user, drop a child's
# bounding set. These act only inside the box's namespaces; everything else is dropped.
_CAP_KILL, _CAP_SETGID, _CAP_SETUID, _CAP_SETPCAP = 5, 6, 7, 8
SUPERVISOR_CAPS = (_CAP_KILL, _CAP_SETGID, _CAP_SETUID, _CAP_SETPCAP)


def _cap_last() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _capset(mask: int) -> None:
    data = (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective, data[i].permitted, data[i].inheritable = word, word, 0
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    _check(_libc().capset(ctypes.byref(header), data), "capset")


def _clear_ambient() -> None:
    try:
        prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except IsolationError:
        pass  # kernels before 4.3 have no ambient capabilities


def become_box_supervisor() -> None:
    """Keep only :data:`SUPERVISOR_CAPS` (in the box's user namespace) and ``no_new_privs``."""
    os.setgroups([])
    for cap in range(_cap_last() + 1):
        if cap not in SUPERVISOR_CAPS:
            prctl(_PR_CAPBSET_DROP, cap)
    _capset(sum(1 << c for c in SUPERVISOR_CAPS))
    _clear_ambient()
    prctl(_PR_SET_NO_NEW_PRIVS, 1)


def become_box_user(max_processes: int | None) -> None:
    """An attempt child: switch to the box user and keep no capability and no way to gain one.

    The uid change is real (0 to the box user, mapped to ``nobody`` outside), so the kernel
    clears every capability and counts this process and its children under the box user of the
    box's own user namespace, where ``RLIMIT_NPROC`` limits them.
    """
    import resource

    for cap in range(_cap_last() + 1):
        prctl(_PR_CAPBSET_DROP, cap)
    os.setgroups([])
    if max_processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    os.setresgid(BOX_UID, BOX_UID, BOX_UID)
    os.setresuid(BOX_UID, BOX_UID, BOX_UID)
    _clear_ambient()
    _capset(0)
    prctl(_PR_SET_NO_NEW_PRIVS, 1)


def become_user(uid: int, gid: int, max_processes: int | None) -> None:
    """Process mode, grader running as root: an attempt child becomes the sandbox user."""
    import resource

    os.setgroups([])
    os.setgid(gid)
    if max_processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    os.setuid(uid)


def confinement_problems(
    uid: int = BOX_UID, caps: int = 0, outside_parent: bool = False
) -> list[str]:
    """Checks a box process runs before any student code (an empty list: all good).

    ``uid`` and ``caps`` are what the process must have (the box user and nothing for an attempt
    child; uid 0 of the box and :data:`SUPERVISOR_CAPS` for the supervisor); with
    ``outside_parent`` its parent must be outside its PID namespace.
    """
    problems = []
    try:
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    except OSError as exc:
        return [f"cannot read /proc/self/status: {exc}"]
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        want = 0 if key in ("CapInh", "CapAmb") else caps
        if key in status and int(status[key].strip(), 16) != want:
            problems.append(f"{key} is {status[key].strip()}, not {want:016x}")
    if status.get("NoNewPrivs", "").strip() != "1":
        problems.append("no_new_privs is not set")
    if {int(x) for x in status.get("Uid", "").split()} != {uid}:
        problems.append(f"uid is {status.get('Uid', '?').split()}, not {uid}")
    if outside_parent and os.getppid() != 0:
        problems.append("the parent process is visible (not in a PID namespace of its own)")
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        problems.append("the root file system is writable")
    problems += writable_import_path()
    return problems


def writable_import_path() -> list[str]:
    """Writable directories on ``sys.path`` (an empty entry means the working directory)."""
    out = []
    for entry in sys.path:
        path = entry or os.getcwd()
        if os.path.exists(path) and os.access(path, os.W_OK):
            out.append(f"{path!r} on sys.path is writable")
    return out


# ---------------------------------------------------------------------------------------------
# Process trees and memory (Linux /proc; empty results elsewhere)
# ---------------------------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …), from the kernel's records."""
    out, todo, seen = [], [pid], {pid}
    while todo:
        for c in child_pids(todo.pop()):
            if c not in seen:
                seen.add(c)
                out.append(c)
                todo.append(c)
    return out


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(timeout: float = 10.0) -> int:
    """Kill every process below this one (a subreaper adopts orphans, so none escapes).

    Each round stops and kills the whole current tree; processes re-parented to us by the deaths
    of their parents are caught in the next round. Returns the number of processes killed.
    """
    me, killed = os.getpid(), 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = descendants(me)
        if not pids:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for p in pids:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
        killed += len(pids)
        reap()
        time.sleep(0.005)
    reap()
    return killed


def _pages(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size (shared pages counted once in total), else the resident size."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _pages(pid)


def memory_supported() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/smaps_rollup") or os.path.exists(
        f"/proc/{os.getpid()}/statm"
    )


def box_memory(root: int, baseline: int, limit: int) -> int:
    """Memory used by the processes below ``root`` beyond ``baseline`` (the clean image's size).

    A cheap upper bound (resident sizes) first; the exact sum of proportional set sizes only
    when that bound exceeds ``limit``.
    """
    pids = descendants(root)
    if not pids:
        return 0
    rough = sum(_pages(p) for p in pids) - baseline
    if rough <= limit:
        return max(0, rough)
    return max(0, sum(pss_bytes(p) for p in pids) - baseline)
