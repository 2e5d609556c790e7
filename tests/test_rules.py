"""Every claim rule of every section, judged on constructed numbers (no training): each outcome it names, cases
just inside and just outside each of its thresholds, a NaN case and, for a rule with preconditions, a case that
fails one ("not testable").

Each rule has a base case (numbers that reproduce it) and overrides of it with the verdict they must get. A verdict
is one string when every reading agrees, else a dict reading -> verdict. `measure` is tested on constructed and
tiny real runs in the section's own test file.
"""

import math

import pytest

from bnrepro.claims import NOT_REPRODUCED as N
from bnrepro.claims import NOT_TESTABLE as T
from bnrepro.claims import PARTLY as P
from bnrepro.claims import REPRODUCED as R
from bnrepro.claims import TRAINS_ACC
from bnrepro.sections import SECTIONS

UP, DOWN = 1.001, 0.999  # just above and just below a threshold, by a relative 0.1%
BARS = ("the 30% trains bar", "the 50% trains bar")


def per_reading(**verdicts) -> dict:
    return verdicts


def vgg_scale(std: float, bn: float) -> dict:
    return ({f"{n}_{i}": v for n, v in (("none", std), ("batch", bn)) for i in (5, 10)}
            | {"none_train_e1": 60, "batch_train_e1": 90})


def larger(vgg: float, dln: float, std_train_e2: float = 60) -> dict:
    keys = [f"vgg_{i}_{e}" for e in ("e1", "e2") for i in (5, 10)] + [f"dln_{i}_{e}" for e in ("e6", "e7")
                                                                       for i in (9, 17)]
    return ({k: vgg if k.startswith("vgg") else dln for k in keys}
            | {"none_train_e1": 60, "batch_train_e1": 90, "none_train_e2": std_train_e2, "batch_train_e2": 90})


def dln_std(l2_e7: float, cos_e7: float, cos_e6: float) -> dict:
    return {f"{m}_{i}_{e}": v for i in (9, 17) for m, e, v in (("l2", "e7", l2_e7), ("cos", "e7", cos_e7),
                                                               ("cos", "e6", cos_e6))}


def dln_bn(cos_drop: float, l2_ratio: float) -> dict:
    return {f"{k}_{i}": v for i in (9, 17) for k, v in (("cos_drop", cos_drop), ("l2_ratio", l2_ratio))}


VGG_TRAINS = {"vgg_train_std": 60, "vgg_train_bn": 90}


def ratios(vgg: float, dln: float, tag: str = "") -> dict:
    return {f"vgg_{tag}ratio": vgg, f"dln_{tag}ratio": dln} | VGG_TRAINS


def band(width: tuple, decades: tuple) -> dict:
    """Section 3.1's loss band: (VGG, DLN) standard ÷ BN by absolute width and by decades."""
    return ratios(*width, "width_") | ratios(*decades)


def beta(vgg_median: float, vgg_iqr: float, dln_median: float, dln_iqr: float) -> dict:
    return ratios(vgg_median, dln_median) | ratios(vgg_iqr, dln_iqr, "iqr_")


def lp(tag: str, l1: float, l2: float, linf: float) -> dict:
    """Section 3.3: one number per l_p scheme, keyed `<scheme><tag>`."""
    return {f"l1{tag}": l1, f"l2{tag}": l2, f"linf{tag}": linf}


def shift(vs_std: tuple, train: tuple = (80, 80, 80), std_train: float = 60) -> dict:
    return lp("_vs_std", *vs_std) | lp("_vs_bn", 10, 10, 10) | lp("_train", *train) | {"none_train": std_train}


def smooth(n_near: dict, bn_smoother: dict | None = None) -> dict:
    """Section 3.3's landscape comparisons: per statistic, how many of its 6 (2 networks x 3 schemes) are nearer BN;
    `bn_smoother` per (model, statistic): whether BN is smoother there (default everywhere)."""
    out = {"vgg_none_train": 60}
    for stat in ("band_decades", "band_width", "gd_median"):
        keys = [(m, n) for m in ("vgg", "dln") for n in ("l1", "l2", "linf")]
        out |= {f"{m}_{stat}_{n}_closeness": 0.5 if i < n_near.get(stat, 6) else 2.0 for i, (m, n) in enumerate(keys)}
        out |= {f"{m}_{stat}_bn_smoother": float((bn_smoother or {}).get((m, stat), 1)) for m in ("vgg", "dln")}
    return out


