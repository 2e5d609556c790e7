"""Section 2.2's measures and claims on constructed records with known answers (no training): the ICS series and
medians read from `ics_l2`/`ics_cos`, the loss-rise fraction and final loss, each rule's measure on records whose
numbers can be worked out by hand, and every rule of `sec22.SECTION` applied to a full set of constructed runs, with
the verdict those numbers must get (values well away from the thresholds, which test_rules.py probes)."""

import math

import numpy as np
import pytest

from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED
from bnrepro.records import RunRecord
from bnrepro.sections import sec22

VGG_LAYERS, DLN_LAYERS = [5, 10], [9, 17]
SERIES = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # median 3: a record's ICS is `scale` x this, median 3 x scale


def record(model: str = "vgg", norm: str = "none", lr: float = 0.1, l2=(1.0, 1.0), cos=(1.0, 1.0),
           acc: float = 0.75, loss=None, final_loss: float = 1.0, status: str = "completed") -> RunRecord:
    """A record whose layer j's ‖G − G′‖ is l2[j] x SERIES (median 3 l2[j]) and cosine a constant cos[j] at five
    probed steps; its final training accuracy `acc` (a fraction) and loss `final_loss`; `loss` its per-step
    training loss."""
    layers = VGG_LAYERS if model == "vgg" else DLN_LAYERS
    arrays = {"probe_step": np.arange(5) * 10,
              "ics_l2": np.stack([s * SERIES for s in l2], 1).astype(np.float32),
              "ics_cos": np.stack([np.full(5, c) for c in cos], 1).astype(np.float32),
              "train_loss": np.asarray(loss if loss is not None else np.linspace(10, 1, 50), np.float32)}
    config = {"model": "vgg16" if model == "vgg" else "dln", "norm": norm, "lr": lr, "steps": 50,
              "ics_layers": layers}
    summary = {"final_train_acc": acc, "final_train_loss": final_loss}
    return RunRecord(config, {}, status, summary, arrays)


# --- the measures -----------------------------------------------------------------------------------------------

def test_ics_series_picks_the_layers_column_by_its_place_in_ics_layers():
    rec = record(l2=(1.0, 10.0), cos=(0.5, 0.25))
    assert sec22.ics_series(rec, 5) == pytest.approx(SERIES)
    assert sec22.ics_series(rec, 10, "l2") == pytest.approx(10 * SERIES)
    assert sec22.ics_series(rec, 10, "cos") == pytest.approx(np.full(5, 0.25))
    assert sec22.ics_series(rec, 5).dtype == np.float64  # read as float, whatever the stored precision
    with pytest.raises(ValueError):
        sec22.ics_series(rec, 9)  # not a measured layer


def test_ics_median_is_the_median_over_the_measured_steps():
    rec = record("dln", l2=(2.0, 100.0), cos=(0.5, -0.25))
    assert sec22.ics_median(rec, 9) == pytest.approx(6.0)
    assert sec22.ics_median(rec, 17) == pytest.approx(300.0)
    assert sec22.ics_median(rec, 9, "cos") == pytest.approx(0.5)
    assert sec22.ics_median(rec, 17, "cos") == pytest.approx(-0.25)


def test_ics_median_leaves_out_nan_cosines():
    rec = record("dln")
    rec.arrays["ics_cos"] = np.array([[0.2, np.nan], [np.nan, np.nan], [0.4, 0.1], [0.9, 0.3], [np.nan, 0.5]])
    assert sec22.ics_median(rec, 9, "cos") == pytest.approx(0.4)  # of 0.2, 0.4, 0.9
    assert sec22.ics_median(rec, 17, "cos") == pytest.approx(0.3)  # of 0.1, 0.3, 0.5


def test_loss_rise_fraction_counts_the_steps_whose_loss_went_up():
    assert sec22.loss_rise_fraction(record(loss=np.linspace(10, 1, 50))) == 0.0  # falls every step
    assert sec22.loss_rise_fraction(record(loss=np.arange(1.0, 11.0))) == 1.0  # rises every step
    assert sec22.loss_rise_fraction(record(loss=[4.0, 4.0, 4.0])) == 0.0  # a flat loss does not rise
    assert sec22.loss_rise_fraction(record(loss=[8.0, 9.0, 4.0, 5.0, 2.0])) == pytest.approx(0.5)  # 2 of 4 rises
    assert sec22.loss_rise_fraction(record(loss=[5.0, 6.0, 4.0, 3.0, 2.0])) == pytest.approx(0.25)


