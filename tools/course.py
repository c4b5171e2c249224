#!/usr/bin/env python3
"""One entry point for the course: set up, open, test and maintain it.

    python3 tools/course.py lab        # set up .venv and open the course in JupyterLab
    python3 tools/course.py test       # set up .venv (test extras) and run the whole test suite
    python3 tools/course.py execute    # re-execute notebooks in place (all, or the paths given)
    python3 tools/course.py sync       # repository URL into badges, bootstrap cells and the
                                       # lessons' exercise links; the standard kernelspec

Only the Python standard library is used here, so the script runs on a fresh machine with nothing
but Python. Every command is idempotent: the virtual environment is created once and reinstalled
only when ``pyproject.toml`` (or the requested extras) change.

torch is installed first when missing, preferring a CPU build (a wheel on the local pip
find-links, else PyTorch's CPU index, else PyPI's default build), because a bare ``torch``
requirement may pull a multi-GB CUDA build. Users with a GPU can install the torch they want
into the environment first; it is never replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
FIRST_NOTEBOOK = "notebooks/00_orientation.ipynb"
NOTEBOOK_DIRS = ("notebooks", "solutions")
SANITIZE = "tools/nbval_sanitize.cfg"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# What ipykernel (>= 6) installs as "python3". JupyterLab writes the running kernel's spec into a
# notebook it opens; storing the same one means opening and closing a notebook changes nothing.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


# --------------------------------------------------------------------------- environment


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw)


def pip(*args: str, check: bool = True, timeout: float | None = None) -> bool:
    cmd = [venv_python(), "-m", "pip", "--disable-pip-version-check", *args]
    try:
        result = run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"pip timed out after {timeout:.0f} s", flush=True)
        if check:
            raise SystemExit(1) from None
        return False
    if check and result.returncode != 0:
        raise SystemExit(f"pip failed: {' '.join(args)}")
    return result.returncode == 0


def has_module(name: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([str(venv_python()), "-c", code]).returncode == 0


def local_cpu_torch_wheel() -> str | None:
    """A CPU torch wheel on pip's configured find-links that fits this interpreter, if any."""
    out = subprocess.run(
        [str(venv_python()), "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    tag = subprocess.run(
        [str(venv_python()), "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirs: list[Path] = []
    for line in out.splitlines():
        if "find-links" in line and "=" in line:
            for item in line.split("=", 1)[1].strip().strip("'\"").split():
                path = Path(item.removeprefix("file://"))
                if path.is_dir():
                    dirs.append(path)
    wheels = sorted(
        (w for d in dirs for w in d.glob(f"torch-*+cpu-{tag}-*.whl")),
        key=lambda w: w.name,
        reverse=True,
    )
    return str(wheels[0]) if wheels else None


def ensure_torch() -> None:
    if has_module("torch"):
        return
    wheel = local_cpu_torch_wheel()
    if wheel:
        pip("install", wheel)
        return
    if shutil.which("nvidia-smi") is None:
        if pip("install", "torch", "--index-url", TORCH_CPU_INDEX, check=False, timeout=900):
            return
        print("PyTorch's CPU index is not reachable; installing torch from the default index")
    pip("install", "torch")


def ensure_env(extras: str) -> Path:
    """Create ``.venv`` if needed and install the package with ``extras``; return its python."""
    if not venv_python().exists():
        run([sys.executable, "-m", "venv", VENV], check=True)
        pip("install", "--upgrade", "pip", check=False, timeout=300)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / ".course_stamp"
    wanted = f"{digest} {extras}"
    done = stamp.read_text().split("\n") if stamp.exists() else []
    if wanted in done and has_module("course_lib") and has_module("torch"):
        return venv_python()
    ensure_torch()
    pip("install", "-e", f"{ROOT}[{extras}]")
    stamp.write_text("\n".join([*done, wanted]))
    return venv_python()


# --------------------------------------------------------------------------- commands


def cmd_lab(args: argparse.Namespace) -> int:
    python = ensure_env("lab")
    target = args.notebook or FIRST_NOTEBOOK
    cmd = [python, "-m", "jupyter", "lab", target, f"--ServerApp.root_dir={ROOT}", *args.extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root
    return run(cmd, cwd=ROOT).returncode


def cmd_test(args: argparse.Namespace) -> int:
    python = ensure_env("lab,dev,grade")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.setdefault("MPLBACKEND", "Agg")
    paths = [p for p in ("tests", *NOTEBOOK_DIRS) if (ROOT / p).exists()]
    cmd = [
        python, "-m", "pytest", *paths,
        "--nbval-lax", f"--nbval-sanitize-with={SANITIZE}",
        "-p", "no:cacheprovider", "-r", "s",
        *args.extra,
    ]
    return run(cmd, cwd=ROOT, env=env).returncode


def cmd_execute(args: argparse.Namespace) -> int:
    python = ensure_env("lab,dev,grade")
    if Path(sys.prefix).resolve() != VENV.resolve():  # continue inside the environment
        return run([python, __file__, "execute", *args.paths], cwd=ROOT).returncode
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.pop("MPLBACKEND", None)  # kernels use the inline backend, so figures are stored
    execute_inplace(args.paths)
    return 0


def _poll_in_slices(channel, slice_s: float = 0.5) -> None:
    """Make ``channel.get_msg(timeout)`` poll in short slices.

    A zmq.asyncio poll can miss the wake-up of a message that arrives while widget comm traffic
    is being handled, so a cell with an ipywidget sometimes waited its whole timeout for a reply
    that was already there (jupyter/nbclient#312). Short polls see it within ``slice_s``.
    """
    import inspect
    import queue
    import time

    get_msg = channel.get_msg

    async def sliced_get_msg(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = get_msg(timeout=min(slice_s, left))
                return await msg if inspect.isawaitable(msg) else msg
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = sliced_get_msg


def execute_inplace(paths: list[str]) -> None:
    """Run each notebook top to bottom in a fresh kernel and store the outputs (needs nbclient)."""
    import nbclient
    import nbformat

    class Client(nbclient.NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            _poll_in_slices(kc.shell_channel)
            return kc

    targets = [Path(p) for p in paths] or sorted(
        p for d in NOTEBOOK_DIRS for p in (ROOT / d).glob("*.ipynb")
    )
    for path in targets:
        print(f"executing {path}", flush=True)
        nb = nbformat.read(path, as_version=4)
        resources = {"metadata": {"path": str(path.parent)}}
        client = Client(nb, timeout=600, kernel_name="python3", resources=resources)
        client.execute()
        for cell in nb.cells:  # keep diffs quiet: no per-run execution timestamps
            cell.get("metadata", {}).pop("execution", None)
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        nbformat.write(nb, path)


def repo_url() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("pyproject.toml lacks [project.urls] Repository")
    return match.group(1)


def bootstrap_source(url: str) -> str:
    return (
        "# Colab bootstrap: installs course_lib on Google Colab, does nothing elsewhere.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "course_lib @ git+{url}"'
    )


def colab_badge(url: str, notebook: str) -> str:
    link = colab_link(url, notebook)
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"


def colab_link(url: str, notebook: str) -> str:
    """The Colab address of ``notebook`` (a path in the repository) on the main branch."""
    path = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/{notebook}"


_EXERCISE = r"(\d\d_[\w-]+)\.ipynb"


def link_exercises(text: str, url: str) -> str:
    """Every mention of an exercise notebook in a lesson as a link that works on Colab too.

    `` `exercises/01_x.ipynb` `` and ``[…](../exercises/01_x.ipynb)`` both become
    ``[`exercises/01_x.ipynb`](../exercises/01_x.ipynb) ([open in Colab](https://colab…))``: the
    relative link works in a clone (JupyterLab, VS Code), the Colab one in a browser. Idempotent.
    """
    text = re.sub(
        rf"(?<!\[)`exercises/{_EXERCISE}`(?!\]\()",
        lambda m: f"[`exercises/{m.group(1)}.ipynb`](../exercises/{m.group(1)}.ipynb)",
        text,
    )
    text = re.sub(rf" \(\[open in Colab\]\([^)]*/exercises/{_EXERCISE}\)\)", "", text)

    def with_colab(m: re.Match) -> str:
        return f"{m.group(1)} ([open in Colab]({colab_link(url, f'exercises/{m.group(2)}.ipynb')}))"

    return re.sub(rf"(\[[^\]]*\]\(\.\./exercises/{_EXERCISE}\))", with_colab, text)


def sync(check: bool = False) -> list[str]:
    """Write the one repository URL into notebooks' bootstrap cells, the lessons' links to their
    exercises and the README's badges; give every notebook the standard kernelspec."""
    url = repo_url()
    stale: list[str] = []
    for d in (*NOTEBOOK_DIRS, "exercises"):
        for path in sorted((ROOT / d).glob("*.ipynb")):
            nb = json.loads(path.read_text())
            changed = False
            first = nb["cells"][0] if nb["cells"] else None
            src = "".join(first["source"]) if first else ""
            if first is None or "google.colab" not in src:
                stale.append(f"{path.relative_to(ROOT)}: first cell is not the Colab bootstrap")
                continue
            want = bootstrap_source(url)
            if src != want:
                stale.append(f"{path.relative_to(ROOT)}: bootstrap cell differs")
                first["source"] = want.splitlines(keepends=True)
                changed = True
            if nb.get("metadata", {}).get("kernelspec") != KERNELSPEC:
                stale.append(f"{path.relative_to(ROOT)}: kernelspec is not {KERNELSPEC}")
                nb.setdefault("metadata", {})["kernelspec"] = dict(KERNELSPEC)
                changed = True
            for i, cell in enumerate(nb["cells"]):
                if d != "notebooks" or cell["cell_type"] != "markdown":
                    continue
                text = "".join(cell["source"])
                linked = link_exercises(text, url)
                if linked != text:
                    stale.append(f"{path.relative_to(ROOT)}: cell {i}: exercise links need Colab")
                    cell["source"] = linked.splitlines(keepends=True)
                    changed = True
            if changed and not check:
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(
        r"\[!\[Open In Colab\]\([^)]*\)\]"
        r"\(https://colab\.research\.google\.com/github/[^)]*?/blob/main/([^)]+)\)",
        lambda m: colab_badge(url, m.group(1)),
        text,
    )
    if new != text:
        stale.append("README.md: Colab badges point elsewhere")
        if not check:
            readme.write_text(new)
    return stale


def cmd_sync(args: argparse.Namespace) -> int:
    stale = sync(check=args.check)
    for line in stale:
        print(line)
    return 1 if (stale and args.check) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/course.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lab", help="set up and open the course in JupyterLab")
    p.add_argument("--notebook", help=f"notebook to open (default {FIRST_NOTEBOOK})")
    p.set_defaults(func=cmd_lab)
    p = sub.add_parser("test", help="set up and run the whole test suite (pytest + nbval + ruff)")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("execute", help="re-execute notebooks in place and store their outputs")
    p.add_argument("paths", nargs="*", help="notebooks (default: notebooks/ and solutions/)")
    p.set_defaults(func=cmd_execute)
    p = sub.add_parser(
        "sync", help="repository URL into bootstrap cells, badges and exercise links; kernelspec"
    )
    p.add_argument("--check", action="store_true", help="only report, exit 1 if anything is stale")
    p.set_defaults(func=cmd_sync)
    args, extra = parser.parse_known_args(argv)
    args.extra = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
