"""From-scratch optimizers and learning-rate schedules for the course.

Every optimizer is a :class:`torch.optim.Optimizer` built from the blocks in
:mod:`course_lib.optim.blocks` and checked step by step against a reference implementation
(``torch.optim``, ``lion-pytorch`` or ``pytorch-optimizer``) in the test suite.

Layers, each importing only those above it: ``blocks`` → ``validation``, ``interop`` → ``base``
(:class:`BlockOptimizer`) → the optimizers (``classic``, ``adam``, ``frontier``, ``online``) →
``schedules``; ``fastpath`` is a plug-in on top that installs itself as the optimizers' step
engine.
"""

from course_lib.optim import adam, blocks, classic, frontier, online
from course_lib.optim.adam import *  # noqa: F403
from course_lib.optim.base import BlockOptimizer, state_bytes
from course_lib.optim.classic import *  # noqa: F403
from course_lib.optim.fastpath import fast_path_config, fast_path_stats, set_fast_path
from course_lib.optim.frontier import *  # noqa: F403
from course_lib.optim.online import *  # noqa: F403

__all__ = ["BlockOptimizer", "blocks", "state_bytes", *classic.__all__, *adam.__all__]
__all__ += ["fast_path_config", "fast_path_stats", "set_fast_path"]  # the fast path's switch
__all__ += [*frontier.__all__, *online.__all__]  # Adan, Adai, sign methods, online RMSprop

# --- chapter 11 ---
from course_lib.optim import composer, fastpath  # noqa: E402
from course_lib.optim.composer import *  # noqa: E402, F403

__all__ += composer.__all__  # the composer: one block per concept
fastpath.register(ComposedOptimizer)  # noqa: F405  every block of the composer is elementwise
