"""Part IV's measures and claims on constructed records with known answers (no training, no data): for page 1
(`beyond_lr`), records whose effective beta, batch sharpness and top eigenvalue are set multiples of 2/LR, whose
accuracies and DLN loss curves decide which runs train, and whose weight norms give a set scale-invariance residual;
for page 2 (`beyond_more`), records whose loss bands along the gradient and along random directions span a set
number of decades, whose step-0 and per-step gradient norms give a set growth, and whose landscape gives the ResNet's
numbers. Every measure's number is computable by hand; then every rule of `beyond_lr.SECTION` and
`beyond_more.SECTION` is applied to full sets of such runs, with the verdict their numbers must give (the
thresholds' edges are in test_rules.py; here every number sits well away from them). Whatever needs CIFAR-10 or
training (`init_gradients`, `resnet_probe_cost`) is left to test_beyond_more.py."""

import numpy as np
import pytest

from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED
from bnrepro.records import RunRecord
from bnrepro.sections import beyond_lr as bl
from bnrepro.sections import beyond_more as bm

STEPS = 100
PROBED = np.arange(0, STEPS, 20)  # 0, 20, 40, 60, 80: the second half is 60 and 80
P = len(PROBED)
BARS = list(bl.TRAINS_BARS)  # "the 30% trains bar", "the 50% trains bar"


def per_step(x) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, float), (P,)).copy()


# --- Part IV.1: beyond_lr -------------------------------------------------------------------------------------

def lr_record(model: str, norm: str, lr: float, acc: float = 0.8, test: float = 0.7, beta=None, sharpness=None,
              eigenvalue=None, residual: float = None, drops: bool = True, status: str = "completed") -> RunRecord:
    """A sweep record: final training / test accuracy `acc` / `test` (fractions); the DLN's loss falling 100-fold
    (`drops`) or flat; beta, batch sharpness and top eigenvalue (the last at every second probed step, NaN between)
    at each probed step, by default 2/LR; a stored identity residual of magnitude `residual` (by default 1e-5 with
    BN, 0.1 without), alternating in sign."""
    two = 2 / lr
    beta, sharpness = per_step(two if beta is None else beta), per_step(two if sharpness is None else sharpness)
    eigen = per_step(two if eigenvalue is None else eigenvalue)
    eigen[1::2] = np.nan
    residual = (1e-5 if norm == "batch" else 0.1) if residual is None else residual
    sign = np.where(np.arange(STEPS - 1) % 2, -1.0, 1.0)[:, None]
    arrays = {"probe_step": PROBED, "landscape_loss": np.tile([1.0, 2.0], (P, 1)),
              "landscape_grad_diff": np.tile([0.0, 1.0], (P, 1)), "landscape_beta": np.stack([beta / 2, beta], 1),
              "curvature_sharpness": sharpness, "curvature_eigenvalue": eigen,
              "weight_residual": residual * sign * np.ones((STEPS - 1, 3))}
    if model == "dln":
        arrays["train_loss"] = np.linspace(100.0, 1.0 if drops else 100.0, STEPS)
    return RunRecord({"model": "vgg11" if model == "vgg" else model, "norm": norm, "lr": lr, "steps": STEPS}, {},
                     status, {"final_train_acc": acc, "final_test_acc": test, "final_train_loss": 1.0}, arrays)


def lr_runs(kw=lambda m, n, lr: {}) -> dict:
    """The page's runs, keyed (model, norm, lr); `kw(model, norm, lr)` gives a run's `lr_record` arguments."""
    return {(m, n, lr): lr_record(m, n, lr, **kw(m, n, lr)) for (m, n, lr) in bl.SPECS}


def test_series_is_the_largest_beta_over_the_grid_or_the_probe_where_finite():
    rec = lr_record("vgg", "batch", 0.1, beta=[1, 2, np.nan, 4, 5], sharpness=3.0)
    x, y = bl.series(rec, "beta")
    assert list(x) == [0, 20, 60, 80] and list(y) == [1, 2, 4, 5]
    x, y = bl.series(rec, "eigenvalue")  # recorded at every second probed step
    assert list(x) == [0, 40, 80] and list(y) == [20, 20, 20]
    assert list(bl.series(rec, "sharpness")[1]) == [3, 3, 3, 3, 3]
    bare = RunRecord(rec.config, {}, "completed", rec.summary,
                     {k: v for k, v in rec.arrays.items() if not k.startswith("curvature")})
    assert bl.series(bare, "sharpness")[0].size == 0 and bl.series(bare, "sharpness")[1].size == 0