def test_final_loss_is_the_summarys_or_infinite_for_a_diverged_run():
    assert sec22.final_loss(record(final_loss=123.5)) == 123.5
    assert sec22.final_loss(record(final_loss=123.5, status="diverged")) == math.inf


def vgg_runs(std_l2=(0.1, 0.5), bn_l2=(0.2, 1.0), std_acc=(0.75, 0.75), bn_acc=(0.875, 0.875)) -> dict:
    """The four VGG runs at LRs 0.1 and 0.01 (the same ICS at both), standard and BN, with final training
    accuracies std_acc / bn_acc at (0.1, 0.01)."""
    return {("vgg", n, lr): record("vgg", n, lr, l2, acc=acc[k])
            for n, l2, acc in (("none", std_l2, std_acc), ("batch", bn_l2, bn_acc))
            for k, lr in enumerate(sec22.VGG_LRS)}


def dln_runs(std=None, bn=None) -> dict:
    """The four DLN runs; `std`/`bn` map an LR to record keywords (default: l2 scale 1, cosine 1)."""
    std, bn = std or {}, bn or {}
    return {("dln", n, lr): record("dln", n, lr, **kw.get(lr, {}))
            for n, kw in (("none", std), ("batch", bn)) for lr in sec22.DLN_LRS}


def test_measure_vgg_scale_reads_the_medians_at_lr_01_and_the_training_accuracies():
    v = sec22._measure_vgg_scale(vgg_runs(std_l2=(0.1, 0.5), bn_l2=(0.2, 1.0), std_acc=(0.75, 0.25)))
    assert v == pytest.approx({"none_5": 0.3, "none_10": 1.5, "batch_5": 0.6, "batch_10": 3.0,
                               "none_train_e1": 75.0, "batch_train_e1": 87.5})


def test_measure_vgg_scale_counts_a_diverged_network_at_zero_accuracy():
    runs = vgg_runs()
    r = runs["vgg", "none", 0.1]
    runs["vgg", "none", 0.1] = RunRecord(r.config, r.env, "diverged", r.summary, r.arrays)
    assert sec22._measure_vgg_scale(runs)["none_train_e1"] == 0.0


def test_measure_larger_gives_every_bn_over_standard_ratio_and_their_spread():
    runs = vgg_runs(std_l2=(1.0, 2.0), bn_l2=(3.0, 1.0), std_acc=(0.75, 0.25)) | dln_runs(
        std={1e-6: {"l2": (1.0, 1.0)}, 1e-7: {"l2": (2.0, 4.0)}},
        bn={1e-6: {"l2": (10.0, 20.0)}, 1e-7: {"l2": (100.0, 1.0)}})
    v = sec22._measure_larger(runs)
    assert v == pytest.approx({"vgg_5_e1": 3.0, "vgg_10_e1": 0.5, "vgg_5_e2": 3.0, "vgg_10_e2": 0.5,
                               "dln_9_e6": 10.0, "dln_17_e6": 20.0, "dln_9_e7": 50.0, "dln_17_e7": 0.25,
                               "vgg_min": 0.5, "vgg_max": 3.0, "dln_min": 0.25, "dln_max": 50.0,
                               "none_train_e1": 75.0, "batch_train_e1": 87.5,
                               "none_train_e2": 25.0, "batch_train_e2": 87.5})


def test_measure_larger_guards_a_zero_standard_median():
    runs = vgg_runs(std_l2=(0.0, 1.0), bn_l2=(1e-20, 1.0)) | dln_runs()
    assert sec22._measure_larger(runs)["vgg_5_e1"] == pytest.approx(3e10)  # 3e-20 / 1e-30 (ICS of 0 as 1e-30)


