r"""Frontier optimizers: Adan (ch. 08), Adai/AdaiW (ch. 09), PowerSign, AddSign and Lion (ch. 10).

Each is checked step by step against its reference in ``tests/test_optim_frontier.py``: Lion against
``lion-pytorch``, Adai/AdaiW/Adan against ``pytorch-optimizer`` and against transcriptions of the
authors' official code where the two differ; PowerSign/AddSign against hand-computed steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib.optim import blocks
from course_lib.optim.base import BlockOptimizer
from course_lib.optim.validation import check_betas, check_hyperparameter

__all__ = ["AddSign", "Adai", "AdaiW", "Adan", "Lion", "PowerSign"]


class Lion(BlockOptimizer):
    r"""Lion, EvoLved Sign Momentum (Chen et al., 2023, "Symbolic Discovery of Optimization
    Algorithms"), found by program search.

    .. math::
        w &\leftarrow (1-\eta\lambda)\, w \\
        c &= \beta_1 m + (1-\beta_1)\, g \\
        w &\leftarrow w - \eta\, \operatorname{sign}(c) \\
        m &\leftarrow \beta_2 m + (1-\beta_2)\, g

    Every coordinate moves by exactly :math:`\eta` (plus the decay), so Lion wants an lr 3–10×
    smaller and a weight decay 3–10× larger than AdamW's. One state buffer ``m`` (AdamW keeps two).
    Defaults :math:`\eta = 10^{-4}`, :math:`\beta = (0.9, 0.99)` are the paper's and
    ``lion-pytorch``'s; the decay is multiplied by the lr, as in ``lion-pytorch``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        betas = check_betas(betas)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        m = blocks.lazy_state(states, "m", grads)
        blocks.decay_weights(params, lr, group["weight_decay"])  # weight decay
        c = blocks.lion_interpolation(m, grads, beta1)  # update: sign of the interpolation
        blocks.apply_update(params, blocks.sign(c), lr)
        blocks.ema(states, "m", grads, beta2)  # then track the momentum with beta2


def _adai_v_hat(group, states):
    r""":math:`\hat v = v / (1-\beta_2^t)` with each parameter's own step :math:`t`.

    Both of Adai's passes compute it from the state: recomputing is cheaper than keeping a copy of
    :math:`v` between the passes (one read of :math:`v` instead of a write and a read).
    """
    t = [state["step"] for state in states]
    v = [state["v"] for state in states]
    return blocks.unbias(v, blocks.bias_correction(group["betas"][1], t))


class Adai(BlockOptimizer):
    r"""Adai, adaptive inertia (Xie et al., ICML 2022, "Adaptive Inertia: Disentangling the
    Effects of Adaptive Learning Rate and Momentum").

    .. math::
        g &\leftarrow g + \lambda w \quad\text{(L2; or } w \leftarrow (1-\eta\lambda) w
            \text{ if decoupled)} \\
        v &\leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad \hat v = v / (1-\beta_2^t) \\
        \beta_1 &= \operatorname{clip}\big(1 - \beta_0\, \hat v / \overline{\hat v},\
            0,\ 1-\epsilon\big) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
            P \leftarrow P\beta_1, \qquad w \leftarrow w - \eta\, m / (1 - P)

    The step is SGD-like (no division by :math:`\sqrt v`); :math:`v` only sets each coordinate's
    momentum. :math:`\overline{\hat v}` is the mean over **all** parameters of **all** param
    groups that have a gradient, exactly as the official code (``zeke-xie/adaptive-inertia-adai``,
    ``adai.py``), which sums ``exp_avg_sq / bias_correction2`` over every group in a first loop and
    updates in a second. Hence Adai is a *two-pass* optimizer: :meth:`update` (pass 1, per group)
    updates :math:`v` and returns the group's share of the mean, :meth:`combine` takes the mean
    over all groups, and :meth:`finish` (pass 2, per group) computes :math:`\beta_1`, the momentum
    and the move. The base class's ``step()`` runs the three in this order, on the readable path
    and on the fast path alike.

    Conventions, as the official code — and two deliberate differences from ``pytorch-optimizer``
    (pinned by ``tests/test_optim_frontier.py``, which runs both references): the step counter
    :math:`t` is per parameter (``pytorch-optimizer`` keeps one per group), and the mean is not
    clipped (``pytorch-optimizer`` clamps it below at ``eps``, which changes :math:`\beta_1` when
    gradients are small). Defaults :math:`\beta_0 = 0.1, \beta_2 = 0.99, \epsilon = 10^{-3}` are
    the paper's; lr 1e-3 is ``pytorch-optimizer``'s (the official code has no default).
    ``decoupled_weight_decay=True`` (the official code's ``decoupled=True``, accepted too) is
    :class:`AdaiW`.
    """

    two_pass = True  # update() per group, combine() over all groups, finish() per group

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.1, 0.99),
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        decoupled: bool | None = None,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("eps", eps)
        betas = check_betas(betas, unbounded=(0,))  # beta0 may exceed 1
        check_hyperparameter("weight_decay", weight_decay)
        if decoupled is not None:  # the official code's name
            if decoupled_weight_decay and not decoupled:
                raise ValueError("decoupled=False contradicts decoupled_weight_decay=True")
            decoupled_weight_decay = decoupled
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state):
        for group in state.get("param_groups", []):  # saved before the flag was renamed
            if "decoupled" in group:
                group["decoupled_weight_decay"] = group.pop("decoupled")
        super().__setstate__(state)

    def update(self, group, params, grads, states):
        r"""Pass 1 (per group): :math:`v`; returns this group's share of the mean of
        :math:`\hat v`."""
        if not group["decoupled_weight_decay"]:
            grads = blocks.add_l2(grads, params, group["weight_decay"])
        blocks.count_step(states)
        blocks.ema_sq(states, "v", grads, group["betas"][1])
        return blocks.sum_and_count(_adai_v_hat(group, states))

    def combine(self, shares):
        r"""Between the passes: :math:`\overline{\hat v}`, the mean over all groups."""
        return blocks.global_mean(shares)

    def finish(self, group, params, grads, states, mean):
        """Pass 2 (per group): adaptive inertia, momentum and the move."""
        lr, wd = group["lr"], group["weight_decay"]
        if group["decoupled_weight_decay"]:
            blocks.decay_weights(params, lr, wd)
        else:
            grads = blocks.add_l2(grads, params, wd)  # the g + λw of pass 1: w has not moved since
        v_hat = _adai_v_hat(group, states)
        beta1 = blocks.adaptive_inertia(v_hat, mean, group["betas"][0], group["eps"])
        m_hat = blocks.inertia_momentum(states, grads, beta1)
        blocks.apply_update(params, m_hat, lr)


