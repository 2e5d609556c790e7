"""The paper's claims with our measured numbers and a verdict, and the provenance of the runs behind a page.

Every verdict is computed from records by a rule written next to the claim, so the book never types a number or
a verdict by hand. A chapter glues each claim's values into its prose and shows `claims_markdown` at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .budgets import BUDGET_ORDER
from .experiments import Spec, get_run, make_config, resolve_budget
from .figures import smooth
from .records import RunRecord, RunStore

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"


@dataclass
class Claim:
    key: str  # glue prefix, e.g. "c21_generalise"
    paper: str  # what the paper says, with its numbers
    ours: str  # what we measured, formatted
    verdict: str
    rule: str  # how the verdict was decided
    values: dict = field(default_factory=dict)  # numbers to glue as f"{key}_{name}"


def _train_acc(rec: RunRecord) -> float:
    return 0.0 if rec.status == "diverged" else rec.summary["final_train_acc"]


def _test_acc(rec: RunRecord) -> float:
    return 0.0 if rec.status == "diverged" else rec.summary["final_test_acc"]


def steps_to_reach(rec: RunRecord, level: float) -> int | None:
    """First step at which the smoothed training accuracy reaches `level` (None if never)."""
    y = smooth(rec["train_acc"], max(1, rec.config["steps"] // 100))
    hit = np.nonzero(y >= level)[0]
    return int(hit[0]) + 1 if len(hit) else None


def unit_jump(rec: RunRecord, layers: Sequence[int]) -> float:
    """Median over steps of |mu_{t+1} - mu_t| of the recorded unit, averaged over `layers` (Figure 8a)."""
    k = [list(rec["act_layers"]).index(layer) for layer in layers]
    mu = rec["act_moments"][:, k, 0].astype(float)
    return float(np.mean(np.median(np.abs(np.diff(mu, axis=0)), axis=0)))


def relative_drift(rec: RunRecord, layers: Sequence[int]) -> float:
    """Median over steps of |mu_{t+1} - mu_t| / sigma_t, averaged over `layers`: how unstable a unit's distribution
    is relative to its own spread (Figure 1c's "stability")."""
    k = [list(rec["act_layers"]).index(layer) for layer in layers]
    m = rec["act_moments"][:, k, :].astype(float)
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

    d_std, d_bn = relative_drift(std, (3, 11)), relative_drift(bn, (3, 11))
    r = d_bn / max(d_std, 1e-12)
    out.append(Claim(
        "c21_stable", "Although BN trains much better, the layer-input distributions of the two networks evolve "
                      "about equally stably (Figure 1c).",
        f"median step-to-step shift of a unit's mean, in units of its std (layers 3, 11): BN {d_bn:.3g}, "
        f"standard {d_std:.3g} (ratio {r:.2g})",
        REPRODUCED if 1 / 3 <= r <= 3 else NOT_REPRODUCED,
        "reproduced if the two relative shifts are within a factor of 3 of each other",
        {"bn": d_bn, "std": d_std, "ratio": r}))
    return out


@dataclass(frozen=True)
class Section:
    """A chapter's share of the book: the paper section it reproduces, the runs it needs and its claims."""

    number: str
    title: str
    doc: str  # the chapter's path in the book, for links from the replication-status table
    specs: tuple[Spec, ...]
    claims: Callable[[dict], list[Claim]]


SECTIONS = {
    "2.1": Section("2.1", "Does BatchNorm's performance stem from controlling internal covariate shift?",
                   "chapters/sec21_performance",
                   (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("vgg", "none", 0.5),
                    Spec("vgg", "batch", 0.5), Spec("vgg", "noisy", 0.1)), claims_sec21),
}


def load_section(number: str, budget: str, seeds: Sequence[int], data: str | None = None,
                 device: str | None = None) -> tuple[str, dict[tuple[str, str, float], RunRecord]]:
    """The budget used ("best" resolved) and the section's runs of the first seed, keyed (model, norm, lr);
    runs that are not recorded are trained and stored."""
    section = SECTIONS[number]
    used = resolve_budget(budget, list(section.specs), list(seeds))
    runs = {(s.model, s.norm, s.lr): get_run(s, used, seeds[0], data=data, device=device) for s in section.specs}
    return used, runs


def status_markdown(budget: str, seeds: Sequence[int], data: str | None = None, device: str | None = None) -> str:
    """The book's replication-status table: every section's claims, the budget checked at and the verdict."""
    rows = ["| Section | Claim | Budget | Verdict |", "|---|---|---|---|"]
    for number, section in SECTIONS.items():
        used, runs = load_section(number, budget, seeds, data, device)
        for c in section.claims(runs):
            rows.append(f"| [{number}]({section.doc}.ipynb) | {c.paper} | {used} | **{c.verdict}** |")
    return "\n".join(rows)


def claims_markdown(claims: Sequence[Claim]) -> str:
    """A Markdown table: the paper's claim, our numbers, the verdict and the rule that decided it."""
    rows = ["| The paper says | We measured | Verdict | Rule |", "|---|---|---|---|"]
    rows += [f"| {c.paper} | {c.ours} | **{c.verdict}** | {c.rule} |" for c in claims]
    return "\n".join(rows)


def glue_claims(claims: Sequence[Claim]) -> None:
    """Glue each claim's verdict and values for the chapter's prose (`{glue:text}` keys `<key>_<name>`)."""
    from myst_nb import glue

    for c in claims:
        glue(f"{c.key}_verdict", c.verdict, display=False)
        for name, v in c.values.items():
            glue(f"{c.key}_{name}", v, display=False)


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

    commits = ((r.env.get("git_commit") or "unknown")[:10] + (" (modified)" if r.env.get("git_dirty_src") else "")
               for r in records)
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
