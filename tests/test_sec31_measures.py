"""Section 3.1's measures and claims on constructed records with known answers (no training): `measures` (the loss
and gradient-change bands and the effective beta over the step-size grid), `landscape_summary` (medians, extremes
and the interquartile ratio over the probed steps), each rule's measure on records whose numbers can be worked out
by hand, and every rule of `sec31.SECTION` applied to a full set of constructed runs, with the verdict those
numbers must get (values well away from the thresholds, which test_rules.py probes)."""

import numpy as np
import pytest

from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED
from bnrepro.records import RunRecord
from bnrepro.sections import sec31

RAMP = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # percentiles 25, 50, 75: 2, 3, 4; largest 5
FLAT = np.ones(5)


def record(model: str = "vgg", norm: str = "none", lo=1.0, hi=10.0, gd=1.0, beta=1.0, acc: float = 0.75,
           status: str = "completed") -> RunRecord:
    """A landscape record at five probed steps whose loss band over the grid of three step sizes runs from `lo` to
    `hi`, whose largest gradient change is `gd` (the smallest gd / 4) and whose largest beta is `beta` at each step
    (each a number or a per-step array). The grid's extremes sit in its middle and last columns, not first."""
    lo, hi, gd, beta = (np.broadcast_to(np.asarray(x, float), (5,)) for x in (lo, hi, gd, beta))
    arrays = {"probe_step": np.arange(5) * 10, "landscape_eta": np.tile([0.5, 1.0, 2.0], (5, 1)),
              "landscape_loss": np.stack([(lo + hi) / 2, hi, lo], 1),
              "landscape_grad_diff": np.stack([gd / 2, gd, gd / 4], 1),
              "landscape_beta": np.stack([beta / 2, beta, beta / 3], 1)}
    lr = sec31.LRS[model]
    return RunRecord({"model": "vgg16" if model == "vgg" else "dln", "norm": norm, "lr": lr, "steps": 50}, {},
                     status, {"final_train_acc": acc}, arrays)


# --- the measures -----------------------------------------------------------------------------------------------

def test_measures_are_the_bands_and_the_largest_beta_per_step():
    m = sec31.measures(record(lo=[1, 2, 3, 4, 5], hi=100.0, gd=RAMP, beta=3 * RAMP))
    assert list(m) == ["step", "loss_lo", "loss_hi", "gd_lo", "gd_hi", "beta"]
    assert list(m["step"]) == [0, 10, 20, 30, 40]
    assert m["loss_lo"] == pytest.approx([1, 2, 3, 4, 5]) and m["loss_hi"] == pytest.approx(np.full(5, 100))
    assert m["gd_lo"] == pytest.approx(RAMP / 4) and m["gd_hi"] == pytest.approx(RAMP)
    assert m["beta"] == pytest.approx(3 * RAMP)


def test_measures_read_float16_arrays_as_float():
    rec = record(beta=RAMP)
    rec.arrays = {k: v.astype(np.float16) if k.startswith("landscape") else v for k, v in rec.arrays.items()}
    m = sec31.measures(rec)
    assert m["beta"].dtype == np.float64 and m["beta"] == pytest.approx(RAMP)


def test_landscape_summary_known_answer():
    # bands 1 to [100, 10, 10, 10, 1000]: heights 2, 1, 1, 1, 3 decades, widths 99, 9, 9, 9, 999
    rec = record(lo=1.0, hi=[100, 10, 10, 10, 1000], gd=[1, 2, 3, 4, 50], beta=RAMP)
    s = sec31.landscape_summary(rec)
    assert s == pytest.approx({"band_width": 9.0, "band_decades": 1.0, "gd_max": 50.0, "gd_median": 3.0,
                               "beta_median": 3.0, "beta_iqr": 2.0, "beta_max": 5.0})


def test_landscape_summary_of_a_flat_landscape():
    s = sec31.landscape_summary(record(lo=2.0, hi=2.0, gd=7.0, beta=20.0))
    assert s == pytest.approx({"band_width": 0.0, "band_decades": 0.0, "gd_max": 7.0, "gd_median": 7.0,
                               "beta_median": 20.0, "beta_iqr": 1.0, "beta_max": 20.0})


