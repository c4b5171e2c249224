"""The course's exercises, each defined once: reference answer, classic mistakes, test inputs.

An exercise is something a student writes: an update-rule function (``adam_step``), a number
or a function returning one (``divergence_threshold``), or a fixed optimizer class
(``FixedAdam``). Its definition holds

- the **reference** answer (float64, the course's convention, which is PyTorch's);
- its **variants**: the classic mistakes, each a wrong answer of the same form, keyed by the one
  sentence that diagnoses it;
- its **cases**: the inputs of the visible self-check and the grader's hidden inputs.

Two consumers read these definitions and nothing else: :mod:`course_lib.checks` (the
self-checks students call in exercise cells) and :mod:`course_lib.grading.probes` (the
instructor's grader). A wrong answer is diagnosed by finding the variants that produce the same
output, so the student's self-check and the instructor's feedback name a mistake with the same
sentence.

Modules:

- :mod:`~course_lib.exercises.problems`: tolerances, random SPD matrices and quadratics, the
  trajectory of an optimizer on a quadratic
- :mod:`~course_lib.exercises.mistakes`: the sentences of mistakes several exercises share
- :mod:`~course_lib.exercises.update_rule`: :class:`~.update_rule.Rule`, its diagnosis and cases
- :mod:`~course_lib.exercises.sgd_rules`: ``sgd_step``, ``momentum_step``, ``nesterov_step``
- :mod:`~course_lib.exercises.adaptive_rules`: ``adagrad_step``, ``rmsprop_step``, ``adam_step``,
  ``adamw_step``
- :mod:`~course_lib.exercises.number_answers`: ``divergence_threshold``, ``optimal_momentum``,
  ``bias_correction``
- :mod:`~course_lib.exercises.optimizer_classes`: ``FixedSGD``, ``FixedMomentumSGD``,
  ``FixedAdam``

Adding an exercise (say chapter 06's ``amsgrad_step``):

1. next to its relatives (here ``adaptive_rules.py``) write the reference ``ref_amsgrad_step``,
   its classic mistakes, and the ``Rule`` that keys each mistake by its diagnosis;
2. add it to its chapter's line in the ``_register(...)`` calls below (it lands in
   :data:`RULES`, :data:`NUMBER_EXERCISES` or :data:`OPTIMIZER_CLASS_EXERCISES` by its type);
3. add a two-line ``check_amsgrad_step`` to :mod:`course_lib.checks` for the notebook to call.

The grader's probe and the tests that every mistake is diagnosed, with the same sentence by the
self-check and by the grader, follow from the registry.
"""

from course_lib.exercises.adai import ADAI_BETA1, MEDIAN_ESCAPE_STEPS, SGD_SADDLE_ESCAPE_STEP
from course_lib.exercises.adam_exercises import ADAM_BUG_HUNT, STATE_BYTES, UNCORRECTED_PEAK_STEP
from course_lib.exercises.adaptive_rates import (
    CENTERED_RMSPROP,
    FIXED_ADAGRAD,
    RMSPROP_LR_AFTER_SPIKE,
)
from course_lib.exercises.adaptive_rules import ADAGRAD_STEP, ADAM_STEP, ADAMW_STEP, RMSPROP_STEP
from course_lib.exercises.amsgrad import (
    AMSGRAD_CLASS,
    AMSGRAD_STATE_BYTES,
    FIRST_NEGATIVE_INCREMENT,
)
from course_lib.exercises.composition import (
    ADAMW_FROM_BLOCKS,
    COMPOSED_STATE_BYTES,
    FTRL_WEIGHT,
)
from course_lib.exercises.critical_points import CLASSIFY_CRITICAL_POINT
from course_lib.exercises.momentum import FIXED_MOMENTUM_OPTIMIZER, MOMENTUM_LR_LIMIT
from course_lib.exercises.number_answers import (
    BIAS_CORRECTION,
    DIVERGENCE_THRESHOLD,
    OPTIMAL_MOMENTUM,
    NumberExercise,
)
from course_lib.exercises.optimizer_classes import (
    FIXED_ADAM,
    FIXED_MOMENTUM_SGD,
    FIXED_SGD,
    OptimizerClassExercise,
)
from course_lib.exercises.rectification import (
    ADAN_BUG_HUNT,
    FIRST_RECTIFIED_STEP,
    RADAM_RECTIFIER,
)
from course_lib.exercises.schedules import NOAM_PEAK_LR, RANGE_TEST_LR, RESTART_RUN, SGDR_LR
from course_lib.exercises.sgd_measures import SGD_NOISE_FLOOR, STABILITY_RATIO
from course_lib.exercises.sgd_rules import MOMENTUM_STEP, NESTEROV_STEP, SGD_STEP
from course_lib.exercises.sign_optimizers import LION_BUG_HUNT, LION_DECAY_STEPS, LION_STEP
from course_lib.exercises.stopping_rules import EARLY_STOPPING_EPOCH, GRADIENT_TOLERANCE
from course_lib.exercises.update_rule import Rule
from course_lib.exercises.weight_decay import ADAMW_BUG_HUNT, DECAY_HALF_LIFE

