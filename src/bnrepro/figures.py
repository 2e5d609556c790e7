"""The paper's figures, drawn from run records (never from hard-coded numbers).

Each function takes `RunRecord`s and returns a matplotlib Figure (or a slider widget of figures), so a chapter
only chooses runs and calls one function per figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .plotting import FOREGROUND, WIDTH
from .records import RunRecord

COLORS = {"none": "tab:red", "batch": "tab:blue", "noisy": "tab:green", "l1": "tab:orange", "l2": "tab:purple",
          "linf": "tab:brown"}
NAMES = {"none": "Standard", "batch": "Standard + BatchNorm", "noisy": 'Standard + "Noisy" BatchNorm',
         "l1": "Standard + L1", "l2": "Standard + L2", "linf": "Standard + L∞"}
SHORT_NAMES = {"none": "standard", "batch": "BN", "noisy": "noisy BN", "l1": "l1", "l2": "l2", "linf": "l∞"}  # in text
MODEL_NAMES = {"vgg": "VGG", "dln": "DLN"}
LINESTYLES = ("-", "--", ":", "-.")


def label(rec: RunRecord, with_lr: bool = True) -> str:
    c = rec.config
    return f"{NAMES[c['norm']]}, LR={c['lr']:g}" if with_lr else NAMES[c["norm"]]


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (per-step batch accuracy is noisy); the first points average what exists."""
    if window <= 1 or len(y) == 0:
        return np.asarray(y, float)
    c = np.cumsum(np.insert(np.asarray(y, float), 0, 0.0))
    n = np.arange(1, len(y) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def _style(rec: RunRecord, lrs: Sequence[float]) -> dict:
    return {"color": COLORS[rec.config["norm"]], "linestyle": LINESTYLES[list(lrs).index(rec.config["lr"]) % 4]}


def accuracy_figure(runs: Sequence[RunRecord], panels: Sequence[str] = ("train", "test"),
                    title: str | None = None) -> Figure:
    """Figure 1(a,b) / 2-left: training accuracy (smoothed per-step batch accuracy) and test accuracy vs steps.

    A diverged run's curve stops where its loss became non-finite, marked with an x.
    """
    lrs = sorted({r.config["lr"] for r in runs}, reverse=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(WIDTH / 2 * len(panels), 4.4), 3.8), squeeze=False,
                             layout="constrained")
    for ax, which in zip(axes[0], panels):
        for r in runs:
            if which == "train":
                y = 100 * smooth(r["train_acc"], max(1, r.config["steps"] // 100))
                x = np.arange(1, len(y) + 1)
            else:
                x, y = r["test_step"], 100 * r["test_acc"]
            ax.plot(x, y, label=label(r), lw=1.4, **_style(r, lrs))
            if r.status == "diverged":
                ax.plot([r.summary["diverged_at"]], [y[-1] if len(y) else 10], "x", color=COLORS[r.config["norm"]])
        ax.set(xlabel="training steps", ylabel=f"{which} accuracy (%)", ylim=(0, 100),
               title=f"{'Training' if which == 'train' else 'Test'} accuracy")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=2 if len(panels) > 1 else 1)
    if title:
        fig.suptitle(title)
    return fig


def _density(q: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Density on `grid` of the distribution whose quantiles (at evenly spaced levels) are `q`."""
    levels = np.linspace(0, 1, len(q))
    q = np.maximum.accumulate(q)
    cdf = np.interp(grid, q, levels, left=0.0, right=1.0)
    return np.diff(cdf) / np.diff(grid)


POINTS = {"post": ("act_quantiles", "act_moments", "after its normalisation"),
          "pre": ("act_pre_quantiles", "act_pre_moments", "before its normalisation")}


def activation(rec: RunRecord, point: str, kind: str) -> np.ndarray:
    """The followed units' "quantiles" ([probe step, layer, q]) or "moments" ([step, layer, (mean, var)]) at `point`:
    "post" (the normalisation's output) or "pre" (its input, the conv/linear output; a standard network's is its
    "post", which its stored record keeps alone)."""
    name = POINTS[point][("quantiles", "moments").index(kind)]
    if name not in rec.arrays and point == "pre" and rec.config["norm"] == "none":
        name = POINTS["post"][("quantiles", "moments").index(kind)]
    if name not in rec.arrays:
        raise ValueError(f"this record has no {point!r} activation {kind}: a record keeps them only on the runs whose "
                         "readers read them (bnrepro.records.ACTIVATIONS), and older records predate them; list the "
                         "run there and retrain it with force=True (python -m bnrepro train --force ...)")
    return rec[name]


def activation_arrays(rec: RunRecord, point: str = "post") -> tuple[np.ndarray, np.ndarray]:
    """(quantiles, moments) of the followed units at `point` (see `activation`)."""
    return activation(rec, point, "quantiles"), activation(rec, point, "moments")


def ridge(ax, rec: RunRecord, layer: int, upto: int | None = None, n_lines: int = 12,
          xlim: tuple[float, float] | None = None, point: str = "post", at: Sequence[int] | None = None) -> None:
    """Ridge plot of one random unit of `layer` over training: one density per recorded step (earliest at the
    bottom), `n_lines` of them spread over training or, with `at`, the recorded steps nearest those, up to step
    `upto` (inclusive); the newest line shown is drawn darker."""
    k = list(rec["act_layers"]).index(layer)
    steps, qs = rec["act_step"], activation(rec, point, "quantiles")[:, k, :]
    keep = np.isfinite(qs).all(axis=1)
    steps, qs = steps[keep], qs[keep]
    if at is not None:
        idx = np.unique([int(np.abs(steps - s).argmin()) for s in at]) if len(steps) else np.zeros(0, int)
    else:
        idx = np.unique(np.linspace(0, len(steps) - 1, min(n_lines, len(steps))).round().astype(int))
    if upto is not None:
        idx = idx[steps[idx] <= upto]
    lo, hi = xlim or _span(qs)
    grid = np.linspace(lo, hi, 121)
    mid = (grid[1:] + grid[:-1]) / 2
    color = COLORS[rec.config["norm"]]
    for j, i in enumerate(idx):
        d = _density(qs[i], grid)
        d = d / d.max() * 0.9 if d.max() > 0 else d
        newest = j == len(idx) - 1
        ax.fill_between(mid, j, j + d, color=color, alpha=0.55 if newest else 0.2, lw=0)
        ax.plot(mid, j + d, color=FOREGROUND if newest else color, lw=0.8)
    ax.set_yticks(range(len(idx)), [str(int(s)) for s in steps[idx]], fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.2, max(len(idx), 1) + 0.2)


def _span(qs: np.ndarray) -> tuple[float, float]:
    """x range covering the 1st-99th percentile of every recorded step."""
    lo, hi = np.nanmin(qs[:, 1]), np.nanmax(qs[:, -2])
    pad = 0.05 * (hi - lo) or 1.0
    return float(lo - pad), float(hi + pad)


def distributions_figure(runs: Sequence[RunRecord], layers: Sequence[int], upto: int | None = None,
                         n_lines: int = 12, points: Sequence[str] | None = None,
                         at: Sequence[int] | None = None) -> Figure:
    """Figure 1(c) / 2-right / 6: for each run (rows, titled by the run) and layer (columns), the ridge plot of one
    random unit, observed at `points[i]` for run i ("post", the default: after the normalisation; "pre": before
    it); at the recorded steps nearest `at` if given (e.g. Figure 1c's 2,000, 6,000, 10,000 and 14,000)."""
    points = points or ["post"] * len(runs)
    fig = plt.figure(figsize=(WIDTH, 2.6 * len(runs)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(runs), 1))
    for r, point, row in zip(runs, points, rows):
        where = "" if r.config["norm"] == "none" else f", {POINTS[point][2]}"
        row.suptitle(f"{label(r)}{where}", fontsize=10)
        for j, (layer, ax) in enumerate(zip(layers, row.subplots(1, len(layers), squeeze=False)[0])):
            k = list(r["act_layers"]).index(layer)
            qs = activation(r, point, "quantiles")[:, k, :]
            finite = qs[np.isfinite(qs).all(axis=1)]
            if len(finite) == 0:
                ax.text(0.5, 0.5, "diverged", ha="center", transform=ax.transAxes)
            else:
                ridge(ax, r, layer, upto, n_lines, _span(finite), point, at)
            ax.set_title(f"layer #{layer}, unit {r['act_units'][k]}", fontsize=9)
            if j == 0:
                ax.set_ylabel("training step", fontsize=9)
    return fig


def slider_steps(rec: RunRecord, n_frames: int = 8) -> list[int]:
    """About `n_frames` recorded activation steps spread over the run, for sliders over training."""
    steps = rec["act_step"]
    idx = np.unique(np.linspace(0, len(steps) - 1, min(n_frames, len(steps))).round().astype(int))
    return [int(s) for s in steps[idx]]


def distributions_slider(runs: Sequence[RunRecord], layers: Sequence[int], n_frames: int = 8,
                         points: Sequence[str] | None = None):
    """`distributions_figure` with a slider over the training step: frame t shows the distributions up to t."""
    from .widgets import figure_slider

    return figure_slider(lambda t: distributions_figure(runs, layers, upto=t, points=points),
                         slider_steps(runs[0], n_frames), "training step ≤")
