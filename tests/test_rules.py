"""Every claim rule of every section, driven to each of its outcomes by constructed numbers (no training).

A rule whose text names a "partly" outcome must reach it here; every rule must reach "reproduced" and "not
reproduced". `measure` is tested on tiny real runs in the section's own test file.
"""

import math

import pytest

from bnrepro.claims import NOT_REPRODUCED as N
from bnrepro.claims import PARTLY as P
from bnrepro.claims import REPRODUCED as R
from bnrepro.sections import SECTIONS


def vgg_scale(std: float, bn: float) -> dict:
    return {f"{n}_{i}": v for n, v in (("none", std), ("batch", bn)) for i in (5, 10)}


def larger(vgg: float, dln: float) -> dict:
    keys = [f"vgg_{i}_{e}" for e in ("e1", "e2") for i in (5, 10)] + [f"dln_{i}_{e}" for e in ("e6", "e7")
                                                                       for i in (9, 17)]
    return {k: vgg if k.startswith("vgg") else dln for k in keys}


def dln_std(l2_e7: float, cos_e7: float, cos_e6: float) -> dict:
    return {f"{m}_{i}_{e}": v for i in (9, 17) for m, e, v in (("l2", "e7", l2_e7), ("cos", "e7", cos_e7),
                                                               ("cos", "e6", cos_e6))}


def dln_bn(cos_drop: float, l2_ratio: float) -> dict:
    return {f"{k}_{i}": v for i in (9, 17) for k, v in (("cos_drop", cos_drop), ("l2_ratio", l2_ratio))}


def ratios(vgg: float, dln: float, tag: str = "") -> dict:
    return {f"vgg_{tag}ratio": vgg, f"dln_{tag}ratio": dln}


def beta(vgg_median: float, vgg_iqr: float, dln_median: float, dln_iqr: float) -> dict:
    return ratios(vgg_median, dln_median) | ratios(vgg_iqr, dln_iqr, "iqr_")


def lp(tag: str, l1: float, l2: float, linf: float) -> dict:
    """Section 3.3: one number per l_p scheme, keyed `<scheme><tag>`."""
    return {f"l1{tag}": l1, f"l2{tag}": l2, f"linf{tag}": linf}


def closeness(n_near: int) -> dict:
    """Section 3.3's 12 landscape comparisons, the first `n_near` of them nearer BN than the standard network."""
    keys = [f"{m}_{s}_{n}_closeness" for m in ("vgg", "dln") for s in ("band_decades", "gd_median")
            for n in ("l1", "l2", "linf")]
    return {k: 0.5 if i < n_near else 2.0 for i, k in enumerate(keys)}


def lp_beta(vgg: tuple, dln: tuple) -> dict:
    """Section 3.3: each l_p scheme's median beta ÷ BN's, for VGG and the DLN."""
    return {f"{m}_{k}": v for m, vals in (("vgg", vgg), ("dln", dln)) for k, v in lp("_ratio", *vals).items()}


def tracks(vgg: tuple, dln: tuple) -> dict:
    """Part IV.1: (slope, smallest, largest ratio to 2/LR) of beta against LR, for VGG and the DLN."""
    return {f"{m}_{k}": v for m, vals in (("vgg", vgg), ("dln", dln)) for k, v in zip(("slope", "lo", "hi"), vals)}


GOOD, FLAT = (-1.0, 0.6, 1.5), (-0.2, 0.05, 1.5)

