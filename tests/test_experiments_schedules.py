"""course_lib.experiments.schedules and .lr_range: the measurements of chapter 07."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.experiments import schedules as sx
from course_lib.experiments.lr_range import LRRangeResult, lr_range_test, suggest_lr
from course_lib.optim.schedules import CosineWarmRestarts, LinearSchedule
from course_lib.train import make_mlp


def test_train_scheduled_applies_the_schedule_and_is_deterministic():
    schedule = CosineWarmRestarts(0.1, T_0=7)
    a = sx.train_scheduled(schedule, seed=3, epochs=2, snapshot_steps=(7, 14))
    b = sx.train_scheduled(schedule, seed=3, epochs=2, snapshot_steps=(7, 14))
    steps = 2 * sx.steps_per_epoch(128)
    np.testing.assert_array_equal(a.lrs, [schedule(t) for t in range(steps)])
    assert sorted(a.snapshots) == [7, 14]
    assert torch.equal(a.probs, b.probs) and a.test_accuracy == b.test_accuracy
    assert a.probs.shape == (len(sx.digits()[3]), 10)
    torch.testing.assert_close(a.probs.sum(1), torch.ones(len(a.probs)))
    assert len(a.epoch_loss) == len(a.eval_loss) == 2 and math.isfinite(a.train_loss_end)


def test_holdout_splits_the_training_set_and_leaves_the_test_set_alone():
    X, y, X_te, y_te = sx.digits()
    X_fit, y_fit, X_val, y_val = sx.digits(holdout=True)
    assert len(X_fit) + len(X_val) == len(X)
    assert len(X_val) == int(sx.HOLDOUT * len(X))
    rows = {tuple(r.tolist()) for r in X_fit}
    assert not any(tuple(r.tolist()) in rows for r in X_val[:50])


def test_a_diverging_run_is_marked_and_stops():
    run = sx.train_scheduled(50.0, seed=0, epochs=3)
    assert run.diverged and math.isnan(run.epoch_loss[-1])
    assert run.test_accuracy == pytest.approx(float((run.y_test == 0).double().mean()))


def test_ensemble_and_disagreement():
    a = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    b = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])
    torch.testing.assert_close(sx.ensemble_probs([a, b]), (a + b) / 2)
    assert sx.disagreement(a, b) == pytest.approx(2 / 3)
    assert sx.mean_disagreement([a, a, b]) == pytest.approx((0 + 2 / 3 + 2 / 3) / 3)
    assert sx.mean_disagreement([a]) == 0.0
    y = torch.tensor([0, 1, 1])
    assert sx.accuracy(a, y) == pytest.approx(2 / 3)
    assert sx.nll(a, y) == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))


def test_adam_first_update_is_a_sign_step_and_warmup_scales_it():
    out = sx.adam_update_spread(1e-3, steps=3, coordinates=2000)
    assert out["update_std"][0] == pytest.approx(1e-3, rel=1e-3)  # ±lr for every coordinate
    assert out["psi_q99"][0] > 20  # 1/|g| for N(0,1) gradients: its 99th percentile is ~80
    warm = sx.adam_update_spread(LinearSchedule(1e-3, 10, 0.0, 1.0), steps=3, coordinates=2000)
    assert warm["update_std"][0] == 0.0
    np.testing.assert_allclose(warm["psi_q99"], out["psi_q99"])  # the schedule leaves v alone


def test_batch_size_sweep_scales_the_learning_rate():
    out = sx.batch_size_sweep([256, 512], lr_per_example=1e-4, epochs=1, seeds=(0,))
    assert [out[B]["lr"] for B in (256, 512)] == pytest.approx([0.0256, 0.0512])
    assert all(out[B]["diverged"] == 0.0 for B in out)


def test_lr_range_test_grows_exponentially_and_leaves_the_model_untouched():
    X, y, _, _ = sx.digits(holdout=True)
    model = make_mlp(64, 32, 10, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    result = lr_range_test(
        model, lambda p, lr: torch.optim.SGD(p, lr=lr), X, y, lr_start=1e-3, lr_end=1e-1, steps=20
    )
    ratios = result.lrs[1:] / result.lrs[:-1]
    np.testing.assert_allclose(ratios, (1e-1 / 1e-3) ** (1 / 19))
    assert result.lrs[0] == pytest.approx(1e-3) and result.lrs[-1] == pytest.approx(1e-1)
    assert not result.stopped_early and len(result.losses) == 20
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_lr_range_test_stops_when_the_loss_explodes():
    X, y, _, _ = sx.digits(holdout=True)
    result = lr_range_test(
        make_mlp(64, 32, 10, seed=0),
        lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
        X,
        y,
        lr_start=1e-4,
        lr_end=100.0,
        steps=100,
    )
    assert result.stopped_early and len(result.lrs) < 100
    assert result.smoothed[-1] > 4 * result.smoothed.min()


def test_suggest_lr_rules_on_a_known_curve():
    lrs = np.logspace(-4, 1, 51)
    smoothed = 2.0 - np.tanh(2 * (np.log10(lrs) + 2)) + np.where(lrs > 1.0, 10 * (lrs - 1), 0)
    result = LRRangeResult(lrs, smoothed, smoothed, True)
    minimum = lrs[int(np.argmin(smoothed))]
    assert suggest_lr(result, "min/10") == pytest.approx(minimum / 10)
    assert suggest_lr(result, "steepest") == pytest.approx(1e-2)  # tanh falls fastest at its centre
    with pytest.raises(ValueError, match="rule"):
        suggest_lr(result, "elbow")
    with pytest.raises(ValueError):
        suggest_lr(LRRangeResult(lrs[:2], smoothed[:2], smoothed[:2], True))


def test_lr_range_test_rejects_bad_ranges():
    X, y, _, _ = sx.digits(holdout=True)
    with pytest.raises(ValueError, match="lr_start"):
        lr_range_test(
            make_mlp(64, 8, 10),
            lambda p, lr: torch.optim.SGD(p, lr=lr),
            X,
            y,
            lr_start=1.0,
            lr_end=0.1,
        )
