"""Section 2.2, "Is BatchNorm reducing internal covariate shift?": Figure 3 (internal covariate shift by
Definition 2.1) in VGG at LR 0.1 and 0.01 and in the deep linear network at LR 1e-6 and 1e-7, and the section's
claims.

A record's `ics_l2` and `ics_cos` arrays hold ||G - G'||_2 and cos(G, G') at the steps in `probe_step`, one column
per layer of its config's `ics_layers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..claims import (TRAINS_ACC, TRAINS_REASON, Check, Judgement, Rule, Runs, Section, any_of, final_train_acc,
                      grade, not_testable, trains)
from ..figures import COLORS, NAMES, smooth
from ..plotting import FOREGROUND, WIDTH
from ..records import RunRecord
from ..specs import DLN_ICS_LAYERS, DLN_LOSS_SCALE, VGG_ICS_LAYERS, Spec

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
    fig, axes = plt.subplots(1 + 2 * len(layers), len(cols), figsize=(WIDTH, 1.9 * (1 + 2 * len(layers)) + 0.4),
                             sharex="col", squeeze=False, layout="constrained")
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
            col[2 + 2 * j].axhline(1, color=FOREGROUND, ls="--", lw=0.8)
            col[2 + 2 * j].set_ylim(lo, 1.05)
        col[-1].set_xlabel("training steps")
    axes[0][0].set_ylabel("training loss" if dln else "training\naccuracy (%)")
    for j, layer in enumerate(layers):
        for k, metric in enumerate(METRICS):
            axes[1 + 2 * j + k][0].set_ylabel(f"layer #{layer}\n{METRICS[metric]}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
    fig.align_ylabels(axes[:, 0])
    return fig


def ics_snapshot(runs: Sequence[RunRecord], step: int, ylim_l2: tuple[float, float] | None = None) -> Figure:
    """||G - G'|| (log y) and cos(G, G') at one measured step (the nearest measured one): bars for every measured
    layer and learning rate, standard (red) beside BatchNorm (blue)."""
    layers = list(runs[0].config["ics_layers"])
    groups = [(lr_runs, layer) for lr_runs in _by_lr(runs) for layer in layers]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6), layout="constrained")
    for ax, metric in zip(axes, METRICS):
        for g, (group, layer) in enumerate(groups):
            for n, r in enumerate(sorted(group, key=lambda r: r.config["norm"] != "none")):
                i = int(np.argmin(np.abs(r["probe_step"] - step)))
                ax.bar(g + 0.2 * (2 * n - 1), ics_series(r, layer, metric)[i], width=0.38,
                       color=COLORS[r.config["norm"]], label=NAMES[r.config["norm"]] if g == 0 else None)
        ax.set_xticks(range(len(groups)), [f"#{layer}\nLR {grp[0].config['lr']:g}" for grp, layer in groups],
                      fontsize=9)
        ax.set_title(f"{METRICS[metric]} at step {step}")
        if metric == "l2":
            ax.set_yscale("log")  # bars start at 0: clipped to the axis, not masked
            if ylim_l2:
                ax.set_ylim(*ylim_l2)
        else:
            ax.axhline(1, color=FOREGROUND, ls="--", lw=0.8)
            ax.set_ylim(_cos_floor(runs), 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
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


VGG_LRS, DLN_LRS = (0.1, 0.01), (1e-6, 1e-7)
VGG = {(n, lr): Spec("vgg", n, lr) for lr in VGG_LRS for n in ("none", "batch")}
DLN = {(n, lr): Spec("dln", n, lr, DLN_LOSS_SCALE) for lr in DLN_LRS for n in ("none", "batch")}
SHORT = {"none": "standard", "batch": "BN"}


def e(lr: float) -> str:
    """A learning rate's tag in value names: "e7" for 1e-7."""
    return f"e{round(-np.log10(lr))}"


def _median(runs: Runs, spec: Spec, layer: int, metric: str = "l2") -> float:
    return ics_median(runs[spec.model, spec.norm, spec.lr], layer, metric)


