"""Section 3.1, "The smoothing effect of BatchNorm", with the landscape measurements of Section 3.2: Figures 4
(VGG), 10 (the deep linear network) and 11, drawn from the landscape probe's records, and the section's claims.

At each probed step t a record holds, for every step size eta of the grid, the loss L(w_t - eta g_t), the gradient
change ||g_t - grad L(w_t - eta g_t)||_2 and beta = that change / ||eta g_t||_2 (see `bnrepro.probes.landscape`).
`measures` turns them into the paper's three curves: the loss band, the gradient-predictiveness band and the
effective beta-smoothness (the largest beta over the grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure

from ..claims import TRAINS_REASON, Check, Judgement, Rule, Runs, Section, any_of, final_train_acc, grade, trains
from ..figures import COLORS, MODEL_NAMES, label
from ..plotting import WIDTH
from ..records import RunRecord
from ..specs import DLN_LOSS_SCALE, Spec

#: Figure 11's line colours, from the first probed step (blue) to the last (red).
STEP_CMAP = LinearSegmentedColormap.from_list("early_late", ["tab:blue", "tab:red"])
#: The slider's frames, in percent of training (denser early, where the standard network is roughest).
SLIDER_PERCENTS = (0, 5, 10, 25, 50, 75, 100)
#: The frame the slider opens on: early in training, where the paper finds the standard network's landscape roughest.
SLIDER_START = 10


def measures(rec: RunRecord) -> dict[str, np.ndarray]:
    """Per probed step: `step`; the band over the grid of the loss (`loss_lo`, `loss_hi`) and of the gradient change
    (`gd_lo`, `gd_hi`); and the effective beta-smoothness `beta`, the largest gradient change per distance moved."""
    loss, gd = rec["landscape_loss"].astype(float), rec["landscape_grad_diff"].astype(float)
    return {"step": rec["probe_step"], "loss_lo": loss.min(1), "loss_hi": loss.max(1), "gd_lo": gd.min(1),
            "gd_hi": gd.max(1), "beta": rec["landscape_beta"].astype(float).max(1)}


def landscape_summary(rec: RunRecord) -> dict[str, float]:
    """The numbers the claims compare, as medians or extremes over the probed steps: the loss band's width
    (max - min, how far the loss moves: Lipschitzness) and height in decades (log10 max/min, relative to the loss),
    the largest and the median gradient change, and the effective beta's median, interquartile ratio (75th / 25th
    percentile: how much it varies from step to step) and largest value."""
    m = measures(rec)
    q25, q50, q75 = np.nanpercentile(m["beta"], [25, 50, 75])
    return {"band_width": float(np.nanmedian(m["loss_hi"] - m["loss_lo"])),
            "band_decades": float(np.nanmedian(np.log10(m["loss_hi"] / m["loss_lo"]))),
            "gd_max": float(np.nanmax(m["gd_hi"])), "gd_median": float(np.nanmedian(m["gd_hi"])),
            "beta_median": float(q50), "beta_iqr": float(q75 / q25), "beta_max": float(np.nanmax(m["beta"]))}


def landscape_figure(runs: Sequence[RunRecord], title: str | None = None) -> Figure:
    """Figure 4 (VGG) or 10 (DLN) against training steps: (a) the loss band, (b) the gradient-predictiveness band,
    (c) the effective beta-smoothness, with the key in the fourth panel. Log y for the loss; for the DLN, log y
    throughout (as in the paper). Each run's lines are drawn thinner than the one before, so that where runs
    coincide every one still shows as an outline."""
    log_all = runs[0].config["model"] == "dln"
    fig, grid = plt.subplots(2, 2, figsize=(WIDTH, 5.6), layout="constrained")
    axes, key = grid.ravel()[:3], grid[1][1]
    handles = []
    for r, lw in zip(runs, np.linspace(1 + 0.5 * (len(runs) - 1), 1, len(runs))):
        m, color = measures(r), COLORS[r.config["norm"]]
        for ax, lo, hi in ((axes[0], "loss_lo", "loss_hi"), (axes[1], "gd_lo", "gd_hi")):
            band = ax.fill_between(m["step"], m[lo], m[hi], color=color, alpha=0.35, lw=0)
            ax.plot(m["step"], m[hi], color=color, lw=0.6 * lw)
            ax.plot(m["step"], m[lo], color=color, lw=0.6 * lw)
        handles.append((band, *axes[2].plot(m["step"], m["beta"], color=color, lw=lw)))
    axes[0].set(yscale="log", title="(a) loss landscape", ylabel="loss along the gradient")
    axes[1].set(title="(b) gradient predictiveness", ylabel="‖∇L(w) − ∇L(w − η∇L)‖₂")
    axes[2].set(title="(c) effective β-smoothness", ylabel="gradient change / distance (max over η)")
    for ax in axes:
        ax.set_xlabel("training steps")
        if log_all:
            ax.set_yscale("log")
    key.set_axis_off()
    key.legend(handles, [label(r) for r in runs], loc="center")  # each run's band with its line
    if title:
        fig.suptitle(title)
    return fig


def gradient_change_figure(runs: Sequence[RunRecord], title: str | None = None) -> Figure:
    """Figure 11: the gradient change against the step size eta along the gradient, one line per probed step,
    coloured from early (blue) to late (red); one panel per run, sharing the y axis. Log-log for the DLN."""
    log = runs[0].config["model"] == "dln"
    steps = Normalize(0, max(int(r["probe_step"].max()) for r in runs))
    fig, axes = plt.subplots(1, len(runs), figsize=(WIDTH, 3.6), sharey=True, squeeze=False, layout="constrained")
    for ax, r in zip(axes[0], runs):
        for s, eta, gd in zip(r["probe_step"], r["landscape_eta"], r["landscape_grad_diff"]):
            ax.plot(eta, gd, color=STEP_CMAP(steps(s)), lw=0.8, alpha=0.7)
        ax.set(title=label(r), xlabel="step size η along the gradient")
        if log:
            ax.set(xscale="log", yscale="log")
    axes[0][0].set_ylabel("gradient change (ℓ2)")
    fig.colorbar(ScalarMappable(steps, STEP_CMAP), ax=axes[0].tolist(), label="training step")
    if title:
        fig.suptitle(title)
    return fig


def _nearest(rec: RunRecord, percent: float) -> int:
    """Index of the probed step nearest `percent` of the way through the run's probed steps."""
    steps = rec["probe_step"]
    return int(np.argmin(np.abs(steps - steps[-1] * percent / 100)))


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    """Log-axis limits around the finite positive values (fixed across a slider's frames)."""
    v = np.concatenate([np.ravel(a) for a in arrays]).astype(float)
    v = v[np.isfinite(v) & (v > 0)]
    return (float(v.min()) / 1.5, float(v.max()) * 1.5) if len(v) else (1e-3, 1.0)


