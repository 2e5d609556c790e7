"""Section 2.1's measures and claims on constructed records with known answers (no training): the smoothed steps to
a training-accuracy level, a followed unit's step-to-step jump and its drift relative to its spread, the late gains
of the 15,000-step runs, each rule's measure on records whose numbers can be worked out by hand (constant and step
series of training accuracy, test accuracy and activation moments), and every rule of `sec21.SECTION` applied to a
full set of constructed runs for its specs, with the verdict those numbers must get (values well away from the
thresholds, which test_rules.py probes). The paper's-schedule rules (c21_full, c21_steps90, c21_test_level) are
given runs of the cpu15k schedule's 15,000 steps, the length they are judged at."""

import math

import numpy as np
import pytest

from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, TRAINS_ACC
from bnrepro.records import RunRecord
from bnrepro.sections import sec21
from bnrepro.specs import Spec

LAYERS = (2, 3, 9, 11, 13)


def record(acc=None, moments=None, pre=None, steps: int = 100, test=None, norm: str = "none", lr: float = 0.1,
           status: str = "completed", diverged_at: int | None = None) -> RunRecord:
    """A VGG record (`norm`, `lr`, `steps`, `status`) with per-step training accuracy `acc` (its last value the
    summary's final training accuracy), per-step (mean, var) of the followed units after (`moments`) and before
    (`pre`) their normalisation, and test accuracy `test` = (steps, accuracies) (its last the summary's final test
    accuracy); a diverged record's summary has `diverged_at`."""
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
    if status == "diverged":
        summary["diverged_at"] = diverged_at
    return RunRecord({"model": "vgg16", "norm": norm, "lr": lr, "steps": steps}, {}, status, summary, arrays)


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


# --- the constructed runs -----------------------------------------------------------------------------------------

PAPER = sec21.PAPER_STEPS  # 15,000: the cpu15k schedule, the length the paper's-schedule rules are judged at
STD, BN, STD5, BN5, NOISY = sec21.STD, sec21.BN, sec21.STD5, sec21.BN5, sec21.NOISY


def at(spec: Spec, **kw) -> RunRecord:
    """A record of `spec`'s run (its normalisation and LR)."""
    return record(norm=spec.norm, lr=spec.lr, **kw)


def flat(acc: float, steps: int = 100) -> np.ndarray:
    return np.full(steps, acc)


def climb(final: float, start: int, steps: int = 100) -> np.ndarray:
    """Training accuracy 0 for `start` steps, then `final`: over 100 steps (smoothed over 1) it reaches any level up
    to `final` at step start + 1."""
    return np.r_[np.zeros(start), np.full(steps - start, final)]


def trained(spec: Spec, train: float, test: float | None = None, steps: int = 100) -> RunRecord:
    """A run of `spec` at a constant training accuracy `train`, its test accuracy ending at `test` (else `train`)."""
    return at(spec, acc=flat(train, steps), steps=steps, test=([0, steps], [0.1, train if test is None else test]))


def diverged(spec: Spec, step: int = 37, steps: int = 100) -> RunRecord:
    """A run of `spec` that diverged at `step` (its recorded accuracies, 0.5, are read as 0)."""
    return at(spec, acc=flat(0.5, steps), steps=steps, test=([0, steps], [0.1, 0.5]), status="diverged",
              diverged_at=step)


def layer_moments(jump, var: float = 4.0, n: int = 6, others: float = 100.0) -> np.ndarray:
    """Moments [step, layer, (mean, var)] over `n` steps: layer L's unit's mean moves by jump[L] every step (by
    `others` for a layer not in `jump`; by `jump` at every layer if it is a number), its variance a constant `var`."""
    m = np.zeros((n, len(LAYERS), 2))
    for k, layer in enumerate(LAYERS):
        m[:, k, 0] = (jump if np.isscalar(jump) else jump.get(layer, others)) * np.arange(n)
    m[:, :, 1] = var
    return m


def runs_for(rule, recs: dict) -> dict:
    """`recs` ({spec: record}) keyed as runs are, after checking that they are exactly the rule's specs."""
    assert set(recs) == set(rule.specs), rule.key
    return {(s.model, s.norm, s.lr): r for s, r in recs.items()}


