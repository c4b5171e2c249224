"""course_lib: the library behind the *Optimization for Deep Learning* course.

Submodules (imported on demand, so ``import course_lib`` stays fast):

- ``course_lib.optim``      from-scratch optimizers built from small blocks, and LR schedules
- ``course_lib.landscapes`` 2-D test functions and optimizer trajectories on them
- ``course_lib.plotting``   contour plots, loss curves, animations
- ``course_lib.widgets``    ipywidgets dashboards (each with a static twin)
- ``course_lib.train``      a small training loop
- ``course_lib.data``       offline datasets (digits, synthetic generators)
- ``course_lib.compare``    fair optimizer comparisons (lr grid, seeds, mean ± spread)
- ``course_lib.sharpness``  top Hessian eigenvalue and Hessian trace
- ``course_lib.memory``     measured optimizer state memory
- ``course_lib.lessons``    measurement helpers of chapters 00-02 (thresholds, barriers, noise)
- ``course_lib.adaptive_lessons`` experiment helpers of chapters 03-04 (effective lrs, EMA bias)
- ``course_lib.checks``     self-checks that exercise cells call
- ``course_lib.exercises``  each exercise defined once: reference, classic mistakes, cases
- ``course_lib.grading``    the instructor's bulk grader
"""

from course_lib.utils import default_device, repo_url, seed_everything, setup

__version__ = "0.1.0"
REPO_URL = repo_url()  # defined once, in pyproject.toml's [project.urls]

__all__ = ["REPO_URL", "__version__", "default_device", "repo_url", "seed_everything", "setup"]
