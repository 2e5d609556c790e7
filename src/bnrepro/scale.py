"""Do the verdicts survive scale? Every VGG claim of Sections 2.1, 2.2, 3.1, 3.3 and Part IV.1 judged, by its own
rule, at each width of the ladder (`budgets.LADDER`: 1/16, 1/8 and 1/4 at the `cpu` schedule, the paper's width at
its own) and at both schedules (2,500 steps at `cpu`, 15,000 at `cpu15k` and `paper`), wherever the runs are recorded.

Each claim has one *deciding number* per reading (`DECIDING`): the number its rule compares with a threshold, with
the paper's value where the paper gives one (else the rule's bar for the paper's words). The scale appendix shows
them in one table and one figure, and a sentence per claim says whether the number moves towards the paper's as the
network approaches the paper's size. Nothing here trains: a budget whose runs are not recorded is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .budgets import LADDER, get_budget, width_fraction
from .claims import VERDICTS, Judged, prose_list, short_verdict
from .judge import load_section, unrecorded
from .plan import book_runs_argv
from .plotting import WIDTH
from .records import RunStore
from .sections import SECTIONS
from .sections.beyond_lr import LEAD_BAR, TRAINS_BARS

#: The sections the ladder and the schedule judge (their VGG claims).
SCALE_SECTIONS = ("2.1", "2.2", "3.1", "3.3", "IV.1")
#: The budgets compared, narrowest and shortest first (the ladder plus the 15,000-step rung at 1/8 width).
SCALE_BUDGETS = ("cpu_w16", "cpu", "cpu_w4", "cpu15k", "paper")


@dataclass(frozen=True)
class Deciding:
    """A claim's deciding number: `value` of the claim's measured values, beside the paper's value."""

    what: str  # the number, in words
    value: Callable[[Mapping[str, float]], float]
    paper: float
    paper_what: str  # where `paper` comes from
    log: bool = True  # a ratio (compared on a log axis) rather than a difference
    reading: str = ""  # the rule's reading this number decides ("" for a rule with one)
    sense: str = "≈"  # the claim: the number near `paper` ("≈") or at least it (">=", a bar)


#: Part IV.1's rules are judged under two trains bars; the scale appendix follows the lead one.
LEAD_READING = next(name for name, bar in TRAINS_BARS.items() if bar == LEAD_BAR)


def _ratio(a: float, b: float) -> float:
    """a ÷ b, infinite (or NaN for 0 ÷ 0) where b is 0."""
    return a / b if b else (math.copysign(math.inf, a) if a else math.nan)


def _lp_min(v: Mapping[str, float], tag: str) -> float:
    return min(v[f"{n}{tag}"] for n in ("l1", "l2", "linf"))


