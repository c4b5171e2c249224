"""nbgrader itself accepts our notebooks: ``generate_assignment`` and ``autograde`` (slow).

nbgrader pins many packages, so it never goes into the course's environment. The test builds (once,
then reuses) a separate virtual environment in ``.venv-nbgrader/`` at the repository root
(gitignored) with nbgrader, ipykernel, torch and this repository. torch is installed only when the
new environment cannot import it, at the version the main environment uses. Without network access
the test is skipped with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NBGRADER_VENV", ROOT / ".venv-nbgrader"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
CHAPTER = "01_gradient_descent"

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


# what the environment must import: nbgrader, and the course with every dependency its notebooks
# use (the solutions plot with matplotlib and measure on scikit-learn's digits)
_NEEDED = ("nbgrader", "ipykernel", "torch", "course_lib.checks", "matplotlib", "sklearn", "tqdm")


def _venv_works() -> bool:
    if not (BIN / "nbgrader").exists():
        return False
    probe = _run(
        [BIN / "python", "-c", f"import {', '.join(_NEEDED)}"], cwd="/"
    )
    return probe.returncode == 0


def _build_venv() -> None:
    """Create the nbgrader environment, or skip the test saying why it could not be built."""
    if _venv_works():
        return
    base = getattr(sys, "_base_executable", sys.executable)
    steps = []
    if not (BIN / "python").exists():
        steps.append([base, "-m", "venv", VENV])
    pip = [BIN / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps.append([*pip, "nbgrader", "ipykernel", "numpy"])
    for step in steps:
        res = _run(step, timeout=1200)
        if res.returncode != 0:
            pytest.skip(f"cannot build {VENV.name} (no network?): {res.stderr.strip()[-400:]}")
    if _run([BIN / "python", "-c", "import torch"]).returncode != 0:
        version = torch.__version__.split("+")[0]
        res = _run([*pip, f"torch=={version}"], timeout=1200)
        if res.returncode != 0:
            res = _run([*pip, "torch"], timeout=1200)
        if res.returncode != 0:
            pytest.skip(f"cannot install torch into {VENV.name}: {res.stderr.strip()[-400:]}")
    res = _run([*pip, "-e", ROOT], timeout=1200)  # with its dependencies (torch is already in)
    if res.returncode != 0 or not _venv_works():
        pytest.skip(f"cannot install the course into {VENV.name}: {res.stderr.strip()[-400:]}")


def _code_sources(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
    ]


def test_nbgrader_generates_and_autogrades_our_assignment(tmp_path):
    _build_venv()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    env.pop("PYTHONPATH", None)
    course = tmp_path / "course"
    (course / "source" / "ps01").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{CHAPTER}.ipynb", course / "source" / "ps01")
    (course / "nbgrader_config.py").write_text(
        f'c = get_config()\nc.CourseDirectory.course_id = "optim"\n'
        f"c.CourseDirectory.root = {str(course)!r}\n"
    )

    res = _run(
        [BIN / "nbgrader", "generate_assignment", "ps01", "--force"],
        cwd=course,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    release = course / "release" / "ps01" / f"{CHAPTER}.ipynb"
    # nbgrader's student version has the same code as ours (one markup, two tools)
    assert _code_sources(release) == _code_sources(ROOT / "exercises" / f"{CHAPTER}.ipynb")

    for student, source in (("alice", ROOT / "solutions" / f"{CHAPTER}.ipynb"), ("bob", release)):
        dest = course / "submitted" / student / "ps01"
        dest.mkdir(parents=True)
        shutil.copy(source, dest / f"{CHAPTER}.ipynb")
    res = _run(
        [BIN / "nbgrader", "autograde", "ps01", "--create"], cwd=course, env=env, timeout=900
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    res = _run([BIN / "nbgrader", "export"], cwd=course, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    with (course / "grades.csv").open() as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    assert float(grades["alice"]["score"]) == float(grades["alice"]["max_score"]) == 10.0
    assert float(grades["bob"]["score"]) == 0.0