def test_late_ratio_is_the_second_halfs_median_times_lr_over_two():
    """Beta 10, 20, ..., 50 at steps 0 ... 80 of 100: the late median is 45 (steps 60, 80), times 0.1 / 2."""
    rec = lr_record("vgg", "batch", 0.1, beta=[10, 20, 30, 40, 50], eigenvalue=[6, 6, 6, 6, 100])
    assert bl.late_ratio(rec, "beta") == pytest.approx(2.25)
    assert bl.late_ratio(rec, "eigenvalue") == pytest.approx(5.0)  # step 80 alone (60 is not probed)
    assert bl.late_ratio(lr_record("vgg", "batch", 0.01), "sharpness") == pytest.approx(1.0)
    assert np.isnan(bl.late_ratio(lr_record("vgg", "batch", 0.1, status="diverged"), "beta"))
    assert np.isnan(bl.late_ratio(lr_record("vgg", "batch", 0.1, beta=[1, 1, 1, np.nan, np.nan]), "beta"))


def test_trains_reads_the_bar_for_vgg_and_a_tenfold_loss_drop_for_the_dln():
    assert bl.trains(lr_record("vgg", "none", 0.1, acc=0.4)) and not bl.trains(lr_record("vgg", "none", 0.1, acc=0.4),
                                                                                bar=50)
    assert not bl.trains(lr_record("vgg", "none", 0.1, acc=0.2))
    assert bl.trains(lr_record("dln", "none", 1e-6)) and not bl.trains(lr_record("dln", "none", 1e-6, drops=False))
    assert not bl.trains(lr_record("dln", "none", 1e-6, status="diverged"))


def test_tracking_fits_the_slope_over_the_runs_that_train():
    """Beta = 2 / sqrt(LR) at LR 0.01 and 1 (ratio to 2/LR sqrt(LR): 0.1 and 1): slope -1/2; a run at chance with
    any beta is left out."""
    recs = [lr_record("vgg", "batch", lr, beta=2 / np.sqrt(lr)) for lr in (0.01, 1.0)]
    recs.append(lr_record("vgg", "batch", 0.1, acc=0.1, beta=1e9))
    t = bl.tracking(recs)
    assert t["slope"] == pytest.approx(-0.5) and t["lo"] == pytest.approx(0.1) and t["hi"] == pytest.approx(1.0)
    assert t["n"] == 2
    one = bl.tracking(recs[:1] + recs[2:])
    assert np.isnan(one["slope"]) and np.isnan(one["lo"]) and one["n"] == 1


def test_scale_residual_is_the_median_absolute_residual_stored_or_from_the_norms():
    assert bl.scale_residual(lr_record("vgg", "batch", 0.1, residual=3e-5)) == pytest.approx(3e-5)
    assert np.isnan(bl.scale_residual(lr_record("vgg", "batch", 0.1, status="diverged")))
    # constant norms ||W||^2 = ||g||^2 = 1: the residual is (0 - LR^2) / (2 LR) = -LR / 2 in every layer but the last
    rec = RunRecord({"model": "dln", "norm": "batch", "lr": 0.1, "steps": 6}, {}, "completed", {},
                    {"weight_sq_norm": np.ones((6, 4)), "weight_grad_sq_norm": np.ones((6, 4))})
    assert bl.scale_residual(rec) == pytest.approx(0.05)


def test_measure_tracks_reports_each_network_under_each_bar():
    """VGG at 40% training accuracy trains under the 30% bar only; beta = 2/LR everywhere."""
    v = bl.BN_BETA.measure(lr_runs(lambda m, n, lr: {"acc": 0.4}))
    assert v["vgg_slope"] == pytest.approx(-1) and v["vgg_n"] == 6 and v["dln_n"] == 4
    assert v["bar30_vgg_n"] == 6 and v["bar50_vgg_n"] == 0 and np.isnan(v["bar50_vgg_slope"])
    assert v["bar50_dln_lo"] == pytest.approx(1) and v["bar50_dln_hi"] == pytest.approx(1)


