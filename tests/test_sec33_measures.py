"""Section 3.3's measures and claims on constructed records with known answers (no training, no data): VGG records
whose followed units move by a set number of standard deviations per step and whose recorded quantiles sit a set
number of standard deviations off the normal's, DLN records with a set final loss, and landscape probes with a
constant loss band, gradient change and beta, so that every measure's number is computable by hand; then every rule
of `sec33.SECTION` applied to full sets of such runs, with the verdict its numbers must give. The thresholds
themselves are driven at their edges in test_rules.py; here every number sits well away from them."""

from statistics import NormalDist

import numpy as np
import pytest

from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED
from bnrepro.records import RunRecord
from bnrepro.sections import sec33

LAYERS = sec33.SHIFT_LAYERS
STEPS = 40
PROBED = np.arange(0, STEPS, 10)  # the activation and landscape probes' steps
LEVELS = np.linspace(0, 1, 65)
#: The standard normal's quantiles at the 65 recorded levels (the two extremes, which the measure drops, finite).
Z = np.array([-4.0] + [NormalDist().inv_cdf(u) for u in LEVELS[1:-1]] + [4.0])
SD = 2.0  # every followed unit's standard deviation


def per_layer(x) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, float), (len(LAYERS),)).copy()


def landscape(band=(1.0, 2.0), gd: float = 1.0, beta: float = 20.0) -> dict[str, np.ndarray]:
    """Landscape-probe arrays with the same loss band (lo, hi), largest gradient change `gd` and beta at every
    probed step (the grid's other step size below each)."""
    p = len(PROBED)
    return {"probe_step": PROBED, "landscape_loss": np.tile(np.asarray(band, float), (p, 1)),
            "landscape_grad_diff": np.tile([0.0, gd], (p, 1)), "landscape_beta": np.tile([beta / 2, beta], (p, 1))}


def vgg(norm: str, acc: float = 0.8, shift=0.01, offset=0.0, status: str = "completed", **land) -> RunRecord:
    """A VGG record: final training accuracy `acc` (a fraction); each followed unit's mean moving `shift` standard
    deviations a step at a constant std `SD` (a number per layer, or one for all); its recorded quantiles `offset`
    standard deviations above the normal's; the landscape of `landscape(**land)`."""
    shift, offset = per_layer(shift), per_layer(offset)
    t = np.arange(STEPS)
    moments = np.zeros((STEPS, len(LAYERS), 2))
    moments[:, :, 0] = SD * shift[None, :] * t[:, None]
    moments[:, :, 1] = SD ** 2
    mean = moments[PROBED, :, 0]
    quantiles = mean[:, :, None] + SD * (Z[None, None, :] + offset[None, :, None])
    arrays = {"act_layers": np.array(LAYERS), "act_units": np.zeros(len(LAYERS), int), "act_step": PROBED,
              "act_moments": moments, "act_quantiles": quantiles} | landscape(**land)
    return RunRecord({"model": "vgg16", "norm": norm, "lr": sec33.VGG_LR, "steps": STEPS}, {}, status,
                     {"final_train_acc": acc, "final_train_loss": 1.0}, arrays)


def dln(norm: str, loss: float = 500.0, status: str = "completed", **land) -> RunRecord:
    """A DLN record with final training loss `loss` and the landscape of `landscape(**land)`."""
    return RunRecord({"model": "dln", "norm": norm, "lr": sec33.DLN_LR, "steps": STEPS}, {}, status,
                     {"final_train_loss": loss, "final_train_acc": 0.0},
                     {"train_loss": np.linspace(1e4, loss, STEPS)} | landscape(**land))


def section_runs(vgg_kw: dict | None = None, dln_kw: dict | None = None) -> dict:
    """The section's ten runs, keyed (model, norm, lr); `vgg_kw` / `dln_kw` map a scheme to its record's arguments
    (schemes not named get the defaults)."""
    vgg_kw, dln_kw = vgg_kw or {}, dln_kw or {}
    return ({("vgg", n, sec33.VGG_LR): vgg(n, **vgg_kw.get(n, {})) for n in sec33.SCHEMES}
            | {("dln", n, sec33.DLN_LR): dln(n, **dln_kw.get(n, {})) for n in sec33.SCHEMES})


