r"""The online RMSprop family of Mukkamala & Hein (ICML 2017, "Variants of RMSProp and Adagrad
with Logarithmic Regret Bounds"), chapter 03.

RMSprop with a *growing* averaging horizon, :math:`\beta_t = 1 - \gamma/t`, sits between RMSprop
and AdaGrad: for :math:`\gamma = 1` the "moving average" is the plain average of all squared
gradients and :class:`OnlineRMSprop` **is** AdaGrad (``tests/test_optim_online.py`` checks the
trajectories coincide with ``torch.optim.Adagrad`` up to float64 round-off). The strongly convex
variants divide by :math:`v` instead of :math:`\sqrt v` and take :math:`O(\log T)` regret.

Defaults are those of the authors' code (``mmahesh/variants-of-rmsprop-and-adagrad``,
``new_optimizers.py``): lr 0.01, :math:`\gamma = 0.9`, :math:`\delta = 10^{-8}`,
:math:`\xi_1 = \xi_2 = 0.1`. Every step counter :math:`t` is per parameter (as ``torch.optim``):
it counts the gradients *this* parameter has received, so a parameter skipped on some steps
(``None`` grad) still has :math:`t\,v_t = \sum g^2` and the AdaGrad identity holds for it too.
The paper writes the learning rate as :math:`\alpha`; here, as everywhere in the course, it is
:math:`\eta` (``lr``).
"""

from __future__ import annotations

from course_lib.optim import blocks
from course_lib.optim.base import BlockOptimizer
from course_lib.optim.validation import check_hyperparameter

__all__ = ["OnlineRMSprop", "SCAdagrad", "SCRMSprop"]


def _check_gamma(gamma: float) -> None:
    check_hyperparameter("gamma", gamma, high=1.0, low_inclusive=False)


class OnlineRMSprop(BlockOptimizer):
    r"""RMSprop with :math:`\beta_t = 1-\gamma/t` and :math:`\eta_t = \eta/\sqrt t`,
    :math:`\epsilon_t = \delta/\sqrt t` (Mukkamala & Hein 2017, Algorithm 3).

    .. math::
        g &\leftarrow g + \lambda w \quad\text{(L2, only if weight\_decay > 0)} \\
        v_t &= \big(1 - \tfrac{\gamma}{t}\big)\, v_{t-1} + \tfrac{\gamma}{t}\, g^2 \\
        w &\leftarrow w - \frac{\eta}{\sqrt t}\,\frac{g}{\sqrt{v_t} + \delta/\sqrt t}
           = w - \eta\, \frac{g}{\sqrt{t\, v_t} + \delta}

    **AdaGrad identity.** For :math:`\gamma = 1`, :math:`t v_t = \sum_{s\le t} g_s^2`, so the
    step is AdaGrad's :math:`\eta\, g / (\sqrt{\sum g^2} + \delta)`: ``OnlineRMSprop(lr=a,
    gamma=1, delta=d)`` follows the trajectory of ``torch.optim.Adagrad(lr=a, eps=d)``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        gamma: float = 0.9,
        delta: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        _check_gamma(gamma)
        check_hyperparameter("delta", delta)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(
            lr=lr, gamma=gamma, delta=delta, weight_decay=weight_decay, maximize=maximize
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        v = blocks.online_ema_sq(states, grads, group["gamma"], t)
        d = blocks.online_rms_direction(grads, v, t, group["delta"])
        blocks.apply_update(params, d, group["lr"])


class SCAdagrad(BlockOptimizer):
    r"""SC-AdaGrad, AdaGrad for strongly convex losses (Mukkamala & Hein 2017, Algorithm 2).

    .. math::
        v_t &= v_{t-1} + g^2 \\
        w &\leftarrow w - \eta\, \frac{g}{v_t + \delta_t}, \qquad
            \delta_t = \xi_2\, e^{-\xi_1 v_t}

    No square root: the effective lr decays like :math:`1/t` (not :math:`1/\sqrt t`), the rate
    that strong convexity allows. The per-coordinate damping :math:`\delta_t` keeps the first
    steps bounded and fades as :math:`v_t` grows (the authors' code: ``xi_2 * exp(-xi_1 * v)``).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        xi1: float = 0.1,
        xi2: float = 0.1,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("xi1", xi1)
        check_hyperparameter("xi2", xi2, low_inclusive=False)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(lr=lr, xi1=xi1, xi2=xi2, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        blocks.count_step(states)
        v = blocks.accumulate_sq(states, "v", grads)
        d = blocks.sc_direction(grads, v, group["xi1"], group["xi2"])
        blocks.apply_update(params, d, group["lr"])


class SCRMSprop(BlockOptimizer):
    r"""SC-RMSprop (Mukkamala & Hein 2017, Algorithm 4): :math:`\beta_t = 1-\gamma/t`,
    step :math:`\eta/t`, no square root.

    .. math::
        v_t &= \big(1 - \tfrac{\gamma}{t}\big)\, v_{t-1} + \tfrac{\gamma}{t}\, g^2 \\
        w &\leftarrow w - \frac{\eta}{t}\,\frac{g}{v_t + \delta_t / t}
           = w - \eta\, \frac{g}{t\, v_t + \delta_t}, \qquad
           \delta_t = \xi_2\, e^{-\xi_1 t v_t}

    **SC-AdaGrad identity.** For :math:`\gamma = 1`, :math:`t v_t = \sum g^2` and the step is
    SC-AdaGrad's exactly: ``SCRMSprop(gamma=1)`` follows :class:`SCAdagrad`'s trajectory.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        gamma: float = 0.9,
        xi1: float = 0.1,
        xi2: float = 0.1,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        _check_gamma(gamma)
        check_hyperparameter("xi1", xi1)
        check_hyperparameter("xi2", xi2, low_inclusive=False)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(
            lr=lr, gamma=gamma, xi1=xi1, xi2=xi2, weight_decay=weight_decay, maximize=maximize
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        v = blocks.online_ema_sq(states, grads, group["gamma"], t)
        s = [v_i * t_i for v_i, t_i in zip(v, t)]  # t * v_t: the (weighted) sum of squares
        d = blocks.sc_direction(grads, s, group["xi1"], group["xi2"])
        blocks.apply_update(params, d, group["lr"])
