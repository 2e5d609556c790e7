"""The paper's claims with our measured numbers and a verdict, and the provenance of the runs behind a page.

Every verdict is computed from records by a rule written next to the claim, so the book never types a number or
a verdict by hand. A chapter glues each claim's values into its prose and shows `claims_markdown` at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np

from .budgets import BUDGET_ORDER, BUDGETS, Budget, get_budget
from .experiments import Spec, get_run, make_config, resolve_budget
from .figures import activation_arrays, smooth
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, Claim, Section, _cell, claims_markdown, glue_claims  # noqa: F401
from .records import RunRecord, RunStore

def _train_acc(rec: RunRecord) -> float:
    return 0.0 if rec.status == "diverged" else rec.summary["final_train_acc"]


def _test_acc(rec: RunRecord) -> float:
    return 0.0 if rec.status == "diverged" else rec.summary["final_test_acc"]


def steps_to_reach(rec: RunRecord, level: float) -> int | None:
    """First step at which the smoothed training accuracy reaches `level` (None if never)."""
    y = smooth(rec["train_acc"], max(1, rec.config["steps"] // 100))
    hit = np.nonzero(y >= level)[0]
    return int(hit[0]) + 1 if len(hit) else None


def unit_jump(rec: RunRecord, layers: Sequence[int], point: str = "post") -> float:
    """Median over steps of |mu_{t+1} - mu_t| of the followed unit, averaged over `layers` (Figure 8a)."""
    k = [list(rec["act_layers"]).index(layer) for layer in layers]
    mu = activation_arrays(rec, point)[1][:, k, 0].astype(float)
    return float(np.mean(np.median(np.abs(np.diff(mu, axis=0)), axis=0)))


def relative_drift(rec: RunRecord, layers: Sequence[int], point: str = "post") -> float:
    """Median over steps of |mu_{t+1} - mu_t| / sigma_t, averaged over `layers`: how unstable a unit's distribution
    is relative to its own spread (Figure 1c's "stability")."""
    k = [list(rec["act_layers"]).index(layer) for layer in layers]
    m = activation_arrays(rec, point)[1][:, k, :].astype(float)
    rel = np.abs(np.diff(m[:, :, 0], axis=0)) / np.sqrt(np.maximum(m[:-1, :, 1], 1e-12))
    return float(np.mean(np.median(rel, axis=0)))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def claims_sec21(runs: dict[tuple[str, str, float], RunRecord]) -> list[Claim]:
    """Section 2.1's claims from VGG runs: none/batch at LR 0.1 and 0.5, noisy BN at 0.1."""
    std, bn = runs[("vgg", "none", 0.1)], runs[("vgg", "batch", 0.1)]
    std5, bn5, noisy = runs[("vgg", "none", 0.5)], runs[("vgg", "batch", 0.5)], runs[("vgg", "noisy", 0.1)]
    out = []

    gap = _test_acc(bn) - _test_acc(std)
    out.append(Claim(
        "c21_generalise", "BatchNorm also generalises better: test accuracy 83% with BN vs 80% without (LR 0.1).",
        f"{_pct(_test_acc(bn))} with BN vs {_pct(_test_acc(std))} without ({100 * gap:+.1f} points)",
        REPRODUCED if gap >= 0.01 else PARTLY if gap > 0 else NOT_REPRODUCED,
        "reproduced if BN's final test accuracy beats the standard network's by at least 1 point",
        {"bn": 100 * _test_acc(bn), "std": 100 * _test_acc(std), "gap": 100 * gap}))

    ok = std5.status == "diverged" or _train_acc(std5) < 0.2
    what = (f"diverged at step {std5.summary['diverged_at']}" if std5.status == "diverged"
            else f"final training accuracy {_pct(_train_acc(std5))}")
    out.append(Claim(
        "c21_std05", "The standard network does not train at LR 0.5 (about 10% accuracy throughout).", what,
        REPRODUCED if ok else NOT_REPRODUCED,
        "reproduced if the run diverges or ends below 20% training accuracy",
        {"train": 100 * _train_acc(std5), "test": 100 * _test_acc(std5)}))

    ratio = _train_acc(bn5) / max(_train_acc(bn), 1e-9)
    out.append(Claim(
        "c21_bn05", "With BatchNorm the network trains at LR 0.5 (about 100% training, 80% test accuracy).",
        f"{_pct(_train_acc(bn5))} training, {_pct(_test_acc(bn5))} test accuracy at LR 0.5 "
        f"({_pct(_train_acc(bn))} training at LR 0.1)",
        REPRODUCED if ratio >= 0.9 else PARTLY if ratio >= 0.5 else NOT_REPRODUCED,
        "reproduced if BN at LR 0.5 ends with at least 90% of BN's LR-0.1 training accuracy (partly: 50%)",
        {"train": 100 * _train_acc(bn5), "test": 100 * _test_acc(bn5)}))

    level = 0.9 * min(_train_acc(std), _train_acc(bn))
    s_bn, s_std = steps_to_reach(bn, level), steps_to_reach(std, level)
    faster = s_bn is not None and (s_std is None or s_bn < s_std)
    out.append(Claim(
        "c21_faster", "BatchNorm trains faster (BN reaches ~90% training accuracy in ~2k steps, standard in ~4-5k).",
        f"to reach {_pct(level)} training accuracy: {s_bn} steps with BN, {s_std} without",
        REPRODUCED if faster else NOT_REPRODUCED,
        "reproduced if BN reaches 90% of the lower final training accuracy of the two (LR 0.1) in fewer steps",
        {"level": 100 * level, "bn": s_bn or -1, "std": s_std or -1}))

    diff = _train_acc(noisy) - _train_acc(bn)
    s_noisy = steps_to_reach(noisy, level)
    beats_std = s_noisy is not None and (s_std is None or s_noisy < s_std)
    close = abs(diff) <= 0.05
    out.append(Claim(
        "c21_noisy", 'Noisy BatchNorm trains almost exactly like BatchNorm, and far faster than the standard network.',
        f"final training accuracy {_pct(_train_acc(noisy))} (noisy BN) vs {_pct(_train_acc(bn))} (BN), "
        f"{s_noisy} steps to {_pct(level)} (standard: {s_std})",
        REPRODUCED if close and beats_std else PARTLY if close or beats_std else NOT_REPRODUCED,
        "reproduced if noisy BN ends within 5 points of BN and reaches the level above before the standard network",
        {"train": 100 * _train_acc(noisy), "diff": 100 * diff}))

    layers = (2, 9, 13)
    j_noisy, j_bn, j_std = (unit_jump(r, layers) for r in (noisy, bn, std))
    out.append(Claim(
        "c21_moments", "Noisy BN's activation moments jump by up to about 1 between steps; the standard network's "
                       "change little and BN's hardly at all (Figure 8).",
        f"median step-to-step |Δ mean| (layers 2, 9, 13): noisy BN {j_noisy:.3g}, BN {j_bn:.3g}, standard {j_std:.3g}",
        REPRODUCED if j_noisy > 10 * max(j_bn, j_std) else PARTLY if j_noisy > max(j_bn, j_std) else NOT_REPRODUCED,
        "reproduced if noisy BN's typical jump is over 10x both others' (partly: larger than both)",
        {"noisy": j_noisy, "bn": j_bn, "std": j_std}))

    d_std, d_bn = relative_drift(std, (3, 11)), relative_drift(bn, (3, 11), "pre")
    d_bn_post = relative_drift(bn, (3, 11), "post")
    r = d_bn / max(d_std, 1e-12)
    out.append(Claim(
        "c21_stable", "Although BN trains much better, the layer-input distributions of the two networks evolve "
                      "about equally stably (Figure 1c).",
        f"median step-to-step shift of a unit's mean, in units of its std (layers 3, 11), at the conv output: "
        f"BN {d_bn:.3g}, standard {d_std:.3g} (ratio {r:.2g}); after BatchNorm itself: {d_bn_post:.3g}",
        REPRODUCED if 1 / 3 <= r <= 3 else NOT_REPRODUCED,
        "reproduced if the conv outputs of the two networks shift within a factor of 3 of each other",
        {"bn": d_bn, "std": d_std, "ratio": r, "bn_post": d_bn_post}))
    return out


def claims_sec22(runs: dict[tuple[str, str, float], RunRecord]) -> list[Claim]:
    """Section 2.2's claims (Figure 3) from VGG runs at LR 0.1 and 0.01 and DLN runs at 1e-6 and 1e-7, none/batch.

    ICS numbers are medians over the measured steps (`figures_ics.ics_median`); a value's name ends in `_e<k>` for
    LR 10^-k, e.g. `l2_9_e7` is layer #9's median ||G - G'|| at LR 1e-7.
    """
    from .figures_ics import ics_median

    def e(lr: float) -> str:
        return f"e{round(-np.log10(lr))}"

    lrs = {"vgg": (0.1, 0.01), "dln": (1e-6, 1e-7)}
    layers = {m: runs[(m, "none", lrs[m][0])].config["ics_layers"] for m in lrs}
    keys = [(m, n, lr, i) for m in lrs for n in ("none", "batch") for lr in lrs[m] for i in layers[m]]
    l2 = {k: ics_median(runs[k[:3]], k[3]) for k in keys}
    cos = {k: ics_median(runs[k[:3]], k[3], "cos") for k in keys}
    vl, dl = layers["vgg"], layers["dln"]
    out = []

    near = {n: all(0.1 <= l2["vgg", n, 0.1, i] <= 10 for i in vl) for n in ("none", "batch")}
    out.append(Claim(
        "c22_vgg_scale", "At LR 0.1 both VGG networks sit at ‖G−G′‖ ≈ 10^0 (layers #5 and #10, Figure 3a).",
        "median ‖G−G′‖ at LR 0.1: " + "; ".join(
            f"layer #{i}: standard {l2['vgg', 'none', 0.1, i]:.3g}, BN {l2['vgg', 'batch', 0.1, i]:.3g}"
            for i in vl),
        REPRODUCED if all(near.values()) else PARTLY if any(near.values()) else NOT_REPRODUCED,
        "reproduced if all four medians lie within a decade of 1 (0.1 to 10); partly if one network's do",
        {f"{n}_{i}": l2["vgg", n, 0.1, i] for n in ("none", "batch") for i in vl}))

    ratio = {(m, lr, i): l2[m, "batch", lr, i] / max(l2[m, "none", lr, i], 1e-30)
             for m in lrs for lr in lrs[m] for i in layers[m]}
    n_ok = sum(r >= 1 / 3 for r in ratio.values())
    spread = {f"{m}_{name}": f(r for (mm, _, _), r in ratio.items() if mm == m) for m in lrs
              for name, f in (("min", min), ("max", max))}
    out.append(Claim(
        "c22_larger", "Measured by Definition 2.1, BN networks have similar or larger ICS than standard ones "
                      "(Figure 3, both networks, both LRs).",
        "median ‖G−G′‖ with BN ÷ without: " + "; ".join(
            f"{m.upper()} LR {lr:g} layer #{i}: {r:.3g}" for (m, lr, i), r in ratio.items()),
        REPRODUCED if n_ok == len(ratio) else PARTLY if n_ok else NOT_REPRODUCED,
        "reproduced if for every network, LR and layer BN's median is at least 1/3 of the standard network's "
        "(similar: within a factor 3; or larger); partly if for some",
        {f"{m}_{i}_{e(lr)}": r for (m, lr, i), r in ratio.items()} | spread))

    def dln_values(n: str) -> dict[str, float]:
        return {f"{name}_{i}_{e(lr)}": d["dln", n, lr, i] for name, d in (("l2", l2), ("cos", cos))
                for lr in lrs["dln"] for i in dl}

    def dln_ours(n: str, lr: float) -> str:
        return f"LR {lr:g}: " + ", ".join(
            f"#{i} ‖G−G′‖ {l2['dln', n, lr, i]:.3g}, cos {cos['dln', n, lr, i]:.3f}" for i in dl)

    checks = [all(1 <= l2["dln", "none", 1e-7, i] <= 100 for i in dl),
              all(cos["dln", "none", 1e-7, i] >= 0.95 for i in dl),
              all(cos["dln", "none", 1e-6, i] >= 0.95 for i in dl)]
    out.append(Claim(
        "c22_dln_std", "Without BN the DLN has almost no ICS (Figure 3b; at LR 1e-7 ‖G−G′‖ ≈ 10^1 and "
                       "cos ≈ 1).",
        "standard DLN, medians: " + "; ".join(dln_ours("none", lr) for lr in (1e-7, 1e-6)),
        REPRODUCED if all(checks) else PARTLY if any(checks) else NOT_REPRODUCED,
        "reproduced if at LR 1e-7 both layers' median ‖G−G′‖ lie within a decade of 10 (1 to 100) and their "
        "median cosines are at least 0.95, and at LR 1e-6 the median cosines are too; partly if some of these hold",
        dln_values("none")))

    lower_cos = all(cos["dln", "batch", 1e-7, i] <= cos["dln", "none", 1e-7, i] - 0.2 for i in dl)
    larger_l2 = all(l2["dln", "batch", 1e-7, i] >= 10 * l2["dln", "none", 1e-7, i] for i in dl)
    out.append(Claim(
        "c22_dln_bn", "With BN, G and G′ of the DLN are far less correlated: ‖G−G′‖ ≈ 10^3 and the cosine "
                      "fluctuates (LR 1e-7, Figure 3b).",
        "BN DLN, medians: " + dln_ours("batch", 1e-7),
        REPRODUCED if lower_cos and larger_l2 else PARTLY if lower_cos or larger_l2 else NOT_REPRODUCED,
        "reproduced if at LR 1e-7 and both layers BN's median cosine is at least 0.2 below the standard network's "
        "and its median ‖G−G′‖ at least 10× the standard's; partly if one of the two holds",
        dln_values("batch")))

    loss = {(n, lr): runs[("dln", n, lr)].summary["final_train_loss"] if runs[("dln", n, lr)].status == "completed"
            else float("inf") for n in ("none", "batch") for lr in lrs["dln"]}
    vs_paper = [loss[k] / v for k, v in {("none", 1e-6): 1.6e3, ("batch", 1e-6): 5e2, ("none", 1e-7): 4e3,
                                         ("batch", 1e-7): 7e2}.items()]
    wins = [loss["batch", lr] < loss["none", lr] for lr in lrs["dln"]]
    out.append(Claim(
        "c22_dln_loss", "Yet BN reaches a much lower DLN training loss: ≈5e2 vs ≈1.6e3 at LR 1e-6 and ≈7e2 vs "
                        "≈4e3 at LR 1e-7.",
        "; ".join(f"LR {lr:g}: BN {loss['batch', lr]:.3g}, standard {loss['none', lr]:.3g} "
                  f"({loss['none', lr] / loss['batch', lr]:.2g}× higher)" for lr in lrs["dln"]),
        REPRODUCED if all(wins) else PARTLY if any(wins) else NOT_REPRODUCED,
        "reproduced if BN's final training loss is below the standard network's at both LRs; partly if at one",
        {f"{n}_{e(lr)}": loss[n, lr] for n in ("none", "batch") for lr in lrs["dln"]}
        | {f"ratio_{e(lr)}": loss["none", lr] / loss["batch", lr] for lr in lrs["dln"]}
        | {"vs_paper_min": min(vs_paper), "vs_paper_max": max(vs_paper)}))
    return out


def claims_sec31(runs: dict[tuple[str, str, float], RunRecord]) -> list[Claim]:
    """Section 3.1's claims (Figures 4 and 10) from the landscape probes of VGG at LR 0.1 and the DLN at LR 1e-6,
    none/batch. The statistics are `figures_landscape.landscape_summary`'s, taken over all probed steps; a value's
    name is `<model>_<std|bn|ratio>`, the ratio being standard ÷ BN (for `c31_eos`: median β ÷ (2/LR))."""
    from .figures_landscape import landscape_summary

    lrs, names = {"vgg": 0.1, "dln": 1e-6}, {"vgg": "VGG", "dln": "DLN"}
    s = {(m, n): landscape_summary(runs[(m, n, lr)]) for m, lr in lrs.items() for n in ("none", "batch")}

    def compare(stat: str, tag: str = "") -> tuple[str, dict[str, float]]:
        """`ours` text and values `<model>_<tag><std|bn|ratio>` of a statistic, the ratio being standard ÷ BN."""
        values = {}
        for m in lrs:
            std, bn = s[m, "none"][stat], s[m, "batch"][stat]
            values |= {f"{m}_{tag}std": std, f"{m}_{tag}bn": bn, f"{m}_{tag}ratio": std / max(bn, 1e-30)}
        text = "; ".join(f"{names[m]}: standard {values[f'{m}_{tag}std']:.3g}, BN {values[f'{m}_{tag}bn']:.3g} "
                         f"(ratio {values[f'{m}_{tag}ratio']:.3g})" for m in lrs)
        return text, values

    def verdict(ok: list[bool], some: list[bool]) -> str:
        return REPRODUCED if all(ok) else PARTLY if any(some) else NOT_REPRODUCED

    out = []
    text, v = compare("band_width")
    ratios = [v[f"{m}_ratio"] for m in lrs]
    _, dec = compare("band_decades", "decades_")
    out.append(Claim(
        "c31_loss", "With BN the loss varies far less along the gradient (it is more Lipschitz): without it the loss "
                    "spans a wide range along the gradient, especially early in training (VGG, Figure 4a; DLN, "
                    "Figure 10a).",
        "median width of the loss band (max − min over the step sizes): " + text + "; relative to the loss, its "
        "median height in decades (log10 max ÷ min): " + ", ".join(
            f"{names[m]} standard {dec[f'{m}_decades_std']:.3g}, BN {dec[f'{m}_decades_bn']:.3g}" for m in lrs),
        verdict([r >= 2 for r in ratios], [r > 1 for r in ratios]),
        "reproduced if the standard network's median band width is at least twice BN's in both networks; partly "
        "if it is wider in one", v | dec))

    text, v = compare("gd_max")
    ratios = [v[f"{m}_ratio"] for m in lrs]
    med = {f"{m}_median_ratio": s[m, "none"]["gd_median"] / max(s[m, "batch"]["gd_median"], 1e-30) for m in lrs}
    out.append(Claim(
        "c31_predictive", "Gradients are more predictive with BN; the gradient change along the gradient differs by "
                          "\"close to two orders of magnitude\" (VGG: standard spikes to ≈250, BN ≈10-40, Figure 4b; "
                          "DLN: ≈1e16 vs ≈1e6, Figure 10b).",
        "largest gradient change ‖g_t − ∇L(w_t − ηg_t)‖ over all probed steps and step sizes: " + text
        + "; ratio of the medians over steps: " + ", ".join(f"{names[m]} {med[f'{m}_median_ratio']:.3g}" for m in lrs),
        verdict([r >= 30 for r in ratios], [r > 1 for r in ratios]),
        "reproduced if the standard network's largest gradient change is at least 30× BN's (close to two orders "
        "of magnitude) in both networks; partly if it is larger in one", v | med))

    (_, v), (_, iqr), (_, top) = compare("beta_median"), compare("beta_iqr", "iqr_"), compare("beta_max", "max_")
    checks = [v[f"{m}_ratio"] > 1 for m in lrs] + [iqr[f"{m}_iqr_ratio"] > 1 for m in lrs]
    out.append(Claim(
        "c31_beta", "BN's effective β-smoothness is lower and flat (VGG: BN ≈20 throughout, standard ≈5-45 and "
                    "spiky, Figure 4c; DLN: BN ≈1e6, standard up to ≈1e15, Figure 10c).",
        "; ".join(f"{names[m]}: median β standard {v[f'{m}_std']:.3g}, BN {v[f'{m}_bn']:.3g}; interquartile "
                  f"ratio standard {iqr[f'{m}_iqr_std']:.3g}, BN {iqr[f'{m}_iqr_bn']:.3g}; largest standard "
                  f"{top[f'{m}_max_std']:.3g}, BN {top[f'{m}_max_bn']:.3g}" for m in lrs),
        REPRODUCED if all(checks) else PARTLY if sum(checks) >= 2 else NOT_REPRODUCED,
        "reproduced if in both networks BN's median β is lower and its interquartile ratio (75th ÷ 25th "
        "percentile over steps) smaller than the standard network's; partly if two of these four hold",
        v | iqr | top))

    eos = {f"{m}_{k}": s[m, n]["beta_median"] * lr / 2 for m, lr in lrs.items() for n, k in (("none", "std"),
                                                                                              ("batch", "bn"))}
    eos |= {f"{m}_two_over_lr": 2 / lr for m, lr in lrs.items()}
    near = [0.5 <= eos[f"{m}_bn"] <= 2 for m in lrs]
    out.append(Claim(
        "c31_eos", "*Our observation, not a claim of the paper:* in the paper's plots BN's effective β sits near "
                   "2/LR, the edge-of-stability value (≈20 = 2/0.1 in Figure 4c, ≈1e6 ~ 2/1e-6 in Figure 10c).",
        "median β ÷ (2/LR): " + "; ".join(f"{names[m]}: BN {eos[f'{m}_bn']:.3g}, standard {eos[f'{m}_std']:.3g}"
                                         for m in lrs),
        verdict(near, near),
        "reproduced if BN's median β lies within a factor 2 of 2/LR in both networks; partly if in one", eos))
    return out


SECTIONS = {
    "2.1": Section("2.1", "Does BatchNorm's performance stem from controlling internal covariate shift?",
                   "chapters/sec21_performance",
                   (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("vgg", "none", 0.5),
                    Spec("vgg", "batch", 0.5), Spec("vgg", "noisy", 0.1)), claims_sec21),
    "2.2": Section("2.2", "Is BatchNorm reducing internal covariate shift?", "chapters/sec22_ics",
                   (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("vgg", "none", 0.01),
                    Spec("vgg", "batch", 0.01), Spec("dln", "none", 1e-6), Spec("dln", "batch", 1e-6),
                    Spec("dln", "none", 1e-7), Spec("dln", "batch", 1e-7)), claims_sec22),
    "3.1": Section("3.1", "The smoothing effect of BatchNorm", "chapters/sec31_smoothing",
                   (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("dln", "none", 1e-6),
                    Spec("dln", "batch", 1e-6)), claims_sec31),
}


def _section_link(number: str) -> str:
    """A link to a section's chapter from the book's root, so it works on a page in any folder."""
    return f"[{number}](/{SECTIONS[number].doc}.ipynb)"


def load_section(number: str, budget: str, seeds: Sequence[int], data: str | None = None,
                 device: str | None = None) -> tuple[str, dict[tuple[str, str, float], RunRecord]]:
    """The budget used ("best" resolved) and the section's runs of the first seed, keyed (model, norm, lr);
    runs that are not recorded are trained and stored."""
    section = SECTIONS[number]
    used = resolve_budget(budget, list(section.specs), list(seeds))
    return used, _section_runs(section, used, seeds[0], data, device)


def _section_runs(section: Section, budget: str, seed: int, data, device) -> dict[tuple[str, str, float], RunRecord]:
    return {(s.model, s.norm, s.lr): get_run(s, budget, seed, data=data, device=device) for s in section.specs}


def claims_by_seed(budget: str, seeds: Sequence[int], data: str | None = None,
                   device: str | None = None) -> dict[str, tuple[str, list[list[Claim]]]]:
    """For every section: the budget used (the most faithful with every seed recorded, for "best") and its claims
    computed separately on each seed's runs (missing runs are trained and stored)."""
    out = {}
    for number, section in SECTIONS.items():
        used = resolve_budget(budget, list(section.specs), list(seeds))
        out[number] = used, [section.claims(_section_runs(section, used, seed, data, device)) for seed in seeds]
    return out


def seed_agreement(by_seed: dict[str, tuple[str, list[list[Claim]]]]) -> tuple[int, int]:
    """(claims whose verdict is the same at every seed, claims in all)."""
    same = [len({claims[i].verdict for claims in per_seed}) == 1
            for _, per_seed in by_seed.values() for i in range(len(per_seed[0]))]
    return sum(same), len(same)


_SHORT = {REPRODUCED: "yes", PARTLY: "partly", NOT_REPRODUCED: "no"}


def seeds_markdown(by_seed: dict[str, tuple[str, list[list[Claim]]]], seeds: Sequence[int]) -> str:
    """A table of every claim's verdict at each seed (yes / partly / no), then what was measured at each seed,
    claim by claim."""
    head = "| Section | The paper says | " + " | ".join(f"Seed {s}" for s in seeds) + " | Across seeds |"
    rows, details = [head, "|---" * (len(seeds) + 3) + "|"], []
    for number, (used, per_seed) in by_seed.items():
        details.append(f"### Section {number} at the `{used}` budget\n")
        for i, claim in enumerate(per_seed[0]):
            verdicts = [claims[i].verdict for claims in per_seed]
            across = f"**{verdicts[0]}** at every seed" if len(set(verdicts)) == 1 else "**mixed**: " + ", ".join(
                f"{verdicts.count(v)} {_SHORT[v]}" for v in _SHORT if v in verdicts)
            paper = _cell(claim.paper)
            rows.append(f"| {_section_link(number)} `{used}` | {paper} | "
                        + " | ".join(_SHORT[v] for v in verdicts) + f" | {across} |")
            details.append(f"- {paper}")
            details += [f"  - seed {s}: {claims[i].ours} ({claims[i].verdict})" for s, claims in zip(seeds, per_seed)]
        details.append("")
    return "\n".join(rows + [""] + details)


def status_markdown(budget: str, seeds: Sequence[int], data: str | None = None, device: str | None = None) -> str:
    """The book's replication-status table: every section's claims, the budget checked at and the verdict."""
    rows = ["| Section | Claim | Budget | Verdict |", "|---|---|---|---|"]
    for number, section in SECTIONS.items():
        used, runs = load_section(number, budget, seeds, data, device)
        for c in section.claims(runs):
            rows.append(f"| {_section_link(number)} | {_cell(c.paper)} | {used} | **{c.verdict}** |")
    return "\n".join(rows)


def budgets_markdown() -> str:
    """Every budget's settings side by side, read from `bnrepro.budgets`, then each budget's description."""
    names = [f.name for f in fields(Budget) if f.name not in ("name", "description")]
    rows = ["| setting | " + " | ".join(f"`{b}`" for b in BUDGET_ORDER) + " |", "|---" * (len(BUDGET_ORDER) + 1) + "|"]
    rows += [f"| `{n}` | " + " | ".join(str(getattr(BUDGETS[b], n)) for b in BUDGET_ORDER) + " |" for n in names]
    rows += ["", *(f"- `{b}`: {BUDGETS[b].description}" for b in BUDGET_ORDER)]
    return "\n".join(rows)


def glue_setup(used: str, data_source: str) -> None:
    """Glue what every chapter says about its setup: the budget used and its sizes, and the data's source."""
    from myst_nb import glue

    b = get_budget(used)
    for name, value in {"budget": used, "arch": f"{b.vgg_arch.upper()} at width ×{b.vgg_width:g}",
                        "batch": b.vgg_batch_size, "vgg_steps": b.vgg_steps, "vgg_every": b.vgg_probe_every,
                        "dln_steps": b.dln_steps, "dln_every": b.dln_probe_every, "dln_samples": b.dln_samples,
                        "data_source": data_source}.items():
        glue(name, value, display=False)


def provenance_markdown(records: Sequence[RunRecord]) -> str:
    """Which runs a page's figures come from: config, budget, status, device, wall time, then the data, code
    version, commit and library versions behind them."""
    rows = ["| Run | Budget | Seed | Steps | Status | Device | Wall time |", "|---|---|---|---|---|---|---|"]
    for r in records:
        c = r.config
        run = c["model"] + (f" ×{c['width']:g}" if c["model"] != "dln" else "") + f", {c['norm']}, LR {c['lr']:g}"
        rows.append(f"| {run} | {c['budget']} | {c['seed']} | {r.summary['steps_done']}/{c['steps']} | {r.status} "
                    f"| {r.env['device_name']} | {r.summary['wall_time_s']:.0f} s |")

    def distinct(values) -> str:
        return ", ".join(dict.fromkeys(str(v) for v in values))

    def commit(env: dict) -> str:
        return (env.get("git_commit") or "unknown")[:10] + (" (modified)" if env.get("git_dirty_src") else "")

    commits = (commit(r.env) + (f", resumed under {commit(r.env['resumed_under'])}" if "resumed_under" in r.env
                                else "") for r in records)
    rows += ["", f"- Data: {distinct(r.summary.get('data_source', '') for r in records)}",
             f"- bnrepro {distinct(r.env['bnrepro'] for r in records)}, commit {distinct(commits)}; "
             f"torch {distinct(r.env['torch'] for r in records)}, Python {distinct(r.env['python'] for r in records)}"]
    return "\n".join(rows)


def budget_costs_markdown(specs: Sequence[Spec], seeds: Sequence[int], store: RunStore | None = None) -> str:
    """How long this page's runs took at each budget, from the records (or that a budget has no records yet)."""
    store = store or RunStore()
    rows = ["| Budget | Runs recorded | Total wall time | Device |", "|---|---|---|---|"]
    for name in BUDGET_ORDER:
        kinds = ("cifar10", "synthetic") if name == "smoke" else ("cifar10",)
        recs = [next((r for k in kinds if (r := store.load(make_config(s, name, seed, k).to_dict()))), None)
                for s in specs for seed in seeds]
        found = [r for r in recs if r is not None]
        if not found:
            rows.append(f"| {name} | 0 of {len(recs)} | not recorded here | |")
            continue
        total = sum(r.summary["wall_time_s"] for r in found)
        devices = ", ".join(sorted({r.env["device_name"] for r in found}))
        rows.append(f"| {name} | {len(found)} of {len(recs)} | {total / 60:.1f} min | {devices} |")
    return "\n".join(rows)
