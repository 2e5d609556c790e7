"""Section 2.2: Figure 3, the step slider and the claims, on tiny runs of the section's specs."""

import dataclasses
import math

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bnrepro import claims
from bnrepro.sections import sec22
from bnrepro.data import load_cifar10
from bnrepro.specs import make_config
from bnrepro.train import train

SYNTH = "synthetic:256"


@pytest.fixture(scope="module")
def runs():
    """Every run of Section 2.2 at the smoke budget's sizes, shortened: {(model, norm, lr): RunRecord}."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    data = load_cifar10(SYNTH)
    out = {}
    for s in sec22.SECTION.specs:
        cfg = dataclasses.replace(make_config(s, "smoke", data=SYNTH), steps=20, probe_every=5, act_layers=(),
                                  landscape_grid=(), dln_samples=100, eval_every=20)
        out[s.model, s.norm, s.lr] = train(cfg, data)
    torch.set_num_threads(n)
    return out


def test_records_hold_ics_at_every_probe_step(runs):
    rec = runs["vgg", "batch", 0.1]
    assert rec.config["ics_layers"] == [5, 10] and list(rec["probe_step"]) == [0, 5, 10, 15]
    assert rec["ics_l2"].shape == rec["ics_cos"].shape == (4, 2)
    assert sec22.ics_series(rec, 10, "cos").shape == (4,)


@pytest.mark.parametrize("model", ["vgg", "dln"])
def test_ics_figure_has_a_training_panel_and_two_per_layer(runs, model):
    fig = sec22.ics_figure([r for (m, _, _), r in runs.items() if m == model])
    assert len(fig.axes) == 2 * (1 + 2 * 2)  # two LRs x (training curve + (l2, cos) for two layers)
    lrs = ["0.1", "0.01"] if model == "vgg" else ["1e-06", "1e-07"]
    assert [ax.get_title() for ax in fig.axes[:2]] == [f"LR = {lr}" for lr in lrs]
    assert fig.axes[2].get_yscale() == "log" and fig.axes[4].get_ylim()[1] == pytest.approx(1.05)
    plt.close(fig)


def test_ics_slider_has_one_frame_per_chosen_step(runs):
    box = sec22.ics_slider([r for (m, _, _), r in runs.items() if m == "dln"], n_frames=3)
    slider, stack = box.children
    assert isinstance(slider, ipywidgets.SelectionSlider) and len(stack.children) == 3
    assert [label for label, _ in slider.options] == ["0", "10", "15"]
    assert not plt.get_fignums()


def test_each_rule_measures_its_own_runs_into_finite_numbers(runs):
    claimed = [rule.apply({(s.model, s.norm, s.lr): runs[s.model, s.norm, s.lr] for s in rule.specs})
               for rule in sec22.SECTION.rules]
    assert [c.key for c in claimed] == ["c22_vgg_scale", "c22_larger", "c22_dln_std", "c22_dln_bn", "c22_dln_loss"]
    for c in claimed:
        assert set(c.readings.values() or [c.verdict]) <= set(claims.VERDICTS) and c.rule and c.ours
        assert c.values and all(math.isfinite(v) for v in c.values.values()), c.key
    ratios = claimed[1].values
    assert ratios["vgg_min"] <= ratios["vgg_5_e1"] <= ratios["vgg_max"]
    assert ratios["dln_min"] <= ratios["dln_17_e7"] <= ratios["dln_max"]


def test_ics_median_ignores_nan_cosines(runs):
    rec = dataclasses.replace(runs["dln", "none", 1e-7])
    rec.arrays = {**rec.arrays, "ics_cos": np.array([[0.5, np.nan], [np.nan, 0.2], [0.7, 0.4]])}
    assert sec22.ics_median(rec, 9, "cos") == pytest.approx(0.6)
    assert sec22.ics_median(rec, 17, "cos") == pytest.approx(0.3)


def test_loss_rise_fraction(runs):
    rec = dataclasses.replace(runs["dln", "none", 1e-7])
    rec.arrays = {**rec.arrays, "train_loss": np.array([5.0, 4.0, 4.5, 3.0, 3.5], np.float32)}
    assert sec22.loss_rise_fraction(rec) == 0.5
