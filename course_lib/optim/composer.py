r"""Compose an optimizer from one block per concept (chapter 11: concepts, not names).

Every optimizer of the course is a few choices, one per concept, applied in a fixed order to a
gradient :math:`g`:

1. **weight decay** (``decay``): ``"none"``; ``"l2"``, :math:`g \leftarrow g + \lambda w` (the
   term then goes through every block below, adaptive scaling included); or ``"decoupled"``,
   :math:`w \leftarrow (1-\eta\lambda)\,w` (outside every block, Loshchilov & Hutter);
2. **momentum** (``momentum``): the direction :math:`d` made from :math:`g`

   * ``"none"``: :math:`d = g`;
   * ``"heavy_ball"``: PyTorch's form :math:`v \leftarrow \mu v + g` (:math:`v_1 = g_1`),
     :math:`d = v`, with :math:`\mu` = ``momentum_coef``;
   * ``"nesterov"``: the same velocity, :math:`d = g + \mu v` (PyTorch's rewrite of the
     look-ahead);
   * ``"ema"``: Adam's :math:`m \leftarrow \beta_1 m + (1-\beta_1)\, g`, :math:`d = m` (or
     :math:`\hat m = m/(1-\beta_1^t)` with bias correction);
   * ``"lion"``: Lion's two coefficients, :math:`d = \beta_1 m + (1-\beta_1)\, g`, then
     :math:`m \leftarrow \beta_2 m + (1-\beta_2)\, g` *after* the move;
   * ``"adaptive_inertia"``: Adai's per-coordinate :math:`\beta_1 = \mathrm{clip}(1 -
     \beta_0\,\hat v/\overline{\hat v}, 0, 1-\epsilon)` with :math:`\beta_0` = ``betas[0]``,
     :math:`v` an EMA of :math:`g^2` with ``betas[1]``, :math:`\overline{\hat v}` its mean over
     all groups, :math:`d = m/(1-\prod\beta_1)`;

3. **adaptive scaling** (``scaling``): divide :math:`d` by :math:`\sqrt{s} + \epsilon` where

   * ``"none"``: no division;
   * ``"adagrad"``: :math:`s = G`, the sum of all :math:`g^2` (AdaGrad);
   * ``"ema"``: :math:`s = v`, an EMA of :math:`g^2` with ``betas[1]`` (RMSprop; Adam with
     bias correction);
   * ``"amsgrad"``: :math:`s` = the running maximum of that EMA (state ``v_max``; with bias
     correction divided by the *current* :math:`1-\beta_2^t`, PyTorch's convention);
   * ``"amsgrad_memory_free"``: :math:`v \leftarrow \max(v, \beta_2 v + (1-\beta_2) g^2)` in
     :math:`v` itself, no extra buffer (chapter 06);

4. **bias correction** (``bias_correction``): divide every zero-initialised EMA (``"ema"``
   momentum, ``"ema"``/``"amsgrad"``/``"amsgrad_memory_free"`` scaling) by :math:`1-\beta^t`;
5. **rectification** (``rectify``): RAdam's :math:`r_t`, momentum-only steps while the
   variance of :math:`1/\sqrt{\hat v}` is undefined (needs ``"ema"`` momentum, ``"ema"``
   scaling and bias correction; ε then sits where ``torch.optim.RAdam`` puts it);
6. **update** (``update``): ``"plain"``, :math:`w \leftarrow w - \eta\, u`, or ``"sign"``,
   :math:`w \leftarrow w - \eta\,\operatorname{sign}(u)`.

Schedules and restarts are one more concept, and not a block: they change ``lr`` between steps
(any ``torch.optim.lr_scheduler``, or :class:`course_lib.optim.schedules.ScheduledLR`).

Named optimizers are special cases (:data:`NAMED_COMPOSITIONS`; ``tests/test_optim_composer.py``
checks each against the named class and ``torch.optim``/``lion-pytorch`` step by step)::

    Adam  = Composition(momentum="ema", scaling="ema", bias_correction=True)
    AdamW = Composition(momentum="ema", scaling="ema", bias_correction=True, decay="decoupled")
    Lion  = Composition(momentum="lion", update="sign", decay="decoupled")

Some combinations make no sense and raise a ``ValueError`` that says why (adaptive inertia *uses*
the second moment to set the momentum, so it does not also divide by it; rectification corrects
the variance of Adam's bias-corrected :math:`1/\sqrt{\hat v}` and means nothing elsewhere).

Every block is elementwise (Adai's mean over all groups is a reduction the fast path supports), so
:class:`ComposedOptimizer` is registered with the fast path (:mod:`course_lib.optim.fastpath`, in
``course_lib/optim/__init__.py``): a large group runs the same ``update`` on flat buffers, compiled;
``tests/optimizers.py`` lists composed configurations, so the fast-path suite checks that both
paths agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from course_lib.optim import blocks
from course_lib.optim.base import BlockOptimizer
from course_lib.optim.validation import check_betas, check_hyperparameter

__all__ = [
    "CONCEPTS",
    "CONCEPT_COLUMNS",
    "NOT_COMPOSED",
    "concept_table",
    "NAMED_COMPOSITIONS",
    "ComposedOptimizer",
    "Composition",
]

# concept -> the choices it offers (the first one is "off")
CONCEPTS: dict[str, tuple] = {
    "momentum": ("none", "heavy_ball", "nesterov", "ema", "lion", "adaptive_inertia"),
    "scaling": ("none", "adagrad", "ema", "amsgrad", "amsgrad_memory_free"),
    "bias_correction": (False, True),
    "decay": ("none", "l2", "decoupled"),
    "rectify": (False, True),
    "update": ("plain", "sign"),
}

# per-element state tensors each choice keeps (AdaGrad's G, Adam's m and v, ...)
_MOMENTUM_BUFFERS = {"none": 0, "heavy_ball": 1, "nesterov": 1, "ema": 1, "lion": 1,
                     "adaptive_inertia": 3}  # fmt: skip
_SCALING_BUFFERS = {"none": 0, "adagrad": 1, "ema": 1, "amsgrad": 2, "amsgrad_memory_free": 1}


@dataclass(frozen=True)
class Composition:
    """One choice per concept (see the module docstring); :meth:`build` makes the optimizer."""

    momentum: str = "none"
    scaling: str = "none"
    bias_correction: bool = False
    decay: str = "none"
    rectify: bool = False
    update: str = "plain"

    def __post_init__(self):
        check_composition(asdict(self))

    def build(self, params, **hyperparameters) -> ComposedOptimizer:
        """``ComposedOptimizer(params, **hyperparameters)`` with these concepts."""
        return ComposedOptimizer(params, **hyperparameters, **asdict(self))

    @property
    def buffers(self) -> int:
        """Per-element state tensors this composition keeps (Adam: 2, Lion: 1, SGD: 0)."""
        return _MOMENTUM_BUFFERS[self.momentum] + _SCALING_BUFFERS[self.scaling]

    def concepts(self) -> dict[str, str]:
        """A short word per concept for tables ("" where the concept is off)."""
        words = {
            "momentum": {"none": "", "heavy_ball": "heavy ball", "nesterov": "Nesterov",
                         "ema": "EMA", "lion": "Lion (β1, β2)",
                         "adaptive_inertia": "per-coord. β1"}[self.momentum],
            "adaptive scaling": {"none": "", "adagrad": "sum (AdaGrad)", "ema": "EMA",
                                 "amsgrad": "max of EMA",
                                 "amsgrad_memory_free": "max in v"}[self.scaling],
            "bias correction": "yes" if self.bias_correction else "",
            "weight decay": {"none": "", "l2": "L2", "decoupled": "decoupled"}[self.decay],
            "rectification": "yes" if self.rectify else "",
            "sign update": "yes" if self.update == "sign" else "",
            "adaptive inertia": "yes" if self.momentum == "adaptive_inertia" else "",
        }  # fmt: skip
        return words

    def code(self, hyperparameters: dict[str, Any] | None = None) -> str:
        """The same composition as three lines of Python."""
        defaults = Composition.__dataclass_fields__
        changed = {k: v for k, v in asdict(self).items() if v != defaults[k].default}
        concepts = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        hypers = ", ".join(f"{k}={v!r}" for k, v in (hyperparameters or {}).items())
        return (
            "from course_lib.optim import Composition\n"
            f"recipe = Composition({concepts})\n"
            f"optimizer = recipe.build(model.parameters(){', ' + hypers if hypers else ''})"
        )


def check_composition(concepts: dict[str, Any]) -> None:
    """Raise a ``ValueError`` for an unknown choice or a combination that makes no sense."""
    for name, choices in CONCEPTS.items():
        value = concepts[name]
        if isinstance(value, bool) != isinstance(choices[0], bool) or value not in choices:
            raise ValueError(f"Invalid {name}: {value!r} (expected one of {choices})")
    if concepts["momentum"] == "adaptive_inertia" and concepts["scaling"] != "none":
        raise ValueError(
            "adaptive inertia uses the second moment to set each coordinate's momentum, not to "
            "scale the step: combine it with scaling='none'"
        )
    if concepts["rectify"] and not (
        concepts["momentum"] == "ema"
        and concepts["scaling"] == "ema"
        and concepts["bias_correction"]
    ):
        raise ValueError(
            "rectification corrects the variance of Adam's bias-corrected 1/sqrt(v_hat): it needs "
            "momentum='ema', scaling='ema' and bias_correction=True"
        )


class ComposedOptimizer(BlockOptimizer):
    r"""An optimizer made of one block per concept (see :mod:`course_lib.optim.composer`).

    Hyperparameters (torch's names): ``lr`` :math:`\eta`; ``betas`` = (:math:`\beta_1`,
    :math:`\beta_2`): the ``"ema"`` momentum's and the second moment's EMA factors (for
    ``"lion"`` momentum the interpolation and the tracking factor; for ``"adaptive_inertia"``
    Adai's :math:`\beta_0` and :math:`\beta_2`); ``momentum_coef`` :math:`\mu` of ``"heavy_ball"``
    and ``"nesterov"``; ``eps`` :math:`\epsilon` (outside the root; Adai's inertia bound with
    adaptive inertia); ``weight_decay`` :math:`\lambda` (used by ``decay``). The concepts are
    keyword-only strings/booleans, stored in ``defaults`` so that ``state_dict``, ``deepcopy``
    and ``repr`` carry them. State: ``m`` (EMA, Lion, Adai), ``G``
    (AdaGrad), ``v`` / ``v_max`` (second moment), ``beta1_prod`` (Adai), ``step``; the heavy
    ball's velocity is ``b`` (``torch.optim.SGD``: ``momentum_buffer``).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        momentum_coef: float = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        momentum: str = "none",
        scaling: str = "none",
        bias_correction: bool = False,
        decay: str = "none",
        rectify: bool = False,
        update: str = "plain",
        maximize: bool = False,
    ) -> None:
        concepts = dict(momentum=momentum, scaling=scaling, bias_correction=bias_correction,
                        decay=decay, rectify=rectify, update=update)  # fmt: skip
        check_composition(concepts)
        check_hyperparameter("lr", lr)
        betas = check_betas(betas, unbounded=(0,) if momentum == "adaptive_inertia" else ())
        check_hyperparameter("momentum_coef", momentum_coef)
        check_hyperparameter("eps", eps)
        check_hyperparameter("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=betas, momentum_coef=momentum_coef, eps=eps,
                        weight_decay=weight_decay, maximize=maximize, **concepts)  # fmt: skip
        super().__init__(params, defaults)
        for group in self.param_groups:
            check_composition({k: group[k] for k in CONCEPTS})
            if (group["momentum"] == "adaptive_inertia") != self.two_pass:
                raise ValueError(
                    "adaptive inertia averages v over every group: use it in all groups or none"
                )

    @property
    def two_pass(self) -> bool:  # Adai's mean spans all groups: update, combine, finish
        return self.defaults["momentum"] == "adaptive_inertia"

    @property
    def composition(self) -> Composition:
        """The concepts of the defaults, as a :class:`Composition`."""
        return Composition(**{k: self.defaults[k] for k in CONCEPTS})

    def update(self, group, params, grads, states):
        beta1, beta2 = group["betas"]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        if group["decay"] == "decoupled":
            blocks.decay_weights(params, lr, wd)
        elif group["decay"] == "l2":
            grads = blocks.add_l2(grads, params, wd)
        t = blocks.count_step(states)
        momentum, scaling = group["momentum"], group["scaling"]
        if momentum == "adaptive_inertia":  # pass 1: v, and this group's share of its mean
            blocks.ema_sq(states, "v", grads, beta2)
            return blocks.sum_and_count(self._v_hat(group, states))
        corrected = group["bias_correction"]

        # momentum: the direction d
        if momentum in ("heavy_ball", "nesterov"):
            v = blocks.heavy_ball(states, grads, group["momentum_coef"], key="b")
            d = blocks.nesterov(grads, v, group["momentum_coef"]) if momentum == "nesterov" else v
        elif momentum == "ema":
            d = blocks.ema(states, "m", grads, beta1)
            if corrected:
                d = blocks.unbias(d, blocks.bias_correction(beta1, t))
        elif momentum == "lion":
            d = blocks.lion_interpolation(blocks.lazy_state(states, "m", grads), grads, beta1)
        else:
            d = grads

        # adaptive scaling: u = d / (sqrt(s) + eps)
        if group["rectify"]:
            u = blocks.radam_direction(d, blocks.ema_sq(states, "v", grads, beta2), t, beta2, eps)
        elif scaling == "none":
            u = d
        elif scaling == "adagrad":
            u = blocks.rms_scale(d, blocks.accumulate_sq(states, "G", grads), eps)
        else:
            if scaling == "amsgrad_memory_free":
                s = blocks.ema_sq_nondecreasing(states, "v", grads, beta2)
            else:
                s = blocks.ema_sq(states, "v", grads, beta2)
                if scaling == "amsgrad":
                    s = blocks.running_max(states, "v_max", s)
            if corrected:
                s = blocks.unbias(s, blocks.bias_correction(beta2, t))
            u = blocks.rms_scale(d, s, eps)

        blocks.apply_update(params, blocks.sign(u) if group["update"] == "sign" else u, lr)
        if momentum == "lion":  # Lion tracks its momentum with beta2, after the move
            blocks.ema(states, "m", grads, beta2)
        return None

    @staticmethod
    def _v_hat(group, states):
        t = [state["step"] for state in states]
        v = [state["v"] for state in states]
        return blocks.unbias(v, blocks.bias_correction(group["betas"][1], t))

    def combine(self, shares):
        return blocks.global_mean(shares)

    def finish(self, group, params, grads, states, mean):
        """Pass 2 of adaptive inertia: Adai's per-coordinate momentum and the move."""
        beta0 = group["betas"][0]
        if group["decay"] == "l2":
            grads = blocks.add_l2(grads, params, group["weight_decay"])
        beta1 = blocks.adaptive_inertia(self._v_hat(group, states), mean, beta0, group["eps"])
        d = blocks.inertia_momentum(states, grads, beta1)
        blocks.apply_update(params, blocks.sign(d) if group["update"] == "sign" else d, group["lr"])


