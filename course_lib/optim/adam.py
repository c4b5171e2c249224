r"""Adam and its family: AdamW, AMSGrad, RAdam, NAdam, AdaMax."""

from __future__ import annotations

from course_lib.optim import blocks
from course_lib.optim.base import BlockOptimizer
from course_lib.optim.validation import check_betas, check_hyperparameter

__all__ = ["Adam", "AdamW", "Adamax", "NAdam", "RAdam"]


def _check_adam_arguments(lr, betas, eps, weight_decay) -> tuple:
    check_hyperparameter("lr", lr)
    check_hyperparameter("eps", eps)
    betas = check_betas(betas)
    check_hyperparameter("weight_decay", weight_decay)
    return betas


class Adam(BlockOptimizer):
    r"""Adam (Kingma & Ba, 2015): momentum + RMS scaling + bias correction.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \quad\text{(L2, only if weight\_decay > 0)}\\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \hat m &= \frac{m}{1-\beta_1^t}, \qquad \hat v = \frac{v}{1-\beta_2^t} \\
        w &\leftarrow w - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon}

    Defaults :math:`\eta=10^{-3}, \beta=(0.9, 0.999), \epsilon=10^{-8}` are the paper's. Same
    arguments and semantics as ``torch.optim.Adam``: ``weight_decay`` is L2 (use :class:`AdamW`
    for decoupled decay), ε sits outside the square root. State: ``m``, ``v`` (torch: ``exp_avg``,
    ``exp_avg_sq``), ``step``.

    **AMSGrad** (``amsgrad=True``, Reddi et al. 2018) divides by a running maximum of the second
    moment so the per-coordinate rate never grows: only :math:`\hat v` changes, see
    :func:`~course_lib.optim.blocks.amsgrad_v_hat`. ``amsgrad_convention`` (keyword-only) picks
    one of its three conventions: ``"raw"`` (default, = ``torch.optim.Adam(amsgrad=True)``, extra
    state ``v_max``), ``"corrected"`` (= optax, extra state ``v_hat_max``) or ``"memory_free"``
    (no extra buffer).
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
        betas = _check_adam_arguments(lr, betas, eps, weight_decay)
        if amsgrad_convention not in blocks.AMSGRAD_CONVENTIONS:
            raise ValueError(
                f"Invalid amsgrad_convention: {amsgrad_convention!r} "
                f"(expected one of {blocks.AMSGRAD_CONVENTIONS})"
            )
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
            amsgrad_convention=amsgrad_convention,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        if group["decoupled_weight_decay"]:
            blocks.decay_weights(params, group["lr"], group["weight_decay"])  # AdamW
        else:
            grads = blocks.add_l2(grads, params, group["weight_decay"])  # L2 in the gradient
        t = blocks.count_step(states)
        m = blocks.ema(states, "m", grads, beta1)
        m_hat = blocks.unbias(m, blocks.bias_correction(beta1, t))
        if group["amsgrad"]:
            v_hat = blocks.amsgrad_v_hat(states, grads, beta2, t, group["amsgrad_convention"])
        else:
            v = blocks.ema_sq(states, "v", grads, beta2)
            v_hat = blocks.unbias(v, blocks.bias_correction(beta2, t))
        blocks.apply_update(params, blocks.rms_scale(m_hat, v_hat, group["eps"]), group["lr"])


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math:: w \leftarrow (1-\eta\lambda)\,w, \text{ then the Adam step}

    This is PyTorch's convention: the decay is multiplied by the learning rate ``lr`` (the
    scheduled rate). The paper's Algorithm 2 writes
    :math:`\theta_t = \theta_{t-1} - \eta_t\big(\alpha\,\hat m_t/(\sqrt{\hat v_t}+\epsilon)
    + \lambda\,\theta_{t-1}\big)`, with a schedule multiplier :math:`\eta_t` on both terms and no
    base rate :math:`\alpha` on the decay: with ``lr`` :math:`= \eta_t\alpha` the two agree when
    :math:`\lambda_{\text{paper}} = \alpha\,\lambda` (chapter 05 measures it).

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
        betas = _check_adam_arguments(lr, betas, eps, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        if group["decoupled_weight_decay"]:
            blocks.decay_weights(params, group["lr"], group["weight_decay"])
        else:
            grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        m = blocks.ema(states, "m", grads, beta1)
        v = blocks.ema_sq(states, "v", grads, beta2)
        m_hat = blocks.unbias(m, blocks.bias_correction(beta1, t))
        d = blocks.radam_direction(m_hat, v, t, beta2, group["eps"])
        blocks.apply_update(params, d, group["lr"])


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
        betas = _check_adam_arguments(lr, betas, eps, weight_decay)
        check_hyperparameter("momentum_decay", momentum_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        if group["decoupled_weight_decay"]:
            blocks.decay_weights(params, group["lr"], group["weight_decay"])
        else:
            grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        m = blocks.ema(states, "m", grads, beta1)
        v = blocks.ema_sq(states, "v", grads, beta2)
        m_bar = blocks.nadam_momentum(states, grads, m, t, beta1, group["momentum_decay"])
        v_hat = blocks.unbias(v, blocks.bias_correction(beta2, t))
        blocks.apply_update(params, blocks.rms_scale(m_bar, v_hat, group["eps"]), group["lr"])


class Adamax(BlockOptimizer):
    r"""AdaMax (Kingma & Ba, 2015, Sec. 7.1): Adam with the infinity norm in place of the RMS.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \quad\text{(L2, only if weight\_decay > 0)}\\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        u \leftarrow \max(\beta_2 u,\ |g| + \epsilon) \\
        w &\leftarrow w - \frac{\eta}{1-\beta_1^t}\, \frac{m}{u}

    :math:`u` is an exponentially weighted maximum of :math:`|g|`
    (:func:`~course_lib.optim.blocks.ema_inf_norm`): it needs no bias correction, and the step
    has a simple bound. Every past :math:`|g_s|` is at most :math:`u_t/\beta_2^{t-s}`, so (for
    :math:`\beta_1 < \beta_2`)
    :math:`|\hat m_t| / u_t \le (1-\beta_1)/(1-\beta_1/\beta_2)` and
    :math:`|\Delta w| \le 1.009\,\eta` for the default betas (the paper rounds this to
    :math:`|\Delta w| \le \eta`; the bound is reached by a gradient that shrinks by exactly
    :math:`\beta_2` per step). Defaults :math:`\eta = 2\cdot 10^{-3}`,
    :math:`\beta = (0.9, 0.999)` are the paper's; :math:`\epsilon = 10^{-8}` (inside the
    maximum) and ``weight_decay`` (L2) are ``torch.optim.Adamax``'s, whose arguments, defaults and
    semantics this class has. State: ``m``, ``u`` (torch: ``exp_avg``, ``exp_inf``), ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        betas = _check_adam_arguments(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        m = blocks.ema(states, "m", grads, beta1)
        u = blocks.ema_inf_norm(states, "u", grads, beta2, group["eps"])
        m_hat = blocks.unbias(m, blocks.bias_correction(beta1, t))
        blocks.apply_update(params, blocks.inf_norm_scale(m_hat, u), group["lr"])