def lp(**kw) -> dict:
    """The same arguments for the three l_p schemes."""
    return {n: kw for n in sec33.LP}


# --- the measures ---------------------------------------------------------------------------------------------

def test_final_loss_reads_the_summary_and_is_infinite_for_a_diverged_run():
    assert sec33.final_loss(dln("l1", loss=123.0)) == 123.0
    assert sec33.final_loss(dln("l1", loss=123.0, status="diverged")) == float("inf")


def test_unit_moments_are_the_followed_units_mean_and_std():
    mean, sd = sec33._unit_moments(vgg("l2", shift=(0.1, 0.2, 0.3, 0.4, 0.5)), 9, "post")
    assert mean == pytest.approx(2.0 * 0.3 * np.arange(STEPS)) and sd == pytest.approx(np.full(STEPS, 2.0))


def test_shift_averages_the_followed_layers():
    """Means moving 0.1 ... 0.5 std a step in the five layers (std constant): shifts 0.1 ... 0.5, mean 0.3."""
    rec = vgg("l2", shift=(0.1, 0.2, 0.3, 0.4, 0.5))
    assert sec33.distribution_shift(rec, LAYERS) == pytest.approx(0.3, rel=1e-9)
    assert sec33.distribution_shift(rec) == pytest.approx(0.4, rel=1e-9)  # layer 11 alone
    assert sec33.distribution_shift(rec, (2, 13)) == pytest.approx(0.3, rel=1e-9)


def test_the_standard_networks_pre_point_is_its_post_point():
    """A standard network's record keeps one set of moments: read "pre", it gives the same shift."""
    rec = vgg("none", shift=0.05)
    assert sec33.distribution_shift(rec, LAYERS, "pre") == pytest.approx(0.05, rel=1e-9)
    assert sec33.non_gaussianity(vgg("none", offset=0.25), LAYERS, "pre") == pytest.approx(0.25, rel=1e-9)


def test_non_gaussianity_is_the_quantiles_offset_in_stds_averaged_over_layers():
    """Quantiles c std above the normal's, whatever the unit's mean: distance |c|; averaged over the layers."""
    rec = vgg("l1", shift=0.3, offset=(0.1, -0.2, 0.3, -0.4, 0.5))
    assert sec33.non_gaussianity(rec, LAYERS) == pytest.approx(0.3, rel=1e-9)
    assert sec33.non_gaussianity(rec) == pytest.approx(0.4, rel=1e-9)  # layer 11 alone
    assert sec33.non_gaussianity(vgg("batch", shift=0.3), LAYERS) == pytest.approx(0.0, abs=1e-12)


def test_ratio_and_distance():
    assert sec33._ratio(3.0, 2.0) == 1.5 and sec33._ratio(1.0, 0.0) == float("inf")
    assert np.isnan(sec33._ratio(0.0, 0.0))
    assert sec33._distance(1e3, 1e6, log=True) == pytest.approx(3.0) and sec33._distance(2.0, 7.0, log=False) == 5.0


def test_measure_train_is_each_schemes_accuracy_and_its_gap_to_bn():
    runs = section_runs({"none": {"acc": 0.5}, "batch": {"acc": 0.9}, "l1": {"acc": 0.85}, "l2": {"acc": 0.92},
                         "linf": {"acc": 0.6, "status": "diverged"}})
    v = sec33._measure_train(runs)
    assert v["none"] == pytest.approx(50) and v["batch"] == pytest.approx(90) and v["linf"] == 0.0
    assert v["gap_l1"] == pytest.approx(-5) and v["gap_l2"] == pytest.approx(2) and v["gap_linf"] == pytest.approx(-90)
    assert v["min_gap"] == pytest.approx(-90)