@pytest.mark.parametrize("rule", [bl.BN_BETA, bl.STD_BETA])
def test_beta_tracking_rules(rule):
    norm = "batch" if rule is bl.BN_BETA else "none"
    flat = {"vgg": 20.0, "dln": 1e6}  # one beta at every LR: slope 0, ratios 0.1 ... 5 (VGG), 0.05 ... 1.5 (DLN)
    cases = [
        (lambda m, n, lr: {}, {BARS[0]: REPRODUCED, BARS[1]: REPRODUCED}),
        (lambda m, n, lr: {"beta": flat[m]} if m == "vgg" else {}, {BARS[0]: PARTLY, BARS[1]: PARTLY}),
        (lambda m, n, lr: {"beta": flat[m]}, {BARS[0]: NOT_REPRODUCED, BARS[1]: NOT_REPRODUCED}),
        # VGG at 40%: under the 50% bar only the DLN has a slope
        (lambda m, n, lr: {"acc": 0.4}, {BARS[0]: REPRODUCED, BARS[1]: PARTLY}),
        (lambda m, n, lr: {"acc": 0.1, "drops": False}, {BARS[0]: NOT_TESTABLE, BARS[1]: NOT_TESTABLE}),
    ]
    for kw, readings in cases:
        claim = rule.apply({k: r for k, r in lr_runs(kw).items() if k[1] == norm})
        assert claim.readings == readings, readings
    assert claim.verdict == NOT_TESTABLE and "no slope exists" in claim.untestable
    mixed = rule.apply(lr_runs(lambda m, n, lr: {"acc": 0.4}))
    assert mixed.verdict == f"reproduced by {BARS[0]}, partly reproduced by {BARS[1]}"


def test_measure_curvature_counts_the_runs_within_a_factor_two():
    """Sharpness at 2/LR in five runs and 10 x 2/LR in the standard one at LR 0.2."""
    runs = lr_runs(lambda m, n, lr: {"sharpness": 20 / lr} if (n, lr) == ("none", 0.2) else {})
    v = bl.SHARPNESS.measure(runs)
    assert v["n"] == 6 and v["within"] == pytest.approx(5 / 6) and v["median"] == pytest.approx(1)
    assert v["lo"] == pytest.approx(1) and v["hi"] == pytest.approx(10)
    none = bl.SHARPNESS.measure(lr_runs(lambda m, n, lr: {"acc": 0.1}))
    assert none["bar30_n"] == 0 and np.isnan(none["bar50_median"])


@pytest.mark.parametrize("kw, verdict", [
    (lambda m, n, lr: {}, REPRODUCED),
    (lambda m, n, lr: {"sharpness": 20 / lr} if (n, lr) == ("none", 0.2) else {}, PARTLY),  # 5 of 6 at 2/LR
    (lambda m, n, lr: {"sharpness": 20 / lr}, NOT_REPRODUCED),
    (lambda m, n, lr: {"acc": 0.1}, NOT_TESTABLE),
])
def test_sharpness_rule(kw, verdict):
    claim = bl.SHARPNESS.apply(lr_runs(kw))
    assert claim.readings == {BARS[0]: verdict, BARS[1]: verdict} and claim.verdict == verdict


@pytest.mark.parametrize("kw, verdict, median", [
    (lambda m, n, lr: {}, REPRODUCED, 1.0),
    # BN at 2/LR, the standard DLN at 1.5x and 10x: median 1.25, 6 of 8 within a factor 2
    (lambda m, n, lr: {"eigenvalue": (3 if lr < 1e-6 else 20) / lr} if n == "none" else {}, PARTLY, 1.25),
    (lambda m, n, lr: {"eigenvalue": 20 / lr}, NOT_REPRODUCED, 10.0),
])
def test_eigen_rule(kw, verdict, median):
    claim = bl.EIGEN.apply(lr_runs(kw))
    assert claim.verdict == verdict and claim.values["median"] == pytest.approx(median) and claim.values["n"] == 8