class AdaiW(Adai):
    r"""Adai with decoupled weight decay: :math:`w \leftarrow (1-\eta\lambda)\, w`, then Adai's
    step (official ``adaiw.py``; also ``Adai(decoupled=True)``).

    The official AdaiW decays inside the second loop (here: :meth:`finish`), ``adai.py`` with
    ``decoupled=True`` inside the first; since nothing in the step reads :math:`w`, both give the
    same trajectory. Default ``weight_decay=0`` as in the official code.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.1, 0.99),
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, True, maximize=maximize)


class Adan(BlockOptimizer):
    r"""Adan, adaptive Nesterov momentum (Xie et al., 2022, "Adan: Adaptive Nesterov Momentum
    Algorithm for Faster Optimizing Deep Models"), in the official code's convention.

    .. math::
        d_k &= g_k - g_{k-1} \qquad (d_1 = 0) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g_k, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, d_k \\
        n &\leftarrow \beta_3 n + (1-\beta_3)\, (g_k + \beta_2 d_k)^2 \\
        w &\leftarrow \Big(w - \eta\, \frac{\hat m + \beta_2 \hat v}{\sqrt{\hat n} + \epsilon}\Big)
            \Big/ (1 + \eta\lambda)

    Betas are the code's (``sail-sg/Adan``): :math:`1 -` the paper's, defaults (0.98, 0.92, 0.99).
    Hats are bias corrections with the *group's* step :math:`k` (official convention: one counter
    per group, advanced by every :meth:`step`, saved in ``state_dict`` with the group). Weight
    decay is proximal by default (divide after the step); ``no_prox=True`` decays first,
    :math:`w \leftarrow (1-\eta\lambda) w`, as AdamW. The official ``max_grad_norm`` clipping is
    left out: clip with ``torch.nn.utils.clip_grad_norm_`` before ``step`` instead. State: ``m``,
    ``v``, ``n`` and ``prev_grad`` (:math:`g_{k-1}`).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        no_prox: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("eps", eps)
        betas = check_betas(betas, count=3)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            no_prox=no_prox,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One Adan step. Every group's step :math:`k` advances first, as in the official code
        (on every call, whether or not the group has gradients); :meth:`update` only reads it."""
        for group in self.param_groups:
            blocks.count_group_step(group)
        return super().step(closure)

    def update(self, group, params, grads, states):
        beta1, beta2, beta3 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        k = group["step"]
        d = blocks.grad_difference(states, grads)
        m = blocks.ema(states, "m", grads, beta1)
        v = blocks.ema(states, "v", d, beta2)
        n = blocks.ema_sq(states, "n", blocks.adan_lookahead_grad(grads, d, beta2), beta3)
        u = blocks.adan_direction(m, v, n, k, group["betas"], group["eps"])
        if group["no_prox"]:
            blocks.decay_weights(params, lr, wd)
            blocks.apply_update(params, u, lr)
        else:
            blocks.apply_update(params, u, lr)
            blocks.prox_weight_decay(params, lr, wd)


def _check_sign_arguments(lr, beta, sign_decay, decay_steps) -> None:
    check_hyperparameter("lr", lr)
    check_hyperparameter("beta", beta, high=1.0, high_inclusive=False)
    if sign_decay in blocks.SIGN_DECAYS:
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
            raise ValueError(
                f"sign_decay={sign_decay!r} needs decay_steps, a positive int (got {decay_steps!r})"
            )
    elif sign_decay is not None and not callable(sign_decay):
        raise ValueError(
            f"Invalid sign_decay: {sign_decay!r} (expected None, one of {blocks.SIGN_DECAYS} "
            "or a function of the step)"
        )


class PowerSign(BlockOptimizer):
    r"""PowerSign (Bello et al., 2017, "Neural Optimizer Search with Reinforcement Learning").

    .. math::
        m &\leftarrow \beta m + (1-\beta)\, g \\
        w &\leftarrow w - \eta\, \alpha^{f(t)\,\operatorname{sign}(g)\,\operatorname{sign}(m)}\, g

    Steps are scaled up by :math:`\alpha` where the gradient agrees with its running average and
    down where it does not. :math:`f` is the sign decay, a pure function of the number of
    completed steps: ``sign_decay=None`` (:math:`f \equiv 1`), ``"linear"`` or ``"cosine"`` over
    ``decay_steps`` (``num_periods`` for the cosine; see
    :func:`~course_lib.optim.blocks.sign_decay_values`), or any function ``t -> f``. The named
    decays are plain data in the param group, so ``torch.load(..., weights_only=True)`` can read
    the saved state; a function cannot be stored that way. Defaults follow the paper
    (:math:`\alpha = e`, :math:`\beta = 0.9`) and TensorFlow's reference implementation
    (``tf.contrib.opt.PowerSignOptimizer``: lr 0.1; :math:`m` is updated before its sign is taken).
    State: ``m``, ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 0.1,
        beta: float = 0.9,
        base: float = math.e,
        sign_decay: str | Callable[[int], float] | None = None,
        *,
        decay_steps: int | None = None,
        num_periods: float = 0.5,
        maximize: bool = False,
    ) -> None:
        _check_sign_arguments(lr, beta, sign_decay, decay_steps)
        check_hyperparameter("base", base, low_inclusive=False)
        defaults = dict(
            lr=lr,
            beta=beta,
            base=base,
            sign_decay=sign_decay,
            decay_steps=decay_steps,
            num_periods=num_periods,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        t = blocks.count_step(states)
        m = blocks.ema(states, "m", grads, group["beta"])
        agreement = blocks.sign_agreement(grads, m)
        f = blocks.sign_decay_values(
            group["sign_decay"], t, group["decay_steps"], group["num_periods"]
        )
        d = blocks.power_sign_scale(grads, agreement, group["base"], f)
        blocks.apply_update(params, d, group["lr"])


class AddSign(BlockOptimizer):
    r"""AddSign (Bello et al., 2017, "Neural Optimizer Search with Reinforcement Learning").

    .. math::
        m &\leftarrow \beta m + (1-\beta)\, g \\
        w &\leftarrow w - \eta\, \big(\alpha + f(t)\,\operatorname{sign}(g)\,
            \operatorname{sign}(m)\big)\, g

    With :math:`\alpha = 1` a coordinate moves twice as far when gradient and momentum agree and
    not at all when they disagree. The sign decay :math:`f` as in :class:`PowerSign`. Defaults
    follow the paper (:math:`\alpha = 1`, :math:`\beta = 0.9`) and
    ``tf.contrib.opt.AddSignOptimizer`` (lr 0.1). State: ``m``, ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 0.1,
        beta: float = 0.9,
        alpha: float = 1.0,
        sign_decay: str | Callable[[int], float] | None = None,
        *,
        decay_steps: int | None = None,
        num_periods: float = 0.5,
        maximize: bool = False,
    ) -> None:
        _check_sign_arguments(lr, beta, sign_decay, decay_steps)
        check_hyperparameter("alpha", alpha)
        defaults = dict(
            lr=lr,
            beta=beta,
            alpha=alpha,
            sign_decay=sign_decay,
            decay_steps=decay_steps,
            num_periods=num_periods,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        t = blocks.count_step(states)
        m = blocks.ema(states, "m", grads, group["beta"])
        agreement = blocks.sign_agreement(grads, m)
        f = blocks.sign_decay_values(
            group["sign_decay"], t, group["decay_steps"], group["num_periods"]
        )
        d = blocks.add_sign_scale(grads, agreement, group["alpha"], f)
        blocks.apply_update(params, d, group["lr"])
