"""Chapter 06's exercises: references agree with the optimizers, mistakes are real mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import checks, optim
from course_lib.exercises.amsgrad import (
    AMSGRAD_CLASS,
    FIRST_NEGATIVE_INCREMENT,
    AMSGradWithoutCorrection,
    ref_amsgrad_state_bytes,
    ref_first_negative_increment,
)
from course_lib.experiments import adaptivity, amsgrad
from course_lib.train import make_mlp


def _reference_by_measurement(grads, beta2):
    """The first negative σ_t of Adam measured on the optimizer itself (β1 = 0, ε = 0)."""
    eta = adaptivity.effective_lrs(optim.Adam, grads, lr=1.0, betas=(0.0, beta2), eps=0.0)
    sigma = amsgrad.inverse_lr_increments(eta)
    hits = np.flatnonzero(sigma < -1e-9 / eta)
    return int(hits[0]) + 1 if hits.size else 0


def test_first_negative_increment_is_what_adam_does():
    gen = torch.Generator().manual_seed(3)
    cases = FIRST_NEGATIVE_INCREMENT.self_check_cases(gen) + FIRST_NEGATIVE_INCREMENT.hidden_cases(
        gen
    )
    for case in cases:
        grads, beta2 = case.args
        assert ref_first_negative_increment(grads, beta2) == _reference_by_measurement(
            grads.tolist(), beta2
        ), case.label


def test_first_negative_increment_is_the_corrected_mean_rule():
    """σ_t < 0 iff g_t² < v̂_{t−1}: the bias-corrected v̂ is still a weighted mean."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        grads = np.abs(rng.normal(1, 0.5, 15))
        v, v_hat_before, want = 0.0, 0.0, 0
        for t, g in enumerate(grads, start=1):
            if want == 0 and g * g < v_hat_before * (1 - 1e-9):
                want = t
            v = 0.9 * v + 0.1 * g * g
            v_hat_before = v / (1 - 0.9**t)
        assert ref_first_negative_increment(grads, 0.9) == want


@pytest.mark.parametrize("convention", ["none", "raw", "corrected", "memory_free"])
def test_amsgrad_state_bytes_is_what_the_optimizer_holds(convention):
    model = make_mlp(7, 9, 3, seed=0)
    kwargs = {} if convention == "none" else {"amsgrad": True, "amsgrad_convention": convention}
    opt = optim.Adam(model.parameters(), lr=1e-3, **kwargs)
    model(torch.randn(4, 7)).sum().backward()
    opt.step()
    assert ref_amsgrad_state_bytes(7, 9, 3, convention, 4) == optim.state_bytes(opt)


def test_the_reference_class_is_torch_amsgrad_and_every_variant_differs_from_it():
    case = AMSGRAD_CLASS.self_check_cases(torch.Generator().manual_seed(0))[0]
    want = AMSGRAD_CLASS.trajectory(AMSGRAD_CLASS.reference, case)
    ours = AMSGRAD_CLASS.trajectory(
        lambda params, **hyper: optim.Adam(params, amsgrad=True, **hyper), case
    )
    assert torch.allclose(want, ours, rtol=1e-12, atol=1e-14)
    for why, variant in AMSGRAD_CLASS.variants.items():
        wrong = AMSGRAD_CLASS.trajectory(variant, case)
        assert not torch.allclose(want, wrong, rtol=1e-6, atol=1e-9), why


def test_the_uncorrected_variant_is_the_papers_box():
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = AMSGradWithoutCorrection([w], lr=0.1, betas=(0.0, 0.5), eps=0.0)
    w.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()  # v = 0.5·4 = 2, max 2, step 0.1·2/√2
    assert torch.allclose(w, torch.tensor([-0.1 * 2 / 2**0.5], dtype=torch.float64))


def test_check_amsgrad_names_the_optax_convention():
    class Optax(torch.optim.Optimizer):
        def __new__(cls, params, **hyper):
            return optim.Adam(params, amsgrad=True, amsgrad_convention="corrected", **hyper)

    with pytest.raises(AssertionError, match="optax"):
        checks.check_amsgrad(Optax)