def test_measure_dln_l1_is_bn_over_l1_and_its_decades():
    v = sec33._measure_dln_l1(section_runs(dln_kw={"batch": {"loss": 500.0}, "l1": {"loss": 5.0}}))
    assert v["batch"] == 500 and v["l1"] == 5 and v["bn_over_l1"] == pytest.approx(100)
    assert v["decades"] == pytest.approx(2)
    diverged = sec33._measure_dln_l1(section_runs(dln_kw={"l1": {"status": "diverged"}}))
    assert diverged["bn_over_l1"] == 0.0 and diverged["decades"] == -np.inf


def test_measure_shift_is_each_schemes_shift_and_its_ratios():
    runs = section_runs({"none": {"shift": 0.01, "acc": 0.5}, "batch": {"shift": 0.02},
                         "l1": {"shift": 0.03}, "l2": {"shift": 0.04}, "linf": {"shift": 0.05}})
    v = sec33._measure_shift(runs)
    assert v["none"] == pytest.approx(0.01) and v["none_train"] == pytest.approx(50)
    assert v["l1_train"] == pytest.approx(80)
    assert [v[f"{n}_vs_std"] for n in sec33.LP] == pytest.approx([3, 4, 5])
    assert [v[f"{n}_vs_bn"] for n in sec33.LP] == pytest.approx([1.5, 2, 2.5])


def test_measure_gauss_is_each_schemes_distance_and_its_ratio_to_bn():
    runs = section_runs({"batch": {"offset": 0.05}, "l1": {"offset": 0.1}, "l2": {"offset": -0.2},
                         "linf": {"offset": 0.5}})
    v = sec33._measure_gauss(runs)
    assert v["batch"] == pytest.approx(0.05) and v["none"] == pytest.approx(0.0, abs=1e-12)
    assert [v[f"{n}_vs_bn"] for n in sec33.LP] == pytest.approx([2, 4, 10])


def test_measure_smooth_reads_both_band_measures_on_each_axis():
    """Bands [1, 2] (BN), [100, 1000] (standard), [100, 200] (l_p): in decades l_p's equals BN's; by width (a log
    axis) it is log10(100) = 2 decades from BN's and log10(9) from the standard's."""
    band = {"batch": {"band": (1.0, 2.0)}, "none": {"band": (100.0, 1000.0), "gd": 100.0}} | lp(band=(100.0, 200.0))
    v = sec33._measure_smooth(section_runs(band, band))
    for m in ("vgg", "dln"):
        assert v[f"{m}_band_decades_batch"] == pytest.approx(np.log10(2)) and v[f"{m}_band_width_none"] == 900
        assert v[f"{m}_band_decades_bn_smoother"] == 1 and v[f"{m}_gd_median_bn_smoother"] == 1
        assert v[f"{m}_band_decades_l2_closeness"] == pytest.approx(0.0, abs=1e-12)
        assert v[f"{m}_band_width_l2_closeness"] == pytest.approx(2 / np.log10(9))
        assert v[f"{m}_gd_median_l2_closeness"] == 0.0
    assert v["vgg_none_train"] == pytest.approx(80)


def test_measure_beta_is_each_schemes_median_beta_and_its_ratio_to_bn():
    runs = section_runs({"batch": {"beta": 20.0}, "l1": {"beta": 30.0}, "l2": {"beta": 10.0}, "linf": {"beta": 20.0}},
                        {"batch": {"beta": 1e6}, "l1": {"beta": 1e8}, "l2": {"beta": 1e6}, "linf": {"beta": 1e5}})
    v = sec33._measure_beta(runs)
    assert v["vgg_batch"] == 20 and v["dln_l1"] == 1e8
    assert [v[f"vgg_{n}_ratio"] for n in sec33.LP] == pytest.approx([1.5, 0.5, 1])
    assert [v[f"dln_{n}_ratio"] for n in sec33.LP] == pytest.approx([100, 1, 0.1])


# --- every rule on constructed runs ---------------------------------------------------------------------------