RULES: dict[str, Rule] = {}
NUMBER_EXERCISES: dict[str, NumberExercise] = {}
OPTIMIZER_CLASS_EXERCISES: dict[str, OptimizerClassExercise] = {}


def _register(*exercises) -> None:
    """File each exercise under its name in the registry of its kind (a name is used once)."""
    for exercise in exercises:
        if isinstance(exercise, Rule):
            registry = RULES
        elif isinstance(exercise, NumberExercise):
            registry = NUMBER_EXERCISES
        elif isinstance(exercise, OptimizerClassExercise):
            registry = OPTIMIZER_CLASS_EXERCISES
        else:
            raise TypeError(f"not an exercise: {exercise!r}")
        if exercise.name in RULES or exercise.name in NUMBER_EXERCISES or (
            exercise.name in OPTIMIZER_CLASS_EXERCISES
        ):
            raise ValueError(f"two exercises are named {exercise.name!r}")
        registry[exercise.name] = exercise


# The update rules, numbers and classes of chapters 01–04 (first edition), then one line per
# chapter. The grader's probes are built from these registries, in this order.
_register(SGD_STEP, MOMENTUM_STEP, NESTEROV_STEP, ADAGRAD_STEP, RMSPROP_STEP, ADAM_STEP, ADAMW_STEP)
_register(DIVERGENCE_THRESHOLD, OPTIMAL_MOMENTUM, BIAS_CORRECTION)
_register(FIXED_SGD, FIXED_MOMENTUM_SGD, FIXED_ADAM)
_register(CLASSIFY_CRITICAL_POINT, GRADIENT_TOLERANCE, EARLY_STOPPING_EPOCH)  # 00
_register(SGD_NOISE_FLOOR, STABILITY_RATIO)  # 01
_register(MOMENTUM_LR_LIMIT, FIXED_MOMENTUM_OPTIMIZER)  # 02
_register(RMSPROP_LR_AFTER_SPIKE, CENTERED_RMSPROP, FIXED_ADAGRAD)  # 03
_register(UNCORRECTED_PEAK_STEP, STATE_BYTES, ADAM_BUG_HUNT)  # 04
_register(DECAY_HALF_LIFE, ADAMW_BUG_HUNT)  # 05 (adamw_step is above)
_register(FIRST_NEGATIVE_INCREMENT, AMSGRAD_STATE_BYTES, AMSGRAD_CLASS)  # 06
_register(SGDR_LR, NOAM_PEAK_LR, RESTART_RUN, RANGE_TEST_LR)  # 07
_register(FIRST_RECTIFIED_STEP, RADAM_RECTIFIER, ADAN_BUG_HUNT)  # 08
_register(ADAI_BETA1, SGD_SADDLE_ESCAPE_STEP, MEDIAN_ESCAPE_STEPS)  # 09
_register(LION_STEP, LION_DECAY_STEPS, LION_BUG_HUNT)  # 10
_register(ADAMW_FROM_BLOCKS, COMPOSED_STATE_BYTES, FTRL_WEIGHT)  # 11

__all__ = [
    "prepare",
    "NUMBER_EXERCISES",
    "OPTIMIZER_CLASS_EXERCISES",
    "RULES",
    "NumberExercise",
    "OptimizerClassExercise",
    "Rule",
]


def prepare() -> None:
    """Load, once, what measure exercises would otherwise import lazily in their first call.

    The grader calls this in its clean image before it forks any box: submissions then pay no
    per-submission import, and a sandbox user who may not read the interpreter's own library (a
    Python installed under ``/root``) still finds every module already loaded.
    """
    for exercise in NUMBER_EXERCISES.values():
        if getattr(exercise, "prepare", None) is not None:
            exercise.prepare()
