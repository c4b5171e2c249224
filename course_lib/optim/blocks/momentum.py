r"""Momentum blocks: heavy ball (PyTorch and EMA forms), Nesterov's look-ahead, NAdam's schedule.

Two conventions for the same idea (chapter 02 compares them):

* **PyTorch form** :math:`v \leftarrow \mu v + g` (velocity starts as the first gradient).
* **EMA form** :math:`v \leftarrow \beta v + (1-\beta)\,g` (zero-initialised, as Adam's ``m``).

With :math:`\beta = \mu` and zero dampening the EMA velocity is exactly :math:`(1-\beta)` times
PyTorch's, so SGD with the EMA form and learning rate :math:`\eta/(1-\beta)` follows the same
trajectory as SGD with PyTorch's form and learning rate :math:`\eta` (Nesterov included).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from course_lib.optim.blocks.moments import ema

__all__ = ["MOMENTUM_FORMS", "heavy_ball", "nadam_momentum", "nesterov"]

MOMENTUM_FORMS = ("pytorch", "ema")


def heavy_ball(
    states: list[dict[str, Any]],
    grads: list[Tensor],
    momentum: float,
    dampening: float = 0.0,
    key: str = "v",
    form: str = "pytorch",
) -> list[Tensor]:
    r"""Polyak's heavy ball. Returns the velocities (the state buffers themselves).

    ``form="pytorch"`` (default): :math:`v \leftarrow \mu v + (1-\tau)\,g` with :math:`\mu` =
    ``momentum`` and :math:`\tau` = ``dampening``. As in ``torch.optim.SGD`` the velocity starts as
    the first gradient (:math:`v_1 = g_1`, no dampening on step 1).

    ``form="ema"``: :math:`v \leftarrow \beta v + (1-\beta)\,g` with :math:`\beta` = ``momentum``,
    zero-initialised (:math:`v_1 = (1-\beta) g_1`); the factor :math:`1-\beta` plays the role of
    dampening, so ``dampening`` must be 0.

    With ``momentum == 0`` the gradients pass through unchanged (and no state is created).
    """
    if form not in MOMENTUM_FORMS:
        raise ValueError(f"Invalid momentum form: {form!r} (expected one of {MOMENTUM_FORMS})")
    if momentum == 0:
        return grads
    if form == "ema":
        if dampening != 0:
            raise ValueError("The EMA momentum form has its own damping (1 - beta): dampening=0")
        return ema(states, key, grads, momentum)
    velocities = []
    for state, g in zip(states, grads):
        if key not in state:
            state[key] = g.detach().clone()
        else:
            state[key].mul_(momentum).add_(g, alpha=1 - dampening)
        velocities.append(state[key])
    return velocities


def nesterov(
    grads: list[Tensor], velocities: list[Tensor], momentum: float, form: str = "pytorch"
) -> list[Tensor]:
    r"""Nesterov's look-ahead in PyTorch's rewrite: the step direction is :math:`g + \mu v`.

    Evaluating the gradient at the look-ahead point :math:`w - \eta\mu v` is equivalent, after the
    change of variables :math:`\tilde w = w - \eta\mu v`, to stepping along :math:`g + \mu v` from
    the current point (chapter 02 derives it and checks the two trajectories coincide).

    For velocities in the EMA form (``form="ema"``) the same look-ahead reads
    :math:`(1-\beta)\,g + \beta v`, again :math:`(1-\beta)` times PyTorch's direction.
    """
    if form == "ema":
        return [g.lerp(v, momentum) for g, v in zip(grads, velocities)]
    return [g.add(v, alpha=momentum) for g, v in zip(grads, velocities)]


def nadam_momentum(
    states: list[dict[str, Any]],
    grads: list[Tensor],
    m: list[Tensor],
    steps: list[int],
    beta1: float,
    momentum_decay: float,
) -> list[Tensor]:
    r"""NAdam's bias-corrected Nesterov momentum (Dozat, 2016), with its momentum schedule.

    The momentum coefficient warms up, :math:`\mu_t = \beta_1\,(1 - \tfrac12\, 0.96^{t\psi})`
    with :math:`\psi` = ``momentum_decay`` (4e-3 in Dozat's paper and ``torch.optim.NAdam``), and
    the running product :math:`\Pi_t = \prod_{s\le t}\mu_s` (state ``mu_product``, starts at 1)
    replaces :math:`\beta_1^t` in the bias correction. The look-ahead momentum is

    .. math::
        \bar m_t = \frac{1-\mu_t}{1-\Pi_t}\, g_t + \frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\, m_t

    — the current gradient's share plus the *next* step's share of :math:`m_t` (Nesterov: use the
    momentum you are about to apply). ``m`` must already include :math:`g_t`. Returns new tensors.
    """
    out = []
    for state, g, m_i, t in zip(states, grads, m, steps):
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        state["mu_product"] = state.get("mu_product", 1.0) * mu
        product = state["mu_product"]
        out.append(g * ((1.0 - mu) / (1.0 - product)) + m_i * (mu_next / (1.0 - product * mu_next)))
    return out