# --- each rule's measure --------------------------------------------------------------------------------------------

def test_test_acc_is_the_summarys_or_zero_for_a_diverged_run():
    assert sec21._test_acc(trained(STD, 0.5, 0.625)) == 0.625
    assert sec21._test_acc(diverged(STD)) == 0.0


def test_level_is_90_percent_of_the_lower_final_training_accuracy_at_lr_01():
    assert sec21._level(runs_for(sec21.FASTER, {STD: trained(STD, 0.5), BN: trained(BN, 0.75)})) == pytest.approx(0.45)
    assert sec21._level(runs_for(sec21.FASTER, {STD: trained(STD, 0.75), BN: trained(BN, 0.5)})) == pytest.approx(0.45)
    assert sec21._level(runs_for(sec21.FASTER, {STD: trained(STD, 0.75), BN: diverged(BN)})) == 0.0


def test_measure_generalise_gives_test_accuracies_their_gap_and_the_train_test_gaps():
    runs = runs_for(sec21.GENERALISE, {BN: trained(BN, 0.875, 0.8125), STD: trained(STD, 0.9375, 0.75)})
    assert sec21._measure_generalise(runs) == pytest.approx(
        {"bn": 81.25, "std": 75.0, "gap": 6.25, "bn_train": 87.5, "std_train": 93.75, "bn_tt_gap": 6.25,
         "std_tt_gap": 18.75, "tt_gap_diff": 12.5})
    runs = runs_for(sec21.GENERALISE, {BN: diverged(BN), STD: trained(STD, 0.9375, 0.75)})  # read as 0% and 0%
    assert sec21._measure_generalise(runs) == pytest.approx(
        {"bn": 0.0, "std": 75.0, "gap": -75.0, "bn_train": 0.0, "std_train": 93.75, "bn_tt_gap": 0.0,
         "std_tt_gap": 18.75, "tt_gap_diff": 18.75})


def test_measure_std05_reads_the_lr05_runs_accuracies_and_where_it_diverged():
    assert sec21._measure_std05(runs_for(sec21.STD05, {STD5: diverged(STD5, step=37)})) == pytest.approx(
        {"train": 0.0, "test": 0.0, "diverged_at": 37})
    assert sec21._measure_std05(runs_for(sec21.STD05, {STD5: trained(STD5, 0.125, 0.1875)})) == pytest.approx(
        {"train": 12.5, "test": 18.75, "diverged_at": -1})


def test_measure_bn05_is_bns_lr05_training_accuracy_over_its_lr01_one():
    runs = runs_for(sec21.BN05, {BN: trained(BN, 0.75, 0.625), BN5: trained(BN5, 0.5, 0.4375)})
    assert sec21._measure_bn05(runs) == pytest.approx({"train": 50.0, "test": 43.75, "train_01": 75.0, "ratio": 2 / 3})
    runs = runs_for(sec21.BN05, {BN: trained(BN, 0.75, 0.625), BN5: diverged(BN5)})
    assert sec21._measure_bn05(runs) == pytest.approx({"train": 0.0, "test": 0.0, "train_01": 75.0, "ratio": 0.0})


def test_measure_faster_times_both_networks_to_90_percent_of_the_lower_final_accuracy():
    # final 50% (standard) and 75% (BN): the level is 45%, which BN reaches at step 21 and the standard at step 61
    runs = runs_for(sec21.FASTER, {STD: at(STD, acc=climb(0.5, 60)), BN: at(BN, acc=climb(0.75, 20))})
    assert sec21._measure_faster(runs) == pytest.approx({"level": 45.0, "bn": 21, "std": 61, "std_train": 50.0,
                                                         "bn_train": 75.0})