# name -> (composition, the hyperparameters that make it that optimizer)
NAMED_COMPOSITIONS: dict[str, tuple[Composition, dict[str, Any]]] = {
    "SGD": (Composition(decay="l2"), {}),
    "Momentum": (Composition(momentum="heavy_ball", decay="l2"), {}),
    "Nesterov": (Composition(momentum="nesterov", decay="l2"), {}),
    "SGDW": (Composition(momentum="heavy_ball", decay="decoupled"), {}),
    "AdaGrad": (Composition(scaling="adagrad", decay="l2"), {"eps": 1e-10}),
    "RMSprop": (Composition(scaling="ema", decay="l2"), {"betas": (0.9, 0.99)}),
    "RMSpropBC": (Composition(scaling="ema", bias_correction=True, decay="l2"),
                  {"betas": (0.0, 0.99)}),
    "Adam": (Composition(momentum="ema", scaling="ema", bias_correction=True, decay="l2"), {}),
    "AdamW": (Composition(momentum="ema", scaling="ema", bias_correction=True,
                          decay="decoupled"), {"weight_decay": 1e-2}),
    "AMSGrad": (Composition(momentum="ema", scaling="amsgrad", bias_correction=True,
                            decay="l2"), {}),
    "RAdam": (Composition(momentum="ema", scaling="ema", bias_correction=True, rectify=True,
                          decay="l2"), {}),
    "Adai": (Composition(momentum="adaptive_inertia", decay="l2"),
             {"betas": (0.1, 0.99), "eps": 1e-3}),
    "AdaiW": (Composition(momentum="adaptive_inertia", decay="decoupled"),
              {"betas": (0.1, 0.99), "eps": 1e-3}),
    "Lion": (Composition(momentum="lion", update="sign", decay="decoupled"),
             {"betas": (0.9, 0.99)}),
    "signSGD": (Composition(update="sign"), {}),
}  # fmt: skip
"""Each named optimizer of the course that is a composition, with the hyperparameters (beyond
``lr``) that make the composed one equal the named one. ``weight_decay`` keeps the named class's
meaning: L2 for SGD, AdaGrad, RMSprop, Adam, AMSGrad, RAdam and Adai, as in ``torch.optim``."""

