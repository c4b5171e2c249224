r"""SGD and its relatives (momentum, Nesterov, SGDW) and the first adaptive methods.

Chapters 01–03: :class:`SGD`, :class:`SGDW`, :class:`Adagrad`, :class:`RMSprop`,
:class:`RMSpropBC` (RMSprop with Adam's bias correction) and :class:`Adadelta`. Each one has the
arguments, defaults, validation messages and state semantics of its ``torch.optim`` namesake (SGDW
and RMSpropBC have none; they follow the papers and are documented below).
"""

from __future__ import annotations

from course_lib.optim import blocks
from course_lib.optim.base import BlockOptimizer
from course_lib.optim.validation import check_hyperparameter

__all__ = ["SGD", "SGDW", "Adadelta", "Adagrad", "RMSprop", "RMSpropBC"]


class SGD(BlockOptimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov and weight decay.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \\
        v &\leftarrow \mu v + (1-\tau)\,g \qquad (v_1 = g_1) \\
        d &= g + \mu v \ \text{(Nesterov)} \quad\text{or}\quad d = v \\
        w &\leftarrow w - \eta\, d

    Same arguments, defaults and semantics as ``torch.optim.SGD`` (``weight_decay`` is L2 added to
    the gradient). Two course options, keyword-only:

    * ``momentum_form="ema"`` uses :math:`v \leftarrow \mu v + (1-\mu)\,g` (zero-initialised,
      ``dampening`` must be 0) instead of PyTorch's form; since that velocity is :math:`(1-\mu)`
      times PyTorch's, ``SGD(lr=η/(1-μ), momentum_form="ema")`` retraces ``SGD(lr=η)`` (L2 decay
      included; a decoupled decay :math:`\eta\lambda` must keep its product, so use
      :math:`\lambda(1-\mu)` there).
    * ``decoupled_weight_decay=True`` shrinks the weights instead (see :class:`SGDW`).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        momentum_form: str = "pytorch",
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        if momentum_form == "ema":  # beta of an EMA: [0, 1)
            check_hyperparameter("momentum", momentum, high=1.0, high_inclusive=False)
        else:
            check_hyperparameter("momentum", momentum)
        check_hyperparameter("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if momentum_form not in blocks.MOMENTUM_FORMS:
            forms = blocks.MOMENTUM_FORMS
            raise ValueError(f"Invalid momentum_form: {momentum_form!r} (expected one of {forms})")
        if momentum_form == "ema" and dampening != 0:
            raise ValueError("The EMA momentum form has its own damping (1 - beta): dampening=0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            momentum_form=momentum_form,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        form = group["momentum_form"]
        if group["decoupled_weight_decay"]:
            blocks.decay_weights(params, lr, wd)  # SGDW: shrink the weights
        else:
            grads = blocks.add_l2(grads, params, wd)  # SGD: L2 in the gradient
        v = blocks.heavy_ball(states, grads, mu, group["dampening"], form=form)
        d = blocks.nesterov(grads, v, mu, form=form) if group["nesterov"] else v
        blocks.apply_update(params, d, lr)


class SGDW(SGD):
    r"""SGD with momentum and decoupled weight decay (Loshchilov & Hutter, 2019, Algorithm 1).

    .. math::
        v &\leftarrow \mu v + (1-\tau)\,\nabla L(w) \\
        w &\leftarrow w - \eta\, v - \eta\lambda\, w

    The decay multiplies the *weights* by :math:`1-\eta\lambda` (with the same learning rate as
    the step, the convention of ``torch.optim.AdamW``) and never enters the velocity: with zero
    gradients, :math:`w_{t+1} = (1-\eta\lambda)\,w_t` exactly, whatever the momentum. The
    paper's Algorithm 1 writes it differently: the velocity holds the scaled step,
    :math:`m_t = \beta_1 m_{t-1} + \eta_t\alpha\,g_t`, and the decay is :math:`\eta_t\lambda\,w`
    *without* the base rate :math:`\alpha`. Here ``lr`` is :math:`\eta = \eta_t\alpha`, so
    :math:`\lambda_{\text{paper}} = \alpha\,\lambda` and a scheduler scales both terms. (The two
    velocity forms also differ whenever the lr changes during training: the paper's velocity
    keeps the old rates, PyTorch's form multiplies the whole velocity by the new one.) With
    ``weight_decay=0`` it *is* :class:`SGD`. torch has no SGDW; ``torch_optimizer.SGDW`` applies the
    decay differently, so it is not a reference. Same arguments as :class:`SGD`.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        momentum_form: str = "pytorch",
    ) -> None:
        super().__init__(
            params, lr, momentum, dampening, weight_decay, nesterov,
            maximize=maximize, momentum_form=momentum_form, decoupled_weight_decay=True,
        )


class Adagrad(BlockOptimizer):
    r"""AdaGrad (Duchi, Hazan & Singer, 2011): per-coordinate rates from the sum of squared grads.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \\
        G &\leftarrow G + g^2 \qquad (G_0 = \text{initial\_accumulator\_value}) \\
        w &\leftarrow w - \eta_t\, \frac{g}{\sqrt{G} + \epsilon}, \qquad
        \eta_t = \frac{\eta}{1 + (t-1)\,\delta}

    with :math:`\delta` = ``lr_decay`` (a schedule, applied by
    :func:`~course_lib.optim.blocks.scale_by_lr` at each parameter's own step). Same arguments,
    defaults (:math:`\eta = 10^{-2}`, :math:`\epsilon = 10^{-10}`) and semantics as
    ``torch.optim.Adagrad``. State: ``G`` (torch: ``sum``), ``step``.

    **One deliberate difference.** torch's Adagrad fills every accumulator in its constructor from
    the constructor's ``initial_accumulator_value``, so a param group that sets its own value is
    ignored. Here the accumulator is created on a parameter's first gradient (like every course
    optimizer's state) from *its group's* value, so a per-group ``initial_accumulator_value`` is
    honoured (``tests/test_optim_parity_torch.py`` pins both behaviours). With one value for all
    groups the two are identical.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("lr_decay", lr_decay)
        check_hyperparameter("weight_decay", weight_decay)
        check_hyperparameter("initial_accumulator_value", initial_accumulator_value)
        check_hyperparameter("eps", eps)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        lr, lr_decay = group["lr"], group["lr_decay"]
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        G = blocks.accumulate_sq(states, "G", grads, initial=group["initial_accumulator_value"])
        d = blocks.rms_scale(grads, G, group["eps"])
        d = blocks.scale_by_lr(d, lambda step: lr / (1 + (step - 1) * lr_decay), t)
        blocks.apply_update(params, d, 1.0)  # the learning rate is already in d


class RMSprop(BlockOptimizer):
    r"""RMSprop (Hinton's lecture 6e, 2012): AdaGrad with a moving average instead of the sum.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \\
        v &\leftarrow \alpha v + (1-\alpha)\, g^2 \\
        \tilde v &= v - m^2,\quad m \leftarrow \alpha m + (1-\alpha)\, g
            \quad\text{(centered, Graves 2013), else } \tilde v = v \\
        b &\leftarrow \mu b + \frac{g}{\sqrt{\tilde v} + \epsilon} \quad\text{(if momentum > 0)} \\
        w &\leftarrow w - \eta\, b \quad\text{or}\quad w - \eta\,\frac{g}{\sqrt{\tilde v}+\epsilon}

    Same arguments, defaults (:math:`\eta = 10^{-2}, \alpha = 0.99, \epsilon = 10^{-8}`) and
    semantics as ``torch.optim.RMSprop``: ε outside the square root, no bias correction (see
    :class:`RMSpropBC`), momentum applied to the *scaled* gradient. State: ``v``, ``m``
    (centered), ``b`` (momentum), ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("eps", eps)
        check_hyperparameter("momentum", momentum)
        check_hyperparameter("weight_decay", weight_decay)
        check_hyperparameter("alpha", alpha)
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        alpha = group["alpha"]
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        blocks.count_step(states)
        v = blocks.ema_sq(states, "v", grads, alpha)
        if group["centered"]:
            v = blocks.centered_second_moment(states, grads, v, alpha)
        d = blocks.rms_scale(grads, v, group["eps"])
        d = blocks.heavy_ball(states, d, group["momentum"], key="b")
        blocks.apply_update(params, d, group["lr"])


class RMSpropBC(BlockOptimizer):
    r"""RMSprop with Adam's bias correction: the zero-initialised EMA divided by :math:`1-\alpha^t`.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \\
        v &\leftarrow \alpha v + (1-\alpha)\, g^2 \\
        w &\leftarrow w - \eta\, \frac{g}{\sqrt{v/(1-\alpha^t)} + \epsilon}

    Without the correction RMSprop's first steps are too large (:math:`v_1 = (1-\alpha) g_1^2`, so
    the first step is :math:`\eta/\sqrt{1-\alpha}` = 10η for α = 0.99); with it :math:`\hat v_1 =
    g_1^2` and the first step is η·sign(g). It is exactly Adam with :math:`\beta_1 = 0`:
    ``RMSpropBC(lr, alpha, eps)`` ≡ ``Adam(lr, betas=(0, alpha), eps)`` (tested bit for bit).
    The seeds recommend it over plain RMSprop when momentum is not wanted (chapter 03). Arguments
    and defaults are :class:`RMSprop`'s, without momentum and centering. State: ``v``, ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("eps", eps)
        check_hyperparameter("weight_decay", weight_decay)
        check_hyperparameter("alpha", alpha, high=1.0, high_inclusive=False)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        alpha = group["alpha"]
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        t = blocks.count_step(states)
        v = blocks.ema_sq(states, "v", grads, alpha)
        v_hat = blocks.unbias(v, blocks.bias_correction(alpha, t))
        blocks.apply_update(params, blocks.rms_scale(grads, v_hat, group["eps"]), group["lr"])


class Adadelta(BlockOptimizer):
    r"""Adadelta (Zeiler, 2012): RMSprop whose step size is an RMS of the past updates.

    .. math::
        g &\leftarrow \nabla L(w) + \lambda w \\
        v &\leftarrow \rho v + (1-\rho)\, g^2 \\
        \Delta &= \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g \\
        u &\leftarrow \rho u + (1-\rho)\, \Delta^2 \\
        w &\leftarrow w - \eta\, \Delta

    Same arguments, defaults (:math:`\eta = 1, \rho = 0.9, \epsilon = 10^{-6}`) and semantics as
    ``torch.optim.Adadelta`` (ε inside both roots; ``lr`` is an extra multiplier the paper does not
    have). State: ``v`` (squared gradients), ``u`` (squared updates), ``step``.
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_hyperparameter("lr", lr)
        check_hyperparameter("rho", rho, high=1.0)
        check_hyperparameter("eps", eps)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group, params, grads, states):
        rho = group["rho"]
        grads = blocks.add_l2(grads, params, group["weight_decay"])
        blocks.count_step(states)
        v = blocks.ema_sq(states, "v", grads, rho)
        u = blocks.lazy_state(states, "u", grads)
        delta = blocks.adadelta_direction(grads, v, u, group["eps"])
        blocks.ema_sq(states, "u", delta, rho)
        blocks.apply_update(params, delta, group["lr"])