def test_eigen_rule_with_no_dln_training_is_not_testable():
    claim = bl.EIGEN.apply(lr_runs(lambda m, n, lr: {"drops": False}))
    assert claim.verdict == NOT_TESTABLE and claim.untestable == "no run trains"


def test_lr_range_rule():
    diverged = bl.LR_RANGE.apply(lr_runs(lambda m, n, lr: {"status": "diverged"} if (n, lr > 0.1) == ("none", True)
                                         else {}))
    assert diverged.readings == {BARS[0]: REPRODUCED, BARS[1]: REPRODUCED}
    assert diverged.values["bn_max"] == 0.5 and diverged.values["std_max"] == 0.1 and diverged.values["std_n"] == 4
    everywhere = bl.LR_RANGE.apply(lr_runs())
    assert everywhere.verdict == NOT_REPRODUCED and everywhere.values["std_max"] == 0.5
    low = bl.LR_RANGE.apply(lr_runs(lambda m, n, lr: {"acc": 0.4} if (n, lr > 0.1) == ("none", True) else {}))
    assert low.readings == {BARS[0]: NOT_REPRODUCED, BARS[1]: REPRODUCED}
    assert low.values["bar50_std_max"] == 0.1 and low.values["bar30_std_max"] == 0.5


def gap_runs(bn_common: float, std_best: float = 0.78, std_trains_above: float = 0.1) -> dict:
    """BN's test accuracy `bn_common` at LR <= 0.2 and 0.9 at 0.5; the standard network's 0.78 at LR < 0.1 and
    `std_best` at 0.1 where it trains, diverged at the LRs above `std_trains_above`."""
    def kw(m, n, lr):
        if n == "batch":
            return {"test": 0.9 if lr == 0.5 else bn_common}
        if lr > std_trains_above:
            return {"status": "diverged"}
        return {"test": std_best if lr == 0.1 else 0.78}
    return lr_runs(kw)


@pytest.mark.parametrize("bn_common, std_best, verdict, common, best", [
    (0.8, 0.78, REPRODUCED, 2, 12),  # where both train 2 points, best against best 90 - 78 = 12
    (0.86, 0.78, PARTLY, 8, 12),
    (0.9, 0.88, NOT_REPRODUCED, 12, 2),  # 12, 12, 12 and 2 points where both train; 90 - 88 best against best
])
def test_gap_rule(bn_common, std_best, verdict, common, best):
    claim = bl.GAP.apply(gap_runs(bn_common, std_best))
    assert claim.readings == {BARS[0]: verdict, BARS[1]: verdict} and claim.verdict == verdict
    assert claim.values["n_common"] == 4 and claim.values["best_gap"] == pytest.approx(best)
    assert claim.values["common_gap"] == pytest.approx(common)
    assert claim.values["smallest_lr_gap"] == pytest.approx(100 * bn_common - 78)


def test_gap_rule_with_one_common_lr_is_not_testable():
    claim = bl.GAP.apply(gap_runs(0.8, std_trains_above=0.01))
    assert claim.verdict == NOT_TESTABLE and claim.values["n_common"] == 1 and claim.values["common_gap"] == \
        pytest.approx(2)


def test_measure_scale_takes_bns_largest_and_the_standards_smallest_residual():
    res = {("vgg", "batch"): (1e-5, 2e-5, None), ("vgg", "none"): (0.1, 0.05, 0.2),
           ("dln", "batch"): (3e-6, 1e-6), ("dln", "none"): (0.3, 0.4)}

    def kw(m, n, lr):
        if lr not in bl.SWEEP_LRS[m]:
            return {}
        r = res[m, n][bl.SWEEP_LRS[m].index(lr)]
        return {"status": "diverged"} if r is None else {"residual": r}
    v = bl.SCALE.measure(lr_runs(kw))
    assert v == pytest.approx({"vgg_batch": 2e-5, "vgg_none": 0.05, "dln_batch": 3e-6, "dln_none": 0.3})


@pytest.mark.parametrize("kw, verdict", [
    (lambda m, n, lr: {}, REPRODUCED),  # BN 1e-5, standard 0.1
    (lambda m, n, lr: {"residual": 1e-5}, PARTLY),  # the standard network's as small
    (lambda m, n, lr: {"residual": 0.1} if (m, n, lr) == ("vgg", "batch", 0.05) else {}, NOT_REPRODUCED),
])
def test_scale_rule(kw, verdict):
    assert bl.SCALE.apply(lr_runs(kw)).verdict == verdict