def _vgg_train(runs: Runs, lr: float) -> dict[str, float]:
    """Each VGG network's final training accuracy (%) at `lr`, named `<none|batch>_train_<e1|e2>`."""
    return {f"{n}_train_{e(lr)}": 100 * final_train_acc(runs["vgg", n, lr]) for n in SHORT}


def _measure_vgg_scale(runs: Runs) -> dict[str, float]:
    return {f"{n}_{i}": _median(runs, VGG[n, 0.1], i) for n in SHORT for i in VGG_ICS_LAYERS} | _vgg_train(runs, 0.1)


def _judge_vgg_scale(v) -> Judgement:
    def within(n: str) -> list[Check]:
        return [Check(f"{SHORT[n]} layer #{i} median ‖G−G′‖", v[f"{n}_{i}"], op, t)
                for i in VGG_ICS_LAYERS for op, t in ((">=", 0.1), ("<=", 10))]
    return grade(within("none") + within("batch"), [within("none"), within("batch")])


VGG_SCALE = Rule(
    "c22_vgg_scale", "At LR 0.1 both VGG networks sit at ‖G−G′‖ ≈ 10^0 (layers #5 and #10, Figure 3a).",
    "reproduced if all four medians lie within a decade of 1 (0.1 to 10); partly if one network's do",
    "the paper's ≈10^0 is read off a log axis, where a decade either way is the reading's resolution",
    tuple(VGG[n, 0.1] for n in SHORT), _measure_vgg_scale, _judge_vgg_scale,
    lambda v: "median ‖G−G′‖ at LR 0.1: " + "; ".join(
        f"layer #{i}: standard {v[f'none_{i}']:.3g}, BN {v[f'batch_{i}']:.3g}" for i in VGG_ICS_LAYERS),
    needs=lambda v: [trains(f"the {SHORT[n]} VGG at LR 0.1", v[f"{n}_train_e1"]) for n in SHORT],
    needs_reason=TRAINS_REASON)


def _ratio_keys() -> list[tuple[str, str, float, int]]:
    """(value name, model, lr, layer) of every BN ÷ standard ICS ratio."""
    return [(f"{m}_{i}_{e(lr)}", m, lr, i) for m, lrs, layers in (("vgg", VGG_LRS, VGG_ICS_LAYERS),
                                                                  ("dln", DLN_LRS, DLN_ICS_LAYERS))
            for lr in lrs for i in layers]


def _measure_larger(runs: Runs) -> dict[str, float]:
    specs = VGG | DLN
    ratio = {k: _median(runs, specs["batch", lr], i) / max(_median(runs, specs["none", lr], i), 1e-30)
             for k, _, lr, i in _ratio_keys()}
    spread = {f"{m}_{name}": float(f([r for k, r in ratio.items() if k.startswith(m)])) for m in ("vgg", "dln")
              for name, f in (("min", np.min), ("max", np.max))}  # NaN where a ratio is: never hidden
    return ratio | spread | {k: x for lr in VGG_LRS for k, x in _vgg_train(runs, lr).items()}


def _larger_testable(v) -> list[tuple[str, str, float, int]]:
    """The BN ÷ standard comparisons whose standard network trains (every DLN one: its loss falls at both LRs)."""
    return [(k, m, lr, i) for k, m, lr, i in _ratio_keys() if m == "dln" or v[f"none_train_{e(lr)}"] > TRAINS_ACC]


def _judge_larger(v) -> Judgement:
    checks = [Check(f"{m.upper()} LR {lr:g} layer #{i} BN ÷ standard", v[k], ">=", 1 / 3)
              for k, m, lr, i in _larger_testable(v)]
    return grade(checks, any_of(checks)) if checks else not_testable("no standard network trains")


def _describe_larger(v) -> str:
    left_out = [lr for lr in VGG_LRS if v[f"none_train_{e(lr)}"] <= TRAINS_ACC]
    return "median ‖G−G′‖ with BN ÷ without: " + "; ".join(
        f"{m.upper()} LR {lr:g} layer #{i}: {v[k]:.3g}" for k, m, lr, i in _larger_testable(v)) + "".join(
        f"; VGG LR {lr:g} left out, its standard network does not train ({v[f'none_train_{e(lr)}']:.1f}% final "
        f"training accuracy; the ratios were {', '.join(f'{v[k]:.3g}' for k, m, x, _ in _ratio_keys() if m == 'vgg' and x == lr)})"
        for lr in left_out)