def along_gradient_figure(models: Sequence[Sequence[RunRecord]], percent: float) -> Figure:
    """At the probed step nearest `percent` of training, for each model (columns, standard and BN runs in each):
    the loss L(w_t - eta g_t) with L(w_t) dashed (top) and the gradient change (bottom), against eta."""
    fig, axes = plt.subplots(2, len(models), figsize=(WIDTH, 6.0), squeeze=False, layout="constrained")
    for j, runs in enumerate(models):
        top, bottom = axes[0][j], axes[1][j]
        steps = []
        for r in runs:
            i, color = _nearest(r, percent), COLORS[r.config["norm"]]
            eta = r["landscape_eta"][i]
            top.plot(eta, r["landscape_loss"][i], "o-", color=color, ms=3, label=label(r, with_lr=False))
            top.axhline(r["landscape_loss0"][i], color=color, ls="--", lw=0.8)
            bottom.plot(eta, r["landscape_grad_diff"][i], "o-", color=color, ms=3)
            steps.append(str(r["probe_step"][i]))
        model = runs[0].config["model"]
        name = "deep linear network" if model == "dln" else f"VGG-{model[3:]}"
        top.set(title=f"{name}, step {' and '.join(dict.fromkeys(steps))}", ylabel="loss L(w − η∇L)", yscale="log",
                ylim=_limits(*(np.r_[r["landscape_loss"].ravel(), r["landscape_loss0"]] for r in runs)))
        bottom.set(xlabel="step size η along the gradient", ylabel="gradient change (ℓ2)", yscale="log",
                   ylim=_limits(*(r["landscape_grad_diff"] for r in runs)))
        if model == "dln":
            top.set_xscale("log")
            bottom.set_xscale("log")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
    return fig


def along_gradient_slider(models: Sequence[Sequence[RunRecord]], percents: Sequence[int] = SLIDER_PERCENTS):
    """`along_gradient_figure` with a slider over the point in training (percent of the probed steps), opening on
    `SLIDER_START` if it is one of them."""
    from ..widgets import figure_slider

    start = SLIDER_START if SLIDER_START in percents else None
    return figure_slider(lambda p: along_gradient_figure(models, p), list(percents), "% of training", start)


