"""Section 2.1, "Does BatchNorm's performance stem from controlling internal covariate shift?": VGG with and
without BatchNorm at LR 0.1 and 0.5 and with noisy BatchNorm (Figures 1, 2 and 8), and the section's claims.

The training curves and ridge plots are the shared ones of `bnrepro.figures`; Figure 8 and the measurements the
claims rest on are here.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..claims import NOT_REPRODUCED, PARTLY, REPRODUCED, Claim, Section
from ..experiments import Spec
from ..figures import COLORS, activation_arrays, label, smooth
from ..records import RunRecord


def moments_figure(runs: Sequence[RunRecord], layers: Sequence[int]) -> Figure:
    """Figure 8: for one random unit per layer, (a) |mu_{t+1} - mu_t| and |var_{t+1} - var_t| between successive
    steps and (b) mu_t - mu_0 and var_t - var_0 since the start, for each run."""
    cols = [("|Δ mean| between steps", 0, "step"), ("|Δ variance| between steps", 1, "step"),
            ("mean − initial mean", 0, "start"), ("variance − initial variance", 1, "start")]
    fig, axes = plt.subplots(len(layers), 4, figsize=(14, 2.3 * len(layers)), squeeze=False)
    for i, layer in enumerate(layers):
        for j, (title, m, kind) in enumerate(cols):
            ax = axes[i][j]
            for r in runs:
                k = list(r["act_layers"]).index(layer)
                v = r["act_moments"][:, k, m].astype(float)
                y = np.abs(np.diff(v)) if kind == "step" else v - v[0]
                ax.plot(np.arange(1, len(y) + 1) if kind == "step" else np.arange(len(y)), y,
                        color=COLORS[r.config["norm"]], lw=0.6, alpha=0.85, label=label(r, with_lr=False))
            ax.set_title(f"layer #{layer}: {title}", fontsize=9)
            if kind == "step":
                ax.set_yscale("symlog", linthresh=1e-3)
            if i == len(layers) - 1:
                ax.set_xlabel("training steps")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


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


def claims(runs: dict[tuple[str, str, float], RunRecord]) -> list[Claim]:
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


SECTION = Section("2.1", "Does BatchNorm's performance stem from controlling internal covariate shift?",
                  "chapters/sec21_performance",
                  (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("vgg", "none", 0.5),
                   Spec("vgg", "batch", 0.5), Spec("vgg", "noisy", 0.1)), claims)