def test_measure_noisy_compares_noisy_bn_with_bn_at_the_end_and_with_the_standard_on_the_climb():
    lr01 = {STD: at(STD, acc=climb(0.5, 60)), BN: at(BN, acc=climb(0.75, 20))}  # level 45%, as in the test above
    runs = runs_for(sec21.NOISY_BN, lr01 | {NOISY: at(NOISY, acc=climb(0.71875, 30))})
    assert sec21._measure_noisy(runs) == pytest.approx(
        {"train": 71.875, "diff": -3.125, "level": 45.0, "steps": 31, "std_steps": 61, "std_train": 50.0})
    runs = runs_for(sec21.NOISY_BN, lr01 | {NOISY: at(NOISY, acc=climb(0.25, 10))})  # never reaches 45%
    assert sec21._measure_noisy(runs) == pytest.approx(
        {"train": 25.0, "diff": -50.0, "level": 45.0, "steps": math.inf, "std_steps": 61, "std_train": 50.0})


def test_measure_full_gives_each_lr01_networks_final_training_accuracy_and_the_lowest():
    recs = {STD: trained(STD, 0.984375, steps=PAPER), BN: trained(BN, 1.0, steps=PAPER),
            NOISY: trained(NOISY, 0.9921875, steps=PAPER)}
    assert sec21._measure_full(runs_for(sec21.FULL, recs)) == pytest.approx(
        {"std": 98.4375, "bn": 100.0, "noisy": 99.21875, "lowest": 98.4375})
    recs[STD] = diverged(STD, steps=PAPER)
    assert sec21._measure_full(runs_for(sec21.FULL, recs)) == pytest.approx(
        {"std": 0.0, "bn": 100.0, "noisy": 99.21875, "lowest": 0.0})


def test_measure_steps90_times_the_smoothed_climb_to_90_percent_over_15000_steps():
    # smoothed over 150 steps, a jump from 0 to 31/32 at step s + 1 reaches 90% when 140 of the 150 steps are past
    # it (31/32 x 140/150 = 0.904; 139 of them give 0.898): at step s + 140
    recs = {BN: at(BN, acc=climb(31 / 32, 1000, PAPER), steps=PAPER),
            STD: at(STD, acc=climb(31 / 32, 3000, PAPER), steps=PAPER)}
    assert sec21._measure_steps90(runs_for(sec21.STEPS90, recs)) == pytest.approx({"bn": 1140, "std": 3140})
    recs[STD] = trained(STD, 0.875, steps=PAPER)  # never at 90%
    assert sec21._measure_steps90(runs_for(sec21.STEPS90, recs)) == pytest.approx({"bn": 1140, "std": math.inf})


def test_measure_test_level_gives_final_test_accuracies_their_distance_from_the_paper_and_the_late_gains():
    def late(spec, train, test):  # training accuracy 50% up to step 5,000, then `train`
        return at(spec, acc=np.r_[flat(0.5, 5000), flat(train, PAPER - 5000)], steps=PAPER,
                  test=([0, 2500, 7500, PAPER], test))

    # the test accuracy at step 5,000 is interpolated halfway between steps 2,500 and 7,500: 75% and 68.75%
    recs = {BN: late(BN, 1.0, [0.1, 0.625, 0.875, 0.8125]), STD: late(STD, 0.875, [0.1, 0.625, 0.75, 0.78125])}
    assert sec21._measure_test_level(runs_for(sec21.TEST_LEVEL, recs)) == pytest.approx(
        {"bn_late_test": 6.25, "bn_late_train": 50.0, "std_late_test": 9.375, "std_late_train": 37.5,
         "bn": 81.25, "std": 78.125, "bn_gap": 18.75, "std_gap": 9.375, "off": 1.875})  # |78.125 - 80| > |81.25 - 83|


def test_measure_moments_averages_each_networks_median_jump_over_layers_2_9_and_13():
    recs = {NOISY: at(NOISY, moments=layer_moments({2: 1, 9: 2, 13: 3})),  # mean jump 2
            BN: at(BN, moments=layer_moments({2: 1 / 64, 9: 2 / 64, 13: 3 / 64})),  # 1/32
            STD: at(STD, moments=layer_moments({2: 1 / 16, 9: 1 / 8, 13: 3 / 16}))}  # 1/8; layers 3, 11 jump 100
    assert sec21._measure_moments(runs_for(sec21.MOMENTS, recs)) == pytest.approx(
        {"noisy": 2.0, "bn": 1 / 32, "std": 0.125, "ratio": 16.0})


