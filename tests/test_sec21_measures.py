"""Section 2.1's measures on constructed records with known answers (no training)."""

import math

import numpy as np
import pytest

from bnrepro.records import RunRecord
from bnrepro.sections import sec21

LAYERS = (2, 3, 9, 11, 13)


def record(acc=None, moments=None, pre=None, steps: int = 100, test=None) -> RunRecord:
    """A VGG record with per-step training accuracy `acc` and per-step (mean, var) of the followed units."""
    arrays = {"act_layers": np.array(LAYERS)}
    if acc is not None:
        arrays["train_acc"] = np.asarray(acc, np.float32)
    for name, m in (("act_moments", moments), ("act_pre_moments", pre)):
        if m is not None:
            arrays[name] = np.asarray(m, np.float32)
            arrays[name.replace("moments", "quantiles")] = np.zeros((2, len(LAYERS), 9), np.float32)
    if test is not None:
        arrays["test_step"], arrays["test_acc"] = (np.asarray(x, float) for x in test)
    summary = {"final_train_acc": float(acc[-1]) if acc is not None else 0.0,
               "final_test_acc": float(test[1][-1]) if test is not None else 0.0}
    return RunRecord({"model": "vgg16", "norm": "none", "lr": 0.1, "steps": steps}, {}, "completed", summary, arrays)


def test_steps_to_reach_is_the_first_step_of_the_smoothed_curve_at_the_level():
    acc = np.r_[np.zeros(50), np.ones(50)]  # a step from 0 to 1 at step 51; smoothed over steps // 100 = 1
    assert sec21.steps_to_reach(record(acc), 0.5) == 51
    assert sec21.steps_to_reach(record(acc), 1.0) == 51
    assert math.isinf(sec21.steps_to_reach(record(acc * 0.4), 0.5))
    # over 1,000 steps the curve is averaged over 10: a jump to 1 at step 501 reaches 0.5 at step 505
    long = np.r_[np.zeros(500), np.ones(500)]
    assert sec21.steps_to_reach(record(long, steps=1000), 0.5) == 505


def moments(mean_steps: np.ndarray, var: float = 4.0) -> np.ndarray:
    """Moments [step, layer, (mean, var)]: every layer's unit has the given means and a constant variance."""
    m = np.zeros((len(mean_steps), len(LAYERS), 2))
    m[:, :, 0] = np.asarray(mean_steps)[:, None]
    m[:, :, 1] = var
    return m


def test_unit_jump_is_the_median_step_to_step_change_of_the_mean():
    mean = np.cumsum([0, 1, 1, 1, 5, 1])  # jumps 1, 1, 1, 5, 1: median 1
    assert sec21.unit_jump(record(moments=moments(mean)), (2, 9)) == pytest.approx(1)
    assert sec21.unit_jump(record(moments=moments(3 * mean)), (13,)) == pytest.approx(3)


def test_relative_drift_is_the_jump_in_units_of_the_standard_deviation():
    mean = np.arange(6.0)  # a jump of 1 per step, standard deviation 2
    rec = record(moments=moments(mean, var=4.0), pre=moments(2 * mean, var=1.0))
    assert sec21.relative_drift(rec, (3, 11)) == pytest.approx(0.5)
    assert sec21.relative_drift(rec, (3, 11), "pre") == pytest.approx(2.0)


def test_late_gains_read_test_and_smoothed_training_accuracy_from_late_from_to_the_end():
    steps = 10_000
    acc = np.linspace(0, 1, steps)
    test = ([0, 5000, 10_000], [0.1, 0.5, 0.7])
    rec = record(acc, steps=steps, test=test)
    test_gain, train_gain = sec21.late_gains(rec)
    assert test_gain == pytest.approx(20.0)  # 70% at the end, 50% at step 5,000
    smoothed = np.mean(acc[5000 - 100:5000])  # the window of steps // 100 = 100 ending at step 5,000
    assert train_gain == pytest.approx(100 * (acc[-1] - smoothed), rel=1e-5)
    diverged = RunRecord(rec.config, {}, "diverged", rec.summary, rec.arrays)
    assert sec21.late_gains(diverged) == (0.0, 0.0)