# The course's optimizers that are NOT compositions of these blocks, with the concepts they share
# and what is their own (the table of the lesson lists them after the composed ones).
NOT_COMPOSED: dict[str, tuple[dict[str, str], str]] = {
    "NAdam": ({"momentum": "Nesterov (EMA)", "adaptive scaling": "EMA", "bias correction": "yes",
               "weight decay": "L2"}, "a warming-up momentum schedule μ_t"),
    "Adan": ({"momentum": "Nesterov (EMA)", "adaptive scaling": "EMA", "bias correction": "yes",
              "weight decay": "proximal"}, "momentum of gradient differences"),
    "Adamax": ({"momentum": "EMA", "adaptive scaling": "max of |g|", "bias correction": "yes (m)",
                "weight decay": "L2"}, "infinity norm instead of the RMS"),
    "Adadelta": ({"adaptive scaling": "EMA", "weight decay": "L2"},
                 "step in the units of w: RMS of past updates / RMS of gradients"),
    "PowerSign": ({"momentum": "EMA"}, "α^(sign g · sign m) scales g"),
    "AddSign": ({"momentum": "EMA"}, "(α + sign g · sign m) scales g"),
}  # fmt: skip

CONCEPT_COLUMNS = ("momentum", "adaptive scaling", "bias correction", "weight decay",
                   "rectification", "sign update", "adaptive inertia")  # fmt: skip


def concept_table() -> str:
    """Every optimizer of the course (rows) × every concept (columns), as plain text: the
    composed rows are *generated* from :data:`NAMED_COMPOSITIONS`, the others come from
    :data:`NOT_COMPOSED` with what they add. Schedules and restarts combine with every row."""
    widths = [10, 15, 14, 8, 10, 7, 5, 8]
    heads = ["optimizer", "momentum", "scaling", "bias c.", "decay", "rect.", "sign", "inertia"]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths))]
    lines.append("-" * len(lines[0]))
    for name, (composition, _) in NAMED_COMPOSITIONS.items():
        words = composition.concepts()
        cells = [name, *(words[c] or "·" for c in CONCEPT_COLUMNS)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    lines.append("not compositions of these blocks (what is their own):")
    for name, (words, own) in NOT_COMPOSED.items():
        cells = [name, *(words.get(c, "") or "·" for c in CONCEPT_COLUMNS)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
        lines.append(" " * 12 + "+ " + own)
    return "\n".join(line.rstrip() for line in lines)
