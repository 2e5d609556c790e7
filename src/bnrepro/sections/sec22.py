"""Section 2.2, "Is BatchNorm reducing internal covariate shift?": Figure 3 (internal covariate shift by
Definition 2.1) in VGG at LR 0.1 and 0.01 and in the deep linear network at LR 1e-6 and 1e-7, and the section's
claims.

A record's `ics_l2` and `ics_cos` arrays hold ||G - G'||_2 and cos(G, G') at the steps in `probe_step`, one column
per layer of its config's `ics_layers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..claims import NOT_REPRODUCED, PARTLY, REPRODUCED, Claim, Section
from ..experiments import Spec
from ..figures import COLORS, NAMES, smooth
from ..records import RunRecord

METRICS = {"l2": "‖G − G′‖₂", "cos": "cos(G, G′)"}


def ics_series(rec: RunRecord, layer: int, metric: str = "l2") -> np.ndarray:
    """One layer's ICS measurements (metric "l2" or "cos") over the run's measured steps."""
    return rec[f"ics_{metric}"][:, list(rec.config["ics_layers"]).index(layer)].astype(float)


def ics_median(rec: RunRecord, layer: int, metric: str = "l2") -> float:
    """Median over the measured steps of one layer's ICS (NaN cosines of zero gradients left out)."""
    return float(np.nanmedian(ics_series(rec, layer, metric)))


def loss_rise_fraction(rec: RunRecord) -> float:
    """Fraction of steps at which the training loss went up. Under full-batch gradient descent (the DLN) a rising
    loss is not minibatch noise: the step overshot, as when the iterate oscillates across a sharp direction."""
    return float(np.mean(np.diff(rec["train_loss"].astype(float)) > 0))


def _by_lr(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs grouped by learning rate, largest first."""
    lrs = sorted({r.config["lr"] for r in runs}, reverse=True)
    return [[r for r in runs if r.config["lr"] == lr] for lr in lrs]


def _cos_floor(runs: Sequence[RunRecord]) -> float:
    """Lower y limit of the cosine panels: 0, as in the paper, unless some cosine is negative."""
    return -1.05 if any(np.nanmin(r["ics_cos"]) < 0 for r in runs) else -0.05


def ics_figure(runs: Sequence[RunRecord]) -> Figure:
    """Figure 3, one column per learning rate (largest first): the training curve (VGG: smoothed batch accuracy;
    DLN: loss, log y), then for each measured layer ||G - G'|| (log y) and cos(G, G') against training steps."""
    cols = _by_lr(runs)
    layers = list(runs[0].config["ics_layers"])
    dln = runs[0].config["model"] == "dln"
    lo = _cos_floor(runs)
    fig, axes = plt.subplots(1 + 2 * len(layers), len(cols), figsize=(4.4 * len(cols), 1.9 * (1 + 2 * len(layers))),
                             sharex="col", squeeze=False)
    for col, group in zip(axes.T, cols):
        for r in group:
            style = {"color": COLORS[r.config["norm"]], "lw": 1.1, "label": NAMES[r.config["norm"]]}
            y = r["train_loss"] if dln else 100 * smooth(r["train_acc"], max(1, r.config["steps"] // 100))
            col[0].plot(np.arange(1, len(y) + 1), y, **style)
            for j, layer in enumerate(layers):
                for k, metric in enumerate(METRICS):
                    col[1 + 2 * j + k].plot(r["probe_step"], ics_series(r, layer, metric), **style)
        col[0].set_title(f"LR = {group[0].config['lr']:g}")
        if dln:
            col[0].set_yscale("log")
        else:
            col[0].set_ylim(0, 100)
        for j in range(len(layers)):
            col[1 + 2 * j].set_yscale("log", nonpositive="mask")
            col[2 + 2 * j].axhline(1, color="black", ls="--", lw=0.8)
            col[2 + 2 * j].set_ylim(lo, 1.05)
        col[-1].set_xlabel("training steps")
    axes[0][0].set_ylabel("training loss" if dln else "training\naccuracy (%)")
    for j, layer in enumerate(layers):
        for k, metric in enumerate(METRICS):
            axes[1 + 2 * j + k][0].set_ylabel(f"layer #{layer}\n{METRICS[metric]}")
    axes[0][-1].legend(fontsize=8)
    fig.align_ylabels(axes[:, 0])
    fig.tight_layout()
    return fig


def ics_snapshot(runs: Sequence[RunRecord], step: int, ylim_l2: tuple[float, float] | None = None) -> Figure:
    """||G - G'|| (log y) and cos(G, G') at one measured step (the nearest measured one): bars for every measured
    layer and learning rate, standard (red) beside BatchNorm (blue)."""
    layers = list(runs[0].config["ics_layers"])
    groups = [(lr_runs, layer) for lr_runs in _by_lr(runs) for layer in layers]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
    for ax, metric in zip(axes, METRICS):
        for g, (group, layer) in enumerate(groups):
            for n, r in enumerate(sorted(group, key=lambda r: r.config["norm"] != "none")):
                i = int(np.argmin(np.abs(r["probe_step"] - step)))
                ax.bar(g + 0.2 * (2 * n - 1), ics_series(r, layer, metric)[i], width=0.38,
                       color=COLORS[r.config["norm"]], label=NAMES[r.config["norm"]] if g == 0 else None)
        ax.set_xticks(range(len(groups)), [f"#{layer}, LR {grp[0].config['lr']:g}" for grp, layer in groups],
                      fontsize=8)
        ax.set_title(f"{METRICS[metric]} at step {step}")
        if metric == "l2":
            ax.set_yscale("log")  # bars start at 0: clipped to the axis, not masked
            if ylim_l2:
                ax.set_ylim(*ylim_l2)
        else:
            ax.axhline(1, color="black", ls="--", lw=0.8)
            ax.set_ylim(_cos_floor(runs), 1.05)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def ics_slider(runs: Sequence[RunRecord], n_frames: int = 8):
    """`ics_snapshot` with a slider over about `n_frames` measured steps, on one log scale for every frame."""
    from ..widgets import figure_slider

    steps = runs[0]["probe_step"]
    idx = np.unique(np.linspace(0, len(steps) - 1, min(n_frames, len(steps))).round().astype(int))
    l2 = np.concatenate([r["ics_l2"].ravel() for r in runs])
    l2 = l2[np.isfinite(l2) & (l2 > 0)]
    ylim = (l2.min() / 2, l2.max() * 2) if len(l2) else None
    return figure_slider(lambda t: ics_snapshot(runs, t, ylim), [int(s) for s in steps[idx]], "training step")


def claims(runs: dict[tuple[str, str, float], RunRecord]) -> list[Claim]:
    """Section 2.2's claims (Figure 3) from VGG runs at LR 0.1 and 0.01 and DLN runs at 1e-6 and 1e-7, none/batch.

    ICS numbers are medians over the measured steps (`ics_median`); a value's name ends in `_e<k>` for
    LR 10^-k, e.g. `l2_9_e7` is layer #9's median ||G - G'|| at LR 1e-7.
    """
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


SECTION = Section("2.2", "Is BatchNorm reducing internal covariate shift?", "chapters/sec22_ics",
                  (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("vgg", "none", 0.01),
                   Spec("vgg", "batch", 0.01), Spec("dln", "none", 1e-6), Spec("dln", "batch", 1e-6),
                   Spec("dln", "none", 1e-7), Spec("dln", "batch", 1e-7)), claims)