def test_measure_dln_reads_both_metrics_at_both_lrs_and_layers():
    runs = dln_runs(std={1e-6: {"l2": (1.0, 2.0), "cos": (0.5, 0.75)}, 1e-7: {"l2": (4.0, 8.0), "cos": (1.0, 0.25)}})
    assert sec22._measure_dln(runs, "none") == pytest.approx(
        {"l2_9_e6": 3.0, "l2_17_e6": 6.0, "l2_9_e7": 12.0, "l2_17_e7": 24.0,
         "cos_9_e6": 0.5, "cos_17_e6": 0.75, "cos_9_e7": 1.0, "cos_17_e7": 0.25})


def test_measure_dln_bn_gives_the_cosine_drop_and_l2_ratio_at_lr_1e7():
    runs = dln_runs(std={1e-7: {"l2": (2.0, 4.0), "cos": (1.0, 0.75)}},
                    bn={1e-6: {"l2": (7.0, 7.0), "cos": (0.0, 0.0)}, 1e-7: {"l2": (200.0, 40.0), "cos": (0.25, 0.5)}})
    v = sec22._measure_dln_bn(runs)
    assert v == pytest.approx({"l2_9_e6": 21.0, "l2_17_e6": 21.0, "l2_9_e7": 600.0, "l2_17_e7": 120.0,
                               "cos_9_e6": 0.0, "cos_17_e6": 0.0, "cos_9_e7": 0.25, "cos_17_e7": 0.5,
                               "cos_drop_9": 0.75, "cos_drop_17": 0.25, "l2_ratio_9": 100.0, "l2_ratio_17": 10.0})


def loss_runs(std=(1600.0, 4000.0), bn=(500.0, 700.0), status=None) -> dict:
    """The four DLN runs with final training losses std / bn at LRs (1e-6, 1e-7); `status` maps a key to its
    status."""
    status = status or {}
    return {("dln", n, lr): record("dln", n, lr, final_loss=x[k], status=status.get((n, lr), "completed"))
            for n, x in (("none", std), ("batch", bn)) for k, lr in enumerate(sec22.DLN_LRS)}


def test_measure_dln_loss_at_the_papers_losses():
    v = sec22._measure_dln_loss(loss_runs())
    assert v == pytest.approx({"none_e6": 1600.0, "none_e7": 4000.0, "batch_e6": 500.0, "batch_e7": 700.0,
                               "ratio_e6": 3.2, "ratio_e7": 4000 / 700, "vs_paper_min": 1.0, "vs_paper_max": 1.0})


def test_measure_dln_loss_compares_with_the_paper_and_reads_a_diverged_run_as_infinite():
    v = sec22._measure_dln_loss(loss_runs(std=(3200.0, 400.0), bn=(250.0, 700.0)))
    assert v["vs_paper_min"] == pytest.approx(0.1) and v["vs_paper_max"] == pytest.approx(2.0)  # 400/4e3, 3200/1.6e3
    assert v["ratio_e6"] == pytest.approx(12.8) and v["ratio_e7"] == pytest.approx(4 / 7)
    v = sec22._measure_dln_loss(loss_runs(status={("none", 1e-7): "diverged"}))
    assert v["none_e7"] == math.inf and v["ratio_e7"] == math.inf and v["vs_paper_max"] == math.inf


# --- the rules on constructed runs ------------------------------------------------------------------------------

def section_runs(**kw) -> dict:
    return vgg_runs(**kw) | dln_runs()


def test_every_rule_reads_only_runs_the_section_lists():
    assert [r.key for r in sec22.SECTION.rules] == ["c22_vgg_scale", "c22_larger", "c22_dln_std", "c22_dln_bn",
                                                    "c22_dln_loss"]
    assert {(s.model, s.norm, s.lr) for s in sec22.SECTION.specs} == set(section_runs())


