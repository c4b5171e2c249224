"""Chapter 09's exercises: the references agree with the library and with simulation, the
measured band is honest, and the self-checks say what they should."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import checks
from course_lib.exercises import adai as ex
from course_lib.grading import probes
from course_lib.optim import Adai

D = torch.float64


def test_adai_beta1_reference_is_what_course_lib_adai_computes_for_two_parameters():
    """After one step from zero state the state ``beta1_prod`` is β1; v̂ = g² then."""
    gen = torch.Generator().manual_seed(0)
    ga, gb = torch.randn(4, generator=gen, dtype=D), 3 * torch.randn(4, generator=gen, dtype=D)
    a, b = torch.zeros(4, dtype=D, requires_grad=True), torch.zeros(4, dtype=D, requires_grad=True)
    opt = Adai([{"params": [a]}, {"params": [b]}], lr=0.1, betas=(0.7, 0.99), eps=0.02)
    a.grad, b.grad = ga.clone(), gb.clone()
    opt.step()
    want_a, want_b = ex.ref_adai_beta1(ga**2, gb**2, 0.7, 0.02)
    torch.testing.assert_close(opt.state[a]["beta1_prod"], want_a)
    torch.testing.assert_close(opt.state[b]["beta1_prod"], want_b)


def test_adai_beta1_zero_moments_give_the_upper_bound():
    z = torch.zeros(3, dtype=D)
    for out in ex.ref_adai_beta1(z, z, 0.1, 1e-3):
        torch.testing.assert_close(out, torch.full((3,), 0.999, dtype=D))


def test_adai_beta1_every_variant_differs_on_some_hidden_case():
    cases = ex.ADAI_BETA1.hidden_cases(torch.Generator().manual_seed(3))
    for why, variant in ex.ADAI_BETA1.variants.items():
        assert any(
            not all(
                torch.allclose(w, v)
                for w, v in zip(
                    ex.ADAI_BETA1.call(ex.ADAI_BETA1.reference, c.kwargs),
                    ex.ADAI_BETA1.call(variant, c.kwargs),
                )
            )
            for c in cases
        ), why


def _simulated_escape_step(lr, h, b, r, runs=200_000, seed=0):
    """The first k at which the *sample* standard deviation of linearised SGD reaches r."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.zeros(runs, dtype=D)
    for k in range(1, 10_000):
        y = (1 + lr * h) * y - lr * math.sqrt(h / b) * torch.randn(runs, generator=gen, dtype=D)
        if y.std() >= r:
            return k
    raise AssertionError("never reached")


@pytest.mark.parametrize("case", [(0.5, 0.2, 1, 2.0), (1.0, 0.1, 4, 0.8)])
def test_sgd_saddle_escape_step_agrees_with_simulation(case):
    want = ex.ref_sgd_saddle_escape_step(*case)
    assert abs(_simulated_escape_step(*case) - want) <= 1


def test_sgd_saddle_escape_step_self_check_cases_are_clear():
    for c in ex.SGD_SADDLE_ESCAPE_STEP.self_check_cases(None):
        assert ex._clear_escape(*c.args)


def test_sgd_saddle_escape_step_continuous_limit_for_small_steps():
    """For small ηh the answer approaches log(1 + 2Br²/η) / (2ηh)."""
    lr, h, b, r = 0.1, 1e-3, 2, 1.0
    exact = ex.ref_sgd_saddle_escape_step(lr, h, b, r)
    approx = math.log(1 + 2 * b * r**2 / lr) / (2 * lr * h)
    assert abs(exact - approx) / approx < 0.01


def test_median_escape_steps_band_covers_other_random_streams():
    """Other seeds (another student's random stream) stay well inside the 12 % band."""
    ref = ex.ref_median_escape_steps(0)
    others = [ex.ref_median_escape_steps(s) for s in (1, 2)]
    assert all(abs(o - ref) / ref < 0.06 for o in others), (ref, others)
    assert probes.PROBES["median_escape_steps"].rtol == ex.MEDIAN_ESCAPE_STEPS.rtol == 0.12


def test_median_escape_steps_wrong_lr_convention_is_rejected():
    """lr 0.005 (the escape_steps 'Momentum' lr mistaken for PyTorch's) is far outside the band."""
    from course_lib.experiments.saddles import escape_steps

    wrong = lambda seed: float(  # noqa: E731
        escape_steps("Momentum", 0.02, lr=0.05, chains=1000, max_steps=20_000, seed=seed).median()
    )
    with pytest.raises(AssertionError, match="above the reference measurement"):
        checks.check_median_escape_steps(wrong)
