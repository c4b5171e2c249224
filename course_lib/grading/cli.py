"""Command line of the grader: ``course-grade generate`` and ``course-grade grade``.

Examples::

    course-grade generate                         # write exercises/ from solutions/
    course-grade generate --check                 # fail (exit 1) if exercises/ is stale
    course-grade grade -a 01_gradient_descent inbox/   # one file or sub-folder per student
    course-grade grade -a 02_momentum alice.ipynb bob.ipynb -o grades/ --jobs 2

Output of ``grade`` (in ``--out``, default ``grading_output/<assignment>/``):

- ``gradebook.csv``: student, assignment, question, score, max_score, feedback
- ``feedback/<student>.txt``: the same per student, with totals and notebook problems
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib.grading.grader import DEFAULT_LIMITS, GradingError, course_dir, grade_submissions
from course_lib.grading.isolation import MODES
from course_lib.grading.notebook import NotebookError, generate_exercises


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course-grade",
        description="Generate exercise notebooks from solutions and grade student submissions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate", help="solutions/*.ipynb -> exercises/*.ipynb (nbgrader markup)"
    )
    gen.add_argument(
        "--solutions",
        type=Path,
        default=None,
        help="default: ./solutions if it exists, else the installed course's",
    )
    gen.add_argument(
        "--exercises",
        type=Path,
        default=None,
        help="default: exercises/ next to the solutions folder",
    )
    gen.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if exercises/ is out of sync with solutions/",
    )

    grade = sub.add_parser("grade", help="grade submitted notebooks into a CSV gradebook")
    grade.add_argument(
        "submissions",
        nargs="+",
        type=Path,
        help="notebook files and/or folders (one file or sub-folder per student)",
    )
    grade.add_argument(
        "-a",
        "--assignment",
        required=True,
        help="assignment name (e.g. 01_gradient_descent) or a solutions .ipynb",
    )
    grade.add_argument(
        "--solutions",
        type=Path,
        default=None,
        help="default: ./solutions if it exists, else the installed course's",
    )
    grade.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output folder (default: grading_output/<assignment>)",
    )
    grade.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="parallel sandboxes (default: number of CPU cores)",
    )
    grade.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_LIMITS["job_timeout"],
        help="seconds per submission (default: %(default)s)",
    )
    grade.add_argument(
        "--cell-timeout",
        type=float,
        default=DEFAULT_LIMITS["cell_timeout"],
        help="seconds per notebook cell (default: %(default)s)",
    )
    grade.add_argument(
        "--question-timeout",
        type=float,
        default=DEFAULT_LIMITS["probe_timeout"],
        help="seconds per question (default: %(default)s)",
    )
    grade.add_argument(
        "--memory-mb",
        type=int,
        default=DEFAULT_LIMITS["memory_mb"],
        help="extra address space per submission in MB (default: %(default)s)",
    )
    grade.add_argument(
        "--disk-mb",
        type=int,
        default=DEFAULT_LIMITS["disk_mb"],
        help="size of each box's private /tmp in MB (default: %(default)s)",
    )
    grade.add_argument(
        "--max-processes",
        type=int,
        default=DEFAULT_LIMITS["max_processes"],
        help="processes and threads per box (default: %(default)s)",
    )
    grade.add_argument(
        "--isolation",
        choices=MODES,
        default="auto",
        help="bwrap: one bubblewrap box per submission (needs root and bubblewrap); process: "
        "a process sandbox only (not isolated, prints a warning); auto (default): bwrap "
        "where available",
    )
    grade.add_argument(
        "--sandbox-user",
        default=DEFAULT_LIMITS["sandbox_user"],
        help="when run as root, the host user submissions run as (default: %(default)s; "
        "isolated mode uses nobody for ''; process mode refuses to run them as root)",
    )
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
        return _grade(args)
    except (GradingError, NotebookError) as exc:
        print(f"course-grade: error: {exc}", file=sys.stderr)
        return 2


def _generate(args) -> int:
    solutions = args.solutions or course_dir("solutions")
    exercises = args.exercises or solutions.parent / "exercises"
    report = generate_exercises(solutions, exercises, check=args.check)
    if args.check:
        for line in report:
            print(line)
        if report:
            print("exercises/ is out of sync: run `course-grade generate`", file=sys.stderr)
            return 1
        print(f"exercises in {exercises} are in sync with {solutions}")
        return 0
    for line in report:
        print(f"wrote {line}")
    if not report:
        print(f"exercises in {exercises} are already up to date")
    return 0


def _grade(args) -> int:
    name = Path(args.assignment).stem if args.assignment.endswith(".ipynb") else args.assignment
    out = args.out or Path("grading_output") / name
    limits = {
        "job_timeout": args.timeout,
        "cell_timeout": args.cell_timeout,
        "probe_timeout": args.question_timeout,
        "memory_mb": args.memory_mb,
        "cpu_seconds": int(args.timeout) + 30,
        "disk_mb": args.disk_mb,
        "max_processes": args.max_processes,
        "sandbox_user": args.sandbox_user,
    }
    report = grade_submissions(
        args.assignment,
        args.submissions,
        out_dir=out,
        solutions=args.solutions,
        jobs=args.jobs,
        limits=limits,
        progress=not args.no_progress,
        isolation_mode=args.isolation,
    )
    totals = report.totals()
    mode = "isolated (one bubblewrap box per submission)" if report.mode == "bwrap" else "process"
    print(f"sandbox: {mode}")
    for line in report.problems:
        print(f"note: {line}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):")
        for line in report.skipped:
            print(f"  {line}")
    full = report.assignment.max_score
    print(
        f"graded {len(totals)} submission(s) of {report.assignment.name} in {report.seconds:.1f} s"
    )
    if totals:
        mean = sum(totals.values()) / len(totals)
        print(f"mean score {mean:.2f} / {full:g}")
    print(f"gradebook: {report.gradebook}")
    print(f"feedback:  {report.feedback_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