@pytest.mark.parametrize("std_l2, bn_l2, verdict", [
    ((0.1, 1.0), (0.2, 2.0), REPRODUCED),  # medians 0.3, 3 and 0.6, 6: all within 0.1 to 10
    ((0.001, 0.002), (0.2, 2.0), PARTLY),  # the standard network's at 0.003 and 0.006
    ((0.1, 1.0), (100.0, 2.0), PARTLY),  # one BN median at 300
    ((0.001, 0.002), (100.0, 2.0), NOT_REPRODUCED),
])
def test_vgg_scale_rule(std_l2, bn_l2, verdict):
    claim = sec22.VGG_SCALE.apply(vgg_runs(std_l2=std_l2, bn_l2=bn_l2))
    assert claim.verdict == verdict and claim.values["none_5"] == pytest.approx(3 * std_l2[0])


def test_vgg_scale_is_not_testable_when_a_network_does_not_train():
    claim = sec22.VGG_SCALE.apply(vgg_runs(std_acc=(0.125, 0.75)))  # 12.5% < 30%
    assert claim.verdict == NOT_TESTABLE and "the standard VGG at LR 0.1" in claim.untestable
    runs = vgg_runs()
    r = runs["vgg", "batch", 0.1]
    runs["vgg", "batch", 0.1] = RunRecord(r.config, r.env, "diverged", r.summary, r.arrays)
    claim = sec22.VGG_SCALE.apply(runs)
    assert claim.verdict == NOT_TESTABLE and "the BN VGG at LR 0.1" in claim.untestable


def larger_runs(vgg_bn=(1.0, 1.0), dln_bn=(1.0, 1.0), std_acc=(0.75, 0.75)) -> dict:
    """Standard networks with ICS scale 1 everywhere; BN's scale vgg_bn / dln_bn at (LR 0.1 or 1e-6, 0.01 or
    1e-7), in both layers: the BN ÷ standard ratios."""
    runs = {("vgg", "none", lr): record("vgg", "none", lr, acc=std_acc[k]) for k, lr in enumerate(sec22.VGG_LRS)}
    runs |= {("vgg", "batch", lr): record("vgg", "batch", lr, (s, s)) for lr, s in zip(sec22.VGG_LRS, vgg_bn)}
    runs |= {("dln", "none", lr): record("dln", "none", lr) for lr in sec22.DLN_LRS}
    return runs | {("dln", "batch", lr): record("dln", "batch", lr, (s, s)) for lr, s in zip(sec22.DLN_LRS, dln_bn)}


@pytest.mark.parametrize("kw, verdict", [
    ({"vgg_bn": (1.0, 5.0), "dln_bn": (100.0, 1000.0)}, REPRODUCED),  # ratios 1 to 1000, all >= 1/3
    ({"vgg_bn": (0.01, 0.01), "dln_bn": (100.0, 1000.0)}, PARTLY),  # VGG's at 0.01
    ({"vgg_bn": (0.01, 0.01), "dln_bn": (0.01, 0.01)}, NOT_REPRODUCED),
    # the standard VGG at LR 0.01 does not train: its ratio 0.01 is left out
    ({"vgg_bn": (1.0, 0.01), "dln_bn": (1.0, 1.0), "std_acc": (0.75, 0.125)}, REPRODUCED),
    # neither standard VGG trains: the DLN's ratios alone decide
    ({"vgg_bn": (0.01, 0.01), "dln_bn": (0.01, 0.01), "std_acc": (0.125, 0.125)}, NOT_REPRODUCED),
])
def test_larger_rule(kw, verdict):
    claim = sec22.LARGER.apply(larger_runs(**kw))
    assert claim.verdict == verdict
    assert claim.values["dln_min"] == pytest.approx(min(kw["dln_bn"]))


def test_larger_says_which_vgg_lr_it_left_out():
    claim = sec22.LARGER.apply(larger_runs(vgg_bn=(1.0, 0.01), std_acc=(0.75, 0.125)))
    assert "VGG LR 0.01 left out" in claim.ours and "VGG LR 0.1 layer #5: 1" in claim.ours


def test_larger_is_not_testable_with_an_undefined_ratio():
    runs = larger_runs(dln_bn=(100.0, 100.0))
    runs["dln", "none", 1e-7].arrays["ics_l2"][:] = np.nan
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        claim = sec22.LARGER.apply(runs)
    assert claim.verdict == NOT_TESTABLE and math.isnan(claim.values["dln_9_e7"])
    assert math.isnan(claim.values["dln_min"]) and math.isnan(claim.values["dln_max"])  # the spread hides no NaN