def test_section_rules_are_the_six_covered_here():
    assert [r.key for r in sec33.SECTION.rules] == ["c33_train", "c33_dln_l1", "c33_shift", "c33_gauss",
                                                    "c33_smooth", "c33_beta"]


@pytest.mark.parametrize("accs, verdict", [
    ({"batch": 0.9, "l1": 0.88, "l2": 0.89, "linf": 0.95}, REPRODUCED),  # gaps -2, -1, +5 points
    ({"batch": 0.9, "l1": 0.88, "l2": 0.5, "linf": 0.4}, PARTLY),  # l1 within 5 points
    ({"batch": 0.9, "l1": 0.5, "l2": 0.5, "linf": 0.5}, NOT_REPRODUCED),
])
def test_train_rule(accs, verdict):
    claim = sec33.TRAIN.apply(section_runs({n: {"acc": a} for n, a in accs.items()}))
    assert claim.verdict == verdict and claim.values["batch"] == pytest.approx(90)


@pytest.mark.parametrize("l1, verdict", [(5.0, REPRODUCED), (300.0, PARTLY), (1000.0, NOT_REPRODUCED)])
def test_dln_l1_rule(l1, verdict):
    """BN ends at 500: l1 at 5 is 100× below, at 300 1.67× below, at 1000 above."""
    claim = sec33.DLN_L1.apply(section_runs(dln_kw={"batch": {"loss": 500.0}, "l1": {"loss": l1}}))
    assert claim.verdict == verdict and claim.values["bn_over_l1"] == pytest.approx(500 / l1)


def test_dln_l1_rule_with_l1_diverged_is_not_reproduced():
    claim = sec33.DLN_L1.apply(section_runs(dln_kw={"l1": {"status": "diverged"}}))
    assert claim.verdict == NOT_REPRODUCED and claim.values["bn_over_l1"] == 0.0


@pytest.mark.parametrize("kw, verdict", [
    # every l_p scheme shifts 3x the standard network and ends higher (80% against 50%)
    ({"none": {"shift": 0.01, "acc": 0.5}} | lp(shift=0.03, acc=0.8), REPRODUCED),
    # only l1 does both: l2 shifts no more than the standard network, l_inf ends lower
    ({"none": {"shift": 0.01, "acc": 0.5}, "l1": {"shift": 0.03}, "l2": {"shift": 0.01},
      "linf": {"shift": 0.03, "acc": 0.4}}, PARTLY),
    # they shift as much as the standard network and end lower
    ({"none": {"shift": 0.01, "acc": 0.5}} | lp(shift=0.01, acc=0.4), NOT_REPRODUCED),
    # the standard network stays at chance (10%): no comparison
    ({"none": {"shift": 0.01, "acc": 0.1}} | lp(shift=0.03, acc=0.8), NOT_TESTABLE),
])
def test_shift_rule(kw, verdict):
    claim = sec33.SHIFT.apply(section_runs(kw))
    assert claim.verdict == verdict
    if verdict == NOT_TESTABLE:
        assert "standard VGG's final training accuracy (%) > 30" in claim.untestable


@pytest.mark.parametrize("offsets, verdict", [
    ((0.5, 0.5, 0.5), REPRODUCED),  # 10x BN's 0.05
    ((0.5, 0.05, 0.05), PARTLY),
    ((0.05, 0.04, 0.06), NOT_REPRODUCED),
])
def test_gauss_rule(offsets, verdict):
    kw = {"batch": {"offset": 0.05}} | {n: {"offset": c} for n, c in zip(sec33.LP, offsets)}
    claim = sec33.GAUSS.apply(section_runs(kw))
    assert claim.verdict == verdict and claim.values["l1_vs_bn"] == pytest.approx(offsets[0] / 0.05)


def smooth_runs(lp_band, lp_gd: float = 1.0, none_acc: float = 0.8, bn_band=(1.0, 2.0), none_band=(100.0, 1000.0),
                bn_gd: float = 1.0, none_gd: float = 100.0) -> dict:
    kw = ({"batch": {"band": bn_band, "gd": bn_gd}, "none": {"band": none_band, "gd": none_gd}}
          | lp(band=lp_band, gd=lp_gd))
    return section_runs(kw | {"none": kw["none"] | {"acc": none_acc}}, kw)