#: rule key -> [(numbers, verdict)], the numbers being what the rule's `judge` reads.
CASES = {
    "iv1_bn_beta": [(tracks(GOOD, GOOD), R), (tracks(GOOD, FLAT), P), (tracks(FLAT, FLAT), N),
                    (tracks((-1.0, 0.6, 4.0), (-1.4, 0.6, 1.5)), N)],
    "iv1_std_beta": [(tracks(GOOD, GOOD), R), (tracks(FLAT, GOOD), P), (tracks(FLAT, FLAT), N)],
    "iv1_sharpness": [({"within": 1.0, "median": 1.1}, R), ({"within": 0.5, "median": 1.3}, P),
                      ({"within": 0.2, "median": 4.0}, N)],
    "iv1_eigen": [({"within": 1.0, "median": 0.9}, R), ({"within": 0.5, "median": 0.6}, P),
                  ({"within": 0.0, "median": 0.2}, N)],
    "iv1_lr_range": [({"bn_max": 0.5, "std_max": 0.2}, R), ({"bn_max": 0.2, "std_max": 0.2}, N)],
    "iv1_gap": [({"common_gap": 2.0, "best_gap": 10.0}, R), ({"common_gap": 7.0, "best_gap": 10.0}, P),
                ({"common_gap": 12.0, "best_gap": 10.0}, N)],
    "iv1_scale": [({"vgg_batch": 1e-5, "dln_batch": 2e-6, "vgg_none": 0.05, "dln_none": 0.1}, R),
                  ({"vgg_batch": 1e-5, "dln_batch": 2e-6, "vgg_none": 5e-5, "dln_none": 0.1}, P),
                  ({"vgg_batch": 0.02, "dln_batch": 2e-6, "vgg_none": 0.05, "dln_none": 0.1}, N)],
    "c21_generalise": [({"bn": 83, "std": 80, "gap": 3}, R), ({"bn": 80.5, "std": 80, "gap": 0.5}, P),
                       ({"bn": 79, "std": 80, "gap": -1}, N)],
    "c21_std05": [({"train": 10}, R), ({"train": 0}, R), ({"train": 60}, N)],  # 0: diverged
    "c21_bn05": [({"ratio": 0.95}, R), ({"ratio": 0.7}, P), ({"ratio": 0.3}, N)],
    "c21_faster": [({"bn": 200, "std": 1800}, R), ({"bn": 200, "std": math.inf}, R), ({"bn": 2000, "std": 1800}, N),
                   ({"bn": math.inf, "std": math.inf}, N)],
    "c21_noisy": [({"diff": -2, "steps": 300, "std_steps": 1800}, R), ({"diff": -7, "steps": 300, "std_steps": 1800}, P),
                  ({"diff": 1, "steps": math.inf, "std_steps": 1800}, P),
                  ({"diff": -7, "steps": math.inf, "std_steps": 1800}, N)],
    "c21_moments": [({"ratio": 20}, R), ({"ratio": 5}, P), ({"ratio": 0.5}, N)],
    "c21_stable": [({"ratio": 1}, R), ({"ratio": 0.2}, N), ({"ratio": 4}, N)],
    "c21_full": [({"lowest": 99.2}, R), ({"lowest": 93}, P), ({"lowest": 80}, N)],
    "c21_steps90": [({"bn": 2100, "std": 4600}, R), ({"bn": 4000, "std": 9000}, P), ({"bn": 2100, "std": math.inf}, P),
                    ({"bn": math.inf, "std": math.inf}, N), ({"bn": 5000, "std": 4600}, N)],
    "c21_test_level": [({"off": 1.5}, R), ({"off": 7}, P), ({"off": 14}, N)],
    "c22_vgg_scale": [(vgg_scale(0.3, 0.5), R), (vgg_scale(0.05, 0.5), P), (vgg_scale(20, 0.01), N)],
    "c22_larger": [(larger(1.5, 100), R), (larger(1.5, 0.001), P), (larger(0.1, 0.1), N)],
    "c22_dln_std": [(dln_std(10, 0.99, 0.98), R), (dln_std(1000, 0.99, 0.98), P), (dln_std(1000, 0.5, -0.9), N)],
    "c22_dln_bn": [(dln_bn(0.5, 100), R), (dln_bn(0.5, 2), P), (dln_bn(0.1, 100), P), (dln_bn(0.1, 2), N)],
    # at seed 2 of the cpu records BN's loss is 0.3% below the standard network's at LR 1e-6: no longer reproduced
    "c22_dln_loss": [({"ratio_e6": 3.2, "ratio_e7": 5.7}, R), ({"ratio_e6": 1.003, "ratio_e7": 6.2}, P),
                     ({"ratio_e6": 1.5, "ratio_e7": 1.5}, P), ({"ratio_e6": 0.9, "ratio_e7": 0.5}, N)],
    # VGG's band is taller with BN on the log axis although narrower in absolute terms: only the DLN counts
    "c31_loss": [(ratios(3, 5), R), (ratios(0.7, 8e3), P), (ratios(0.7, 0.9), N)],
    "c31_predictive": [(ratios(100, 1e10), R), (ratios(2.7, 6e10), P), (ratios(0.5, 0.9), N)],
    "c31_beta": [(beta(1.5, 1.5, 1.2, 1.4), R), (beta(1.5, 1.5, 0.9, 0.7), P), (beta(1.5, 0.9, 0.9, 0.7), N)],
    "c31_eos": [({"vgg_bn": 1, "dln_bn": 0.9}, R), ({"vgg_bn": 0.6, "dln_bn": 0.2}, P),
                ({"vgg_bn": 0.2, "dln_bn": 5}, N)],
    "c33_train": [({"gap_l1": -3, "gap_l2": 1, "gap_linf": -5}, R), ({"gap_l1": -3, "gap_l2": -16, "gap_linf": -40}, P),
                  ({"gap_l1": -5.1, "gap_l2": -16, "gap_linf": -60}, N)],
    "c33_dln_l1": [({"bn_over_l1": 5}, R), ({"bn_over_l1": 2}, R), ({"bn_over_l1": 1.5}, P), ({"bn_over_l1": 1}, N),
                   ({"bn_over_l1": 0}, N)],  # 0: l1 diverged
    # the partly outcome of its own kind: each l_p scheme shifts more than BN, none more than the standard network
    "c33_shift": [(lp("_vs_std", 1.25, 1.5, 2) | lp("_vs_bn", 30, 40, 50), R),
                  (lp("_vs_std", 1.25, 0.5, 0.05) | lp("_vs_bn", 30, 5, 0.5), P),
                  (lp("_vs_std", 0.07, 0.04, 0.5) | lp("_vs_bn", 8, 4, 58), P),
                  (lp("_vs_std", 0.07, 0.04, 0.5) | lp("_vs_bn", 8, 1.01, 58), N)],
    "c33_gauss": [(lp("_vs_bn", 2, 2.5, 3), R), (lp("_vs_bn", 2, 1, 0.7), P), (lp("_vs_bn", 1.9, 1, 0.7), N)],
    "c33_smooth": [(closeness(12), R), (closeness(6), P), (closeness(5), N)],
    "c33_beta": [(lp_beta((1.2, 0.8, 1.0), (2.9, 0.35, 1)), R), (lp_beta((1.3, 0.8, 1.3), (2.9, 0.3, 1)), P),
                 (lp_beta((1.3, 0.7, 1.3), (2.9, 0.3, 1)), N)],
    "c4_grad": [({"max_tol": 0.1}, R), ({"max_tol": 3}, N)],
    "c4_thm41": [({"max_tol": 0.1, "printed_fail": 0}, R), ({"max_tol": 0.1, "printed_fail": 1}, P),
                 ({"max_tol": 5, "printed_fail": 1}, N)],
    "c4_thm42": [({"max_tol": 0.1}, R), ({"max_tol": 3}, N)],
    "c4_obs43": [({"worst_tol": 0.1}, R), ({"worst_tol": 3}, N)],
    "c4_thm44": [({"max_tol": 0.1, "printed_fail_small": 0, "printed_fail_large": 0}, R),
                 ({"max_tol": 0.1, "printed_fail_small": 1, "printed_fail_large": 0}, P),
                 ({"max_tol": 5, "printed_fail_small": 1, "printed_fail_large": 0}, N)],
    "c4_lemma45": [({"max_tol": 0.1}, R), ({"max_tol": 3}, N)],
    "c4_sigma": [({"largest": 3, "spread": 3}, R), ({"largest": 3, "spread": 1.2}, P),
                 ({"largest": 1.1, "spread": 1.2}, N)],
    "c4_sign": [({"vgg_positive": 0.8, "dln_positive": 0.9}, R), ({"vgg_positive": 0.6, "dln_positive": 0.4}, P),
                ({"vgg_positive": 0.5, "dln_positive": 0.4}, N)],
    "c4_reduction": [({"vgg_gain": 0.3, "dln_gain": 0.5}, R), ({"vgg_gain": 2.4, "dln_gain": 0.5}, P),
                     ({"vgg_gain": 2.4, "dln_gain": 1.5}, N)],
    # Part IV.2: partly when one network's band is taller along random directions (VGG's at both of its LRs)
    "iv2_random": [({"vgg_lo_ratio": 3, "vgg_hi_ratio": 2.5, "dln_ratio": 4}, R),
                   ({"vgg_lo_ratio": 3, "vgg_hi_ratio": 0.5, "dln_ratio": 1.5}, P),
                   ({"vgg_lo_ratio": 1.5, "vgg_hi_ratio": 1.2, "dln_ratio": 0.5}, P),
                   ({"vgg_lo_ratio": 3, "vgg_hi_ratio": 0.9, "dln_ratio": 0.8}, N)],
    "iv2_init": [({"vgg_rate": 1.2}, R), ({"vgg_rate": 1.05}, P), ({"vgg_rate": 0.9}, N)],
    "iv2_resnet_loss": [({"ratio": 3}, R), ({"ratio": 1.5}, P), ({"ratio": 0.7}, N)],
    "iv2_resnet_predictive": [({"ratio": 50}, R), ({"ratio": 5}, P), ({"ratio": 0.5}, N)],
    "iv2_resnet_beta": [({"ratio": 1.5, "iqr_ratio": 1.2}, R), ({"ratio": 1.5, "iqr_ratio": 0.8}, P),
                        ({"ratio": 0.9, "iqr_ratio": 0.8}, N)],
    "iv2_resnet_eos": [({"bn": 1.1}, R), ({"bn": 0.3}, N), ({"bn": 3}, N)],
}