#: rule key -> its deciding numbers (one per reading the rule judges).
DECIDING: dict[str, tuple[Deciding, ...]] = {
    "c21_generalise": (
        Deciding("BN − standard test accuracy (points)", lambda v: v["gap"], 3.0, "the paper: 83% − 80%", False,
                 "test accuracy"),
        Deciding("standard − BN train-test gap (points)", lambda v: v["tt_gap_diff"], 1.0,
                 "the rule's bar (the paper gives no training accuracy)", False, "train-test gap", sense=">=")),
    "c21_std05": (Deciding("standard network's final training accuracy at LR 0.5 (%)", lambda v: v["train"], 10.0,
                           "the paper: about 10%", False),),
    "c21_bn05": (Deciding("BN's training accuracy at LR 0.5 ÷ at LR 0.1", lambda v: v["ratio"], 1.0,
                          "the paper: both about 100%"),),
    "c21_faster": (Deciding("standard ÷ BN steps to the common level", lambda v: v["std"] / v["bn"], 2.25,
                            "the paper: about 4.5k ÷ 2k steps"),),
    "c21_noisy": (Deciding("noisy BN − BN final training accuracy (points)", lambda v: v["diff"], 0.0,
                           "the paper: almost exactly like BN", False),),
    "c21_moments": (Deciding("noisy BN's moment jump ÷ the larger other", lambda v: v["ratio"], 10.0,
                             "the rule's bar for Figure 8's order of magnitude", sense=">="),),
    "c21_stable": (Deciding("BN ÷ standard shift of the conv outputs", lambda v: v["ratio"], 1.0,
                            "the paper: about equally stable"),),
    "c21_full": (Deciding("lowest final training accuracy of the three (%)", lambda v: v["lowest"], 100.0,
                          "the paper: about 100%", False),),
    "c21_steps90": (Deciding("BN's steps to 90% training accuracy", lambda v: v["bn"], 2000.0,
                             "the paper: about 2k steps"),),
    "c21_test_level": (Deciding("largest distance from the paper's test accuracies (points)", lambda v: v["off"],
                                0.0, "the paper's 83% and 80%", False),),
    "c22_vgg_scale": (Deciding("largest distance of a VGG median ‖G−G′‖ from 10^0 (decades)",
                               lambda v: max(abs(math.log10(v[f"{n}_{i}"])) for n in ("none", "batch") for i in (5, 10)),
                               0.0, "the paper: ≈10^0", False),),
    "c22_larger": (Deciding("smallest VGG BN ÷ standard median ‖G−G′‖ at LR 0.1", lambda v: min(v["vgg_5_e1"],
                                                                                            v["vgg_10_e1"]),
                            1 / 3, "the rule's bar for \"similar or larger\"", sense=">="),),
    "c31_loss": (
        Deciding("VGG standard ÷ BN loss-band width", lambda v: v["vgg_width_ratio"], 2.0,
                 "the rule's bar for \"far less\"", reading="absolute width", sense=">="),
        Deciding("VGG standard ÷ BN loss-band height in decades", lambda v: v["vgg_ratio"], 2.0,
                 "the rule's bar for \"far less\"", reading="decades", sense=">=")),
    "c31_predictive": (Deciding("VGG standard ÷ BN largest gradient change", lambda v: v["vgg_ratio"], 30.0,
                                "the paper: close to two orders of magnitude (the rule's bar)", sense=">="),),
    "c31_beta": (Deciding("VGG standard ÷ BN median β", lambda v: v["vgg_ratio"], 1.0,
                          "the rule's bar for \"lower\"", sense=">="),),
    "c31_eos": (Deciding("VGG BN's median β ÷ (2/LR)", lambda v: v["vgg_bn"], 1.0, "the paper's plot: ≈20 = 2/0.1"),),
    "c33_train": (Deciding("lowest l_p − BN final training accuracy (points)", lambda v: v["min_gap"], 0.0,
                           "the paper: about as well as BN", False),),
    "c33_shift": (Deciding("smallest l_p ÷ standard distribution shift", lambda v: _lp_min(v, "_vs_std"), 1.2,
                           "the rule's bar for \"larger\"", sense=">="),),
    "c33_gauss": (Deciding("smallest l_p ÷ BN distance from the Gaussian", lambda v: _lp_min(v, "_vs_bn"), 2.0,
                           "the rule's bar for \"no longer Gaussian-like\"", sense=">="),),
    "c33_beta": (Deciding("largest |VGG l_p ÷ BN median β − 1|", lambda v: max(abs(v[f"vgg_{n}_ratio"] - 1) for n in
                                                                              ("l1", "l2", "linf")),
                          0.0, "the paper: near BN's", False),),
    # Part IV.1's VGG claims, by the lead trains bar (its other bar is on the chapter's page)
    "iv1_bn_beta": (Deciding("VGG with BN: slope of log β against log LR", lambda v: v["vgg_slope"], -1.0,
                             "2/LR: β ∝ 1/LR", False, LEAD_READING),),
    "iv1_std_beta": (Deciding("standard VGG: slope of log β against log LR", lambda v: v["vgg_slope"], -1.0,
                              "2/LR: β ∝ 1/LR", False, LEAD_READING),),
    "iv1_sharpness": (Deciding("VGG's median late batch sharpness ÷ (2/LR)", lambda v: v["median"], 1.0,
                               "the papers: at 2/LR", reading=LEAD_READING),),
    "iv1_lr_range": (Deciding("BN's largest training LR ÷ the standard network's", lambda v: _ratio(v["bn_max"],
                                                                                                   v["std_max"]),
                              1.0, "the claim: larger (a ratio above 1)", reading=LEAD_READING, sense=">="),),
    "iv1_gap": (Deciding("median BN − standard test gap where both train ÷ the best-LR gap",
                         lambda v: _ratio(v["common_gap"], v["best_gap"]), 0.0,
                         "the claim: small (the rule's bar: at most 1/2)", False, LEAD_READING),),
}