def lp_beta(vgg: tuple, dln: tuple) -> dict:
    """Section 3.3: each l_p scheme's median beta ÷ BN's, for VGG and the DLN."""
    return {f"{m}_{k}": v for m, vals in (("vgg", vgg), ("dln", dln)) for k, v in lp("_ratio", *vals).items()}


def bars(values: dict, at50: dict | None = None) -> dict:
    """Part IV.1's numbers under both trains bars (the 50% bar's default to the 30% bar's)."""
    return ({f"bar30_{k}": v for k, v in values.items()}
            | {f"bar50_{k}": v for k, v in (at50 if at50 is not None else values).items()})


def tracks(vgg: tuple, dln: tuple, n: tuple = (4, 3)) -> dict:
    """Part IV.1: (slope, smallest, largest ratio to 2/LR) of beta against LR for VGG and the DLN, and at how many
    LRs each trains."""
    return {f"{m}_{k}": v for m, vals, count in (("vgg", vgg, n[0]), ("dln", dln, n[1]))
            for k, v in zip(("slope", "lo", "hi", "n"), (*vals, count))}


def curvature(median: float, lo: float, hi: float, within: float = 1.0, n: int = 6) -> dict:
    return {"median": median, "lo": lo, "hi": hi, "within": within, "n": n}


def resnet(**v) -> dict:
    return {"std_train": 60} | v


GOOD, FLAT = (-1.0, 0.6, 1.5), (-0.2, 0.05, 1.5)

#: rule key -> (base numbers, [(overrides, verdict)]); the base itself must be reproduced.
LITERAL, AS_G = "g_j² read literally", "g_j² read as g_j"  # Theorem 4.4's readings (sec4.THM44_READINGS)


def thm44() -> dict:
    """Section 4's Theorem 4.4 checks: the proof-consistent form within rounding, neither printed reading failing."""
    return {"max_tol": 0.1} | {f"{form}_fail_{scale}": 0 for form in ("printed", "unsquared")
                               for scale in ("small", "unit", "large")}


def sigma(largest: float = 3, spread: float = 3) -> dict:
    return {"largest": largest, "spread": spread, "layers": 24, "probed": 100}


# each of sigma's two bars just met and just missed; the probe at two steps is enough, at one it is not
SIGMA_CASES = [({"largest": 2}, R), ({"largest": 2 * DOWN}, P), ({"spread": 2}, R), ({"spread": 2 * DOWN}, P),
               ({"largest": 2 * DOWN, "spread": 2 * DOWN}, N), ({"probed": 2}, R), ({"probed": 1}, T),
               ({"probed": 0, "largest": math.nan, "spread": math.nan}, T)]


def reduction(gain: float = 0.5) -> dict:
    return {"gain": gain, "scale": gain, "kept": 1.0, "scale_share": 1.0, "probed": 100}


REDUCTION_CASES = [({"gain": DOWN}, R), ({"gain": 1}, N), ({"gain": 1.5}, N), ({"probed": 2}, R), ({"probed": 1}, T),
                   ({"probed": 0, "gain": math.nan}, T)]