RULES = {rule.key: rule for section in SECTIONS.values() for rule in section.rules}


def test_every_rule_has_cases_reaching_each_of_its_outcomes():
    assert set(CASES) == set(RULES)
    for key, rule in RULES.items():
        reached = {verdict for _, verdict in CASES[key]}
        assert reached == ({R, P, N} if "partly" in rule.rule else {R, N}), key


@pytest.mark.parametrize("key,values,verdict", [(k, v, verdict) for k, cases in CASES.items()
                                                for v, verdict in cases])
def test_rule_reaches_the_verdict(key, values, verdict):
    assert RULES[key].judge(values).verdict == verdict


@pytest.mark.parametrize("key,values,note", [
    ("c22_dln_loss", {"ratio_e6": 2.09, "ratio_e7": 2.8}, "standard ÷ BN final loss at LR 1e-06 2.09 against 2"),
    ("c21_stable", {"ratio": 0.322}, "BN's shift ÷ the standard's 0.322 against 0.333"),
    ("c31_loss", {"vgg_ratio": 0.7, "dln_ratio": 1.04}, "DLN band height standard ÷ BN 1.04 against 1"),
    ("c33_dln_l1", {"bn_over_l1": 1.95}, "BN ÷ l1 final DLN loss 1.95 against 2"),
])
def test_a_deciding_number_near_its_threshold_is_noted(key, values, note):
    assert RULES[key].judge(values).near == (note,)


def test_every_rule_states_its_threshold_and_a_reason():
    for key, rule in RULES.items():
        assert rule.rule.startswith("reproduced if ") and rule.reason and "\n" not in rule.reason, key
