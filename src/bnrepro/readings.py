"""The deep linear network's loss scale and float rounding: which reading the chapters lead with, and which
verdicts hold under another reading or in float64.

The paper minimises ||W_1...W_k x - A x||^2 over 1,000 samples without saying whether the loss is summed or
averaged. Gradient descent on c*L at learning rate eta takes exactly the steps of L at learning rate c*eta (every
loss multiplied by c), so the loss scale c and the learning rate are one knob: each reading c is the paper's
learning rate applied to another effective learning rate c*eta. Which c matches the paper is an empirical question
this module answers with runs: it evaluates every claim that rests on DLN runs under each reading, and again with
the runs recomputed in float64 (a change that is mathematically a no-op), so a verdict that hangs on float rounding
shows as such.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .claims import FLIPS, Judged, Runs, Section, Variants, short_verdict
from .experiments import DLN_LOSS_SCALE, Spec, get_run, make_config
from .figures import COLORS, NAMES
from .records import RunRecord, RunStore

#: Every reading of the DLN's loss scale the book computes: c -> what the loss is. The lead reading comes first.
READINGS = {DLN_LOSS_SCALE: "0.1 × the summed squared error", 1.0: "the summed squared error"}
DTYPES = ("float32", "float64")


def variant(spec: Spec, loss_scale: float, dtype: str = "float32") -> Spec:
    """`spec` under another DLN loss scale and dtype (VGG specs are returned unchanged)."""
    if spec.model != "dln":
        return spec
    return dataclasses.replace(spec, loss_scale=loss_scale, dtype=dtype)


def uses_dln(section: Section) -> bool:
    return any(s.model == "dln" for s in section.specs)


def _runs(section: Section, budget: str, seed: int, loss_scale: float, dtype: str, data, device,
          store: RunStore) -> Runs | None:
    """The section's runs at one seed with its DLN runs under `loss_scale` and `dtype`; None when one is not
    recorded (except at `smoke`, whose runs are trained in seconds)."""
    specs = [variant(s, loss_scale, dtype) for s in section.specs]
    if budget != "smoke" and not all(store.path(make_config(s, budget, seed).to_dict()).exists() for s in specs):
        return None
    return {(s.model, s.norm, s.lr): get_run(s, budget, seed, data=data, device=device, store=store) for s in specs}


def variants(judged: Judged, f64_seeds: Sequence[int] = (0,), data: str | None = None, device: str | None = None,
             store: RunStore | None = None) -> dict[str, Variants]:
    """Every claim of a judged section that rests on DLN runs, judged again under each other reading in float32 at
    the judged seeds, and under every reading in float64 at `f64_seeds` (where those runs are recorded).

    A claim rests on DLN runs when its measured numbers change under another reading or in float64; claims about
    VGG alone do not.
    """
    section, store = judged.section, store or RunStore()
    if not uses_dln(section):
        return {}
    table = {(DLN_LOSS_SCALE, "float32", s): judged.claims[s] for s in judged.seeds}
    for c in READINGS:
        for d in DTYPES:
            for s in (judged.seeds if d == "float32" else [s for s in f64_seeds if s in judged.seeds]):
                if (c, d, s) not in table and (runs := _runs(section, judged.budget, s, c, d, data, device, store)):
                    table[c, d, s] = section.claims(runs)
    first = judged.first
    others = [v for (c, d, s), v in table.items() if (c, d) != (DLN_LOSS_SCALE, "float32") and s == judged.seed]
    return {claim.key: Variants(DLN_LOSS_SCALE, {k: v[i].verdict for k, v in table.items()})
            for i, claim in enumerate(first) if others and any(o[i].ours != claim.ours for o in others)}


def sharpness_ratio(rec: RunRecord) -> np.ndarray:
    """The top Hessian eigenvalue divided by 2/LR at each probed step (NaN where it was not measured): above 1,
    plain gradient descent at this learning rate is unstable along the top eigenvector."""
    return rec["curvature_eigenvalue"].astype(float) * rec.config["lr"] / 2


def sharpness_summary(rec: RunRecord) -> dict[str, float]:
    """The top eigenvalue ÷ (2/LR) at step 0, its median and largest value over training, and the fraction of steps
    at which the training loss rose (under full-batch gradient descent, an overshooting step)."""
    r = sharpness_ratio(rec)
    loss = rec["train_loss"].astype(float)
    return {"init": float(r[0]), "median": float(np.nanmedian(r)), "max": float(np.nanmax(r)),
            "rises": float(np.mean(np.diff(loss) > 0)) if len(loss) > 1 else 0.0}


def _reading_panels(runs: dict[float, Sequence[Sequence[RunRecord]]], series, ylabel: str, mark=None) -> Figure:
    """One panel per reading (log y): `series(rec)` -> (x, y) for every run, one thin line per seed, coloured by
    norm and dashed by learning rate; `mark(ax, cfg, style)` adds something per (norm, LR) if given."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.6), squeeze=False, sharey=True)
    lrs = sorted({seeds[0].config["lr"] for group in runs.values() for seeds in group}, reverse=True)
    for ax, (c, groups) in zip(axes[0], runs.items()):
        for seeds in groups:
            cfg = seeds[0].config
            style = {"color": COLORS[cfg["norm"]], "linestyle": ("-", "--", ":")[lrs.index(cfg["lr"]) % 3]}
            for i, rec in enumerate(seeds):
                ax.plot(*series(rec), lw=1, alpha=0.8,
                        label=f"{NAMES[cfg['norm']]}, LR {cfg['lr']:g}" if i == 0 else None, **style)
            if mark:
                mark(ax, cfg, style)
        ax.set(yscale="log", xlabel="training steps", title=f"loss = {READINGS[c]}")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def sharpness_figure(runs: dict[float, Sequence[Sequence[RunRecord]]]) -> Figure:
    """One panel per reading: the top Hessian eigenvalue ÷ (2/LR) over training (log y), standard and BatchNorm at
    each learning rate, one thin line per seed; the dashed line at 1 is the stability limit of gradient descent.
    `runs[c]` holds, per (norm, LR), the runs of every seed."""
    def series(rec: RunRecord):
        r = sharpness_ratio(rec)
        ok = np.isfinite(r)
        return rec["probe_step"][ok], r[ok]

    fig = _reading_panels(runs, series, "top Hessian eigenvalue ÷ (2/LR)")
    for ax in fig.axes:
        ax.axhline(1, color="0.5", lw=1, ls="--")
    return fig


