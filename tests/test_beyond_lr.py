"""Part IV, page 1, drawn from tiny real runs (VGG-11 at width 1/16 on synthetic data, a 12-step DLN, each with the
curvature probe and weight norms): the late ratios against the records, what "trains" means, every rule measured,
the figures and the table."""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnrepro.claims import VERDICTS
from bnrepro.data import load_cifar10
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID
from bnrepro.sections import beyond_lr as bl
from bnrepro.specs import DLN_LOSS_SCALE
from bnrepro.train import RunConfig, train

PROBES = {"curvature_iters": 4, "curvature_every": 2, "weight_norms": True}


@pytest.fixture(scope="module")
def runs():
    """The section's runs, keyed like `judge.load_section`'s. To keep the test short one VGG pair and one DLN pair
    (trained at the sweep's first LR) stand for every LR: the measures read each record's own config."""
    data = load_cifar10("synthetic:256")
    out = {}
    for norm in bl.NORMS:
        vgg = train(RunConfig(model="vgg11", norm=norm, lr=0.05, steps=12, batch_size=32, width=1 / 16,
                              data="synthetic:256", eval_every=6, probe_every=3, landscape_grid=VGG_GRID, **PROBES),
                    data)
        dln = train(RunConfig(model="dln", norm=norm, lr=3e-7, steps=12, data="gaussian", eval_every=12,
                              probe_every=3, landscape_grid=DLN_GRID, dln_loss_scale=DLN_LOSS_SCALE, **PROBES))
        out |= {("vgg", norm, lr): vgg for lr in bl.LRS["vgg"]} | {("dln", norm, lr): dln for lr in bl.LRS["dln"]}
    return out


def test_late_ratio_is_the_median_over_the_second_half_times_lr_over_two(runs):
    rec = runs["vgg", "batch", 0.05]
    x, y = bl.series(rec, "sharpness")
    assert len(x) == 4 and np.isfinite(y).all()
    assert bl.late_ratio(rec, "sharpness") == pytest.approx(np.median(y[x >= 6]) * 0.05 / 2)
    x, y = bl.series(rec, "eigenvalue")  # at every second probed step only
    assert list(x) == [0, 6]
    assert bl.series(dataclasses.replace(rec, arrays={k: v for k, v in rec.arrays.items()
                                                      if not k.startswith("curvature")}), "sharpness")[0].size == 0


def test_trains_reads_accuracy_for_vgg_and_the_loss_drop_for_the_dln(runs):
    rec = runs["vgg", "batch", 0.05]
    assert bl.trains(dataclasses.replace(rec, summary={**rec.summary, "final_train_acc": 0.6}))
    assert not bl.trains(dataclasses.replace(rec, summary={**rec.summary, "final_train_acc": 0.29}))
    assert not bl.trains(dataclasses.replace(rec, summary={**rec.summary, "final_train_acc": 0.4}), bar=50)
    assert not bl.trains(dataclasses.replace(rec, status="diverged"))
    dln = runs["dln", "none", 3e-7]
    loss = dln["train_loss"].copy()
    loss[-1] = loss[0] / 20
    assert bl.trains(dataclasses.replace(dln, arrays={**dln.arrays, "train_loss": loss}))
    loss[-1] = loss[0] / 5
    assert not bl.trains(dataclasses.replace(dln, arrays={**dln.arrays, "train_loss": loss}))


def test_tracking_fits_the_slope_of_log_beta_against_log_lr(runs):
    """Records whose beta is exactly c/LR have slope -1 and ratio c/2."""
    recs = []
    for lr in (0.01, 0.1):
        rec = runs["vgg", "batch", 0.05]
        beta = np.full_like(rec["landscape_beta"], 30 / lr)
        recs.append(dataclasses.replace(rec, config={**rec.config, "lr": lr},
                                        arrays={**rec.arrays, "landscape_beta": beta},
                                        summary={**rec.summary, "final_train_acc": 0.9}))
    t = bl.tracking(recs)
    assert t["slope"] == pytest.approx(-1) and t["lo"] == pytest.approx(15) and t["n"] == 2


def test_each_rule_measures_its_runs_into_glueable_numbers(runs):
    for rule in bl.SECTION.rules:
        c = rule.apply(runs)
        assert set(c.readings.values() or [c.verdict]) <= set(VERDICTS) and c.ours, rule.key
        assert all(isinstance(v, float | int) for v in c.values.values()), rule.key


def test_scale_invariance_holds_in_the_bn_runs_and_not_without(runs):
    v = bl.SCALE.measure(runs)
    assert v["vgg_batch"] < 1e-3 and v["vgg_none"] > 10 * v["vgg_batch"]


def test_figures_and_table(runs):
    assert len(bl.ratio_figure(runs).axes) == 2
    assert len(bl.over_training_figure(runs, "vgg", 0.05).axes) == 4  # a panel per quantity and the key
    assert len(bl.robustness_figure({0: runs, 1: runs}).axes) == 2
    assert len(bl.effective_lr_figure(runs).axes) == 2
    table = bl.ratios_markdown(runs)
    assert table.count("\n") == 1 + sum(len(lrs) for lrs in bl.LRS.values()) * len(bl.NORMS)
    plt.close("all")


def test_the_lr_slider_opens_on_a_frame_showing_the_most_curves(runs):
    def curves(model, lr):
        return sum(len(bl.series(runs[model, n, lr], q)[0]) > 0 for n in bl.NORMS for q in bl.QUANTITIES)

    for model in bl.LRS:
        slider, _ = bl.over_training_slider(runs, model).children
        assert curves(model, bl.LRS[model][slider.index]) == max(curves(model, lr) for lr in bl.LRS[model])
    plt.close("all")


def test_observed_ratios_are_the_named_runs_late_ratios(runs):
    ratios = bl.observed_ratios(runs)
    assert len(ratios) == len(bl.OBSERVED) * len(bl.QUANTITIES)
    assert ratios["vgg_std_mid_beta"] == bl.late_ratio(runs["vgg", "none", 0.05], "beta")
    assert ratios["dln_std_top_eigenvalue"] == bl.late_ratio(runs["dln", "none", max(bl.LRS["dln"])], "eigenvalue")


def test_observed_by_seed_lists_every_seed_in_order(runs):
    top = bl.late_ratio(runs["dln", "none", max(bl.LRS["dln"])], "beta")
    assert bl.observed_by_seed({0: runs}, "dln_std_top", "beta") == f"{top:.2g} at seed 0"
    assert bl.observed_by_seed({2: runs, 0: runs, 1: runs}, "dln_std_top", "beta") == \
        f"{top:.2g} at seed 0, {top:.2g} at seed 1 and {top:.2g} at seed 2"
    rec = runs["vgg", "none", 0.02]
    reused = dataclasses.replace(rec, arrays={k: v for k, v in rec.arrays.items() if not k.startswith("curvature")})
    assert bl.observed_by_seed({0: {**runs, ("vgg", "none", 0.02): reused}}, "vgg_std_low", "sharpness") == \
        "— at seed 0"
