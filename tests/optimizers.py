"""The course optimizers under test: ONE registry for the contract, parity, fast-path and memory
tests.

Every configuration names the class, its constructor arguments, the hyperparameters of two param
groups — *every* hyperparameter the class has takes a different value in each group, so a group
that silently used the other group's value (or the default) would show — and, where an
independent implementation exists, the reference it must equal step by step, with the map from our
state names to the reference's. :func:`test_every_exported_optimizer_is_registered` (in
``test_optim_contract.py``) fails when an optimizer is exported without a configuration here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lion_pytorch
import pytest
import pytorch_optimizer
import torch

import course_lib.optim as O


@dataclass(frozen=True)
class Reference:
    """An independent implementation and how its state is named.

    ``build(groups, **options)`` makes it for the same param groups; ``options`` are the
    configuration's constructor arguments when ``same_arguments`` (torch.optim namesakes take
    ours), else only ``maximize`` (other libraries: the builder translates the arguments)."""

    build: Callable[..., torch.optim.Optimizer]
    state: dict[str, Any]  # our state key -> its key, or a function of its per-param state
    maximize: bool = True  # it has a ``maximize`` option of its own
    none_grads: bool = True  # it handles a parameter without gradient on some steps like us
    same_arguments: bool = True


@dataclass(frozen=True)
class Config:
    id: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)  # shared by both groups
    groups: tuple[dict[str, Any], dict[str, Any]] = ({"lr": 0.01}, {"lr": 0.003})
    reference: Reference | None = None
    buffers: int = 0  # per-element state tensors after a step (memory tests)

    def build(self, groups: list[dict], **extra) -> torch.optim.Optimizer:
        return self.cls(groups, **{**self.kwargs, **extra})

    def build_reference(self, groups: list[dict], **extra) -> torch.optim.Optimizer:
        ref = self.reference
        return ref.build(groups, **({**self.kwargs, **extra} if ref.same_arguments else extra))

    def param(self, *marks):
        return pytest.param(self, id=self.id, marks=marks)


def _torch(cls):
    return lambda groups, **kw: cls(groups, **kw)


def _other(build, state, **options) -> Reference:
    return Reference(build, state, same_arguments=False, **options)


ADAM_STATE = {"m": "exp_avg", "v": "exp_avg_sq", "step": "step"}
ADAM_GROUPS = (
    {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1},
    {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
)
NADAM_GROUPS = (
    {**ADAM_GROUPS[0], "momentum_decay": 4e-3},
    {**ADAM_GROUPS[1], "momentum_decay": 0.1},
)
SGD_GROUPS = (
    {"lr": 0.01, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1},
    {"lr": 0.003, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
)
NESTEROV_GROUPS = (
    {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1},
    {"lr": 0.003, "momentum": 0.6, "weight_decay": 0.0},
)
ADAGRAD_GROUPS = (
    {"lr": 0.1, "lr_decay": 0.05, "eps": 1e-10, "weight_decay": 0.1},
    {"lr": 0.05, "lr_decay": 0.01, "eps": 1e-6, "weight_decay": 0.0},
)
RMSPROP_GROUPS = (
    {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.1, "momentum": 0.9},
    {"lr": 0.003, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.0, "momentum": 0.5},
)
RMS_STATE = {"v": "square_avg", "step": "step"}
ADADELTA_GROUPS = (
    {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.1},
    {"lr": 0.5, "rho": 0.5, "eps": 1e-4, "weight_decay": 0.0},
)
LION_GROUPS = (
    {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.1},
    {"lr": 3e-4, "betas": (0.8, 0.95), "weight_decay": 0.02},
)
ADAI_GROUPS = (
    {"lr": 0.01, "betas": (0.1, 0.99), "eps": 1e-3, "weight_decay": 0.1},
    {"lr": 0.003, "betas": (0.2, 0.9), "eps": 1e-2, "weight_decay": 0.02},
)
PO_ADAI_STATE = {"m": "exp_avg", "v": "exp_avg_sq", "beta1_prod": "beta1_prod"}
ADAN_GROUPS = (
    {"lr": 0.01, "betas": (0.98, 0.92, 0.99), "eps": 1e-8, "weight_decay": 0.1},
    {"lr": 0.003, "betas": (0.9, 0.8, 0.95), "eps": 1e-6, "weight_decay": 0.02},
)
ADAN_STATE = {
    "m": "exp_avg",
    "v": "exp_avg_diff",
    "n": "exp_avg_sq",
    "prev_grad": lambda s: -s["previous_grad"],  # pytorch-optimizer stores -g_{k-1}
}
SIGN_GROUPS = (
    {"lr": 0.01, "beta": 0.9, "num_periods": 0.5, "decay_steps": 20},
    {"lr": 0.003, "beta": 0.8, "num_periods": 2.0, "decay_steps": 7},
)
ONLINE_GROUPS = (
    {"lr": 0.05, "gamma": 0.9, "delta": 1e-8, "weight_decay": 0.1},
    {"lr": 0.01, "gamma": 0.6, "delta": 1e-2, "weight_decay": 0.0},
)
SC_GROUPS = (
    {"lr": 0.05, "xi1": 0.1, "xi2": 0.1, "weight_decay": 0.1},
    {"lr": 0.01, "xi1": 0.5, "xi2": 1.0, "weight_decay": 0.0},
)

CONFIGS: list[Config] = [
    # --- SGD and its relatives ---
    Config("SGD", O.SGD, groups=SGD_GROUPS, buffers=1,
           reference=Reference(_torch(torch.optim.SGD), {"v": "momentum_buffer"})),
    Config("SGD-plain", O.SGD, {"momentum": 0.0, "dampening": 0.0},
           groups=({"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.003, "weight_decay": 0.0}),
           reference=Reference(_torch(torch.optim.SGD), {})),
    Config("SGD-nesterov", O.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.0}, groups=NESTEROV_GROUPS, buffers=1,
           reference=Reference(_torch(torch.optim.SGD), {"v": "momentum_buffer"})),
    Config("SGD-ema-nesterov", O.SGD, {"momentum_form": "ema", "nesterov": True, "momentum": 0.9,
                                         "dampening": 0.0},
           groups=NESTEROV_GROUPS, buffers=1),
    Config("SGDW", O.SGDW, {"dampening": 0.0}, groups=NESTEROV_GROUPS, buffers=1),
    Config("Adagrad", O.Adagrad, {"initial_accumulator_value": 0.1}, groups=ADAGRAD_GROUPS,
           buffers=1,
           reference=Reference(_torch(torch.optim.Adagrad), {"G": "sum", "step": "step"})),
    Config("RMSprop", O.RMSprop, groups=RMSPROP_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.RMSprop), {**RMS_STATE, "b": "momentum_buffer"})),
    Config("RMSprop-centered", O.RMSprop, {"centered": True}, groups=RMSPROP_GROUPS, buffers=3,
           reference=Reference(
               _torch(torch.optim.RMSprop),
               {**RMS_STATE, "m": "grad_avg", "b": "momentum_buffer"},
           )),
    Config("RMSpropBC", O.RMSpropBC,
           groups=tuple({k: g[k] for k in ("lr", "alpha", "eps", "weight_decay")}
                        for g in RMSPROP_GROUPS),
           buffers=1),
    Config("Adadelta", O.Adadelta, groups=ADADELTA_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.Adadelta),
                               {"v": "square_avg", "u": "acc_delta", "step": "step"})),
    # --- Adam and its family ---
    Config("Adam", O.Adam, groups=ADAM_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.Adam), ADAM_STATE)),
    Config("Adam-decoupled", O.Adam, {"decoupled_weight_decay": True}, groups=ADAM_GROUPS,
           buffers=2, reference=Reference(_torch(torch.optim.Adam), ADAM_STATE)),
    Config("Adam-amsgrad", O.Adam, {"amsgrad": True}, groups=ADAM_GROUPS, buffers=3,
           reference=Reference(_torch(torch.optim.Adam),
                               {**ADAM_STATE, "v_max": "max_exp_avg_sq"})),
    Config("Adam-amsgrad-corrected", O.Adam,
           {"amsgrad": True, "amsgrad_convention": "corrected"}, groups=ADAM_GROUPS, buffers=3),
    Config("Adam-amsgrad-memory_free", O.Adam,
           {"amsgrad": True, "amsgrad_convention": "memory_free"}, groups=ADAM_GROUPS, buffers=2),
    Config("AdamW", O.AdamW, groups=ADAM_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.AdamW), ADAM_STATE)),
    Config("AdamW-amsgrad", O.AdamW, {"amsgrad": True}, groups=ADAM_GROUPS, buffers=3,
           reference=Reference(_torch(torch.optim.AdamW),
                               {**ADAM_STATE, "v_max": "max_exp_avg_sq"})),
    Config("RAdam", O.RAdam, groups=ADAM_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.RAdam), ADAM_STATE)),
    Config("RAdam-decoupled", O.RAdam, {"decoupled_weight_decay": True}, groups=ADAM_GROUPS,
           buffers=2, reference=Reference(_torch(torch.optim.RAdam), ADAM_STATE)),
    Config("NAdam", O.NAdam, groups=NADAM_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.NAdam),
                               {**ADAM_STATE, "mu_product": "mu_product"})),
    Config("NAdam-decoupled", O.NAdam, {"decoupled_weight_decay": True}, groups=NADAM_GROUPS,
           buffers=2, reference=Reference(_torch(torch.optim.NAdam),
                                          {**ADAM_STATE, "mu_product": "mu_product"})),
    # --- frontier ---
    Config("Lion", O.Lion, groups=LION_GROUPS, buffers=1,
           reference=_other(lambda g: lion_pytorch.Lion(g), {"m": "exp_avg"}, maximize=False)),
    # pytorch-optimizer counts Adai's steps per *group* (the official code: per parameter), so
    # it is a reference only while every parameter has a gradient on every step.
    Config("Adai", O.Adai, groups=ADAI_GROUPS, buffers=3,
           reference=_other(lambda g, **kw: pytorch_optimizer.Adai(g, **kw), PO_ADAI_STATE,
                            none_grads=False)),
    Config("Adai-decoupled", O.Adai, {"decoupled_weight_decay": True}, groups=ADAI_GROUPS,
           buffers=3,
           reference=_other(
               lambda g, **kw: pytorch_optimizer.Adai(g, weight_decouple=True, **kw),
               PO_ADAI_STATE, none_grads=False)),
    Config("AdaiW", O.AdaiW, groups=ADAI_GROUPS, buffers=3,
           reference=_other(
               lambda g, **kw: pytorch_optimizer.Adai(
                   g, weight_decouple=True, stable_weight_decay=True, **kw),
               PO_ADAI_STATE, none_grads=False)),
    # pytorch-optimizer's Adan stores -g for the first difference *before* negating the gradient
    # for maximize: no reference for maximize (tested on the negated loss instead).
    Config("Adan", O.Adan, groups=ADAN_GROUPS, buffers=4,
           reference=_other(lambda g: pytorch_optimizer.Adan(g), ADAN_STATE, maximize=False)),
    Config("Adan-no_prox", O.Adan, {"no_prox": True}, groups=ADAN_GROUPS, buffers=4,
           reference=_other(lambda g: pytorch_optimizer.Adan(g, weight_decouple=True),
                            ADAN_STATE, maximize=False)),
    Config("PowerSign", O.PowerSign, {"sign_decay": "linear", "decay_steps": 20},
           groups=tuple({**g, "base": b} for g, b in zip(SIGN_GROUPS, (2.718, 2.0))),
           buffers=1),
    Config("PowerSign-cosine", O.PowerSign, {"sign_decay": "cosine", "decay_steps": 20},
           groups=tuple({**g, "base": b} for g, b in zip(SIGN_GROUPS, (2.718, 2.0))),
           buffers=1),
    Config("AddSign", O.AddSign, {"sign_decay": "cosine", "decay_steps": 20},
           groups=tuple({**g, "alpha": a} for g, a in zip(SIGN_GROUPS, (1.0, 0.5))),
           buffers=1),
    Config("OnlineRMSprop", O.OnlineRMSprop, groups=ONLINE_GROUPS, buffers=1),
    Config("SCAdagrad", O.SCAdagrad, groups=SC_GROUPS, buffers=1),
    Config("SCRMSprop", O.SCRMSprop,
           groups=tuple({**s, "gamma": o["gamma"]} for s, o in zip(SC_GROUPS, ONLINE_GROUPS)),
           buffers=1),
]

BY_ID = {c.id: c for c in CONFIGS}


def first_config(cls: type) -> Config:
    """The plain configuration of ``cls`` (the first registered)."""
    return next(c for c in CONFIGS if c.cls is cls)


def exported_optimizers() -> dict[str, type]:
    """Every public BlockOptimizer subclass exported by ``course_lib.optim``."""
    found = {}
    for name in sorted(set(dir(O)) | set(O.__all__)):
        obj = getattr(O, name, None)
        if (
            not name.startswith("_")
            and isinstance(obj, type)
            and issubclass(obj, O.BlockOptimizer)
            and obj is not O.BlockOptimizer
        ):
            found[name] = obj
    return found


def params_of(configs=CONFIGS, marks=()):
    return [c.param(*marks) for c in configs]


def with_reference(maximize: bool = False) -> list[Config]:
    return [c for c in CONFIGS if c.reference and (c.reference.maximize or not maximize)]


# --- chapter 04: AdaMax (appended) --------------------------------------------------------------
ADAMAX_GROUPS = (
    {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1},
    {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
)
CONFIGS.append(
    Config("Adamax", O.Adamax, groups=ADAMAX_GROUPS, buffers=2,
           reference=Reference(_torch(torch.optim.Adamax),
                               {"m": "exp_avg", "u": "exp_inf", "step": "step"}))
)
BY_ID = {c.id: c for c in CONFIGS}


# --- chapter 11 ---
# Composed optimizers (course_lib.optim.composer): one configuration per concept the composer
# offers; where the composition is a named optimizer, its torch.optim / lion-pytorch reference.
def _composed_groups(groups, rename=None, drop=()):
    rename = rename or {}
    return tuple({rename.get(k, k): v for k, v in g.items() if k not in drop} for g in groups)


_COMPOSED_NUMBERS = (  # every number of ComposedOptimizer, different in the two groups
    {"momentum_coef": 0.9, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1},
    {"momentum_coef": 0.5, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
)


def _complete(groups):
    """The groups with every hyperparameter they lack (unused by the composition) added."""
    return tuple({**numbers, **g} for numbers, g in zip(_COMPOSED_NUMBERS, groups))


COMPOSED_ADAM = dict(momentum="ema", scaling="ema", bias_correction=True)
COMPOSED_SGD_GROUPS = _complete(_composed_groups(NESTEROV_GROUPS, {"momentum": "momentum_coef"}))
COMPOSED_RMSPROP_GROUPS = _complete(tuple(
    {"lr": g["lr"], "betas": (0.5, g["alpha"]), "eps": g["eps"], "weight_decay": g["weight_decay"]}
    for g in RMSPROP_GROUPS
))  # fmt: skip
CONFIGS.extend([
    Config("Composed-Adam", O.ComposedOptimizer, {**COMPOSED_ADAM, "decay": "l2"},
           groups=_complete(ADAM_GROUPS), buffers=2,
           reference=_other(lambda g, **kw: torch.optim.Adam(g, **kw), ADAM_STATE)),
    Config("Composed-AdamW", O.ComposedOptimizer, {**COMPOSED_ADAM, "decay": "decoupled"},
           groups=_complete(ADAM_GROUPS), buffers=2,
           reference=_other(lambda g, **kw: torch.optim.AdamW(g, **kw), ADAM_STATE)),
    Config("Composed-AMSGrad", O.ComposedOptimizer,
           {**COMPOSED_ADAM, "scaling": "amsgrad", "decay": "l2"}, groups=_complete(ADAM_GROUPS), buffers=3,
           reference=_other(lambda g, **kw: torch.optim.Adam(g, amsgrad=True, **kw),
                            {**ADAM_STATE, "v_max": "max_exp_avg_sq"})),
    Config("Composed-RAdam", O.ComposedOptimizer,
           {**COMPOSED_ADAM, "rectify": True, "decay": "l2"}, groups=_complete(ADAM_GROUPS), buffers=2,
           reference=_other(lambda g, **kw: torch.optim.RAdam(g, **kw), ADAM_STATE)),
    Config("Composed-Lion", O.ComposedOptimizer,
           {"momentum": "lion", "update": "sign", "decay": "decoupled"},
           groups=_complete(LION_GROUPS), buffers=1,
           reference=_other(lambda g: lion_pytorch.Lion(g), {"m": "exp_avg"}, maximize=False)),
    Config("Composed-Nesterov", O.ComposedOptimizer, {"momentum": "nesterov", "decay": "l2"},
           groups=COMPOSED_SGD_GROUPS, buffers=1,
           reference=_other(
               lambda g, **kw: torch.optim.SGD(
                   _composed_groups(g, {"momentum_coef": "momentum"}), momentum=0.9,
                   nesterov=True, **kw),
               {"b": "momentum_buffer"})),
    Config("Composed-RMSprop-memory_free-decoupled", O.ComposedOptimizer,
           {"scaling": "amsgrad_memory_free", "bias_correction": True, "decay": "decoupled"},
           groups=COMPOSED_RMSPROP_GROUPS, buffers=1),
    Config("Composed-AdaGrad-heavy_ball-sign", O.ComposedOptimizer,
           {"momentum": "heavy_ball", "scaling": "adagrad", "update": "sign", "decay": "l2"},
           groups=COMPOSED_SGD_GROUPS, buffers=2),
    Config("Composed-Adai", O.ComposedOptimizer, {"momentum": "adaptive_inertia", "decay": "l2"},
           groups=_complete(ADAI_GROUPS), buffers=3),
])  # fmt: skip
BY_ID = {c.id: c for c in CONFIGS}