def test_landscape_summary_leaves_out_a_step_with_a_nan():
    rec = record(lo=1.0, hi=[100, 10, 10, 10, 1000], gd=[1, 2, 3, 4, 50], beta=RAMP)
    for name in ("landscape_loss", "landscape_grad_diff", "landscape_beta"):  # a sixth step, NaN at one eta
        rec.arrays[name] = np.r_[rec.arrays[name], [[1.0, np.nan, 1e9]]]
    rec.arrays["probe_step"] = np.arange(6) * 10
    s = sec31.landscape_summary(rec)
    assert s == pytest.approx({"band_width": 9.0, "band_decades": 1.0, "gd_max": 50.0, "gd_median": 3.0,
                               "beta_median": 3.0, "beta_iqr": 2.0, "beta_max": 5.0})


def section_runs(std=None, bn=None, dln_std=None, dln_bn=None, acc=(0.75, 0.875)) -> dict:
    """The section's four runs; each of std, bn (VGG) and dln_std, dln_bn the keywords of its `record`; acc the VGG
    networks' final training accuracies (standard, BN)."""
    out = {}
    for m, n, kw, a in (("vgg", "none", std, acc[0]), ("vgg", "batch", bn, acc[1]),
                        ("dln", "none", dln_std, 0.5), ("dln", "batch", dln_bn, 0.5)):
        out[m, n, sec31.LRS[m]] = record(m, n, acc=a, **(kw or {}))
    return out


def test_the_sections_runs_are_the_four_specs():
    assert {(s.model, s.norm, s.lr) for s in sec31.SECTION.specs} == set(section_runs())
    assert [r.key for r in sec31.SECTION.rules] == ["c31_loss", "c31_predictive", "c31_beta", "c31_eos"]


def test_compare_gives_standard_bn_and_their_ratio():
    runs = section_runs(std={"gd": 40.0}, bn={"gd": 8.0}, dln_std={"gd": 1e16}, dln_bn={"gd": 0.0})
    assert sec31._compare(runs, "gd_max", "x_") == pytest.approx(
        {"vgg_x_std": 40.0, "vgg_x_bn": 8.0, "vgg_x_ratio": 5.0,
         "dln_x_std": 1e16, "dln_x_bn": 0.0, "dln_x_ratio": 1e46})  # a BN value of 0 divides as 1e-30


def test_vgg_train_reads_the_final_training_accuracies_in_percent():
    runs = section_runs(acc=(0.25, 0.5))
    assert sec31._vgg_train(runs) == pytest.approx({"vgg_train_std": 25.0, "vgg_train_bn": 50.0})
    r = runs["vgg", "batch", 0.1]
    runs["vgg", "batch", 0.1] = RunRecord(r.config, r.env, "diverged", r.summary, r.arrays)
    assert sec31._vgg_train(runs)["vgg_train_bn"] == 0.0


def test_measure_loss_band_gives_both_readings():
    runs = section_runs(std={"hi": 1000.0}, bn={"hi": 10.0}, dln_std={"lo": 100.0, "hi": 1000.0},
                        dln_bn={"lo": 1.0, "hi": 10.0})
    assert sec31.measure_loss_band(runs) == pytest.approx(
        {"vgg_std": 3.0, "vgg_bn": 1.0, "vgg_ratio": 3.0, "dln_std": 1.0, "dln_bn": 1.0, "dln_ratio": 1.0,
         "vgg_width_std": 999.0, "vgg_width_bn": 9.0, "vgg_width_ratio": 111.0,
         "dln_width_std": 900.0, "dln_width_bn": 9.0, "dln_width_ratio": 100.0,
         "vgg_train_std": 75.0, "vgg_train_bn": 87.5})


def test_measure_predictive_gives_the_largest_and_the_median_gradient_change():
    runs = section_runs(std={"gd": [1, 2, 3, 4, 500]}, bn={"gd": 2.0}, dln_std={"gd": 1e14}, dln_bn={"gd": 1e6})
    v = sec31.PREDICTIVE.measure(runs)
    assert v == pytest.approx({"vgg_std": 500.0, "vgg_bn": 2.0, "vgg_ratio": 250.0, "vgg_median_ratio": 1.5,
                               "dln_std": 1e14, "dln_bn": 1e6, "dln_ratio": 1e8, "dln_median_ratio": 1e8,
                               "vgg_train_std": 75.0, "vgg_train_bn": 87.5})