CASES = {
    "c21_generalise": ({"bn": 83, "std": 80, "gap": 3, "tt_gap_diff": 3, "std_train": 70, "bn_train": 90}, [
        ({"gap": 1 * UP}, R), ({"gap": 1 * DOWN, "bn": 80.999}, per_reading(**{"test accuracy": P, "train-test gap": R})),
        ({"gap": -1, "bn": 79}, per_reading(**{"test accuracy": N, "train-test gap": R})),
        ({"tt_gap_diff": 1 * DOWN}, per_reading(**{"test accuracy": R, "train-test gap": P})),
        ({"tt_gap_diff": -11}, per_reading(**{"test accuracy": R, "train-test gap": N})),
        ({"std_train": TRAINS_ACC}, T), ({"bn_train": 10}, T)]),
    "c21_std05": ({"train": 10}, [({"train": 20 * DOWN}, R), ({"train": 20}, N), ({"train": 0}, R), ({"train": 60}, N)]),
    "c21_bn05": ({"ratio": 0.95, "train_01": 90}, [({"ratio": 0.9}, R), ({"ratio": 0.9 * DOWN}, P), ({"ratio": 0.5}, P),
                                                   ({"ratio": 0.5 * DOWN}, N), ({"train_01": TRAINS_ACC * UP}, R),
                                                   ({"train_01": TRAINS_ACC}, T)]),
    "c21_faster": ({"bn": 200, "std": 1800, "std_train": 60, "bn_train": 90}, [
        ({"std": math.inf}, R), ({"bn": 1800}, N), ({"bn": 1799}, R), ({"bn": math.inf, "std": math.inf}, N),
        ({"std_train": TRAINS_ACC * UP}, R), ({"std_train": TRAINS_ACC}, T), ({"bn_train": 0}, T)]),
    "c21_noisy": ({"diff": -2, "steps": 300, "std_steps": 1800, "std_train": 60}, [
        ({"diff": -5}, R), ({"diff": -5.01}, P), ({"diff": 5.01}, P), ({"steps": 1800}, P),
        ({"diff": -7, "steps": math.inf}, N), ({"std_train": 20}, T)]),
    "c21_moments": ({"ratio": 20}, [({"ratio": 10 * UP}, R), ({"ratio": 10}, P), ({"ratio": 1 * UP}, P),
                                    ({"ratio": 1}, N)]),
    "c21_stable": ({"ratio": 1, "std_train": 60, "bn_train": 90}, [
        ({"ratio": 1 / 3 * UP}, R), ({"ratio": 1 / 3 * DOWN}, N), ({"ratio": 3}, R), ({"ratio": 3 * UP}, N),
        ({"std_train": TRAINS_ACC}, T), ({"bn_train": TRAINS_ACC * UP}, R), ({"bn_train": TRAINS_ACC}, T)]),
    "c21_full": ({"lowest": 99.2}, [({"lowest": 97}, R), ({"lowest": 96.99}, P), ({"lowest": 90}, P),
                                    ({"lowest": 89.99}, N)]),
    "c21_steps90": ({"bn": 2100, "std": 4600}, [
        ({"bn": 3000}, R), ({"bn": 3001}, P), ({"std": 7500}, R), ({"std": 7501}, P), ({"std": math.inf}, P),
        ({"bn": 4000, "std": 9000}, N), ({"bn": math.inf, "std": math.inf}, N), ({"bn": 5000, "std": 4600}, P)]),
    "c21_test_level": ({"off": 1.5}, [({"off": 3}, R), ({"off": 3.01}, P), ({"off": 10}, P), ({"off": 10.01}, N)]),
    "c22_vgg_scale": (vgg_scale(0.3, 0.5), [
        (vgg_scale(0.1, 0.5), R), (vgg_scale(0.1 * DOWN, 0.5), P), (vgg_scale(10, 10 * UP), P),
        (vgg_scale(20, 0.01), N), ({"none_train_e1": 17}, T)]),
    "c22_larger": (larger(1.5, 100), [
        (larger(1 / 3 * UP, 100), R), (larger(1 / 3 * DOWN, 100), P), (larger(1.5, 0.001), P), (larger(0.1, 0.1), N),
        # the standard VGG does not train at LR 0.01: those ratios are left out, whatever they are
        (larger(1.5, 100, std_train_e2=17) | {"vgg_5_e2": 1e-3, "vgg_10_e2": 1e-3}, R)]),
    "c22_dln_std": (dln_std(10, 0.99, 0.98), [
        (dln_std(100, 0.95, 0.95), R), (dln_std(100 * UP, 0.99, 0.98), P), (dln_std(10, 0.95 * DOWN, 0.98), P),
        (dln_std(1 * DOWN, 0.5, 0.98), P), (dln_std(1000, 0.5, -0.9), N)]),
    "c22_dln_bn": (dln_bn(0.5, 100), [
        (dln_bn(0.2, 10), R), (dln_bn(0.2 * DOWN, 100), P), (dln_bn(0.5, 10 * DOWN), P), (dln_bn(0.1, 2), N)]),
    "c22_dln_loss": ({"ratio_e6": 3.2, "ratio_e7": 5.7}, [
        ({"ratio_e6": 2}, R), ({"ratio_e6": 2 * DOWN}, P), ({"ratio_e6": 1 * UP, "ratio_e7": 0.5}, P),
        ({"ratio_e6": 1, "ratio_e7": 1}, N)]),
    "c31_loss": (band((3, 5), (3, 5)), [
        (band((2, 2), (2, 2)), R), (band((2 * DOWN, 5), (3, 5)), per_reading(**{"absolute width": P, "decades": R})),
        (band((2.5, 0.005), (0.8, 0.003)), per_reading(**{"absolute width": P, "decades": N})),
        (band((1, 1), (0.7, 0.9)), N), ({"vgg_train_std": 20}, T)]),
    "c31_predictive": (ratios(100, 1e10), [
        (ratios(30, 30), R), (ratios(30 * DOWN, 1e10), P), (ratios(1 * UP, 0.5), P), (ratios(1, 0.9), N),
        ({"vgg_train_bn": 5}, T)]),
    "c31_beta": (beta(1.5, 1.5, 1.2, 1.4), [
        (beta(1 * UP, 1 * UP, 1 * UP, 1 * UP), R), (beta(1, 1.5, 1.2, 1.4), P), (beta(1.5, 1.5, 0.9, 0.7), P),
        (beta(1.5, 0.9, 0.9, 0.7), N), ({"vgg_train_std": 12}, T)]),
    "c31_eos": ({"vgg_bn": 1, "dln_bn": 0.9}, [
        ({"vgg_bn": 0.5, "dln_bn": 2}, R), ({"vgg_bn": 0.5 * DOWN}, P), ({"dln_bn": 2 * UP}, P),
        ({"vgg_bn": 0.2, "dln_bn": 5}, N)]),
    "c33_train": ({"gap_l1": -3, "gap_l2": 1, "gap_linf": -5}, [
        ({"gap_linf": -5.01}, P), ({"gap_l1": -5.01, "gap_l2": -16, "gap_linf": -60}, N)]),
    "c33_dln_l1": ({"bn_over_l1": 5}, [
        ({"bn_over_l1": 2}, R), ({"bn_over_l1": 2 * DOWN}, P), ({"bn_over_l1": 1.25}, P),
        ({"bn_over_l1": 1.25 * DOWN}, N), ({"bn_over_l1": 1.003}, N), ({"bn_over_l1": 0}, N)]),  # 0: l1 diverged
    "c33_shift": (shift((1.25, 1.5, 2)), [
        (shift((1.2, 1.2, 1.2)), R), (shift((1.2 * DOWN, 1.5, 2)), P), (shift((1.25, 0.5, 0.05)), P),
        (shift((1.25, 1.5, 2), train=(80, 80, 60)), P), (shift((1.25, 1.5, 2), train=(50, 50, 50)), N),
        # every l_p scheme shifts less than the standard network: more than BN is not the claim
        (shift((0.07, 0.04, 0.5)), N), (shift((1.25, 1.5, 2), std_train=20), T)]),
    "c33_gauss": (lp("_vs_bn", 2, 2.5, 3), [
        (lp("_vs_bn", 2 * DOWN, 2.5, 3), P), (lp("_vs_bn", 1.9, 1, 0.7), N)]),
    "c33_smooth": (smooth({}), [
        (smooth({"band_width": 3, "band_decades": 3, "gd_median": 3}), P),
        (smooth({"band_width": 2, "band_decades": 2, "gd_median": 2}), N),
        (smooth({"band_decades": 0}), per_reading(**{"absolute width": R, "decades": P})),
        # BN rougher than the standard network on VGG's band: those comparisons are left out
        (smooth({"band_decades": 0}, {("vgg", "band_decades"): 0, ("dln", "band_decades"): 0}), R),
        (smooth({}, {(m, s): 0 for m in ("vgg", "dln") for s in ("band_decades", "band_width", "gd_median")}), T),
        ({"vgg_none_train": 20}, T)]),
    "c33_beta": (lp_beta((1.2, 0.8, 1.0), (2.9, 0.35, 1)), [
        (lp_beta((1.25, 0.75, 1.0), (3, 1 / 3 * UP, 1)), R), (lp_beta((1.26, 0.8, 1.0), (2.9, 0.35, 1)), P),
        (lp_beta((1.3, 0.7, 1.3), (2.9, 0.3, 1)), N)]),
    "iv1_bn_beta": (bars(tracks(GOOD, GOOD)), [
        (bars(tracks((-1.25, 1 / 3, 3), (-0.75, 1 / 3, 3))), R), (bars(tracks((-1.26, 0.6, 1.5), GOOD)), P),
        (bars(tracks(GOOD, (-0.74, 0.6, 1.5))), P), (bars(tracks(GOOD, (-1.0, 0.33, 1.5))), P),
        (bars(tracks(FLAT, FLAT)), N), (bars(tracks(GOOD, GOOD, (1, 3))), P),
        (bars(tracks(GOOD, GOOD), tracks(GOOD, GOOD, (1, 0))), per_reading(**{BARS[0]: R, BARS[1]: T}))]),
    "iv1_std_beta": (bars(tracks(GOOD, GOOD)), [
        (bars(tracks(FLAT, GOOD)), P), (bars(tracks(FLAT, FLAT)), N),
        (bars(tracks(GOOD, (math.nan,) * 3, (3, 0)), tracks((math.nan,) * 3, (math.nan,) * 3, (1, 0))),
         per_reading(**{BARS[0]: P, BARS[1]: T}))]),
    "iv1_sharpness": (bars(curvature(1.1, 0.6, 1.9)), [
        (bars(curvature(0.5, 0.5, 2)), R), (bars(curvature(1.3, 0.45, 1.9, within=0.8)), P),
        (bars(curvature(0.5 * DOWN, 0.2, 1, within=0.5)), N), (bars(curvature(4, 3, 5, within=0.0)), N),
        (bars(curvature(1.1, 0.6, 1.9), curvature(math.nan, math.nan, math.nan, 0, 0)),
         per_reading(**{BARS[0]: R, BARS[1]: T}))]),
    "iv1_eigen": (bars(curvature(0.9, 0.8, 1.1)), [
        (bars(curvature(2, 1, 2)), R), (bars(curvature(2 * UP, 1, 3, within=0.5)), N),
        (bars(curvature(0.6, 0.3, 1.1, within=0.5)), P), (bars(curvature(0.2, 0.1, 0.3, within=0.0)), N)]),
    "iv1_lr_range": (bars({"bn_max": 0.5, "std_max": 0.2}), [
        (bars({"bn_max": 0.2, "std_max": 0.2}), N),
        (bars({"bn_max": 0.5, "std_max": 0.2}, {"bn_max": 0.5, "std_max": 0.5}), per_reading(**{BARS[0]: R, BARS[1]: N}))]),
    "iv1_gap": (bars({"common_gap": 2.0, "best_gap": 10.0, "n_common": 3}), [
        (bars({"common_gap": 5.0, "best_gap": 10.0, "n_common": 2}), R),
        (bars({"common_gap": 5.01, "best_gap": 10.0, "n_common": 2}), P),
        (bars({"common_gap": 9.99, "best_gap": 10.0, "n_common": 2}), P),
        (bars({"common_gap": 10.0, "best_gap": 10.0, "n_common": 2}), N),
        (bars({"common_gap": 2.0, "best_gap": 10.0, "n_common": 3}, {"common_gap": 9, "best_gap": 9, "n_common": 1}),
         per_reading(**{BARS[0]: R, BARS[1]: T}))]),
    "iv1_scale": ({"vgg_batch": 1e-5, "dln_batch": 2e-6, "vgg_none": 0.05, "dln_none": 0.1}, [
        ({"vgg_batch": 1e-3, "vgg_none": 1e-2}, R), ({"vgg_batch": 1e-3 * UP, "vgg_none": 1}, N),
        ({"vgg_none": 1e-4 * DOWN}, P)]),
    "iv2_random": ({"vgg_lo_ratio": 3, "vgg_hi_ratio": 2.5, "dln_ratio": 4, "vgg_lo_std_train": 60,
                    "vgg_hi_std_train": 60}, [
        ({"vgg_hi_ratio": 2 * DOWN}, P), ({"vgg_lo_ratio": 3, "vgg_hi_ratio": 0.5, "dln_ratio": 1.5}, P),
        ({"vgg_lo_ratio": 1.5, "vgg_hi_ratio": 1.2, "dln_ratio": 0.5}, P),
        ({"vgg_lo_ratio": 3, "vgg_hi_ratio": 0.9, "dln_ratio": 0.8}, N),
        # the standard VGG does not train at the larger LR: that pair is left out, the claim at most partly holds
        ({"vgg_hi_std_train": 10, "vgg_hi_ratio": 1e-3}, P)]),
    "iv2_init": ({"vgg_rate": 1.2}, [({"vgg_rate": 1.1}, R), ({"vgg_rate": 1.1 * DOWN}, P), ({"vgg_rate": 1}, N)]),
    "iv2_resnet_loss": (resnet(ratio=3, width_ratio=3), [
        (resnet(ratio=2, width_ratio=2), R), (resnet(ratio=2 * DOWN, width_ratio=3),
                                              per_reading(**{"absolute width": R, "decades": P})),
        (resnet(ratio=0.7, width_ratio=1.5), per_reading(**{"absolute width": P, "decades": N})),
        (resnet(ratio=0.7, width_ratio=0.7), N), (resnet(ratio=3, width_ratio=3, std_train=10), T)]),
    "iv2_resnet_predictive": (resnet(ratio=50), [
        (resnet(ratio=30), R), (resnet(ratio=30 * DOWN), P), (resnet(ratio=1), N), (resnet(ratio=50, std_train=5), T)]),
    "iv2_resnet_beta": (resnet(ratio=1.5, iqr_ratio=1.2), [
        (resnet(ratio=1.5, iqr_ratio=1), P), (resnet(ratio=0.9, iqr_ratio=0.8), N),
        (resnet(ratio=1.5, iqr_ratio=1.2, std_train=5), T)]),
    "iv2_resnet_eos": ({"bn": 1.1}, [({"bn": 0.5}, R), ({"bn": 0.5 * DOWN}, N), ({"bn": 2}, R), ({"bn": 2 * UP}, N)]),
    "c4_grad": ({"max_tol": 0.1}, [({"max_tol": 1}, R), ({"max_tol": UP}, N)]),
    "c4_thm41": ({"max_tol": 0.1, "printed_fail": 0}, [({"max_tol": 1}, R), ({"printed_fail": 0.01}, P),
                                                       ({"max_tol": UP, "printed_fail": 0.01}, N)]),
    "c4_thm42": ({"max_tol": 0.1}, [({"max_tol": 1}, R), ({"max_tol": UP}, N)]),
    "c4_obs43": ({"worst_tol": 0.1}, [({"worst_tol": 1}, R), ({"worst_tol": UP}, N)]),
    # Theorem 4.4 under each reading of its printed g_j^2: a failure of one reading's printed form is that reading's
    "c4_thm44": (thm44(), [({"printed_fail_small": 0.01}, {LITERAL: P, AS_G: R}),
                           ({"unsquared_fail_large": 0.01}, {LITERAL: R, AS_G: P}), ({"max_tol": 1}, R),
                           ({"max_tol": UP}, N), ({"max_tol": UP, "printed_fail_unit": 0.21}, N)]),
    "c4_lemma45": ({"max_tol": 0.1}, [({"max_tol": 1}, R), ({"max_tol": UP}, N)]),
    "c4_sigma_dln": (sigma(), SIGMA_CASES),
    "c4_sigma_vgg": (sigma(), SIGMA_CASES),
    "c4_sign": ({"last_positive": 0.9, "last_positive_init": 0.9, "other_positive": 0.5, "probed": 100}, [
        ({"last_positive": 0.75}, R), ({"last_positive": 0.75 * DOWN}, N), ({"last_positive": 0.5}, N),
        ({"probed": 2}, R), ({"probed": 1}, T), ({"probed": 0, "last_positive": math.nan}, T)]),
    "c4_reduction_dln": (reduction(), REDUCTION_CASES),
    "c4_reduction_vgg": (reduction(), REDUCTION_CASES),
}

