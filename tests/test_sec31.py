"""Figures 4, 10 and 11 and Section 3.1's claims, drawn from tiny real runs (VGG-11 at width 1/16 on synthetic
data, a 10-step DLN)."""

import math

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnrepro.claims import VERDICTS
from bnrepro.data import load_cifar10
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID
from bnrepro.sections import sec31
from bnrepro.train import RunConfig, train




@pytest.fixture(scope="module")
def runs():
    """The section's four runs, keyed like `judge.load_section`'s: (model, norm, lr)."""
    data = load_cifar10("synthetic:256")
    out = {}
    for norm in ("none", "batch"):
        out["vgg", norm, 0.1] = train(RunConfig(model="vgg11", norm=norm, lr=0.1, steps=20, batch_size=32,
                                                width=1 / 16, data="synthetic:256", eval_every=1000, probe_every=5,
                                                landscape_grid=VGG_GRID), data)
        out["dln", norm, 1e-6] = train(RunConfig(model="dln", norm=norm, lr=1e-6, steps=10, data="gaussian",
                                                 eval_every=1000, probe_every=5, landscape_grid=DLN_GRID))
    return out


def pair(runs, model):
    lr = 0.1 if model == "vgg" else 1e-6
    return [runs[model, "none", lr], runs[model, "batch", lr]]


def test_measures_are_the_bands_and_the_largest_beta(runs):
    rec = runs["vgg", "batch", 0.1]
    m = sec31.measures(rec)
    assert list(m["step"]) == [0, 5, 10, 15]
    np.testing.assert_allclose(m["loss_lo"], rec["landscape_loss"].min(1))
    np.testing.assert_allclose(m["gd_hi"], rec["landscape_grad_diff"].max(1))
    np.testing.assert_allclose(m["beta"], rec["landscape_beta"].max(1))
    assert (m["loss_lo"] <= m["loss_hi"]).all() and (m["gd_lo"] <= m["gd_hi"]).all()


@pytest.mark.parametrize("model", ["vgg", "dln"])
def test_landscape_figure_has_the_three_panels(runs, model):
    fig = sec31.landscape_figure(pair(runs, model))
    axes, key = fig.axes[:3], fig.axes[3]
    assert [ax.get_title()[:3] for ax in axes] == ["(a)", "(b)", "(c)"]
    assert not key.axison and len(key.get_legend().get_texts()) == 2  # the fourth panel holds only the key
    assert axes[0].get_yscale() == "log"
    assert [ax.get_yscale() for ax in axes[1:]] == (["log", "log"] if model == "dln" else ["linear", "linear"])
    assert len(axes[2].get_lines()) == 2  # one effective-beta curve per run
    plt.close(fig)


@pytest.mark.parametrize("model", ["vgg", "dln"])
def test_gradient_change_figure_has_a_line_per_probed_step_and_a_colorbar(runs, model):
    fig = sec31.gradient_change_figure(pair(runs, model))
    panels, colorbar = fig.axes[:2], fig.axes[2]
    assert len(fig.axes) == 3 and colorbar.get_ylabel() == "training step"
    for ax, rec in zip(panels, pair(runs, model)):
        assert len(ax.get_lines()) == len(rec["probe_step"])
        assert ax.get_xscale() == ("log" if model == "dln" else "linear")
    plt.close(fig)


def test_along_gradient_figure_and_slider(runs):
    models = [pair(runs, "vgg"), pair(runs, "dln")]
    first, last = (sec31.along_gradient_figure(models, p) for p in (0, 100))
    assert len(first.axes) == 4
    assert [ax.get_ylim() for ax in first.axes] == [ax.get_ylim() for ax in last.axes]  # fixed across frames
    plt.close("all")
    box = sec31.along_gradient_slider(models, percents=(0, 100))
    slider, stack = box.children
    assert isinstance(slider, ipywidgets.SelectionSlider) and len(stack.children) == 2
    assert plt.get_fignums() == []  # the frames' figures are closed


def test_each_rule_measures_its_own_runs_into_finite_numbers(runs):
    claims = [rule.apply({(s.model, s.norm, s.lr): runs[s.model, s.norm, s.lr] for s in rule.specs})
              for rule in sec31.SECTION.rules]
    assert [c.key for c in claims] == ["c31_loss", "c31_predictive", "c31_beta", "c31_eos"]
    for c in claims:
        assert set(c.readings.values() or [c.verdict]) <= set(VERDICTS)
        assert c.values and all(math.isfinite(v) for v in c.values.values()), c.key
    eos = claims[-1].values
    assert eos["vgg_two_over_lr"] == 20 and eos["dln_two_over_lr"] == 2e6