def test_measure_beta_gives_median_interquartile_ratio_and_largest():
    runs = section_runs(std={"beta": 10 * RAMP}, bn={"beta": 20.0}, dln_std={"beta": 1e6 * RAMP},
                        dln_bn={"beta": 1e6})
    v = sec31.BETA.measure(runs)
    assert v == pytest.approx({"vgg_std": 30.0, "vgg_bn": 20.0, "vgg_ratio": 1.5,
                               "vgg_iqr_std": 2.0, "vgg_iqr_bn": 1.0, "vgg_iqr_ratio": 2.0,
                               "vgg_max_std": 50.0, "vgg_max_bn": 20.0, "vgg_max_ratio": 2.5,
                               "dln_std": 3e6, "dln_bn": 1e6, "dln_ratio": 3.0,
                               "dln_iqr_std": 2.0, "dln_iqr_bn": 1.0, "dln_iqr_ratio": 2.0,
                               "dln_max_std": 5e6, "dln_max_bn": 1e6, "dln_max_ratio": 5.0,
                               "vgg_train_std": 75.0, "vgg_train_bn": 87.5})


def test_measure_eos_is_the_median_beta_over_two_over_lr():
    runs = section_runs(std={"beta": 10 * RAMP}, bn={"beta": 40.0}, dln_std={"beta": 1e15}, dln_bn={"beta": 1e6})
    assert sec31.EOS.measure(runs) == pytest.approx({"vgg_std": 1.5, "vgg_bn": 2.0, "dln_std": 5e8, "dln_bn": 0.5,
                                                     "vgg_two_over_lr": 20.0, "dln_two_over_lr": 2e6})


# --- the rules on constructed runs ------------------------------------------------------------------------------

ROUGH = {"lo": 1.0, "hi": 1000.0, "gd": 100.0, "beta": 10 * RAMP}  # 3 decades, gradient change 100, spiky beta
SMOOTH = {"lo": 1.0, "hi": 10.0, "gd": 1.0, "beta": 20.0}  # 1 decade, gradient change 1, flat beta at 2/0.1


def smooth_dln() -> dict:
    return SMOOTH | {"beta": 2e6}  # at 2/1e-6


@pytest.mark.parametrize("kw, readings", [
    # both bands 111x wider (VGG) and 3x higher in decades, in both networks
    ({}, {"absolute width": REPRODUCED, "decades": REPRODUCED}),
    # the standard bands from 100 to 1000: as high in decades as BN's 1 to 10, but 100x wider
    ({"std": ROUGH | {"lo": 100.0}, "dln_std": ROUGH | {"lo": 100.0}},
     {"absolute width": REPRODUCED, "decades": NOT_REPRODUCED}),
    # the DLN's standard band the same as BN's: reproduced in VGG only
    ({"dln_std": SMOOTH}, {"absolute width": PARTLY, "decades": PARTLY}),
    ({"std": SMOOTH, "dln_std": SMOOTH}, {"absolute width": NOT_REPRODUCED, "decades": NOT_REPRODUCED}),
    # the standard VGG does not train (12.5% < 30%): nothing to compare
    ({"acc": (0.125, 0.875)}, {"absolute width": NOT_TESTABLE, "decades": NOT_TESTABLE}),
])
def test_loss_rule(kw, readings):
    runs = section_runs(**({"std": ROUGH, "bn": SMOOTH, "dln_std": ROUGH, "dln_bn": SMOOTH} | kw))
    claim = sec31.LOSS.apply(runs)
    assert claim.readings == readings
    assert claim.verdict == (next(iter(readings.values())) if len(set(readings.values())) == 1 else
                             ", ".join(f"{v} by {name}" for name, v in readings.items()))


def test_loss_rule_names_each_reading_where_they_disagree():
    runs = section_runs(std=ROUGH | {"lo": 100.0}, bn=SMOOTH, dln_std=ROUGH | {"lo": 100.0}, dln_bn=SMOOTH)
    assert sec31.LOSS.apply(runs).verdict == "reproduced by absolute width, not reproduced by decades"


@pytest.mark.parametrize("kw, verdict", [
    ({}, REPRODUCED),  # 100x in both
    ({"dln_std": SMOOTH | {"gd": 3.0}}, PARTLY),  # the DLN's only 3x
    ({"std": SMOOTH, "dln_std": SMOOTH}, NOT_REPRODUCED),  # no larger in either
    ({"acc": (0.75, 0.125)}, NOT_TESTABLE),  # the BN VGG does not train
])
def test_predictive_rule(kw, verdict):
    runs = section_runs(**({"std": ROUGH, "bn": SMOOTH, "dln_std": ROUGH, "dln_bn": SMOOTH} | kw))
    claim = sec31.PREDICTIVE.apply(runs)
    assert claim.verdict == verdict and claim.values["vgg_bn"] == pytest.approx(1.0)


