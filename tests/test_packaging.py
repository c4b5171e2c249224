"""Packaging stays consistent: lower-bound dependencies only, environment.yml matches pyproject."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (allowed by requires-python): the same parser, from PyPI
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements():
    project = PYPROJECT["project"]
    yield from project["dependencies"]
    for extra in project["optional-dependencies"].values():
        yield from extra


def test_dependencies_have_lower_bounds_only():
    # Exact or upper pins break Colab (Python 3.13, torch 2.11, ipywidgets 7.7, IPython 7.34).
    for req in _requirements():
        spec = req.split(";")[0]  # an environment marker may compare python_version with "<"
        assert "==" not in spec and "<" not in spec and "~=" not in spec, req
        assert ">=" in spec, f"{req}: give a lower bound"


def test_ipywidgets_7_is_allowed():
    (req,) = [r for r in PYPROJECT["project"]["dependencies"] if r.startswith("ipywidgets")]
    assert int(re.search(r">=(\d+)", req).group(1)) <= 7


def test_environment_yml_matches_pyproject():
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python\s*(>=\s*[\d.]+)\s*$", text, re.M)
    assert python, "environment.yml must pin a python lower bound"
    assert python.group(1).replace(" ", "") == PYPROJECT["project"]["requires-python"]
    pip_lines = re.findall(r'^\s*-\s*(-e\s+)?"?\.\[([\w,]+)\]"?\s*$', text, re.M)
    assert pip_lines, "environment.yml must install the package itself with pip"
    extras = {e for _, group in pip_lines for e in group.split(",")}
    assert "lab" in extras
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])
    # Anything environment.yml installs from conda must also be a declared dependency.
    deps = text.split("dependencies:", 1)[1]
    conda_pkgs = re.findall(r"^  -\s+([A-Za-z][\w.-]*)", deps, re.M)
    declared = {re.split(r"[<>=\[ ]", r)[0].lower() for r in _requirements()}
    for pkg in conda_pkgs:
        assert pkg.lower() in declared | {"python", "pip"}, f"{pkg} is not in pyproject.toml"


def test_repository_url_is_defined_once_and_synced():
    import course_lib

    assert course_lib.REPO_URL == PYPROJECT["project"]["urls"]["Repository"]
    result = subprocess.run(
        [sys.executable, "tools/course.py", "sync", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_top_level_layout():
    expected = {
        "notebooks", "course_lib", "exercises", "solutions", "tests", "environment.yml",
        "README.md", "pyproject.toml", ".ci", "tools", "benchmarks", "CONTRIBUTING.md",
    }
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    top = {p.split("/")[0] for p in tracked if not p.startswith(".git")}
    unexpected = top - expected - {".gitignore"}
    assert not unexpected, f"unexpected top-level entries: {sorted(unexpected)}"


# Standard-library modules newer than Python 3.10, the oldest Python requires-python allows.
NEWER_THAN_3_10 = {"tomllib", "wsgiref.types"}


def _unguarded_imports(path: Path) -> set[str]:
    """Modules imported outside a ``try: ... except ModuleNotFoundError/ImportError`` block."""
    import ast

    tree = ast.parse(path.read_text())
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ModuleNotFoundError", "ImportError")
            for h in node.handlers
        ):
            for inner in node.body:
                guarded |= {id(n) for n in ast.walk(inner)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_everything_imports_on_python_3_10():
    """Regression: this very file imported ``tomllib`` (3.11+), so the suite did not collect on
    Python 3.10."""
    files = [*ROOT.glob("course_lib/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("tools/*.py")]
    files += [*ROOT.glob("benchmarks/*.py")]
    bad = {
        str(p.relative_to(ROOT)): sorted(_unguarded_imports(p) & NEWER_THAN_3_10) for p in files
    }
    assert not {k: v for k, v in bad.items() if v}


def test_import_course_lib_is_light():
    """``import course_lib`` imports neither torch nor anything heavy, and reads no file besides
    its own code (the repository URL is read from pyproject.toml only when asked for)."""
    code = (
        "import sys\n"
        "opened = []\n"
        "def hook(event, args):\n"
        "    if event == 'open' and isinstance(args[0], str):\n"
        "        opened.append(args[0])\n"
        "sys.addaudithook(hook)\n"
        "import course_lib\n"
        "heavy = [m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules]\n"
        "files = [p for p in opened if not p.endswith(('.py', '.pyc'))]\n"
        "print(heavy, files)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []", out.stdout + out.stderr
