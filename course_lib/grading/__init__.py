"""The instructor's grader: generate exercises from solutions, grade submissions out of the kernel.

Commands (installed as ``course-grade``; ``python -m course_lib.grade`` and
``python -m course_lib.grading`` are the same program)::

    course-grade generate                      # solutions/*.ipynb -> exercises/*.ipynb
    course-grade generate --check              # exit 1 if exercises/ is out of sync
    course-grade grade -a 01_gradient_descent inbox/   # -> grading_output/01_gradient_descent/

Modules:

- :mod:`~course_lib.grading.notebook`  reading notebooks defensively; nbgrader markup → exercises
- :mod:`~course_lib.grading.probes`    the hidden questions, strict validation and comparison
- :mod:`~course_lib.grading.isolation` one bubblewrap box per submission (or the process sandbox)
- :mod:`~course_lib.grading.harness`   the clean pre-loaded image, a box's supervisor, the attempts
- :mod:`~course_lib.grading.grader`    the batch: submissions, workers, gradebook CSV, feedback
- :mod:`~course_lib.grading.cli`       the command line

Security model in one paragraph: submissions are hostile code. Each runs in a box of its own — in
isolated mode a bubblewrap box (own user, PID, mount, network, IPC namespaces; read-only view of
the Python environment and of the one notebook; private size-limited /tmp; process, memory, disk
and time limits; killed as a whole afterwards), else a process sandbox with one warning saying
what is not isolated (see :mod:`~course_lib.grading.isolation` and the README). The grader calls
the student's functions by *name* on hidden, grader-chosen inputs; the results travel back as
plain JSON numbers, capped in size and validated strictly; the comparison with the reference
happens in the grader process, which never executes student code, and expected answers never
exist in a box or in the image boxes are forked from. Patching ``torch``, ``builtins``,
``AssertionError`` or the checks inside the submission, returning objects whose ``==`` is always
true, editing the visible test cells, reading memory, files or the network, or killing things
therefore earns nothing.
"""

from course_lib.grading.grader import (
    Assignment,
    GradingError,
    Report,
    find_submissions,
    grade_submissions,
    load_assignment,
)
from course_lib.grading.notebook import generate_exercises, make_exercise

__all__ = [
    "Assignment",
    "GradingError",
    "Report",
    "find_submissions",
    "generate_exercises",
    "grade_submissions",
    "load_assignment",
    "make_exercise",
]
