"""Part IV, page 1: does BatchNorm's "effective beta" just track 2/LR? Sharpness, learning-rate robustness and scale
invariance, on a learning-rate sweep of VGG and the deep linear network, standard and BatchNorm.

Cohen et al. (ICLR 2021) found that under full-batch gradient descent the top Hessian eigenvalue rises to about
2/LR and hovers there ("edge of stability"); Andreyev and Beneventano (arXiv 2412.20553) found that under minibatch
SGD the batch sharpness g^T H g / ||g||^2 settles at 2/LR. If BatchNorm's effective beta (Section 3.1) is 2/LR at
every learning rate, the smoothness it measures is set by the step size. Each quantity is summarised per run as its
median over the second half of training ("late"), divided by 2/LR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..claims import TRAINS_ACC, Check, Judgement, Rule, Runs, Section, grade, not_testable, prose_list
from ..figures import COLORS, MODEL_NAMES, SHORT_NAMES, smooth
from ..plotting import FOREGROUND, SEQUENCE_CMAP, WIDTH
from ..probes.weight_norms import residuals
from ..records import RunRecord
from ..specs import DLN_LOSS_SCALE, SWEEP_LRS, Spec
from .sec31 import LRS as PAPER_LRS
from .sec31 import measures

#: The sweep: the paper's learning rates (whose runs the other chapters already have) plus `SWEEP_LRS`.
LRS = {"vgg": tuple(sorted((0.01, 0.1, 0.5) + SWEEP_LRS["vgg"])), "dln": tuple(sorted((1e-7, 1e-6) + SWEEP_LRS["dln"]))}
NORMS = ("none", "batch")
SPECS = {(m, n, lr): Spec(m, n, lr, DLN_LOSS_SCALE if m == "dln" else 1.0) for m in LRS for lr in LRS[m]
         for n in NORMS}
#: Which VGG runs "train" decides this page's populations, and two bars are defensible: the book's shared one
#: (`claims.TRAINS_ACC`, three times chance) and five times chance, well below what a working run reaches in 2,500
#: steps. Every rule that counts the runs that train is judged under both (`Rule.readings`), named here.
TRAINS_BARS = {f"the {TRAINS_ACC:g}% trains bar": TRAINS_ACC, "the 50% trains bar": 50.0}
LEAD_BAR = TRAINS_ACC
#: The late-training ratio to 2/LR counts as "at 2/LR" within this factor either way.
FACTOR = 3.0
QUANTITIES = {"beta": "effective beta (Sec. 3.1)", "sharpness": "batch sharpness gᵀHg/‖g‖²",
              "eigenvalue": "top Hessian eigenvalue"}


def series(rec: RunRecord, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    """(probed steps, values) of `quantity` ("beta", "sharpness" or "eigenvalue") where recorded and finite; empty
    for a quantity the run does not carry (the paper's runs reused here have no curvature probe)."""
    if quantity == "beta":
        x, y = rec["probe_step"], measures(rec)["beta"]
    elif f"curvature_{quantity}" in rec.arrays:
        x, y = rec["probe_step"], rec[f"curvature_{quantity}"].astype(float)
    else:
        return np.zeros(0), np.zeros(0)
    keep = np.isfinite(y)
    return x[keep], y[keep]


def late_ratio(rec: RunRecord, quantity: str) -> float:
    """Median of `quantity` over the second half of training, divided by 2/LR (NaN if not recorded or diverged)."""
    x, y = series(rec, quantity)
    late = y[x >= rec.config["steps"] / 2]
    if rec.status == "diverged" or len(late) == 0:
        return float("nan")
    return float(np.median(late) * rec.config["lr"] / 2)


def trains(rec: RunRecord, bar: float = LEAD_BAR) -> bool:
    """A VGG run trains if it does not diverge and ends above `bar` % training accuracy; a DLN run if it does not
    diverge and ends below a tenth of its initial loss."""
    if rec.status == "diverged":
        return False
    if rec.config["model"] == "dln":
        loss = rec["train_loss"]
        return bool(loss[-1] < loss[0] / 10)
    return 100 * rec.summary["final_train_acc"] > bar


def _bar_tag(bar: float) -> str:
    return f"bar{bar:g}_"


def by_bar(measure: Callable[[Runs, float], dict[str, float]]) -> Callable[[Runs], dict[str, float]]:
    """`measure(runs, bar)` under every bar of `TRAINS_BARS`: its values prefixed `bar<N>_`, the lead bar's also
    unprefixed (for the description and the chapter's glue)."""
    def measured(runs: Runs) -> dict[str, float]:
        out = dict(measure(runs, LEAD_BAR))
        for bar in TRAINS_BARS.values():
            out |= {_bar_tag(bar) + k: x for k, x in measure(runs, bar).items()}
        return out
    return measured


def bar_readings(judge: Callable[[Mapping[str, float]], Judgement]) -> dict[str, Callable]:
    """`judge` under each bar of `TRAINS_BARS`, reading that bar's values (`by_bar`)."""
    def under(bar: float):
        tag = _bar_tag(bar)
        return lambda v: judge({k[len(tag):]: x for k, x in v.items() if k.startswith(tag)})
    return {name: under(bar) for name, bar in TRAINS_BARS.items()}


def _runs(runs: Runs, model: str, norm: str) -> list[RunRecord]:
    return [runs[model, norm, lr] for lr in LRS[model]]


def tracking(recs: Sequence[RunRecord], quantity: str = "beta", bar: float = LEAD_BAR) -> dict[str, float]:
    """How `quantity` follows 2/LR over the runs that train: the slope of log10(late median) against log10(LR)
    (-1: proportional to 1/LR), and the late ratios to 2/LR, smallest and largest."""
    pts = [(r.config["lr"], late_ratio(r, quantity)) for r in recs if trains(r, bar)]
    pts = [(lr, q) for lr, q in pts if np.isfinite(q) and q > 0]
    if len({lr for lr, _ in pts}) < 2:
        return {"slope": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": float(len(pts))}
    lr, q = np.array(pts).T
    slope = np.polyfit(np.log10(lr), np.log10(q * 2 / lr), 1)[0]
    return {"slope": float(slope), "lo": float(q.min()), "hi": float(q.max()), "n": float(len(pts))}


def _measure_tracks(norm: str):
    def measure(runs: Runs, bar: float) -> dict[str, float]:
        return {f"{m}_{k}": v for m in LRS for k, v in tracking(_runs(runs, m, norm), bar=bar).items()}
    return by_bar(measure)


def _track_checks(v: Mapping[str, float], model: str) -> list[Check]:
    return [Check(f"{model} slope of log beta against log LR", v[f"{model}_slope"], ">=", -1.25),
            Check(f"{model} slope of log beta against log LR", v[f"{model}_slope"], "<=", -0.75),
            Check(f"{model} smallest beta ÷ (2/LR)", v[f"{model}_lo"], ">=", 1 / FACTOR),
            Check(f"{model} largest beta ÷ (2/LR)", v[f"{model}_hi"], "<=", FACTOR)]


def _judge_tracks(v):
    """Each network with a slope (two LRs at which it trains) is judged; with one, the claim can at most be partly
    reproduced (the claim covers both), with none it is not testable."""
    testable = [m for m in LRS if v[f"{m}_n"] >= 2]
    if not testable:
        return not_testable("neither network trains at two learning rates, so no slope exists")
    groups = [_track_checks(v, m) for m in testable]
    both = Check("networks that train at two LRs or more", len(testable), ">=", len(LRS), graded=False)
    return grade([both] + [c for g in groups for c in g], groups)


def _describe_tracks(v) -> str:
    def one(m: str, name: str) -> str:
        if not v[f"{m}_n"] >= 2:
            return f"{name}: it trains at {v[f'{m}_n']:.0f} of the LRs, too few for a slope"
        return (f"{name}: beta ∝ LR^{v[f'{m}_slope']:.2f}, beta ÷ (2/LR) from {v[f'{m}_lo']:.3g} to "
                f"{v[f'{m}_hi']:.3g} over the {v[f'{m}_n']:.0f} LRs at which it trains")
    return "; ".join(one(m, name) for m, name in (("vgg", "VGG"), ("dln", "DLN")))


TRACK_RULE = ("reproduced if for VGG and for the DLN, over the learning rates at which the network trains, the late "
              "median beta scales as LR^s with -1.25 <= s <= -0.75 and lies within a factor 3 of 2/LR at each; partly "
              "if that holds for one of the two networks; a network that trains at fewer than two LRs has no slope and "
              "is not testable; judged under both trains bars (30% and 50% final training accuracy)")
TRACK_REASON = "2/LR is a prediction of order of magnitude: a factor 3 either way, and a slope within a quarter of -1"

BN_BETA = Rule(
    "iv1_bn_beta", "BatchNorm's effective beta tracks 2/LR across learning rates (the paper's Figures 4c and 10c "
                   "show about 20 = 2/0.1 and about 1e6 ~ 2/1e-6).",
    TRACK_RULE, TRACK_REASON, tuple(s for (_, n, _), s in SPECS.items() if n == "batch"), _measure_tracks("batch"),
    None, _describe_tracks, readings=bar_readings(_judge_tracks))

STD_BETA = Rule(
    "iv1_std_beta", "The standard network's effective beta tracks 2/LR too (the edge of stability predicts it for "
                    "any network trained by gradient descent).",
    TRACK_RULE, TRACK_REASON, tuple(s for (_, n, _), s in SPECS.items() if n == "none"), _measure_tracks("none"),
    None, _describe_tracks, readings=bar_readings(_judge_tracks))


def _measure_curvature(quantity: str, lrs: Mapping[str, Sequence[float]]):
    """Measures `quantity`'s late ratio to 2/LR over the runs at `lrs` (model -> learning rates) that train (under
    each trains bar, `by_bar`)."""
    def measure(runs: Runs, bar: float) -> dict[str, float]:
        q = [late_ratio(runs[m, n, lr], quantity) for m in lrs for n in NORMS for lr in lrs[m]
             if trains(runs[m, n, lr], bar)]
        q = np.array([x for x in q if np.isfinite(x)])
        if len(q) == 0:
            return {"n": 0.0, "within": 0.0, "median": float("nan"), "lo": float("nan"), "hi": float("nan")}
        inside = (q >= 1 / 2) & (q <= 2)
        return {"n": float(len(q)), "within": float(inside.mean()), "median": float(np.median(q)),
                "lo": float(q.min()), "hi": float(q.max())}
    return by_bar(measure)


def _judge_curvature(v):
    """The share within a factor 2 moves in whole runs, so it is never "near"; the runs' own ratios are (`lo`,
    `hi`: the extreme ones decide the share)."""
    if not v["n"]:
        return not_testable("no run trains")
    median = [Check("median ratio to 2/LR", v["median"], ">=", 0.5), Check("median ratio to 2/LR", v["median"], "<=", 2)]
    share = Check("share of runs within a factor 2 of 2/LR", v["within"], ">=", 1, graded=False)
    ends = [Check("smallest ratio to 2/LR", v["lo"], ">=", 0.5), Check("largest ratio to 2/LR", v["hi"], "<=", 2)]
    j = grade([share] + median, [median])
    near = tuple(str(c) for c in ends if c.near and (c.holds == share.holds))
    return Judgement(j.verdict, j.near + near, j.reason)


def _describe_curvature(v) -> str:
    return (f"late median ÷ (2/LR) over {v['n']:.0f} runs that train: median {v['median']:.3g}, from {v['lo']:.3g} "
            f"to {v['hi']:.3g}; {100 * v['within']:.0f}% within a factor 2")


CURVATURE_RULE = ("reproduced if the late median lies within a factor 2 of 2/LR in every run that trains; partly if "
                  "the median over the runs does")
SHARPNESS = Rule(
    "iv1_sharpness", "Under minibatch SGD (the VGG runs, the book's only SGD network) the batch sharpness settles at "
                     "2/LR (Andreyev & Beneventano).",
    CURVATURE_RULE + "; judged under both trains bars",
    "the papers report the quantity hovering just around 2/LR: a factor 2 either way is generous; the DLN trains by "
    "full-batch gradient descent, so it is not in this claim's population",
    tuple(s for (m, _, lr), s in SPECS.items() if m == "vgg" and lr in SWEEP_LRS["vgg"]),
    _measure_curvature("sharpness", {"vgg": SWEEP_LRS["vgg"]}), None, _describe_curvature,
    readings=bar_readings(_judge_curvature))

EIGEN = Rule(
    "iv1_eigen", "Under full-batch gradient descent (the DLN) the top Hessian eigenvalue rises to about 2/LR and "
                 "hovers there (Cohen et al.).",
    CURVATURE_RULE, "the papers report the quantity hovering just around 2/LR: a factor 2 either way is generous",
    tuple(s for (m, _, _), s in SPECS.items() if m == "dln"), _measure_curvature("eigenvalue", {"dln": LRS["dln"]}),
    lambda v: _judge_curvature({k[len(_bar_tag(LEAD_BAR)):]: x for k, x in v.items()
                                if k.startswith(_bar_tag(LEAD_BAR))}), _describe_curvature)


def _largest_trained(runs: Runs, norm: str, bar: float) -> float:
    ok = [lr for lr in LRS["vgg"] if trains(runs["vgg", norm, lr], bar)]
    return max(ok) if ok else 0.0


def _test(rec: RunRecord) -> float:
    return 0.0 if rec.status == "diverged" else 100 * rec.summary["final_test_acc"]


def _measure_range(runs: Runs, bar: float) -> dict[str, float]:
    return {"bn_max": _largest_trained(runs, "batch", bar), "std_max": _largest_trained(runs, "none", bar),
            "bn_n": float(sum(trains(runs["vgg", "batch", lr], bar) for lr in LRS["vgg"])),
            "std_n": float(sum(trains(runs["vgg", "none", lr], bar) for lr in LRS["vgg"]))}


LR_RANGE = Rule(
    "iv1_lr_range", "BatchNorm lets the network train at larger learning rates (Bjorck et al.).",
    "reproduced if the largest LR at which VGG trains (no divergence, final training accuracy above the bar) is "
    "larger with BN than without; judged under both trains bars",
    "the claim is about the range, so its upper end decides", tuple(s for (m, _, _), s in SPECS.items() if m == "vgg"),
    by_bar(_measure_range), None,
    lambda v: f"VGG trains at {v['bn_n']:.0f} of {len(LRS['vgg'])} LRs with BN (up to {v['bn_max']:g}), at "
              f"{v['std_n']:.0f} without (up to {v['std_max']:g})",
    readings=bar_readings(lambda v: grade([Check("BN's largest training LR against the standard's", v["bn_max"], ">",
                                                 v["std_max"], graded=False)])))


def _measure_gap(runs: Runs, bar: float) -> dict[str, float]:
    both = [lr for lr in LRS["vgg"] if trains(runs["vgg", "none", lr], bar) and trains(runs["vgg", "batch", lr], bar)]
    gaps = [_test(runs["vgg", "batch", lr]) - _test(runs["vgg", "none", lr]) for lr in both]
    best = max(_test(runs["vgg", "batch", lr]) for lr in LRS["vgg"]) - max(_test(runs["vgg", "none", lr])
                                                                            for lr in LRS["vgg"])
    return {"common_gap": float(np.median(gaps)) if gaps else float("nan"), "best_gap": float(best),
            "n_common": float(len(both)), "smallest_lr_gap": float(gaps[0]) if gaps else float("nan")}


def _judge_gap(v) -> Judgement:
    """Needs two LRs at which both train: over one, the median gap is that LR's and may be the best-LR pair itself."""
    if v["n_common"] < 2:
        return not_testable(f"both networks train at {v['n_common']:.0f} common LR, and the comparison needs at least 2")
    return grade([Check("median gap where both train (points)", v["common_gap"], "<=", v["best_gap"] / 2)],
                 [[Check("median gap where both train (points)", v["common_gap"], "<", v["best_gap"])]])


GAP = Rule(
    "iv1_gap", "Where both networks train, BatchNorm's advantage is small: its main benefit is the larger learning "
               "rates it allows (Bjorck et al.).",
    "reproduced if the median test-accuracy gap (BN − standard) over the LRs at which both train is at most half the "
    "gap between each network's best LR; partly if it is smaller than that gap; not testable with fewer than two "
    "common LRs; judged under both trains bars",
    "\"main benefit\": more than half of the best-against-best advantage must come from the LR range; over a single "
    "common LR the two gaps can be the same pair of runs",
    tuple(s for (m, _, _), s in SPECS.items() if m == "vgg"), by_bar(_measure_gap), None,
    lambda v: (f"test accuracy BN − standard: median {v['common_gap']:+.1f} points over the {v['n_common']:.0f} LRs "
               f"where both train ({v['smallest_lr_gap']:+.1f} at the smallest)" if v["n_common"] != 1 else
               f"test accuracy BN − standard: {v['common_gap']:+.1f} points at the one LR where both train")
              + f"; best LR against best LR {v['best_gap']:+.1f}",
    readings=bar_readings(_judge_gap))


def scale_residual(rec: RunRecord) -> float:
    """Median |residual| of ||W_{t+1}||^2 = ||W_t||^2 + LR^2 ||g_t||^2 (`probes.weight_norms.residuals`, i.e.
    |cos(W, g)|) over steps and the layers that feed a normalisation (all but the last)."""
    res = np.abs(residuals(rec))
    return float(np.nanmedian(res)) if rec.status != "diverged" else float("nan")


def _measure_scale(runs: Runs) -> dict[str, float]:
    out = {}
    for m in LRS:
        for n in NORMS:
            res = [scale_residual(runs[m, n, lr]) for lr in SWEEP_LRS[m]]
            out[f"{m}_{n}"] = float(np.nanmax(res)) if n == "batch" else float(np.nanmin(res))
    return out


SCALE = Rule(  # the identity in three pieces of math: a table's narrow column can wrap between them
    "iv1_scale", "A weight feeding a BatchNorm layer is scale-invariant: under plain SGD "
                 "$\\Vert W_{t+1}\\Vert^2$ $= \\Vert W_t\\Vert^2$ $+ \\mathrm{LR}^2\\Vert\\nabla_W L\\Vert^2$ exactly, so "
                 "the effective learning rate $\\mathrm{LR}/\\Vert W\\Vert^2$ falls as the norm grows.",
    "reproduced if the median $\\vert\\cos(W, \\nabla_W L)\\vert$ (the identity's residual, see `probes.weight_norms`) "
    "over steps and "
    "normalised layers is at most 1e-3 in every BN run with weight norms, and the standard network's smallest is 10 "
    "times larger; partly if only the BN bound holds",
    "BatchNorm's eps and float32 rounding leave cos(W, g) of order 1e-5 or below; 1e-3 is far above that and far "
    "below a weight that is not scale-invariant",
    tuple(s for (m, _, lr), s in SPECS.items() if lr in SWEEP_LRS[m]), _measure_scale,
    lambda v: grade([Check("largest BN median |cos| (VGG)", v["vgg_batch"], "<=", 1e-3),
                     Check("largest BN median |cos| (DLN)", v["dln_batch"], "<=", 1e-3),
                     Check("standard ÷ BN median |cos| (VGG)", v["vgg_none"] / max(v["vgg_batch"], 1e-300), ">=", 10),
                     Check("standard ÷ BN median |cos| (DLN)", v["dln_none"] / max(v["dln_batch"], 1e-300), ">=", 10)],
                    [[Check("largest BN median |cos| (VGG)", v["vgg_batch"], "<=", 1e-3),
                      Check("largest BN median |cos| (DLN)", v["dln_batch"], "<=", 1e-3)]]),
    lambda v: f"median |cos(W, ∇W)|: BN at most {v['vgg_batch']:.1g} (VGG) and {v['dln_batch']:.1g} (DLN); standard "
              f"at least {v['vgg_none']:.1g} (VGG) and {v['dln_none']:.1g} (DLN)")


SECTION = Section("IV.1", "Beyond the paper: does effective beta track 2/LR?", "chapters/beyond_lr",
                  tuple(SPECS.values()), (BN_BETA, STD_BETA, SHARPNESS, EIGEN, LR_RANGE, GAP, SCALE), variants=False)


def ratios_markdown(runs: Runs) -> str:
    """Every run of the sweep: whether it trains (`trains`), its final training accuracy or loss, and each
    quantity's late median ÷ (2/LR) ("—" where the run does not carry the probe or diverged)."""
    rows = ["| Network | LR | Trains | Final | " + " | ".join(f"{q} ÷ (2/LR)" for q in QUANTITIES) + " |",
            "|---" * (4 + len(QUANTITIES)) + "|"]
    for m in LRS:
        for n in NORMS:
            for lr in LRS[m]:
                r = runs[m, n, lr]
                final = (f"loss {r.summary['final_train_loss']:.3g} (from {r['train_loss'][0]:.3g})" if m == "dln"
                         else f"{100 * r.summary['final_train_acc']:.1f}% training accuracy")
                cells = [f"{v:.3g}" if np.isfinite(v := late_ratio(r, q)) else "—" for q in QUANTITIES]
                rows.append(f"| {MODEL_NAMES[m]} {SHORT_NAMES[n]} | {lr:g} | "
                            f"{'yes' if trains(r) else 'no'} | {final if r.status != 'diverged' else 'diverged'} | "
                            + " | ".join(cells) + " |")
    return "\n".join(rows)


#: The runs the chapter's after-the-fact observations name, by glue prefix: the standard VGG at the two LRs where it
#: learns without reaching the "trains" bar, the standard DLN at the sweep's largest and smallest LR.
OBSERVED = {"vgg_std_low": ("vgg", "none", 0.02), "vgg_std_mid": ("vgg", "none", 0.05),
            "dln_std_top": ("dln", "none", max(LRS["dln"])), "dln_std_bottom": ("dln", "none", min(LRS["dln"]))}


def observed_ratios(runs: Runs) -> dict[str, float]:
    """Each quantity's late median ÷ (2/LR) for the runs of `OBSERVED`, keyed `<prefix>_<quantity>`."""
    return {f"{name}_{q}": late_ratio(runs[key], q) for name, key in OBSERVED.items() for q in QUANTITIES}


def observed_by_seed(by_seed: Mapping[int, Runs], name: str, quantity: str) -> str:
    """`quantity`'s late median ÷ (2/LR) for the run `OBSERVED[name]` at every seed of `by_seed`, as prose:
    "0.054 at seed 0, 0.031 at seed 1 and 1 at seed 2" ("—" where not recorded)."""
    return prose_list([f"{v:.2g} at seed {seed}" if np.isfinite(v := late_ratio(runs[OBSERVED[name]], quantity))
                       else f"— at seed {seed}" for seed, runs in sorted(by_seed.items())])


# --- figures ---------------------------------------------------------------------------------------------------

STYLES = {"beta": "-", "sharpness": "--", "eigenvalue": ":"}


def ratio_figure(runs: Runs) -> Figure:
    """The figure to scan: per network (panels), each quantity's late median divided by 2/LR against LR, standard
    and BN; 1 is the edge of stability. Runs the rules count as not training (`trains`) are drawn hollow."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.4), layout="constrained")
    for ax, m in zip(axes, LRS):
        for n in NORMS:
            for q in QUANTITIES:
                pts = [(lr, late_ratio(runs[m, n, lr], q), trains(runs[m, n, lr])) for lr in LRS[m]]
                pts = [p for p in pts if np.isfinite(p[1]) and p[1] > 0]
                if not pts:
                    continue
                x, y, ok = (np.array(v) for v in zip(*pts))
                ax.plot(x, y, STYLES[q], color=COLORS[n], lw=1)
                ax.scatter(x, y, s=16, color=[COLORS[n] if t else "none" for t in ok], edgecolors=COLORS[n], zorder=3)
        ax.axhline(1, color="grey", lw=0.8)
        ax.axhspan(1 / 2, 2, color="grey", alpha=0.12, lw=0)
        ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="late median ÷ (2/LR)",
               title="VGG (SGD, batch 128)" if m == "vgg" else "DLN (full-batch GD)")
        ax.set_xticks(LRS[m], [f"{lr:g}" for lr in LRS[m]], fontsize=9, rotation=45)
        ax.xaxis.set_minor_locator(plt.NullLocator())
    key = [(plt.Line2D([], [], color=COLORS[n], lw=1.5), SHORT_NAMES[n]) for n in NORMS]
    key += [(plt.Line2D([], [], color=FOREGROUND, ls=STYLES[q], lw=1), QUANTITIES[q]) for q in QUANTITIES]
    key.append((plt.Line2D([], [], color=FOREGROUND, ls="", marker="o", mfc="none"), "does not train"))
    fig.legend(*zip(*key), loc="outside lower center", ncol=3)
    return fig


def over_training_figure(runs: Runs, model: str, lr: float) -> Figure:
    """Beta, batch sharpness and top eigenvalue over training at one LR, standard and BN, against 2/LR; the key in
    the fourth panel."""
    fig, grid = plt.subplots(2, 2, figsize=(WIDTH, 5.4), sharex=True, layout="constrained")
    axes = grid.ravel()
    for ax, (q, title) in zip(axes, QUANTITIES.items()):
        for n in NORMS:
            x, y = series(runs[model, n, lr], q)
            if len(x):
                ax.plot(x, y, color=COLORS[n], lw=1, marker="." if q == "eigenvalue" else None,
                        label=SHORT_NAMES[n])
        ax.axhline(2 / lr, color="grey", lw=1, ls="--", label="2/LR")
        ax.set(yscale="log", title=title)
        if not ax.lines[:-1]:
            ax.text(0.5, 0.5, "not recorded at this LR\n(the paper's run, reused)", ha="center", va="center",
                    transform=ax.transAxes)
    grid[1][0].set_xlabel("training steps")
    grid[0][1].set_xlabel("training steps")
    grid[0][1].xaxis.set_tick_params(labelbottom=True)
    axes[-1].set_axis_off()
    axes[-1].legend(*axes[0].get_legend_handles_labels(), loc="center")
    fig.suptitle(f"{MODEL_NAMES[model]} at LR {lr:g}")
    return fig


def first_frame(runs: Runs, model: str) -> float:
    """The LR an `over_training_slider` opens on: the one showing the most recorded curves, then the most runs that
    train, then the nearest to the paper's LR."""
    def shown(lr: float) -> tuple:
        recorded = sum(len(series(runs[model, n, lr], q)[0]) > 0 for n in NORMS for q in QUANTITIES)
        return recorded, sum(trains(runs[model, n, lr]) for n in NORMS), -abs(np.log(lr / PAPER_LRS[model]))
    return max(LRS[model], key=shown)


def over_training_slider(runs: Runs, model: str):
    """`over_training_figure` with a slider over the learning rates, opening on `first_frame`."""
    from ..widgets import figure_slider

    return figure_slider(lambda lr: over_training_figure(runs, model, lr), list(LRS[model]), "learning rate",
                         first_frame(runs, model))


def robustness_figure(by_seed: Mapping[int, Runs]) -> Figure:
    """Final training and test accuracy of VGG against LR, standard and BN: the mean over seeds with the range."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.9), layout="constrained")
    for ax, key in zip(axes, ("final_train_acc", "final_test_acc")):
        for n in NORMS:
            acc = np.array([[0.0 if r.status == "diverged" else 100 * r.summary[key]
                             for r in (runs["vgg", n, lr] for lr in LRS["vgg"])] for runs in by_seed.values()])
            ax.plot(LRS["vgg"], acc.mean(0), marker="o", color=COLORS[n], label=SHORT_NAMES[n])
            ax.fill_between(LRS["vgg"], acc.min(0), acc.max(0), color=COLORS[n], alpha=0.2, lw=0)
        ax.set(xscale="log", xlabel="learning rate", ylabel="accuracy (%)", ylim=(0, 100),
               title=f"{'Training' if 'train' in key else 'Test'} accuracy\nafter the budget's steps")
    axes[0].axhline(TRAINS_ACC, color="grey", lw=0.6, ls=":")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(NORMS))
    return fig


def effective_lr_figure(runs: Runs) -> Figure:
    """For the BN runs with weight norms: LR/||W_t||^2 of each normalised layer (median over layers, with the
    range) over training, per LR (top); and the identity's residual |cos(W, g)| for BN and standard (bottom); each
    key beside its panel."""
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 6.4), layout="constrained")
    cmap = SEQUENCE_CMAP
    for i, lr in enumerate(SWEEP_LRS["vgg"]):
        rec = runs["vgg", "batch", lr]
        if "weight_sq_norm" not in rec.arrays or rec.status == "diverged":
            continue
        eff = lr / rec["weight_sq_norm"][:, :-1]
        steps = np.arange(len(eff))
        color = cmap(i / max(len(SWEEP_LRS["vgg"]) - 1, 1))
        axes[0].plot(steps, np.median(eff, axis=1), color=color, lw=1.2, label=f"LR {lr:g}")
        axes[0].fill_between(steps, eff.min(1), eff.max(1), color=color, alpha=0.15, lw=0)
    axes[0].set(yscale="log", xlabel="training steps", ylabel="LR / ‖W‖²",
                title="VGG with BN: effective learning rate per layer")
    axes[0].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    for m, marker in (("vgg", "o"), ("dln", "s")):
        for n in NORMS:
            for lr in SWEEP_LRS[m]:
                rec = runs[m, n, lr]
                if rec.config.get("weight_norms") and rec.status != "diverged":
                    res = np.abs(residuals(rec))
                    y = smooth(np.nanmedian(res, axis=1), 25)
                    axes[1].plot(np.arange(len(y)) / len(y), y, color=COLORS[n], lw=0.8,
                                 ls="-" if m == "vgg" else "--", alpha=0.8)
    axes[1].plot([], [], color=COLORS["batch"], label="BN")
    axes[1].plot([], [], color=COLORS["none"], label="standard")
    axes[1].plot([], [], color="grey", ls="--", label="DLN (solid: VGG)")
    axes[1].set(yscale="log", xlabel="fraction of training", ylabel="median |cos(W, ∇W)|",
                title="Scale invariance: the identity's residual")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig
