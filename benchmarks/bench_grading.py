"""Benchmark: grade 100 submissions of one chapter and print the wall time.

    .venv/bin/python benchmarks/bench_grading.py                 # chapter 01, all cores
    .venv/bin/python benchmarks/bench_grading.py --jobs 2 -n 100 --assignment 02_momentum
    .venv/bin/python benchmarks/bench_grading.py --isolation process   # without bubblewrap

The submissions are a realistic mix made from the solutions notebook: 60 % correct, 25 % with one
wrong answer, 15 % untouched exercises (every question raises NotImplementedError). Each one is
graded in a box of its own (isolated mode where available). The target is ≤ 2 minutes for 100
submissions on 2 cores. The machine's load average is printed before and after: on a shared
machine it explains most of the spread between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_lib.grading import grade_submissions  # noqa: E402

WRONG = {
    "01_gradient_descent": ("def sgd_step(", "def sgd_step(p, g, lr):\n    return p + lr * g\n"),
    "02_momentum": (
        "def momentum_step(",
        "def momentum_step(p, g, v, lr, mu):\n"
        "    v = mu * v + (1 - mu) * g\n"
        "    return p - lr * v, v\n",
    ),
}


def make_submissions(assignment: str, n: int, dest: Path) -> None:
    solution = json.loads((ROOT / "solutions" / f"{assignment}.ipynb").read_text())
    exercise = (ROOT / "exercises" / f"{assignment}.ipynb").read_bytes()
    needle, wrong_src = WRONG[assignment]
    wrong = json.loads(json.dumps(solution))
    for cell in wrong["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and needle in src:
            cell["source"] = wrong_src
    for i in range(n):
        kind = i % 20
        path = dest / f"student{i:03d}.ipynb"
        if kind < 12:
            path.write_text(json.dumps(solution))
        elif kind < 17:
            path.write_text(json.dumps(wrong))
        else:
            path.write_bytes(exercise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-a", "--assignment", default="01_gradient_descent", choices=sorted(WRONG))
    parser.add_argument("-n", type=int, default=100, help="number of submissions")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="sandboxes (default: cores)")
    parser.add_argument(
        "--isolation", default="auto", choices=("auto", "bwrap", "process"), help="box kind"
    )
    args = parser.parse_args()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        inbox, out = Path(tmp) / "inbox", Path(tmp) / "out"
        inbox.mkdir()
        make_submissions(args.assignment, args.n, inbox)
        t0 = time.perf_counter()
        report = grade_submissions(
            args.assignment, [inbox], out_dir=out, jobs=args.jobs, isolation_mode=args.isolation
        )
        wall = time.perf_counter() - t0
    totals = report.totals()
    cores = args.jobs or os.cpu_count()
    mode = "isolated (bubblewrap)" if report.mode == "bwrap" else "process sandbox"
    print(
        f"graded {len(totals)} submissions of {args.assignment} with {cores} worker(s), "
        f"{mode}, in {wall:.1f} s ({wall / max(1, len(totals)):.2f} s per submission)"
    )
    if load_before is not None:
        after = os.getloadavg()
        print(
            f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
            f"after: {' '.join(f'{x:.2f}' for x in after)} on {os.cpu_count()} cores"
        )
    print(
        f"mean score {sum(totals.values()) / max(1, len(totals)):.2f} / "
        f"{report.assignment.max_score:g}"
    )


if __name__ == "__main__":
    main()
