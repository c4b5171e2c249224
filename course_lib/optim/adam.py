r"""Adam and its family: AdamW, AMSGrad, RAdam, NAdam."""

from __future__ import annotations

from course_lib.optim import blocks as B
from course_lib.optim._base import BlockOptimizer, check_betas, check_lr, check_non_negative

__all__ = ["Adam", "AdamW", "NAdam", "RAdam"]


def _decay(group, params, grads):
    """L2 (gradient term) or decoupled weight decay, as ``decoupled_weight_decay`` says."""
    if group["decoupled_weight_decay"]:
        B.decay_weights(params, group["lr"], group["weight_decay"])
        return grads
    return B.add_l2(grads, params, group["weight_decay"])


class Adam(BlockOptimizer):
    r"""Adam (Kingma & Ba, 2015): momentum + RMS scaling + bias correction.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \quad\text{(L2, only if weight\_decay > 0)}\\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        w &\leftarrow w - \eta\, \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    Defaults :math:`\eta=10^{-3}, \beta=(0.9, 0.999), \epsilon=10^{-8}` are the paper's. Same
    arguments and semantics as ``torch.optim.Adam``: ``weight_decay`` is L2 (use :class:`AdamW`
    for decoupled decay), ε sits outside the square root. State: ``m``, ``v``, ``step``.

    **AMSGrad** (``amsgrad=True``, Reddi et al. 2018) divides by a running maximum of the second
    moment so the per-coordinate rate never grows. ``amsgrad_convention`` (keyword-only) picks how:

    * ``"raw"`` (default, = ``torch.optim.Adam(amsgrad=True)``): :math:`v^{\max} \leftarrow
      \max(v^{\max}, v)`, step :math:`\hat m / (\sqrt{v^{\max}/(1-\beta_2^t)} + \epsilon)`;
      extra state ``v_max``.
    * ``"corrected"`` (= optax): :math:`\hat v^{\max} \leftarrow \max(\hat v^{\max},
      v/(1-\beta_2^t))`, step :math:`\hat m / (\sqrt{\hat v^{\max}} + \epsilon)`; extra state
      ``v_hat_max``.
    * ``"memory_free"``: no extra buffer, :math:`v \leftarrow \max(v, \beta_2 v + (1-\beta_2)
      g^2)` kept in ``v`` itself, then the usual bias-corrected step.

    See :func:`~course_lib.optim.blocks.amsgrad_max` for when the first two agree.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        amsgrad_convention: str = "raw",
    ) -> None:
        check_lr(lr)
        check_non_negative(eps, "epsilon value")
        check_betas(betas)
        check_non_negative(weight_decay, "weight_decay value")
        if amsgrad_convention not in B.AMSGRAD_CONVENTIONS:
            raise ValueError(
                f"Invalid amsgrad_convention: {amsgrad_convention!r} "
                f"(expected one of {B.AMSGRAD_CONVENTIONS})"
            )
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
            amsgrad_convention=amsgrad_convention,
        )
        super().__init__(params, defaults)

    def tensor_hyperparameters(self, group):
        return {"betas": (0,)}  # beta1 only enters lerp_ and 1 - beta1**t

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        grads = _decay(group, params, grads)
        ams = group["amsgrad_convention"] if group["amsgrad"] else None
        t = B.count_step(states)
        m = B.ema(states, "m", grads, beta1)
        second_moment = B.ema_sq_max if ams == "memory_free" else B.ema_sq
        v = second_moment(states, "v", grads, beta2)
        c2 = B.bias_correction(beta2, t)
        if ams in ("raw", "corrected"):
            v, c2 = B.amsgrad_max(states, v, c2, ams)
        m_hat = B.unbias(m, B.bias_correction(beta1, t))
        B.apply_update(params, B.rms_scale(m_hat, v, group["eps"], corrections=c2), group["lr"])


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math:: w \leftarrow (1-\eta\lambda)\,w, \text{ then the Adam step}

    Same arguments and defaults as ``torch.optim.AdamW`` (``weight_decay=1e-2``), plus Adam's
    ``amsgrad_convention``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        amsgrad_convention: str = "raw",
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            maximize=maximize, decoupled_weight_decay=True, amsgrad_convention=amsgrad_convention,
        )


class RAdam(BlockOptimizer):
    r"""Rectified Adam (Liu et al., 2020): momentum-only steps until the adaptive rate is reliable.

    .. math::
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad \hat m = m/(1-\beta_1^t) \\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t} \\
        w &\leftarrow w - \eta\, r_t\, \hat m\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v}+\epsilon}
            \ \text{ if } \rho_t > 5, \quad\text{else}\quad w \leftarrow w - \eta\, \hat m

    with the rectification :math:`r_t` of :func:`~course_lib.optim.blocks.radam_rectification`.
    The early variance of the adaptive rate is what warmup fixes by hand; RAdam switches *from*
    momentum SGD *to* rectified Adam (with β2 = 0.999 at step 6) — not the other way round. Same
    arguments, defaults and semantics as ``torch.optim.RAdam`` (``decoupled_weight_decay=True``:
    AdamW-style decay; ε added to √v before the bias correction). State: ``m``, ``v``, ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_lr(lr)
        check_non_negative(eps, "epsilon value")
        check_betas(betas)
        check_non_negative(weight_decay, "weight_decay value")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def tensor_hyperparameters(self, group):
        return {"betas": (0,)}  # beta1 only enters lerp_ and 1 - beta1**t

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        grads = _decay(group, params, grads)
        t = B.count_step(states)
        m = B.ema(states, "m", grads, beta1)
        v = B.ema_sq(states, "v", grads, beta2)
        m_hat = B.unbias(m, B.bias_correction(beta1, t))
        B.apply_update(params, B.radam_direction(m_hat, v, t, beta2, group["eps"]), group["lr"])


class NAdam(BlockOptimizer):
    r"""NAdam (Dozat, 2016): Adam with Nesterov momentum and a warming-up momentum schedule.

    .. math::
        \mu_t &= \beta_1\,(1 - \tfrac12\, 0.96^{t\psi}), \qquad
            \Pi_t = \textstyle\prod_{s \le t} \mu_s \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        w &\leftarrow w - \eta\, \frac{\frac{1-\mu_t}{1-\Pi_t}\, g
            + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\, m}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    :math:`\psi` = ``momentum_decay``; see :func:`~course_lib.optim.blocks.nadam_momentum`. Same
    arguments, defaults (:math:`\eta = 2\cdot 10^{-3}`, :math:`\psi = 4\cdot 10^{-3}`) and
    semantics as ``torch.optim.NAdam``. State: ``m``, ``v``, ``mu_product`` (a Python float),
    ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_lr(lr)
        check_non_negative(eps, "epsilon value")
        check_betas(betas)
        check_non_negative(weight_decay, "weight_decay value")
        check_non_negative(momentum_decay, "momentum_decay value")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        grads = _decay(group, params, grads)
        t = B.count_step(states)
        m = B.ema(states, "m", grads, beta1)
        v = B.ema_sq(states, "v", grads, beta2)
        m_bar = B.nadam_momentum(states, grads, m, t, beta1, group["momentum_decay"])
        d = B.rms_scale(m_bar, v, group["eps"], corrections=B.bias_correction(beta2, t))
        B.apply_update(params, d, group["lr"])