def test_measure_stable_reads_bn_before_its_normalisation_at_layers_3_and_11():
    recs = {STD: at(STD, acc=flat(0.5), moments=layer_moments({3: 1, 11: 3}, var=4.0)),  # drifts 1/2 and 3/2: 1
            BN: at(BN, acc=flat(0.75), pre=layer_moments({3: 1, 11: 3}, var=16.0),  # 1/4 and 3/4: 1/2
                   moments=layer_moments({3: 4, 11: 8}, var=1.0))}  # after BatchNorm: 4 and 8, 6
    assert sec21._measure_stable(runs_for(sec21.STABLE, recs)) == pytest.approx(
        {"bn": 0.5, "std": 1.0, "ratio": 0.5, "bn_post": 6.0, "std_train": 50.0, "bn_train": 75.0})


# --- every rule applied to constructed runs -------------------------------------------------------------------------

def test_every_rule_of_the_section_is_applied_below():
    assert [r.key for r in sec21.SECTION.rules] == [
        "c21_generalise", "c21_std05", "c21_bn05", "c21_faster", "c21_noisy", "c21_moments", "c21_stable",
        "c21_full", "c21_steps90", "c21_test_level"]


def test_generalise_is_judged_by_test_accuracy_and_by_train_test_gap():
    def claim(bn, std):
        return sec21.GENERALISE.apply(runs_for(sec21.GENERALISE, {BN: bn, STD: std}))

    both = claim(trained(BN, 0.875, 0.8125), trained(STD, 0.9375, 0.75))  # +6.25 points, gap 12.5 points smaller
    assert both.readings == {"test accuracy": REPRODUCED, "train-test gap": REPRODUCED}
    assert both.verdict == REPRODUCED
    split = claim(trained(BN, 1.0, 0.8125), trained(STD, 0.75, 0.75))  # +6.25 points, but BN's gap 18.75 points larger
    assert split.readings == {"test accuracy": REPRODUCED, "train-test gap": NOT_REPRODUCED}
    assert split.verdict == "reproduced by test accuracy, not reproduced by train-test gap"
    small = claim(trained(BN, 0.875, 0.75390625), trained(STD, 0.9375, 0.75))  # +0.39 points; gaps 12.1 vs 18.75
    assert small.readings == {"test accuracy": PARTLY, "train-test gap": REPRODUCED}
    assert small.verdict == "partly reproduced by test accuracy, reproduced by train-test gap"
    stalled = claim(trained(BN, 0.875, 0.8125), trained(STD, 0.25, 0.25))  # below the trains bar
    assert 25 < TRAINS_ACC
    assert stalled.readings == {"test accuracy": NOT_TESTABLE, "train-test gap": NOT_TESTABLE}
    assert stalled.verdict == NOT_TESTABLE
    assert stalled.untestable == "needs the standard network's final training accuracy (%) > 30 (measured 25)"
    bn_diverged = claim(diverged(BN), trained(STD, 0.9375, 0.75))
    assert bn_diverged.verdict == NOT_TESTABLE
    assert bn_diverged.untestable == "needs the BN network's final training accuracy (%) > 30 (measured 0)"


def test_std05_holds_when_the_lr05_standard_network_diverges_or_stays_near_chance():
    def claim(rec):
        return sec21.STD05.apply(runs_for(sec21.STD05, {STD5: rec}))

    assert claim(diverged(STD5, step=37)).verdict == REPRODUCED
    assert claim(diverged(STD5, step=37)).ours == "diverged at step 37"
    assert claim(trained(STD5, 0.125)).verdict == REPRODUCED
    assert claim(trained(STD5, 0.125)).ours == "final training accuracy 12.5%"
    assert claim(trained(STD5, 0.75)).verdict == NOT_REPRODUCED


