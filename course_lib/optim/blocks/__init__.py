"""Building blocks of the course optimizers: one concept per function, each on a list of tensors.

A named optimizer (``course_lib.optim.Adam`` …) is a few lines that call these blocks in order, and
a lesson can build a new optimizer by calling them in a different order (see
:class:`course_lib.optim.BlockOptimizer`). One module per concept:

- ``core``          lazily created state, the step counter, L2 and decoupled decay, the move
- ``moments``       EMAs of the gradient and its square, bias correction
- ``momentum``      heavy ball (PyTorch and EMA forms), Nesterov, NAdam's momentum schedule
- ``adaptive``      AdaGrad's sum, RMS scaling, centered RMSprop, Adadelta
- ``amsgrad``       the running maximum of the second moment, in its three conventions
- ``rectification`` RAdam's variance rectification
- ``adan``          gradient-difference momentum and proximal decay (Adan)
- ``inertia``       adaptive inertia (Adai)
- ``sign``          sign updates (Lion, PowerSign, AddSign) and sign decays
- ``online``        online and strongly convex second moments (Mukkamala & Hein)
"""

from course_lib.optim.blocks.adan import *  # noqa: F403
from course_lib.optim.blocks.adaptive import *  # noqa: F403
from course_lib.optim.blocks.amsgrad import *  # noqa: F403
from course_lib.optim.blocks.core import *  # noqa: F403
from course_lib.optim.blocks.inertia import *  # noqa: F403
from course_lib.optim.blocks.moments import *  # noqa: F403
from course_lib.optim.blocks.momentum import *  # noqa: F403
from course_lib.optim.blocks.online import *  # noqa: F403
from course_lib.optim.blocks.rectification import *  # noqa: F403
from course_lib.optim.blocks.sign import *  # noqa: F403