@pytest.mark.parametrize("l2_e7, cos_e7, cos_e6, verdict", [
    (3.0, 1.0, 1.0, REPRODUCED),  # medians 9 at LR 1e-7 (within 1 to 100), cosines 1
    (300.0, 1.0, 1.0, PARTLY),  # ‖G − G′‖ of 900: two of the three hold
    (300.0, 0.5, 1.0, PARTLY),  # only the cosines at 1e-6 hold
    (300.0, 0.5, 0.25, NOT_REPRODUCED),
])
def test_dln_std_rule(l2_e7, cos_e7, cos_e6, verdict):
    runs = dln_runs(std={1e-7: {"l2": (l2_e7, l2_e7), "cos": (cos_e7, cos_e7)},
                         1e-6: {"cos": (cos_e6, cos_e6)}})
    claim = sec22.DLN_STD.apply(runs)
    assert claim.verdict == verdict and claim.values["l2_17_e7"] == pytest.approx(3 * l2_e7)


@pytest.mark.parametrize("bn_l2, bn_cos, verdict", [
    (100.0, 0.25, REPRODUCED),  # ratio 100, cosine 0.75 below the standard network's 1
    (100.0, 1.0, PARTLY),  # ratio only
    (1.0, 0.25, PARTLY),  # cosine drop only
    (1.0, 1.0, NOT_REPRODUCED),  # the same as the standard network
])
def test_dln_bn_rule(bn_l2, bn_cos, verdict):
    runs = dln_runs(bn={lr: {"l2": (bn_l2, bn_l2), "cos": (bn_cos, bn_cos)} for lr in sec22.DLN_LRS})
    claim = sec22.DLN_BN.apply(runs)
    assert claim.verdict == verdict
    assert claim.values["l2_ratio_9"] == pytest.approx(bn_l2) and claim.values["cos_drop_17"] == pytest.approx(
        1 - bn_cos)


@pytest.mark.parametrize("kw, verdict", [
    ({}, REPRODUCED),  # the paper's losses: 3.2x and 5.7x
    ({"std": (1600.0, 350.0)}, PARTLY),  # lower at LR 1e-6 only
    ({"std": (100.0, 350.0)}, NOT_REPRODUCED),  # BN higher at both
    ({"status": {("none", 1e-6): "diverged"}}, REPRODUCED),  # a diverged standard network: infinitely higher
    ({"status": {("batch", 1e-6): "diverged", ("batch", 1e-7): "diverged"}}, NOT_REPRODUCED),
    ({"status": {("none", 1e-6): "diverged", ("batch", 1e-6): "diverged"}}, NOT_TESTABLE),  # inf / inf
])
def test_dln_loss_rule(kw, verdict):
    claim = sec22.DLN_LOSS.apply(loss_runs(**kw))
    assert claim.verdict == verdict


def test_dln_loss_describes_a_diverged_run():
    claim = sec22.DLN_LOSS.apply(loss_runs(status={("none", 1e-6): "diverged"}))
    assert "LR 1e-06: BN 500, standard diverged" in claim.ours


def test_section_claims_on_one_set_of_constructed_runs():
    runs = vgg_runs(std_l2=(0.1, 1.0), bn_l2=(0.2, 2.0)) | dln_runs(
        std={lr: {"l2": (3.0, 3.0), "cos": (1.0, 1.0)} for lr in sec22.DLN_LRS},
        bn={lr: {"l2": (300.0, 300.0), "cos": (0.25, 0.25)} for lr in sec22.DLN_LRS})
    for (m, n, lr), r in runs.items():  # the paper's final losses, BN lower
        if m == "dln":
            r.summary["final_train_loss"] = sec22.PAPER_DLN_LOSS[n, lr]
    claims = {c.key: c.verdict for c in sec22.SECTION.claims(runs)}
    assert claims == {"c22_vgg_scale": REPRODUCED, "c22_larger": REPRODUCED, "c22_dln_std": REPRODUCED,
                      "c22_dln_bn": REPRODUCED, "c22_dln_loss": REPRODUCED}