def test_bn05_compares_bns_lr05_training_accuracy_with_its_lr01_one():
    def claim(bn5, bn=0.75):
        return sec21.BN05.apply(runs_for(sec21.BN05, {BN: trained(BN, bn), BN5: bn5}))

    assert claim(trained(BN5, 0.75)).verdict == REPRODUCED  # ratio 1
    assert claim(trained(BN5, 0.5)).verdict == PARTLY  # 2/3
    assert claim(trained(BN5, 0.25)).verdict == NOT_REPRODUCED  # 1/3
    assert claim(diverged(BN5)).verdict == NOT_REPRODUCED  # 0
    assert claim(trained(BN5, 0.125), bn=0.125).verdict == NOT_TESTABLE  # BN stalled at LR 0.1: nothing to compare


def test_faster_needs_bn_first_to_the_common_level_and_both_networks_training():
    def claim(std, bn):
        return sec21.FASTER.apply(runs_for(sec21.FASTER, {STD: std, BN: bn}))

    assert claim(at(STD, acc=climb(0.5, 60)), at(BN, acc=climb(0.75, 20))).verdict == REPRODUCED  # 21 vs 61 steps
    assert claim(at(STD, acc=climb(0.5, 20)), at(BN, acc=climb(0.75, 60))).verdict == NOT_REPRODUCED  # 61 vs 21
    stalled = claim(at(STD, acc=climb(0.25, 20)), at(BN, acc=climb(0.75, 60)))  # 25%: below the trains bar
    assert stalled.verdict == NOT_TESTABLE
    assert stalled.untestable == "needs the standard network's final training accuracy (%) > 30 (measured 25)"
    assert claim(diverged(STD), at(BN, acc=climb(0.75, 20))).verdict == NOT_TESTABLE
    assert claim(at(STD, acc=climb(0.5, 60)), diverged(BN)).verdict == NOT_TESTABLE  # not "not reproduced"


def test_noisy_needs_noisy_bn_near_bn_at_the_end_and_ahead_of_the_standard_on_the_climb():
    lr01 = {STD: at(STD, acc=climb(0.5, 60)), BN: at(BN, acc=climb(0.75, 20))}  # level 45%, the standard's step 61

    def claim(noisy, std=lr01[STD]):
        return sec21.NOISY_BN.apply(runs_for(sec21.NOISY_BN, lr01 | {STD: std, NOISY: noisy}))

    assert claim(at(NOISY, acc=climb(0.71875, 30))).verdict == REPRODUCED  # 3.1 points from BN, step 31
    assert claim(at(NOISY, acc=climb(0.71875, 80))).verdict == PARTLY  # near BN, but at step 81
    assert claim(at(NOISY, acc=climb(0.5, 30))).verdict == PARTLY  # first, but 25 points below BN
    assert claim(at(NOISY, acc=climb(0.25, 10))).verdict == NOT_REPRODUCED  # 50 points below, never at 45%
    stalled = claim(at(NOISY, acc=climb(0.71875, 30)), std=at(STD, acc=climb(0.25, 60)))
    assert stalled.verdict == NOT_TESTABLE
    assert stalled.untestable == "needs the standard network's final training accuracy (%) > 30 (measured 25)"


def test_moments_compares_noisy_bns_jump_with_the_larger_of_bns_and_the_standards():
    def claim(noisy, bn=1 / 32, std=1 / 8):
        recs = {NOISY: at(NOISY, moments=layer_moments(noisy)), BN: at(BN, moments=layer_moments(bn)),
                STD: at(STD, moments=layer_moments(std))}
        return sec21.MOMENTS.apply(runs_for(sec21.MOMENTS, recs))

    assert claim(2.0).verdict == REPRODUCED  # 16 x the standard's
    assert claim(0.5).verdict == PARTLY  # 4 x
    assert claim(0.5, bn=1.0).verdict == NOT_REPRODUCED  # half of BN's
    assert claim(1 / 32).verdict == NOT_REPRODUCED  # a quarter of the standard's