@dataclass
class Point:
    """One claim's deciding number at one budget: the median over the seeds judged, each seed's value and the
    verdicts (of the number's reading) across them."""

    value: float
    per_seed: dict[int, float]
    verdicts: list[str]

    @property
    def verdict(self) -> str:
        """The verdict most seeds got (ties: the first in `VERDICTS` order)."""
        return max(VERDICTS, key=lambda v: (self.verdicts.count(v), -VERDICTS.index(v)))


def judge_all(seeds: Sequence[int], store: RunStore | None = None) -> dict[str, dict[str, Judged]]:
    """Each scale section judged at each budget whose runs are recorded at the first seed: budget -> number ->
    `Judged` (from the records only)."""
    store = store or RunStore()
    out: dict[str, dict[str, Judged]] = {}
    for budget in SCALE_BUDGETS:
        numbers = get_budget(budget).sections or SCALE_SECTIONS
        found = {n: load_section(n, budget, list(seeds), store=store) for n in SCALE_SECTIONS
                 if n in numbers and not unrecorded(SECTIONS[n].specs, budget, seeds[0], store=store)}
        if found:
            out[budget] = found
    return out


def points(judged: Mapping[str, Mapping[str, Judged]]) -> dict[tuple[str, int], dict[str, Point]]:
    """(rule key, index in `DECIDING[key]`) -> budget -> its `Point`."""
    out: dict[tuple[str, int], dict[str, Point]] = {}
    for budget, sections in judged.items():
        for j in sections.values():
            for i, claim in enumerate(j.first):
                for k, d in enumerate(DECIDING.get(claim.key, ())):
                    at = j.across(i)
                    per_seed = {s: float(d.value(c.values)) for s, c in zip(j.seeds, at)}
                    verdicts = [c.readings.get(d.reading, c.verdict) if d.reading else c.verdict for c in at]
                    out.setdefault((claim.key, k), {})[budget] = Point(float(np.median(list(per_seed.values()))),
                                                                        per_seed, verdicts)
    return out


def label(budget: str) -> str:
    """A budget as a rung: "1/8, 2,500 steps"."""
    b = get_budget(budget)
    return f"{width_fraction(b.vgg_width)}, {b.vgg_steps:,} steps"


def distance(x: float, d: Deciding) -> float:
    """How far `x` is from the paper's value: in decades for a ratio, else plainly."""
    if d.log and x > 0 and d.paper > 0:
        return abs(math.log10(x / d.paper))
    return abs(x - d.paper)