def test_predictive_is_not_testable_when_the_standard_vgg_diverged():
    runs = section_runs(std=ROUGH, bn=SMOOTH, dln_std=ROUGH, dln_bn=SMOOTH)
    r = runs["vgg", "none", 0.1]
    runs["vgg", "none", 0.1] = RunRecord(r.config, r.env, "diverged", r.summary, r.arrays)
    claim = sec31.PREDICTIVE.apply(runs)
    assert claim.verdict == NOT_TESTABLE and "the standard VGG's final training accuracy (%) > 30 (measured 0)" \
        in claim.untestable


@pytest.mark.parametrize("kw, verdict", [
    ({}, REPRODUCED),  # standard median β 30 vs 20 (VGG), interquartile ratio 2 vs 1 in both
    ({"dln_std": smooth_dln()}, PARTLY),  # the DLN's the same: two of four hold
    ({"std": SMOOTH | {"beta": 10.0}, "dln_std": smooth_dln()}, NOT_REPRODUCED),  # VGG's lower and flat, DLN's same
    ({"acc": (0.125, 0.125)}, NOT_TESTABLE),
])
def test_beta_rule(kw, verdict):
    runs = section_runs(**({"std": ROUGH, "bn": SMOOTH, "dln_std": ROUGH | {"beta": 1e7 * RAMP},
                            "dln_bn": smooth_dln()} | kw))
    assert sec31.BETA.apply(runs).verdict == verdict


def test_beta_rule_one_network_both_checks_is_partly():
    # VGG: standard median β 30 > 20, interquartile 2 > 1; DLN: standard median β 2 < 2e6, flat
    runs = section_runs(std=ROUGH, bn=SMOOTH, dln_std=SMOOTH | {"beta": 2.0}, dln_bn=smooth_dln())
    claim = sec31.BETA.apply(runs)
    assert claim.verdict == PARTLY and claim.values["dln_ratio"] == pytest.approx(1e-6)


@pytest.mark.parametrize("vgg_beta, dln_beta, verdict", [
    (20.0, 2e6, REPRODUCED),  # exactly 2/LR in both
    (15.0, 3e6, REPRODUCED),  # 0.75x and 1.5x 2/LR: within a factor 2
    (200.0, 2e6, PARTLY),  # VGG's 10x
    (2.0, 2e8, NOT_REPRODUCED),  # 0.1x and 100x
])
def test_eos_rule(vgg_beta, dln_beta, verdict):
    runs = section_runs(std=ROUGH, bn=SMOOTH | {"beta": vgg_beta}, dln_std=ROUGH, dln_bn=SMOOTH | {"beta": dln_beta})
    claim = sec31.EOS.apply(runs)
    assert claim.verdict == verdict
    assert claim.values["vgg_bn"] == pytest.approx(vgg_beta / 20) and claim.values["dln_bn"] == pytest.approx(
        dln_beta / 2e6)


def test_eos_has_no_training_precondition():
    """EOS reads only BN's β and names no `needs`: a standard VGG that does not train leaves it judged."""
    runs = section_runs(std=ROUGH, bn=SMOOTH, dln_std=ROUGH, dln_bn=smooth_dln(), acc=(0.125, 0.875))
    assert sec31.EOS.apply(runs).verdict == REPRODUCED
    assert [c.verdict for c in sec31.SECTION.claims(runs)] == [NOT_TESTABLE, NOT_TESTABLE, NOT_TESTABLE,
                                                               REPRODUCED]


def test_eos_is_not_testable_with_an_undefined_beta():
    runs = section_runs(std=ROUGH, bn=SMOOTH | {"beta": np.nan}, dln_std=ROUGH, dln_bn=smooth_dln())
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        claim = sec31.EOS.apply(runs)
    assert claim.verdict == NOT_TESTABLE and "undefined" in claim.untestable


def test_section_claims_on_one_set_of_constructed_runs():
    runs = section_runs(std=ROUGH, bn=SMOOTH, dln_std=ROUGH | {"beta": 1e7 * RAMP}, dln_bn=smooth_dln())
    claims = {c.key: (c.verdict, c.readings) for c in sec31.SECTION.claims(runs)}
    assert claims == {"c31_loss": (REPRODUCED, {"absolute width": REPRODUCED, "decades": REPRODUCED}),
                      "c31_predictive": (REPRODUCED, {}), "c31_beta": (REPRODUCED, {}),
                      "c31_eos": (REPRODUCED, {})}