LARGER = Rule(
    "c22_larger", "Measured by Definition 2.1, BN networks have similar or larger ICS than standard ones (Figure 3, "
                  "both networks, both LRs).",
    "reproduced if for every network, LR and layer at which the standard network trains BN's median ‖G−G′‖ is at "
    f"least 1/3 of the standard network's; partly if for some; a VGG comparison whose standard network ends at or "
    f"below {TRAINS_ACC:g}% training accuracy is left out, and with none left the claim is not testable",
    "\"similar\" is within a factor 3, what a log-axis reading can tell apart, and \"or larger\" has no upper "
    "bound; the gradient change of a network that does not train is not the ICS of training",
    tuple((VGG | DLN).values()), _measure_larger, _judge_larger, _describe_larger)


def _measure_dln(runs: Runs, norm: str) -> dict[str, float]:
    """A DLN's median ‖G−G′‖ and cosine at each LR and measured layer, named `<l2|cos>_<layer>_<e6|e7>`."""
    return {f"{metric}_{i}_{e(lr)}": _median(runs, DLN[norm, lr], i, metric) for metric in ("l2", "cos")
            for lr in DLN_LRS for i in DLN_ICS_LAYERS}


def _describe_dln(v, lrs: Sequence[float]) -> str:
    return "; ".join(f"LR {lr:g}: " + ", ".join(
        f"#{i} ‖G−G′‖ {v[f'l2_{i}_{e(lr)}']:.3g}, cos {v[f'cos_{i}_{e(lr)}']:.3f}" for i in DLN_ICS_LAYERS)
        for lr in lrs)


def _judge_dln_std(v) -> Judgement:
    groups = [[Check(f"layer #{i} median ‖G−G′‖ at LR 1e-7", v[f"l2_{i}_e7"], op, t) for i in DLN_ICS_LAYERS
               for op, t in ((">=", 1), ("<=", 100))],
              [Check(f"layer #{i} median cosine at LR 1e-7", v[f"cos_{i}_e7"], ">=", 0.95) for i in DLN_ICS_LAYERS],
              [Check(f"layer #{i} median cosine at LR 1e-6", v[f"cos_{i}_e6"], ">=", 0.95) for i in DLN_ICS_LAYERS]]
    return grade([c for g in groups for c in g], groups)


DLN_STD = Rule(
    "c22_dln_std", "Without BN the DLN has almost no ICS (Figure 3b; at LR 1e-7 ‖G−G′‖ ≈ 10^1 and cos ≈ 1).",
    "reproduced if at LR 1e-7 both layers' median ‖G−G′‖ lie within a decade of 10 (1 to 100) and their median "
    "cosines are at least 0.95, and at LR 1e-6 the median cosines are too; partly if one of these three holds",
    "≈10^1 is read off a log axis (a decade either way); a cosine of 0.95 is an angle of 18°, close to the "
    "paper's cos ≈ 1", tuple(DLN["none", lr] for lr in DLN_LRS), lambda runs: _measure_dln(runs, "none"),
    _judge_dln_std, lambda v: "standard DLN, medians: " + _describe_dln(v, (1e-7, 1e-6)))


def _measure_dln_bn(runs: Runs) -> dict[str, float]:
    bn, std = _measure_dln(runs, "batch"), _measure_dln(runs, "none")
    return bn | {f"cos_drop_{i}": std[f"cos_{i}_e7"] - bn[f"cos_{i}_e7"] for i in DLN_ICS_LAYERS} | {
        f"l2_ratio_{i}": bn[f"l2_{i}_e7"] / max(std[f"l2_{i}_e7"], 1e-30) for i in DLN_ICS_LAYERS}