def test_stable_compares_the_conv_outputs_drift_within_a_factor_of_3():
    def claim(bn_pre, std=1.0, bn_post=4.0, std_acc=0.5):
        recs = {STD: at(STD, acc=flat(std_acc), moments=layer_moments(std, var=4.0)),  # drift std / 2
                BN: at(BN, acc=flat(0.75), pre=layer_moments(bn_pre, var=4.0),
                       moments=layer_moments(bn_post, var=1.0))}
        return sec21.STABLE.apply(runs_for(sec21.STABLE, recs))

    assert claim(2.0).verdict == REPRODUCED  # ratio 2
    assert claim(0.5).verdict == REPRODUCED  # ratio 1/2
    assert claim(10.0).verdict == NOT_REPRODUCED  # ratio 10
    assert claim(1 / 16).verdict == NOT_REPRODUCED  # ratio 1/16
    steady = claim(1.0, bn_post=100.0)  # after BatchNorm the unit drifts by 100 sigma a step: not what is compared
    assert steady.verdict == REPRODUCED
    assert steady.values["ratio"] == pytest.approx(1.0)
    assert steady.values["bn_post"] == pytest.approx(100.0)
    assert claim(2.0, std_acc=0.125).verdict == NOT_TESTABLE  # a standard network at 12.5% does not train


def test_full_is_judged_on_the_lowest_of_the_three_at_15000_steps():
    def runs(std, steps=PAPER):
        return runs_for(sec21.FULL, {STD: trained(STD, std, steps=steps) if np.isscalar(std) else std,
                                     BN: trained(BN, 1.0, steps=steps), NOISY: trained(NOISY, 0.9921875, steps=steps)})

    assert sec21.FULL.applies(runs(0.984375))
    assert not sec21.FULL.applies(runs(0.984375, steps=100))  # too short a schedule
    assert sec21.FULL.apply(runs(0.984375)).verdict == REPRODUCED  # lowest 98.4%
    assert sec21.FULL.apply(runs(0.9375)).verdict == PARTLY  # 93.75%
    assert sec21.FULL.apply(runs(0.75)).verdict == NOT_REPRODUCED  # 75%
    assert sec21.FULL.apply(runs(diverged(STD, steps=PAPER))).verdict == NOT_REPRODUCED  # 0%


def test_steps90_needs_bn_within_3000_steps_the_standard_within_7500_and_bn_first():
    def claim(bn_start, std):
        recs = {BN: at(BN, acc=climb(31 / 32, bn_start, PAPER), steps=PAPER), STD: std}
        return sec21.STEPS90.apply(runs_for(sec21.STEPS90, recs))

    def std(start):
        return at(STD, acc=climb(31 / 32, start, PAPER), steps=PAPER)

    assert sec21.STEPS90.applies(runs_for(sec21.STEPS90, {BN: std(1000), STD: std(3000)}))
    assert claim(1000, std(3000)).verdict == REPRODUCED  # 1,140 and 3,140 steps
    assert claim(1000, std(9000)).verdict == PARTLY  # the standard at step 9,140
    assert claim(1000, trained(STD, 0.875, steps=PAPER)).verdict == PARTLY  # the standard never at 90%
    assert claim(2000, std(1000)).verdict == PARTLY  # both within their bounds, the standard first
    assert claim(5000, std(9000)).verdict == NOT_REPRODUCED  # 5,140 and 9,140 steps


def test_test_level_needs_both_final_test_accuracies_near_the_papers():
    def claim(bn_test, std_test):
        recs = {BN: trained(BN, 1.0, bn_test, steps=PAPER), STD: trained(STD, 0.875, std_test, steps=PAPER)}
        return sec21.TEST_LEVEL.apply(runs_for(sec21.TEST_LEVEL, recs))

    assert sec21.TEST_LEVEL.applies(runs_for(sec21.TEST_LEVEL, {BN: trained(BN, 1.0, steps=PAPER),
                                                                 STD: trained(STD, 1.0, steps=PAPER)}))
    assert claim(0.8125, 0.78125).verdict == REPRODUCED  # 1.75 and 1.875 points off
    assert claim(0.75, 0.78125).verdict == PARTLY  # BN 8 points off
    assert claim(0.8125, 0.5).verdict == NOT_REPRODUCED  # the standard 30 points off
    assert claim(0.8125, 0.5).values["off"] == pytest.approx(30.0)