def test_the_page_judges_one_constructed_set_of_runs():
    """Every curve at 2/LR, the standard VGG diverging above LR 0.1, BN ahead by 2 points where both train and by 12
    at its best LR: every claim holds."""
    def kw(m, n, lr):
        if m == "dln":
            return {}
        if n == "batch":
            return {"test": 0.9 if lr == 0.5 else 0.8}
        return {"test": 0.78} if lr <= 0.1 else {"status": "diverged"}
    claims = {c.key: c.verdict for c in bl.SECTION.claims(lr_runs(kw))}
    assert claims == {k: REPRODUCED for k in ("iv1_bn_beta", "iv1_std_beta", "iv1_sharpness", "iv1_eigen",
                                              "iv1_lr_range", "iv1_gap", "iv1_scale")}


# --- Part IV.2: beyond_more -----------------------------------------------------------------------------------

def more_record(model: str, norm: str, lr: float, acc: float = 0.8, band=(1.0, 2.0), gd: float = 1.0, beta=20.0,
                rand: float = 0.1, init=None, growth=None) -> RunRecord:
    """A Part IV.2 record: final training accuracy `acc`; at each probed step the loss band `band` along the gradient
    (lo, hi), the largest gradient change `gd` and beta `beta` (one number, or one per probed step); the band along
    each of 3 random directions `rand` decades tall; step-0 gradient norms `init` (by layer) and a stored growth."""
    beta = per_step(beta)
    rand_loss = np.tile([1.0, 10.0 ** rand], (P, 3, 1))
    arrays = {"probe_step": PROBED, "landscape_loss": np.tile(np.asarray(band, float), (P, 1)),
              "landscape_grad_diff": np.tile([0.0, gd], (P, 1)), "landscape_beta": np.stack([beta / 2, beta], 1),
              "landscape_rand_loss": rand_loss, "landscape_rand_beta": np.tile([1.0, 2.0], (P, 3, 1))}
    layers = 25 if model == "dln" else 9
    arrays["init_grad_sq_norm"] = np.square(np.ones(layers) if init is None else np.asarray(init, float))
    arrays["weight_grad_growth"] = np.ones(STEPS) if growth is None else np.asarray(growth, float)
    name = {"vgg": "vgg11"}.get(model, model)
    return RunRecord({"model": name, "norm": norm, "lr": lr, "steps": STEPS}, {}, "completed",
                     {"final_train_acc": acc, "final_test_acc": acc - 0.1}, arrays)


def more_runs(kw=lambda m, n, lr: {}) -> dict:
    """The page's runs, keyed (model, norm, lr); `kw(model, norm, lr)` gives a run's `more_record` arguments."""
    return {(s.model, s.norm, s.lr): more_record(s.model, s.norm, s.lr, **kw(s.model, s.norm, s.lr))
            for s in bm.SECTION.specs}


def test_decades_is_the_bands_height_over_the_last_axis():
    assert list(bm.decades([[1.0, 10.0, 100.0], [2.0, 2.0, 2.0]])) == pytest.approx([2.0, 0.0])
    d = bm.decades(np.array([[[5.0, 50.0]], [[1.0, 1000.0]]]))  # [step, direction, step size]
    assert d.shape == (2, 1) and d[:, 0] == pytest.approx([1.0, 3.0])