def loss_figure(runs: dict[float, Sequence[Sequence[RunRecord]]], paper: dict[tuple[str, float], float]) -> Figure:
    """One panel per reading: the training loss over steps (log y), one thin line per seed, with the paper's final
    losses (`paper[(norm, lr)]`, read off its figures) as markers at the last step."""
    def mark(ax, cfg: dict, style: dict) -> None:
        if (cfg["norm"], cfg["lr"]) in paper:
            ax.plot([cfg["steps"]], [paper[cfg["norm"], cfg["lr"]]], marker="o", ms=7, mfc="none", color=style["color"])

    return _reading_panels(runs, lambda rec: (np.arange(1, len(rec["train_loss"]) + 1), rec["train_loss"]),
                           "training loss (circles: the paper's)", mark)


#: The paper's final DLN training losses read off its figures (Figures 3b, 5b, 13a; /work/shared/paper.md §4).
PAPER_FINAL_LOSS = {("none", 1e-6): 1.6e3, ("batch", 1e-6): 5e2, ("l1", 1e-6): 1e2, ("l2", 1e-6): 5e2,
                    ("linf", 1e-6): 1e3, ("none", 1e-7): 4e3, ("batch", 1e-7): 7e2}


def final_loss_decades(runs: dict[tuple[str, float], Sequence[RunRecord]]) -> dict[tuple[str, float], float]:
    """log10(our final training loss ÷ the paper's) per (norm, LR), the median over seeds (inf if a run diverged):
    how many decades a reading's loss level is off the paper's plotted one."""
    out = {}
    for key, recs in runs.items():
        if key in PAPER_FINAL_LOSS:
            finals = [r.summary["final_train_loss"] if r.status == "completed" else np.inf for r in recs]
            out[key] = float(np.log10(np.median(finals) / PAPER_FINAL_LOSS[key]))
    return out


_BOTH = {True: "yes", False: "no", None: "not judged"}


def _figures(paper_text: str) -> str:
    """The paper's figures a claim's text cites (its own words, e.g. "Figure 3b", "Figures 10a and 10c")."""
    found = re.findall(r"Figures? ((?:\d+[a-d]?(?:, | and )?)+)", paper_text)
    return ", ".join(dict.fromkeys(f for group in found for f in re.split(r", | and ", group) if f)) or "—"


def variants_markdown(judged: Sequence[Judged]) -> str:
    """A table: each claim that rests on DLN runs, the paper's figures it cites, its verdict at each judged seed
    under each reading (float32), whether it holds under both, and whether float64 reruns give the same verdicts."""
    head = "| Section | The paper says | Figures | " + " | ".join(f"loss scale {c:g}" for c in READINGS) + \
        " | Both readings | float64 |"
    rows = [head, "|---" * (len(READINGS) + 5) + "|"]
    for j in judged:
        for claim in j.first:
            if (v := j.variants.get(claim.key)) is None:
                continue
            cells = [", ".join(short_verdict(verdict) for (cc, d, _), verdict in v.verdicts.items()
                               if (cc, d) == (c, "float32")) or "—" for c in READINGS]
            flips = v.flipping_scales()
            f64 = (f"{FLIPS} under loss scale " + ", ".join(f"{c:g}" for c in flips) if flips else "same verdicts"
                   if any(d == "float64" for _, d, _ in v.verdicts) else "not rerun")
            rows.append(f"| {j.section.number} | {claim.paper.replace('|', chr(92) + '|')} | {_figures(claim.paper)} "
                        f"| " + " | ".join(cells) + f" | {_BOTH[v.holds_under_both()]} | {f64} |")
    return "\n".join(rows)
