"""Diagnoses that several exercises share: one sentence per classic mistake.

A diagnosis is the sentence a student reads, in the self-check's ✗ message and in the grader's
feedback alike. A mistake that only one exercise can make keeps its sentence next to that
exercise's variants; a mistake that several exercises can make (a wrong sign in ``sgd_step`` and
in ``FixedSGD``, ε inside the root in AdaGrad, RMSprop and Adam …) is worded once, here.
"""

WRONG_SIGN = "wrong sign: you moved *along* the gradient (p + lr·…) instead of against it"
MODIFIED_AN_INPUT = (
    "you modified an input tensor in place (e.g. `g.mul_(…)`, `p -= …`, `v.add_(…)`): "
    "the function must return new tensors and leave its arguments unchanged"
)
EMA_MOMENTUM = "momentum in EMA form v ← μv + (1−μ)g; this course (and PyTorch) uses v ← μv + g"
NESTEROV_INSTEAD_OF_HEAVY_BALL = (
    "that is Nesterov's update (p − lr·(g + μv)); plain heavy ball uses p − lr·v"
)
EPS_INSIDE_ROOT = (
    "ε inside the square root √(v + ε); PyTorch (and this course) puts it outside: √v + ε"
)
STEP_COUNT_PLUS_ONE = (
    "off-by-one step count: you used t+1 in the bias correction; t is already the 1-based "
    "index of this step"
)
STEP_COUNT_MINUS_ONE = (
    "off-by-one step count: you used t−1 in the bias correction; the first step has t = 1"
)
NOT_IMPLEMENTED = "not implemented yet — replace `raise NotImplementedError()` with your code."
COMPUTED_IN_FLOAT32 = (
    "you computed in float32 (a tensor made with torch.tensor(...) or torch.zeros(...) without "
    "dtype=torch.float64 is float32): the answer is right to about 7 digits only; compute in "
    "float64 or with Python floats"
)
SQUARE_MISSING_IN_V = (
    "v is built from g instead of g²: the second moment averages the *squared* gradient, "
    "v ← β·v + (1−β)·g²"
)
ABSOLUTE_VALUE_IN_V = (
    "v is built from |g| instead of g²: the second moment averages the *squared* gradient, "
    "v ← β·v + (1−β)·g²"
)