def test_random_measures_and_summary_take_each_steps_median_over_the_directions():
    """Along the gradient a band of 0.5 decades; along the directions at step s (0 ... 4) bands of 0.1, 0.2 and 0.9
    times s + 1 decades: medians 0.2 (s + 1), over the steps 0.6, 1.2 times the gradient's. Betas 20 along the
    gradient, 1, 2 and 3 along the directions."""
    rec = more_record("vgg", "batch", 0.05, band=(1.0, 10 ** 0.5))
    tall = np.array([0.1, 0.2, 0.9])[None, :] * np.arange(1, P + 1)[:, None]  # [step, direction]
    rec.arrays["landscape_rand_loss"] = np.stack([np.ones((P, 3)), 10.0 ** tall], -1)
    rec.arrays["landscape_rand_beta"] = np.tile([[0.5, 1.0], [1.0, 2.0], [1.5, 3.0]], (P, 1, 1))
    m = bm.random_measures(rec)
    assert list(m["step"]) == list(PROBED) and m["grad"] == pytest.approx(np.full(P, 0.5))
    assert m["rand"] == pytest.approx(tall) and m["rand_beta"] == pytest.approx(np.tile([1.0, 2.0, 3.0], (P, 1)))
    assert m["grad_beta"] == pytest.approx(np.full(P, 20.0))
    s = bm.random_summary(rec)
    assert s == pytest.approx({"grad": 0.5, "rand": 0.6, "rel": 1.2, "grad_beta": 20.0, "rand_beta": 2.0})
    # a direction whose losses are NaN counts for nothing: medians 0.15 (s + 1), 0.45 over the steps
    rec.arrays["landscape_rand_loss"][:, 2] = np.nan
    assert bm.random_summary(rec)["rand"] == pytest.approx(0.45)


def test_step0_gradients_are_the_roots_of_the_recorded_squares():
    assert list(bm.step0_gradients(more_record("vgg", "batch", 0.05, init=[2.0, 3.0, 4.0]))) == [2.0, 3.0, 4.0]
    unstored = RunRecord({"model": "dln", "norm": "none", "lr": 1e-6, "steps": 2}, {}, "completed", {},
                         {"weight_sq_norm": np.ones((2, 3)), "weight_grad_sq_norm": np.array([[9.0, 16.0, 1.0],
                                                                                              [1.0, 1.0, 1.0]])})
    assert list(bm.step0_gradients(unstored)) == [3.0, 4.0, 1.0]


def test_growth_series_and_late_growth():
    steps, g = bm.growth_series(more_record("vgg", "batch", 0.05, growth=np.arange(10.0)))
    assert list(steps) == list(range(10)) and list(g) == list(range(10))
    assert bm.late_growth(more_record("vgg", "batch", 0.05, growth=np.arange(10.0))) == 7.0  # steps 5 ... 9
    diverged = np.r_[np.arange(9.0), np.nan]
    assert bm.late_growth(more_record("vgg", "batch", 0.05, growth=diverged)) == 6.5  # 5, 6, 7, 8
    # from the per-step gradient norms: layer 1's ÷ the last normalised layer's (the one before the output layer)
    sq = np.array([[16.0, 9.0, 4.0, 100.0], [64.0, 1.0, 1.0, 1.0]])
    rec = RunRecord({"model": "dln", "norm": "batch", "lr": 1e-6, "steps": 2}, {}, "completed", {},
                    {"weight_sq_norm": np.ones((2, 4)), "weight_grad_sq_norm": sq})
    assert list(bm.growth_series(rec)[1]) == [2.0, 8.0]


def random_kw(std: float = 1.0, bn: float = 0.1, resnet: float = 1.0, low_acc_at=None):
    """Bands along the random directions `std` decades tall in the standard VGG and DLN runs, `bn` in BN's,
    `resnet` in the standard ResNet's (BN's `bn`); along the gradient 0.5 decades; the standard VGG at 10% at LR
    `low_acc_at`."""
    def kw(m, n, lr):
        out = {"band": (1.0, 10 ** 0.5), "rand": bn if n == "batch" else resnet if m == bm.RESNET else std}
        return out | ({"acc": 0.1} if (m, n, lr) == ("vgg", "none", low_acc_at) else {})
    return kw


def test_measure_random_is_each_pairs_bands_and_their_ratios():
    v = bm.RANDOM_RULE.measure(more_runs(random_kw(std=1.0, bn=0.1, resnet=0.05)))
    for tag in ("vgg_lo", "vgg_hi", "dln"):
        assert v[f"{tag}_ratio"] == pytest.approx(10) and v[f"{tag}_grad_ratio"] == pytest.approx(1)
        assert v[f"{tag}_std_rel"] == pytest.approx(2) and v[f"{tag}_bn_rel"] == pytest.approx(0.2)
    assert v["resnet_ratio"] == pytest.approx(0.5) and v["vgg_lo_std_train"] == pytest.approx(80)
    assert "dln_std_train" not in v and v["resnet_std_train"] == pytest.approx(80)
    assert v["rel_lo"] == pytest.approx(0.2) and v["rel_hi"] == pytest.approx(2)