RULES = {rule.key: rule for section in SECTIONS.values() for rule in section.rules}


def verdicts(key: str, values: dict) -> dict:
    """Each reading's verdict ({"": verdict} for a rule with one)."""
    return {name: j.verdict for name, j in RULES[key].judgements(values).items()}


def expected(key: str, verdict) -> dict:
    names = list(RULES[key].readings or {"": None})
    return verdict if isinstance(verdict, dict) else dict.fromkeys(names, verdict)


def all_cases():
    for key, (base, cases) in CASES.items():
        yield key, base, R
        for over, verdict in cases:
            yield key, base | over, verdict


@pytest.mark.parametrize("key,values,verdict", list(all_cases()), ids=lambda x: x if isinstance(x, str) else "")
def test_rule_reaches_the_verdict(key, values, verdict):
    assert verdicts(key, values) == expected(key, verdict)


def test_every_rule_has_cases_reaching_each_of_its_outcomes():
    assert set(CASES) == set(RULES)
    for key, rule in RULES.items():
        reached = {v for k, _, verdict in all_cases() if k == key for v in expected(k, verdict).values()}
        want = {R, P, N} if "partly" in rule.rule else {R, N}
        assert want <= reached, key
        if rule.needs:
            assert T in reached, f"{key}: no case fails its precondition"