LRS = {"vgg": 0.1, "dln": 1e-6}
SPECS = {(m, n): Spec(m, n, lr, DLN_LOSS_SCALE if m == "dln" else 1.0) for m, lr in LRS.items()
         for n in ("none", "batch")}


def _compare(runs: Runs, stat: str, tag: str = "") -> dict[str, float]:
    """A `landscape_summary` statistic of both networks with and without BN: values `<model>_<tag><std|bn|ratio>`,
    the ratio being standard ÷ BN."""
    out = {}
    for m in LRS:
        std, bn = (landscape_summary(runs[m, n, LRS[m]])[stat] for n in ("none", "batch"))
        out |= {f"{m}_{tag}std": std, f"{m}_{tag}bn": bn, f"{m}_{tag}ratio": std / max(bn, 1e-30)}
    return out


def _vgg_train(runs: Runs) -> dict[str, float]:
    """The VGG networks' final training accuracies (%): `vgg_train_std`, `vgg_train_bn`."""
    return {f"vgg_train_{k}": 100 * final_train_acc(runs["vgg", n, LRS["vgg"]]) for k, n in (("std", "none"),
                                                                                            ("bn", "batch"))}


def _needs_vgg_train(v) -> list[Check]:
    """Both VGG networks train: a landscape comparison with a network stuck at chance says nothing about BN."""
    return [trains("the standard VGG", v["vgg_train_std"]), trains("the BN VGG", v["vgg_train_bn"])]


def _describe(v, tag: str = "") -> str:
    return "; ".join(f"{MODEL_NAMES[m]}: standard {v[f'{m}_{tag}std']:.3g}, BN {v[f'{m}_{tag}bn']:.3g} "
                     f"(ratio {v[f'{m}_{tag}ratio']:.3g})" for m in LRS)


def _judge_ratios(v, what: str, full: float, tag: str = "") -> Judgement:
    """Reproduced if the standard ÷ BN ratio is at least `full` in both networks; partly if above 1 in one."""
    return grade([Check(f"{MODEL_NAMES[m]} {what} standard ÷ BN", v[f"{m}_{tag}ratio"], ">=", full) for m in LRS],
                 any_of([Check(f"{MODEL_NAMES[m]} {what} standard ÷ BN", v[f"{m}_{tag}ratio"], ">", 1)
                         for m in LRS]))


#: The loss band's two measures, both defensible, both judged (`Rule.readings`): its width (max − min of the loss
#: over the step sizes: how far the loss moves, the paper's words "more Lipschitz") and its height in decades
#: (log10 max ÷ min: its size on the log axis the paper draws).
BAND_READINGS = {"absolute width": "width_", "decades": ""}


def measure_loss_band(runs: Runs) -> dict[str, float]:
    """Both measures of the loss band (`BAND_READINGS`) of both networks with and without BN, and VGG's training."""
    return _compare(runs, "band_decades") | _compare(runs, "band_width", "width_") | _vgg_train(runs)


LOSS = Rule(
    "c31_loss", "With BN the loss varies far less along the gradient (it is more Lipschitz): without it the loss "
                "spans a wide range along the gradient, especially early in training (VGG, Figure 4a; DLN, Figure 10a).",
    "reproduced if the standard network's loss band (median over the probed steps) is at least twice BN's in both "
    "networks; partly if larger in one; judged twice, with the band measured by its absolute width (max − min over "
    "the step sizes) and by its height in decades (log10 max ÷ min)",
    "\"more Lipschitz\" is about how far the loss moves, its absolute width; the paper draws the loss on a log axis, "
    "where what the eye sees is the band's height in decades; \"far less\" asks for a factor 2",
    tuple(SPECS.values()), measure_loss_band, None,
    lambda v: "median height of the loss band in decades: " + _describe(v) + "; its median width (max − min): "
              + _describe(v, "width_"),
    needs=_needs_vgg_train, needs_reason=TRAINS_REASON,
    readings={name: (lambda v, name=name, tag=tag: _judge_ratios(v, f"loss band ({name})", 2, tag))
              for name, tag in BAND_READINGS.items()})


def _measure_predictive(runs: Runs) -> dict[str, float]:
    med = _compare(runs, "gd_median", "median_")
    return _compare(runs, "gd_max") | {f"{m}_median_ratio": med[f"{m}_median_ratio"] for m in LRS} | _vgg_train(runs)


