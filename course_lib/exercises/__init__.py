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
2. list it in :data:`RULES` below (or :data:`NUMBER_EXERCISES`, :data:`OPTIMIZER_CLASS_EXERCISES`);
3. add a two-line ``check_amsgrad_step`` to :mod:`course_lib.checks` for the notebook to call.

The grader's probe and the tests that every mistake is diagnosed, with the same sentence by the
self-check and by the grader, follow from the registry.
"""

from course_lib.exercises.adaptive_rules import ADAGRAD_STEP, ADAM_STEP, ADAMW_STEP, RMSPROP_STEP
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
from course_lib.exercises.sgd_rules import MOMENTUM_STEP, NESTEROV_STEP, SGD_STEP
from course_lib.exercises.update_rule import Rule

RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        SGD_STEP,
        MOMENTUM_STEP,
        NESTEROV_STEP,
        ADAGRAD_STEP,
        RMSPROP_STEP,
        ADAM_STEP,
        ADAMW_STEP,
    )
}
NUMBER_EXERCISES: dict[str, NumberExercise] = {
    exercise.name: exercise
    for exercise in (DIVERGENCE_THRESHOLD, OPTIMAL_MOMENTUM, BIAS_CORRECTION)
}
OPTIMIZER_CLASS_EXERCISES: dict[str, OptimizerClassExercise] = {
    exercise.name: exercise for exercise in (FIXED_SGD, FIXED_MOMENTUM_SGD, FIXED_ADAM)
}

__all__ = [
    "prepare",
    "NUMBER_EXERCISES",
    "OPTIMIZER_CLASS_EXERCISES",
    "RULES",
    "NumberExercise",
    "OptimizerClassExercise",
    "Rule",
]

# ---------------------------------------------------------------------------------------------
# Chapter 02 (issue #12): derive the largest stable learning rate; find a momentum optimizer's bug
# ---------------------------------------------------------------------------------------------

from course_lib.exercises.momentum import (  # noqa: E402
    FIXED_MOMENTUM_OPTIMIZER,
    MOMENTUM_LR_LIMIT,
)

NUMBER_EXERCISES[MOMENTUM_LR_LIMIT.name] = MOMENTUM_LR_LIMIT
OPTIMIZER_CLASS_EXERCISES[FIXED_MOMENTUM_OPTIMIZER.name] = FIXED_MOMENTUM_OPTIMIZER


# ---------------------------------------------------------------------------------------------
# Chapter 03 (AdaGrad and RMSprop): a whole optimizer with param groups, a class to fix, a number
# ---------------------------------------------------------------------------------------------

from course_lib.exercises.adaptive_rates import (  # noqa: E402
    CENTERED_RMSPROP,
    FIXED_ADAGRAD,
    RMSPROP_LR_AFTER_SPIKE,
)

NUMBER_EXERCISES[RMSPROP_LR_AFTER_SPIKE.name] = RMSPROP_LR_AFTER_SPIKE
OPTIMIZER_CLASS_EXERCISES[CENTERED_RMSPROP.name] = CENTERED_RMSPROP
OPTIMIZER_CLASS_EXERCISES[FIXED_ADAGRAD.name] = FIXED_ADAGRAD

# --- chapter 04 (appended): uncorrected_peak_step, state_bytes, the Adam bug hunt ---------------
from course_lib.exercises.adam_exercises import (  # noqa: E402
    ADAM_BUG_HUNT,
    STATE_BYTES,
    UNCORRECTED_PEAK_STEP,
)

NUMBER_EXERCISES.update({e.name: e for e in (UNCORRECTED_PEAK_STEP, STATE_BYTES)})
OPTIMIZER_CLASS_EXERCISES[ADAM_BUG_HUNT.name] = ADAM_BUG_HUNT


# ---------------------------------------------------------------------------------------------
# Chapters 00-01 (issue #12): critical points, stopping rules, SGD's noise floor, and a measured
# number (the divergence learning rate of a real net in units of 2/λ_max)
# ---------------------------------------------------------------------------------------------

from course_lib.exercises.critical_points import CLASSIFY_CRITICAL_POINT  # noqa: E402
from course_lib.exercises.sgd_measures import SGD_NOISE_FLOOR, STABILITY_RATIO  # noqa: E402
from course_lib.exercises.stopping_rules import (  # noqa: E402
    EARLY_STOPPING_EPOCH,
    GRADIENT_TOLERANCE,
)

NUMBER_EXERCISES.update(
    {
        exercise.name: exercise
        for exercise in (
            CLASSIFY_CRITICAL_POINT,
            GRADIENT_TOLERANCE,
            EARLY_STOPPING_EPOCH,
            SGD_NOISE_FLOOR,
            STABILITY_RATIO,
        )
    }
)


def prepare() -> None:
    """Load, once, what measure exercises would otherwise import lazily in their first call.

    The grader calls this in its clean image before it forks any box: submissions then pay no
    per-submission import, and a sandbox user who may not read the interpreter's own library (a
    Python installed under ``/root``) still finds every module already loaded.
    """
    for exercise in NUMBER_EXERCISES.values():
        if getattr(exercise, "prepare", None) is not None:
            exercise.prepare()


# --- chapter 05 (appended): decay_half_life, the AdamW bug hunt (adamw_step is in RULES above) --
from course_lib.exercises.weight_decay import ADAMW_BUG_HUNT, DECAY_HALF_LIFE  # noqa: E402

NUMBER_EXERCISES[DECAY_HALF_LIFE.name] = DECAY_HALF_LIFE
OPTIMIZER_CLASS_EXERCISES[ADAMW_BUG_HUNT.name] = ADAMW_BUG_HUNT


# --- chapter 10 ---------------------------------------------------------------------------------
# lion_step (implement), lion_decay_steps (compute), lion_bug_hunt (find the bug)
from course_lib.exercises.sign_optimizers import (  # noqa: E402
    LION_BUG_HUNT,
    LION_DECAY_STEPS,
    LION_STEP,
)

RULES[LION_STEP.name] = LION_STEP
NUMBER_EXERCISES[LION_DECAY_STEPS.name] = LION_DECAY_STEPS
OPTIMIZER_CLASS_EXERCISES[LION_BUG_HUNT.name] = LION_BUG_HUNT


# --- chapter 06 -------------------------------------------------------------------------------
from course_lib.exercises.amsgrad import (  # noqa: E402
    AMSGRAD_CLASS,
    AMSGRAD_STATE_BYTES,
    FIRST_NEGATIVE_INCREMENT,
)

NUMBER_EXERCISES.update({e.name: e for e in (FIRST_NEGATIVE_INCREMENT, AMSGRAD_STATE_BYTES)})
OPTIMIZER_CLASS_EXERCISES[AMSGRAD_CLASS.name] = AMSGRAD_CLASS


# --- chapter 09 ---
# Adai's β1 (implement), SGD's escape step from a noisy saddle (derive), an escape time (measure)
from course_lib.exercises.adai import (  # noqa: E402
    ADAI_BETA1,
    MEDIAN_ESCAPE_STEPS,
    SGD_SADDLE_ESCAPE_STEP,
)

RULES[ADAI_BETA1.name] = ADAI_BETA1
NUMBER_EXERCISES.update({e.name: e for e in (SGD_SADDLE_ESCAPE_STEP, MEDIAN_ESCAPE_STEPS)})


# --- chapter 08 ---: RAdam's switch step and rectifier, the Adan bug hunt
from course_lib.exercises.rectification import (  # noqa: E402
    ADAN_BUG_HUNT,
    FIRST_RECTIFIED_STEP,
    RADAM_RECTIFIER,
)

NUMBER_EXERCISES.update({e.name: e for e in (FIRST_RECTIFIED_STEP, RADAM_RECTIFIER)})
OPTIMIZER_CLASS_EXERCISES[ADAN_BUG_HUNT.name] = ADAN_BUG_HUNT


# --- chapter 07 ---
# Schedules: SGDR as a pure function (implement), the Transformer peak (compute), a training loop
# with restarts (find the bug), the lr range test's pick (measure)
from course_lib.exercises.schedules import (  # noqa: E402
    NOAM_PEAK_LR,
    RANGE_TEST_LR,
    RESTART_RUN,
    SGDR_LR,
)

NUMBER_EXERCISES.update(
    {exercise.name: exercise for exercise in (SGDR_LR, NOAM_PEAK_LR, RESTART_RUN, RANGE_TEST_LR)}
)


# --- chapter 11 ---
# Concepts, not names: compose AdamW from blocks, count a composition's state, FTRL's weight
from course_lib.exercises.composition import (  # noqa: E402
    ADAMW_FROM_BLOCKS,
    COMPOSED_STATE_BYTES,
    FTRL_WEIGHT,
)

NUMBER_EXERCISES.update({e.name: e for e in (COMPOSED_STATE_BYTES, FTRL_WEIGHT)})
OPTIMIZER_CLASS_EXERCISES[ADAMW_FROM_BLOCKS.name] = ADAMW_FROM_BLOCKS
