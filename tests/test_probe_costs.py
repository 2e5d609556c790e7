"""The cost functions of the curvature probe, the random directions and the weight norms return consistent
timings (their values depend on the machine and its load; the chapters glue them without displaying them)."""

import math

import pytest

from bnrepro.costs import curvature_cost, random_dirs_cost, weight_norms_cost


def test_curvature_cost():
    cost = curvature_cost("dln", "smoke", "cpu", repeats=1, iters=3)
    assert cost["step_ms"] > 0 and cost["sharpness_ms"] > 0 and cost["eigen_ms"] > 0
    assert math.isfinite(cost["iter_ms"])  # a difference of two timings: its sign is at the mercy of the load
    assert cost["iter_ms"] == pytest.approx((cost["eigen_ms"] - cost["sharpness_ms"]) / 3)
    assert cost["eigen_per_step"] == pytest.approx(cost["eigen_ms"] / cost["step_ms"])
    assert cost["sharpness_per_step"] == pytest.approx(cost["sharpness_ms"] / cost["step_ms"])


def test_random_dirs_cost():
    cost = random_dirs_cost("dln", "smoke", "cpu", repeats=1, dirs=2)
    assert cost["step_ms"] > 0 and cost["probe_ms"] > 0 and math.isfinite(cost["dir_ms"])
    assert cost["dir_per_step"] == pytest.approx(cost["dir_ms"] / cost["step_ms"])


def test_weight_norms_cost():
    cost = weight_norms_cost("dln", "smoke", "cpu", repeats=2)
    assert cost["step_ms"] > 0 and cost["probe_ms"] > 0
    assert cost["probe_per_step"] == pytest.approx(cost["probe_ms"] / cost["step_ms"])