@pytest.mark.parametrize("kw, verdict", [
    (random_kw(std=1.0, bn=0.1, resnet=0.05), REPRODUCED),  # 10x in every judged pair (the ResNet's is reported)
    (random_kw(std=0.15, bn=0.1), PARTLY),  # 1.5x: taller, not twice
    (random_kw(std=0.05, bn=0.1), NOT_REPRODUCED),  # half as tall
    (random_kw(std=1.0, bn=0.1, low_acc_at=0.2), PARTLY),  # the standard VGG at LR 0.2 does not train: left out
])
def test_random_rule(kw, verdict):
    assert bm.RANDOM_RULE.apply(more_runs(kw)).verdict == verdict


def init_kw(bn_growth: float, std_growth: float = 1.0):
    """VGG's step-0 gradient norms falling from layer 1 to the last normalised layer (layer 8 of 9) by
    `bn_growth` with BN, `std_growth` without; the DLN's all 1."""
    def kw(m, n, lr):
        if m != "vgg":
            return {}
        g = bn_growth if n == "batch" else std_growth
        return {"init": np.r_[g ** (np.arange(7, -1, -1) / 7), 5.0]}
    return kw


def test_measure_init_is_bns_excess_growth_per_layer():
    """BN's norms fall 2x a layer over 7 layers (128x), the standard network's not at all."""
    v = bm.INIT.measure(more_runs(init_kw(128.0)))
    assert v["vgg_bn"] == pytest.approx(128) and v["vgg_std"] == pytest.approx(1)
    assert v["vgg_excess"] == pytest.approx(128) and v["vgg_rate"] == pytest.approx(2) and v["vgg_layers"] == 9
    assert v["dln_layers"] == 25 and v["dln_excess"] == pytest.approx(1) and v["dln_rate"] == pytest.approx(1)


@pytest.mark.parametrize("bn_growth, std_growth, verdict", [
    (128.0, 1.0, REPRODUCED),  # 2 per layer
    (1.05 ** 7, 1.0, PARTLY),  # 1.05 per layer (5% from both bars: the partly band is narrower than NEAR)
    (1.0, 128.0, NOT_REPRODUCED),  # 0.5 per layer
])
def test_init_rule(bn_growth, std_growth, verdict):
    claim = bm.INIT.apply(more_runs(init_kw(bn_growth, std_growth)))
    assert claim.verdict == verdict and claim.values["vgg_rate"] == pytest.approx((bn_growth / std_growth) ** (1 / 7))


def resnet_kw(std: dict, bn: dict, std_acc: float = 0.8):
    """The ResNet's `more_record` arguments, standard `std` and BN `bn`; the VGG at the ResNet's LR gets the
    defaults."""
    def kw(m, n, lr):
        if m != bm.RESNET:
            return {}
        return (std | {"acc": std_acc}) if n == "none" else bn
    return kw


def test_resnet_measures_compare_the_resnet_and_report_the_vgg():
    v = bm.RESNET_LOSS.measure(more_runs(resnet_kw({"band": (1.0, 100.0)}, {"band": (1.0, 10.0)}, std_acc=0.6)))
    assert v["std"] == pytest.approx(2) and v["bn"] == pytest.approx(1) and v["ratio"] == pytest.approx(2)
    assert v["width_std"] == 99 and v["width_bn"] == 9 and v["width_ratio"] == pytest.approx(11)
    assert v["vgg_ratio"] == pytest.approx(1) and v["vgg_width_std"] == 1 and v["std_train"] == pytest.approx(60)
    beta = bm.RESNET_BETA.measure(more_runs(resnet_kw({"beta": [50, 50, 100, 1000, 1000]},
                                                      {"beta": [10, 10, 20, 40, 40]})))
    assert beta["std"] == 100 and beta["bn"] == 20 and beta["iqr_std"] == 20 and beta["iqr_bn"] == 4
    assert beta["max_std"] == 1000 and beta["max_ratio"] == pytest.approx(25)
    eos = bm.RESNET_EOS.measure(more_runs(resnet_kw({"beta": 40.0}, {"beta": 20.0})))
    assert eos == pytest.approx({"std": 2.0, "bn": 1.0, "vgg_std": 1.0, "vgg_bn": 1.0, "two_over_lr": 20.0})