def _judge_dln_bn(v) -> Judgement:
    cos = [Check(f"layer #{i} standard − BN median cosine", v[f"cos_drop_{i}"], ">=", 0.2) for i in DLN_ICS_LAYERS]
    l2 = [Check(f"layer #{i} BN ÷ standard median ‖G−G′‖", v[f"l2_ratio_{i}"], ">=", 10) for i in DLN_ICS_LAYERS]
    return grade(cos + l2, [cos, l2])


DLN_BN = Rule(
    "c22_dln_bn", "With BN, G and G′ of the DLN are far less correlated: ‖G−G′‖ ≈ 10^3 and the cosine fluctuates "
                  "(LR 1e-7, Figure 3b).",
    "reproduced if at LR 1e-7 and both layers BN's median cosine is at least 0.2 below the standard network's and "
    "its median ‖G−G′‖ at least 10× the standard's; partly if one of the two holds",
    "the paper's ≈10^3 against ≈10^1 is two decades, of which one is required; a cosine that fluctuates well "
    "below 1 against one near 1 lowers the median by 0.2 at least",
    tuple(DLN.values()), _measure_dln_bn, _judge_dln_bn,
    lambda v: "BN DLN, medians: " + _describe_dln(v, (1e-7,)) + "; BN ÷ standard ‖G−G′‖: " + ", ".join(
        f"#{i} {v[f'l2_ratio_{i}']:.3g}" for i in DLN_ICS_LAYERS))

#: The paper's final DLN training losses, read off Figure 3b (and Figure 5b at LR 1e-6).
PAPER_DLN_LOSS = {("none", 1e-6): 1.6e3, ("batch", 1e-6): 5e2, ("none", 1e-7): 4e3, ("batch", 1e-7): 7e2}


def final_loss(rec: RunRecord) -> float:
    """The final training loss, infinite for a diverged run."""
    return rec.summary["final_train_loss"] if rec.status == "completed" else math.inf


def _loss(x: float) -> str:
    return "diverged" if math.isinf(x) else f"{x:.3g}"


def _measure_dln_loss(runs: Runs) -> dict[str, float]:
    loss = {(n, lr): final_loss(runs["dln", n, lr]) for n in SHORT for lr in DLN_LRS}
    vs_paper = [loss[k] / v for k, v in PAPER_DLN_LOSS.items()]
    return ({f"{n}_{e(lr)}": loss[n, lr] for n, lr in loss}
            | {f"ratio_{e(lr)}": loss["none", lr] / loss["batch", lr] for lr in DLN_LRS}
            | {"vs_paper_min": min(vs_paper), "vs_paper_max": max(vs_paper)})


def _judge_dln_loss(v) -> Judgement:
    def ratio(lr: float, op: str, t: float) -> Check:
        return Check(f"standard ÷ BN final loss at LR {lr:g}", v[f"ratio_{e(lr)}"], op, t)
    return grade([ratio(lr, ">=", 2) for lr in DLN_LRS], any_of([ratio(lr, ">", 1) for lr in DLN_LRS]))


DLN_LOSS = Rule(
    "c22_dln_loss", "Yet BN reaches a much lower DLN training loss: ≈5e2 vs ≈1.6e3 at LR 1e-6 and ≈7e2 vs ≈4e3 at "
                    "LR 1e-7.",
    "reproduced if BN's final training loss is at least 2× lower than the standard network's at both LRs; partly "
    "if it is lower at one",
    "\"much lower\": the paper's losses differ 3.2× and 5.7×; 2× is short of both and far from a tie",
    tuple(DLN.values()), _measure_dln_loss, _judge_dln_loss,
    lambda v: "; ".join(f"LR {lr:g}: BN {_loss(v[f'batch_{e(lr)}'])}, standard {_loss(v[f'none_{e(lr)}'])} "
                        f"({v[f'ratio_{e(lr)}']:.2g}× higher)" for lr in DLN_LRS))

SECTION = Section("2.2", "Is BatchNorm reducing internal covariate shift?", "chapters/sec22_ics",
                  tuple(VGG.values()) + tuple(DLN.values()), (VGG_SCALE, LARGER, DLN_STD, DLN_BN, DLN_LOSS))