def test_smooth_rule_with_the_lp_schemes_at_bns_values_is_reproduced_by_both_readings():
    claim = sec33.SMOOTH.apply(smooth_runs((1.0, 2.0)))
    assert claim.readings == {"absolute width": REPRODUCED, "decades": REPRODUCED} and claim.verdict == REPRODUCED


def test_smooth_rule_readings_disagree_where_the_band_is_as_tall_but_as_wide_as_the_standards():
    """l_p bands [100, 200]: as many decades as BN's [1, 2] (by decades all 12 checks hold), but 100 wide, nearer the
    standard's 900 than BN's 1 on a log axis: by width the 6 gradient checks hold and the 6 band checks fail, half
    of them: partly."""
    claim = sec33.SMOOTH.apply(smooth_runs((100.0, 200.0)))
    assert claim.readings == {"absolute width": PARTLY, "decades": REPRODUCED}
    assert claim.verdict == "partly reproduced by absolute width, reproduced by decades"


def test_smooth_rule_with_the_lp_schemes_at_the_standards_values_is_not_reproduced():
    claim = sec33.SMOOTH.apply(smooth_runs((100.0, 1000.0), lp_gd=100.0))
    assert claim.readings == {"absolute width": NOT_REPRODUCED, "decades": NOT_REPRODUCED}
    assert claim.verdict == NOT_REPRODUCED


def test_smooth_rule_is_not_testable_where_bn_is_nowhere_smoother_or_the_standard_vgg_does_not_train():
    rougher = sec33.SMOOTH.apply(smooth_runs((1.0, 2.0), bn_band=(100.0, 1000.0), none_band=(1.0, 2.0), bn_gd=100.0,
                                             none_gd=1.0))
    assert rougher.readings == {"absolute width": NOT_TESTABLE, "decades": NOT_TESTABLE}
    assert "BN is not smoother" in rougher.untestable
    stalled = sec33.SMOOTH.apply(smooth_runs((1.0, 2.0), none_acc=0.1))
    assert stalled.verdict == NOT_TESTABLE and "standard VGG" in stalled.untestable


@pytest.mark.parametrize("vgg_beta, dln_beta, verdict", [
    (20.0, 1e6, REPRODUCED),  # at BN's 20 and 1e6
    (22.0, 1e9, PARTLY),  # VGG's 3 within 10%, the DLN's 3 decades off
    (100.0, 1e9, NOT_REPRODUCED),  # 5x and 1000x BN's
])
def test_beta_rule(vgg_beta, dln_beta, verdict):
    runs = section_runs({"batch": {"beta": 20.0}} | lp(beta=vgg_beta), {"batch": {"beta": 1e6}} | lp(beta=dln_beta))
    claim = sec33.BETA.apply(runs)
    assert claim.verdict == verdict and claim.values["dln_l2_ratio"] == pytest.approx(dln_beta / 1e6)


def test_the_section_judges_one_constructed_set_of_runs():
    """One set of runs where every claim holds: l_p trains as BN and shifts 3x the standard network, l1 ends 100x
    below BN on the DLN, l_p's quantiles sit 10x further from the normal's, and its landscape is BN's."""
    kw = ({"none": {"acc": 0.5, "shift": 0.01, "band": (100.0, 1000.0), "gd": 100.0}, "batch": {"offset": 0.05}}
          | lp(shift=0.03, offset=0.5))
    runs = section_runs(kw, {"none": {"band": (100.0, 1000.0), "gd": 100.0}, "l1": {"loss": 5.0}})
    assert {c.key: c.verdict for c in sec33.SECTION.claims(runs)} == {k: REPRODUCED for k in (
        "c33_train", "c33_dln_l1", "c33_shift", "c33_gauss", "c33_smooth", "c33_beta")}
