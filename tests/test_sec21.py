"""Section 2.1's figures (the shared training curves and ridge plots, and Figure 8) and claims, drawn from tiny
real runs (VGG-16 at width 1/16 on synthetic data)."""

import dataclasses

import ipywidgets
import matplotlib.pyplot as plt
import pytest

from bnrepro import claims, figures
from bnrepro.sections import sec21
from bnrepro.data import load_cifar10
from bnrepro.specs import VGG_ACT_LAYERS
from bnrepro.train import RunConfig, train


@pytest.fixture(scope="module")
def runs():
    """The section's five runs, keyed like `judge.load_section`'s: (model, norm, lr)."""
    data = load_cifar10("synthetic:256")
    return {("vgg", norm, lr): train(RunConfig(model="vgg16", norm=norm, lr=lr, steps=20, batch_size=32, width=1 / 16,
                                               data="synthetic:256", eval_every=10, probe_every=5,
                                               act_layers=VGG_ACT_LAYERS), data)
            for norm, lr in [("none", 0.1), ("batch", 0.1), ("none", 0.5), ("batch", 0.5), ("noisy", 0.1)]}


def test_figures_have_one_panel_per_run_and_layer(runs):
    std, bn, noisy = runs["vgg", "none", 0.1], runs["vgg", "batch", 0.1], runs["vgg", "noisy", 0.1]
    assert len(figures.accuracy_figure([std, bn]).axes) == 2
    assert len(figures.distributions_figure([std, bn, bn], (3, 11), points=["pre", "pre", "post"]).axes) == 6
    assert len(sec21.moments_figure([std, bn, noisy], 9).axes) == 4
    slider, stack = sec21.moments_slider([std, bn, noisy], (2, 9, 13)).children
    assert len(stack.children) == 3 and slider.value == 0  # one frame per layer, opening on the first
    plt.close("all")


def test_before_and_after_batchnorm_differ_and_coincide_without_it(runs):
    bn, std = runs["vgg", "batch", 0.1], runs["vgg", "none", 0.1]
    assert (figures.activation_arrays(bn, "pre")[1] != figures.activation_arrays(bn, "post")[1]).any()
    assert (figures.activation_arrays(std, "pre")[1] == figures.activation_arrays(std, "post")[1]).all()


def test_record_without_pre_activations_asks_for_a_retrain(runs):
    rec = dataclasses.replace(runs["vgg", "batch", 0.1])
    rec.arrays = {k: v for k, v in rec.arrays.items() if not k.startswith("act_pre")}
    with pytest.raises(ValueError, match="retrain"):
        figures.activation_arrays(rec, "pre")


def test_slider_has_one_frame_per_chosen_step(runs):
    w = figures.distributions_slider([runs["vgg", "batch", 0.1]], (3,), n_frames=3)
    stack = next(c for c in w.children if isinstance(c, ipywidgets.Stack))
    assert len(stack.children) == 3


def test_each_rule_measures_its_own_runs_into_glueable_numbers(runs):
    for rule in sec21.SECTION.rules:
        c = rule.apply({(s.model, s.norm, s.lr): runs[s.model, s.norm, s.lr] for s in rule.specs})
        assert set(c.readings.values() or [c.verdict]) <= set(claims.VERDICTS) and c.ours
        assert c.values and all(isinstance(v, float | int) for v in c.values.values()), c.key
    judged = claims.Judged.judge(sec21.SECTION, "smoke", {0: runs})
    table = claims.claims_markdown(judged)
    short = [r.key for r in sec21.SECTION.rules if r.min_steps > 20]
    assert short == ["c21_full", "c21_steps90", "c21_test_level"]  # the 15k-step schedule's claims
    assert [c.key for c in judged.first] == [r.key for r in sec21.SECTION.rules if r.key not in short]
    assert table.count("\n") == len(judged.first) + 1  # a literal | in a cell must not split rows