@pytest.mark.parametrize("key", sorted(CASES))
def test_an_undefined_number_makes_a_rule_not_testable(key):
    base, _ = CASES[key]
    assert set(verdicts(key, dict.fromkeys(base, math.nan)).values()) == {T}


def test_a_failed_precondition_says_which_and_by_how_much():
    claim_needs = RULES["c21_faster"].judgements({"bn": 200, "std": 1800, "std_train": 17.1, "bn_train": 90})[""]
    assert claim_needs.verdict == T
    assert claim_needs.reason == "needs the standard network's final training accuracy (%) > 30 (measured 17.1)"


@pytest.mark.parametrize("key,values,note", [
    ("c22_dln_loss", {"ratio_e6": 2.09, "ratio_e7": 2.8}, "standard ÷ BN final loss at LR 1e-06 2.09 against 2"),
    ("c21_stable", {"ratio": 0.356, "std_train": 60, "bn_train": 90}, "BN's shift ÷ the standard's 0.356 against "
                                                                       "0.333"),
    ("c33_dln_l1", {"bn_over_l1": 1.95}, "BN ÷ l1 final DLN loss 1.95 against 2"),
    ("c21_faster", {"bn": 200, "std": 1800, "std_train": 31, "bn_train": 90},
     "precondition the standard network's final training accuracy (%) 31 against 30"),
])
def test_a_deciding_number_near_its_threshold_is_noted(key, values, note):
    assert note in [n for j in RULES[key].judgements(values).values() for n in j.near]


@pytest.mark.parametrize("key,values", [
    # a share moves in whole runs: 100% within a factor 2 is not "near" its bar of 100%
    ("iv1_eigen", bars(curvature(0.998, 0.9, 1.05))),
    # far from every threshold
    ("c21_bn05", {"ratio": 0.7, "train_01": 90}),
])
def test_no_near_note_where_no_small_change_flips_the_verdict(key, values):
    assert all(j.near == () for j in RULES[key].judgements(values).values())


def test_every_rule_states_its_threshold_and_a_reason():
    for key, rule in RULES.items():
        assert rule.rule.startswith(("reproduced if ", "by ", "on each ")) and rule.reason, key
        assert "\n" not in rule.reason and (not rule.needs or rule.needs_reason), key