@pytest.mark.parametrize("std_band, bn_band, readings", [
    ((1.0, 100.0), (1.0, 10 ** 0.5), {"absolute width": REPRODUCED, "decades": REPRODUCED}),  # 45x, 4x
    ((10.0, 100.0), (1.0, 10 ** 0.6), {"absolute width": REPRODUCED, "decades": PARTLY}),  # 30x, 1.7x
    ((1.0, 2.0), (1.0, 100.0), {"absolute width": NOT_REPRODUCED, "decades": NOT_REPRODUCED}),
])
def test_resnet_loss_rule(std_band, bn_band, readings):
    claim = bm.RESNET_LOSS.apply(more_runs(resnet_kw({"band": std_band}, {"band": bn_band})))
    assert claim.readings == readings
    if len(set(readings.values())) == 2:
        assert claim.verdict == "reproduced by absolute width, partly reproduced by decades"


def test_resnet_loss_rule_with_a_standard_resnet_at_chance_is_not_testable():
    claim = bm.RESNET_LOSS.apply(more_runs(resnet_kw({"band": (1.0, 100.0)}, {}, std_acc=0.1)))
    assert claim.readings == {"absolute width": NOT_TESTABLE, "decades": NOT_TESTABLE}
    assert claim.verdict == NOT_TESTABLE and "standard ResNet" in claim.untestable


@pytest.mark.parametrize("std_gd, std_acc, verdict", [
    (100.0, 0.8, REPRODUCED), (5.0, 0.8, PARTLY), (0.5, 0.8, NOT_REPRODUCED), (100.0, 0.1, NOT_TESTABLE)])
def test_resnet_predictive_rule(std_gd, std_acc, verdict):
    claim = bm.RESNET_PREDICTIVE.apply(more_runs(resnet_kw({"gd": std_gd}, {"gd": 1.0}, std_acc)))
    assert claim.verdict == verdict and claim.values["ratio"] == pytest.approx(std_gd)


@pytest.mark.parametrize("std_beta, std_acc, verdict", [
    ([50, 50, 100, 1000, 1000], 0.8, REPRODUCED),  # median 5x BN's, interquartile ratio 20 against 4
    (100.0, 0.8, PARTLY),  # median 5x, flat
    (10.0, 0.8, NOT_REPRODUCED),  # median half BN's, flat
    ([50, 50, 100, 1000, 1000], 0.1, NOT_TESTABLE),
])
def test_resnet_beta_rule(std_beta, std_acc, verdict):
    claim = bm.RESNET_BETA.apply(more_runs(resnet_kw({"beta": std_beta}, {"beta": [10, 10, 20, 40, 40]}, std_acc)))
    assert claim.verdict == verdict


@pytest.mark.parametrize("bn_beta, verdict", [(20.0, REPRODUCED), (200.0, NOT_REPRODUCED), (2.0, NOT_REPRODUCED)])
def test_resnet_eos_rule(bn_beta, verdict):
    claim = bm.RESNET_EOS.apply(more_runs(resnet_kw({}, {"beta": bn_beta})))
    assert claim.verdict == verdict and claim.values["bn"] == pytest.approx(bn_beta * 0.05)


def test_the_page_judges_one_constructed_set_of_runs():
    def kw(m, n, lr):
        out = random_kw()(m, n, lr) | init_kw(128.0)(m, n, lr)
        if m == bm.RESNET and n == "none":
            out |= {"band": (1.0, 100.0), "gd": 100.0, "beta": [50, 50, 100, 1000, 1000]}
        elif m == bm.RESNET:
            out |= {"beta": [10, 10, 20, 40, 40]}
        return out
    claims = {c.key: c.verdict for c in bm.SECTION.claims(more_runs(kw))}
    assert claims == {k: REPRODUCED for k in ("iv2_random", "iv2_init", "iv2_resnet_loss", "iv2_resnet_predictive",
                                              "iv2_resnet_beta", "iv2_resnet_eos")}