def towards(a: float, b: float, d: Deciding) -> str:
    """How the deciding number's move from `a` to `b` relates to the paper's claim: for a bar (`sense` ">="),
    which side of it each lies on; for a value, nearer or farther (5% of the distance is "about as far")."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return "which cannot be compared with the paper's (a number is not finite)"
    if d.sense == ">=":
        above_a, above_b = a >= d.paper, b >= d.paper
        if above_a == above_b:
            return f"{'above' if above_a else 'below'} the paper's bar ({d.paper:.3g}) at both"
        return f"{'onto' if above_b else 'off'} the paper's side of its bar ({d.paper:.3g})"
    da, db = distance(a, d), distance(b, d)
    if math.isclose(da, db, rel_tol=0.05, abs_tol=1e-12):
        return f"about as far from the paper's {d.paper:.3g} as before"
    return f"{'towards' if db < da else 'away from'} the paper's {d.paper:.3g}"


def sentence(key: str, k: int, row: Mapping[str, Point]) -> str:
    """Whether the deciding number moves towards the paper's value as the network widens (at 2,500 steps) and as
    it trains for longer (at 1/8 width), in words from the recorded points."""
    d = DECIDING[key][k]
    parts = []
    short = [b for b in LADDER if b in row and get_budget(b).vgg_steps == get_budget("cpu").vgg_steps]
    if len(short) >= 2:
        values = [row[b].value for b in short]
        widths = [width_fraction(get_budget(b).vgg_width) for b in short]
        steps = np.diff(values)
        steady = len(values) == 2 or bool(np.all(steps >= 0) or np.all(steps <= 0))
        parts.append(f"at widths {prose_list(widths)} it is {prose_list([f'{v:.3g}' for v in values])}: from "
                     f"{widths[0]} to {widths[-1]}, {towards(values[0], values[-1], d)}"
                     + ("" if steady else " (not steadily: it turns between)"))
    if "cpu" in row and "cpu15k" in row:
        a, b = row["cpu"], row["cpu15k"]
        parts.append(f"from {get_budget('cpu').vgg_steps:,} to {get_budget('cpu15k').vgg_steps:,} steps it moves "
                     f"from {a.value:.3g} to {b.value:.3g}, {towards(a.value, b.value, d)}")
    if "paper" in row:
        parts.append(f"at the paper's size it is {row['paper'].value:.3g}")
    verdicts = {b: p.verdict for b, p in row.items()}
    changes = len(set(verdicts.values())) > 1
    reading = f" (by {d.reading})" if d.reading else ""
    body = "; ".join(parts) if parts else "recorded at one budget only, so nothing can be said about scale yet"
    verdict = ("its verdict changes with scale: " + ", ".join(f"{v} at {label(b)}" for b, v in verdicts.items())
               if changes else f"its verdict is the same wherever recorded ({next(iter(verdicts.values()))})")
    return f"`{key}`{reading}, {d.what}: {body}; {verdict}."


def changes_with_scale(rows: Mapping[tuple[str, int], Mapping[str, Point]]) -> dict[str, str]:
    """rule key -> how its verdict differs between the budgets where it is judged ("" where it does not)."""
    out = {}
    for (key, k), row in rows.items():
        verdicts = {b: p.verdict for b, p in row.items()}
        if len(set(verdicts.values())) > 1:
            d = DECIDING[key][k]
            out[key] = "; ".join(filter(None, [out.get(key, ""), (f"by {d.reading}: " if d.reading else "") + ", ".join(
                f"{short_verdict(v)} at {label(b)}" for b, v in verdicts.items())]))
    return out


def table_markdown(rows: Mapping[tuple[str, int], Mapping[str, Point]]) -> str:
    """One row per claim and deciding number: its value (median over the seeds) and verdict at each budget."""
    budgets = [b for b in SCALE_BUDGETS if any(b in row for row in rows.values())]
    head = "| Rule | Deciding number | Paper | " + " | ".join(label(b) for b in budgets) + " |"
    out = [head, "|---" * (len(budgets) + 3) + "|"]
    for (key, k), row in rows.items():
        d = DECIDING[key][k]
        cells = [f"{row[b].value:.3g} ({short_verdict(row[b].verdict)})" if b in row else "—" for b in budgets]
        what = d.what + (f" (by {d.reading})" if d.reading else "")
        out.append(f"| `{key}` | {what} | {d.paper:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def scale_figure(rows: Mapping[tuple[str, int], Mapping[str, Point]]) -> Figure:
    """One panel per claim's deciding number against the VGG width (log axis), one line per schedule; the paper's
    value dashed; filled markers where the claim is reproduced, hollow otherwise."""
    n = len(rows)
    cols = min(3, n)
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(WIDTH, 2.3 * math.ceil(n / cols) + 0.5),
                             squeeze=False, layout="constrained")
    for ax, ((key, k), row) in zip(axes.flat, rows.items()):
        d = DECIDING[key][k]
        for steps, style, color in ((get_budget("cpu").vgg_steps, "o-", "C0"), (get_budget("paper").vgg_steps, "s--", "C1")):
            bs = [b for b in SCALE_BUDGETS if b in row and get_budget(b).vgg_steps == steps]
            if not bs:
                continue
            x = [get_budget(b).vgg_width for b in bs]
            y = [row[b].value for b in bs]
            line, = ax.plot(x, y, style, color=color, lw=1, ms=4, label=f"{steps:,} steps", mfc="none")
            filled = [(xi, yi) for xi, yi, b in zip(x, y, bs) if row[b].verdict == VERDICTS[0]]
            if filled:
                ax.plot(*zip(*filled), style[0], color=line.get_color(), ms=4)
        ax.axhline(d.paper, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        if d.log and all(p.value > 0 for p in row.values()):
            ax.set_yscale("log")
        reading = d.reading.removeprefix("the ").replace(" trains bar", " bar")  # a title fits a third of the page
        ax.set_title(f"{key}" + (f" ({reading})" if reading else ""), fontsize=10)
        ax.set_xlabel("VGG width (paper = 1)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2)
    return fig


def costs_markdown(store: RunStore | None = None) -> str:
    """What one VGG run of each scale budget cost, from its records' wall times: per normalisation, the number of
    runs recorded and the median and range of their wall times, and the devices they ran on."""
    store = store or RunStore()
    rows = ["| Budget | Rung | Normalisation | Runs | Wall time per run (median, range) | Device |",
            "|---|---|---|---|---|---|"]
    for budget in SCALE_BUDGETS:
        vgg = [r for r in store.all(budget) if r.config["model"].startswith("vgg")]
        if not vgg:
            rows.append(f"| `{budget}` | {label(budget)} | — | 0 | not recorded here | |")
            continue
        for norm in dict.fromkeys(r.config["norm"] for r in vgg):
            t = [r.summary["wall_time_s"] / 60 for r in vgg if r.config["norm"] == norm]
            devices = ", ".join(sorted({r.env["device_name"] for r in vgg if r.config["norm"] == norm}))
            rows.append(f"| `{budget}` | {label(budget)} | {norm} | {len(t)} | {np.median(t):.0f} min "
                        f"({min(t):.0f}-{max(t):.0f}) | {devices} |")
    return "\n".join(rows)


def schedules_markdown(long: Judged, short: Judged) -> str:
    """A section's claims at two budgets (`Judged`s of one section, e.g. 15,000 and 2,500 steps): each claim's
    verdict across seeds at both, and whether it changed at a seed judged at both; a claim only one budget judges
    (a rule with `min_steps`) says so."""
    def by_key(judged: Judged) -> dict[str, tuple[str, dict[int, str]]]:
        return {c.key: (judged.headline(i), {s: judged.claims[s][i].verdict for s in judged.seeds})
                for i, c in enumerate(judged.first)}

    def steps(judged: Judged) -> int:
        return max(r.config["steps"] for r in judged.runs[judged.seed].values() if r.config["model"] != "dln")

    a, b = by_key(short), by_key(long)
    rows = [f"| Rule | Claim | `{short.budget}` ({steps(short):,} steps) | `{long.budget}` ({steps(long):,} steps) "
            "| Changed |", "|---|---|---|---|---|"]
    for rule in long.section.rules:
        left = a.get(rule.key, ("not judged: needs the paper's schedule", {}))
        right = b.get(rule.key, ("—", {}))
        flipped = [s for s in sorted(set(left[1]) & set(right[1])) if left[1][s] != right[1][s]]
        changed = ("—" if not left[1] or not right[1] else
                   f"**yes**, at seed{'s' if len(flipped) > 1 else ''} {', '.join(map(str, flipped))}" if flipped
                   else "no")
        rows.append(f"| `{rule.key}` | {rule.paper.replace('|', chr(92) + '|')} | {left[0]} | {right[0]} | {changed} |")
    return "\n".join(rows)


def schedule_section(number: str, judged: Judged, seeds: Sequence[int], store: RunStore | None = None) -> str:
    """A chapter's paragraph on the paper's schedule: where its page shows `cpu15k`, its claims there beside the
    `cpu` budget's (`schedules_markdown`); elsewhere, whether `cpu15k` has recorded the section and, if not, the
    command that records it."""
    store = store or RunStore()
    long_budget, short_budget = "cpu15k", "cpu"
    steps = get_budget(long_budget).vgg_steps
    if judged.budget == long_budget:
        short = load_section(number, short_budget, list(seeds), store=store)
        return (f"This page shows the `{long_budget}` budget, the paper's {steps:,} steps. Each claim at both "
                f"schedules:\n\n" + schedules_markdown(judged, short))
    missing = unrecorded(SECTIONS[number].specs, long_budget, seeds[0], store=store)
    if missing:
        argv = " ".join(book_runs_argv(long_budget, list(seeds), [number], "PATH"))
        return (f"The paper's {steps:,}-step schedule (`{long_budget}`) has not recorded this section's runs yet "
                f"({len(missing)} missing at seed {seeds[0]}); `python -m bnrepro {argv}` records them, and the "
                "published build then shows them here.")
    return (f"`{long_budget}` has recorded this section's runs; this page shows `{judged.budget}` because its budget "
            "parameter asks for it (`best` shows the paper's schedule).")


def scale_cells(rows: Mapping[tuple[str, int], Mapping[str, Point]]) -> dict[str, str]:
    """rule key -> a table cell saying whether its verdict changes with scale, over every rung that judged it."""
    changes, out = changes_with_scale(rows), {}
    for key in dict.fromkeys(k for k, _ in rows):
        budgets = [b for b in SCALE_BUDGETS if any(b in row for (k, _), row in rows.items() if k == key)]
        if key in changes:
            out[key] = f"**changes**: {changes[key]}"
        elif len(budgets) > 1:
            out[key] = "same at " + "; ".join(label(b) for b in budgets)
        else:
            out[key] = f"judged at {label(budgets[0])} only"
    return out