PREDICTIVE = Rule(
    "c31_predictive", "Gradients are more predictive with BN; the gradient change along the gradient differs by "
                      "\"close to two orders of magnitude\" (VGG: standard spikes to ≈250, BN ≈10-40, Figure 4b; "
                      "DLN: ≈1e16 vs ≈1e6, Figure 10b; against the step size, "
                      "VGG ≈255 vs ≤≈38 and DLN ≈1e13-1e14 vs ≤≈1e6, Figures 11a and 11b).",
    "reproduced if the standard network's largest gradient change is at least 30× BN's in both networks; partly "
    "if it is larger in one",
    "\"close to two orders of magnitude\": 30× is 1.5 decades", tuple(SPECS.values()), _measure_predictive,
    lambda v: _judge_ratios(v, "largest gradient change", 30),
    lambda v: "largest gradient change ‖g_t − ∇L(w_t − ηg_t)‖ over all probed steps and step sizes: " + _describe(v)
              + "; ratio of the medians over steps: " + ", ".join(
                  f"{MODEL_NAMES[m]} {v[f'{m}_median_ratio']:.3g}" for m in LRS),
    needs=_needs_vgg_train, needs_reason=TRAINS_REASON)


def _judge_beta(v) -> Judgement:
    checks = [Check(f"{MODEL_NAMES[m]} {what} standard ÷ BN", v[f"{m}_{tag}ratio"], ">", 1)
              for m in LRS for what, tag in (("median β", ""), ("interquartile ratio of β", "iqr_"))]
    return grade(checks, any_of(checks, 2))


BETA = Rule(
    "c31_beta", "BN's effective β-smoothness is lower and flat (VGG: BN ≈20 throughout, standard ≈5-45 and spiky, "
                "Figure 4c; DLN: BN ≈1e6, standard up to ≈1e15, Figure 10c).",
    "reproduced if in both networks BN's median β is lower and its interquartile ratio (75th ÷ 25th percentile "
    "over steps) smaller than the standard network's; partly if two of these four hold",
    "lower: the median; flat: the typical step-to-step spread, which isolated spikes do not dominate",
    tuple(SPECS.values()),
    lambda runs: _compare(runs, "beta_median") | _compare(runs, "beta_iqr", "iqr_") | _compare(runs, "beta_max", "max_")
    | _vgg_train(runs),
    _judge_beta,
    lambda v: "; ".join(f"{MODEL_NAMES[m]}: median β standard {v[f'{m}_std']:.3g}, BN {v[f'{m}_bn']:.3g}; "
                        f"interquartile ratio standard {v[f'{m}_iqr_std']:.3g}, BN {v[f'{m}_iqr_bn']:.3g}; largest "
                        f"standard {v[f'{m}_max_std']:.3g}, BN {v[f'{m}_max_bn']:.3g}" for m in LRS),
    needs=_needs_vgg_train, needs_reason=TRAINS_REASON)


def _measure_eos(runs: Runs) -> dict[str, float]:
    beta = _compare(runs, "beta_median")
    return ({f"{m}_{k}": beta[f"{m}_{k}"] * LRS[m] / 2 for m in LRS for k in ("std", "bn")}
            | {f"{m}_two_over_lr": 2 / LRS[m] for m in LRS})


def _judge_eos(v) -> Judgement:
    def near(m: str) -> list[Check]:
        return [Check(f"{MODEL_NAMES[m]} BN's median β ÷ (2/LR)", v[f"{m}_bn"], op, t) for op, t in ((">=", 0.5),
                                                                                               ("<=", 2))]
    return grade(near("vgg") + near("dln"), [near("vgg"), near("dln")])


EOS = Rule(
    "c31_eos", "*Our observation, not a claim of the paper:* in the paper's plots BN's effective β sits near 2/LR, "
               "the edge-of-stability value (≈20 = 2/0.1 in Figure 4c, ≈1e6 ~ 2/1e-6 in Figure 10c).",
    "reproduced if BN's median β lies within a factor 2 of 2/LR in both networks; partly if in one",
    "the paper's BN curves sit within a factor 2 of 2/LR: VGG's ≈20 at 20, the DLN's ≈1e6 at 2e6",
    tuple(SPECS.values()), _measure_eos, _judge_eos,
    lambda v: "median β ÷ (2/LR): " + "; ".join(
        f"{MODEL_NAMES[m]}: BN {v[f'{m}_bn']:.3g}, standard {v[f'{m}_std']:.3g}" for m in LRS))

SECTION = Section("3.1", "The smoothing effect of BatchNorm", "chapters/sec31_smoothing", tuple(SPECS.values()),
                  (LOSS, PREDICTIVE, BETA, EOS))
