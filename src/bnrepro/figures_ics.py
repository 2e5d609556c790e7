"""Section 2.2: Figure 3 (internal covariate shift by Definition 2.1) from run records, and the probe's cost.

A record's `ics_l2` and `ics_cos` arrays hold ||G - G'||_2 and cos(G, G') at the steps in `probe_step`, one column
per layer of its config's `ics_layers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .figures import COLORS, NAMES, smooth
from .records import RunRecord

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
    from .widgets import figure_slider

    steps = runs[0]["probe_step"]
    idx = np.unique(np.linspace(0, len(steps) - 1, min(n_frames, len(steps))).round().astype(int))
    l2 = np.concatenate([r["ics_l2"].ravel() for r in runs])
    l2 = l2[np.isfinite(l2) & (l2 > 0)]
    ylim = (l2.min() / 2, l2.max() * 2) if len(l2) else None
    return figure_slider(lambda t: ics_snapshot(runs, t, ylim), [int(s) for s in steps[idx]], "training step")


