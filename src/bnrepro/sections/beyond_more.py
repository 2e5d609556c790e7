"""Part IV, page 2: the landscape along random directions, gradients at initialisation, and a CIFAR-10 ResNet.

Three questions the paper leaves without evidence, each answered on the book's runs:

1. *Random directions.* Section 3.2 says "the loss behaves in a similar way when we examine other (random)
   directions too". The landscape probe of Part IV's runs also walks along `random_dirs` Gaussian directions, each
   scaled to the length of the gradient (`bnrepro.probes.landscape`); `random_summary` sets the loss band along them
   beside the band along the gradient, and rule `iv2_random` asks whether BN's band is narrower there too.
2. *Gradients at initialisation.* Yang et al. (ICLR 2019) find that at initialisation BatchNorm makes gradients grow
   exponentially with depth. `init_gradients` computes every layer's weight-gradient norm at step 0 over several
   batches and seeds (`bnrepro.probes.init_grads`); rule `iv2_init` judges the growth on the runs' own step-0
   gradients, which every Part IV run records (`weight_norms`).
3. *A ResNet.* ResNet-20 (`models.ResNet`), standard and BN, trained as the VGG is, with the landscape probe:
   Figure 4's three panels (`sec31.landscape_figure`) and Section 3.1's claims re-judged on it (`iv2_resnet_*`, with
   Section 3.1's threshold for one network), beside the VGG's numbers at the same learning rate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..budgets import get_budget
from ..claims import (TRAINS_ACC, TRAINS_REASON, Check, Judgement, Rule, Runs, Section, any_of, final_train_acc,
                      grade, trains)
from ..costs import _step_fn, time_calls
from ..figures import COLORS, SHORT_NAMES
from ..models import build_model
from ..plotting import FOREGROUND, WIDTH
from ..probes import ProbeContext
from ..probes.init_grads import init_gradient_norms
from ..probes.landscape import VGG_GRID, measure_landscape
from ..probes.weight_norms import gradient_growth, growth, initial_grad_sq_norms
from ..records import RunRecord, environment
from ..specs import (DLN_LOSS_SCALE, PART4_PROBES, SWEEP_LRS, Spec, data_kind, data_location, data_root, load_data,
                     make_config)
from ..train import device_settings, pick_device
from .sec31 import BAND_READINGS, landscape_summary

NORMS = ("none", "batch")
RESNET, RESNET_LR = "resnet20", 0.1
#: Runs with the random-direction probe: the sweep's new learning rates nearest the paper's, and the ResNet.
RANDOM = {("vgg", n, lr): Spec("vgg", n, lr) for lr in SWEEP_LRS["vgg"][1:] for n in NORMS} | {
    ("dln", n, SWEEP_LRS["dln"][0]): Spec("dln", n, SWEEP_LRS["dln"][0], DLN_LOSS_SCALE) for n in NORMS}
RESNETS = {n: Spec(RESNET, n, RESNET_LR) for n in NORMS}
#: Section 3.1's VGG runs at the ResNet's learning rate: the ResNet's numbers are shown beside theirs.
PAPER_VGG = {n: Spec("vgg", n, RESNET_LR) for n in NORMS}
SPECS = tuple(RANDOM.values()) + tuple(RESNETS.values()) + tuple(PAPER_VGG.values())

#: The (network, LR) pairs the random-direction rule judges, by the tag their numbers carry; the ResNet is reported.
PAIRS = {"vgg_lo": ("vgg", SWEEP_LRS["vgg"][1]), "vgg_hi": ("vgg", SWEEP_LRS["vgg"][2]),
         "dln": ("dln", SWEEP_LRS["dln"][0])}
REPORTED = {"resnet": (RESNET, RESNET_LR)}
NAMES = {"vgg": "VGG", "dln": "DLN", RESNET: "ResNet-20"}


def _pair_name(tag: str) -> str:
    m, lr = (PAIRS | REPORTED)[tag]
    return f"{NAMES[m]} at LR {lr:g}"


# --- 1. the landscape along random directions -------------------------------------------------------------------

def decades(loss: np.ndarray) -> np.ndarray:
    """A loss band's height in decades, log10(max / min) over the last axis (the step sizes)."""
    loss = np.asarray(loss, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(loss.max(-1) / loss.min(-1))


def random_measures(rec: RunRecord) -> dict[str, np.ndarray]:
    """Per probed step: `step`; the loss band's height in decades along the gradient (`grad`) and along each random
    direction (`rand`, [step, direction]); the effective beta (largest over the step sizes) along the gradient
    (`grad_beta`) and along each direction (`rand_beta`, [step, direction])."""
    if "landscape_rand_loss" not in rec.arrays:
        raise ValueError("the record has no random directions: train it with RunConfig(random_dirs=D > 0)")
    return {"step": rec["probe_step"], "grad": decades(rec["landscape_loss"]),
            "rand": decades(rec["landscape_rand_loss"]),
            "grad_beta": rec["landscape_beta"].astype(float).max(-1),
            "rand_beta": rec["landscape_rand_beta"].astype(float).max(-1)}


def _median(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    return float(np.median(x)) if len(x) else float("nan")


def random_summary(rec: RunRecord) -> dict[str, float]:
    """Medians over the probed steps: the band height in decades along the gradient (`grad`) and along the random
    directions (`rand`, each step's median over the directions), their ratio random ÷ gradient (`rel`), and the
    effective beta along the gradient (`grad_beta`) and the random directions (`rand_beta`, likewise)."""
    m = random_measures(rec)
    with np.errstate(all="ignore"):
        rand = np.array([_median(r) for r in m["rand"]])
        rand_beta = np.array([_median(b) for b in m["rand_beta"]])
    grad, rnd = _median(m["grad"]), _median(rand)
    return {"grad": grad, "rand": rnd, "rel": rnd / grad if grad > 0 else float("nan"),
            "grad_beta": _median(m["grad_beta"]), "rand_beta": _median(rand_beta)}


def _ratio(a: float, b: float) -> float:
    return a / max(b, 1e-300) if np.isfinite(b) else float("nan")


def _measure_random(runs: Runs) -> dict[str, float]:
    out, rels = {}, []
    for tag, (m, lr) in (PAIRS | REPORTED).items():
        std, bn = (random_summary(runs[m, n, lr]) for n in NORMS)
        out |= {f"{tag}_std": std["rand"], f"{tag}_bn": bn["rand"], f"{tag}_ratio": _ratio(std["rand"], bn["rand"]),
                f"{tag}_std_grad": std["grad"], f"{tag}_bn_grad": bn["grad"],
                f"{tag}_grad_ratio": _ratio(std["grad"], bn["grad"]), f"{tag}_std_rel": std["rel"],
                f"{tag}_bn_rel": bn["rel"]}
        if tag in PAIRS:
            rels += [std["rel"], bn["rel"]]
        if m != "dln":
            out[f"{tag}_std_train"] = 100 * final_train_acc(runs[m, "none", lr])
    rels = [r for r in rels if np.isfinite(r)]
    return out | {"rel_lo": min(rels, default=float("nan")), "rel_hi": max(rels, default=float("nan"))}


def _random_pairs(v: Mapping[str, float]) -> list[str]:
    """The judged pairs whose standard network trains (the DLN's always: its loss falls at every LR)."""
    return [tag for tag, (m, _) in PAIRS.items() if m == "dln" or v[f"{tag}_std_train"] > TRAINS_ACC]


def _judge_random(v: Mapping[str, float]) -> Judgement:
    testable = _random_pairs(v)

    def checks(model: str, op: str, t: float) -> list[Check]:
        return [Check(f"{_pair_name(tag)}: band height along random directions, standard ÷ BN", v[f"{tag}_ratio"],
                      op, t) for tag in testable if PAIRS[tag][0] == model]
    every = Check("judged pairs whose standard network trains", len(testable), ">=", len(PAIRS), graded=False)
    partly = [g for g in (checks("vgg", ">", 1), checks("dln", ">", 1)) if g]
    return grade([every] + checks("vgg", ">=", 2) + checks("dln", ">=", 2), partly)


def _describe_random(v: Mapping[str, float]) -> str:
    runs = "; ".join(f"{_pair_name(tag)}: standard {v[f'{tag}_std']:.2g} ({v[f'{tag}_std_grad']:.2g}), BN "
                     f"{v[f'{tag}_bn']:.2g} ({v[f'{tag}_bn_grad']:.2g}), ratio {v[f'{tag}_ratio']:.2g} "
                     f"({v[f'{tag}_grad_ratio']:.2g})" for tag in PAIRS | REPORTED)
    left_out = [f"{_pair_name(t)} (its standard network ends at {v[f'{t}_std_train']:.1f}% training accuracy)"
                for t in PAIRS if t not in _random_pairs(v)]
    return (f"median height of the loss band in decades along random directions (along the gradient in brackets): "
            f"{runs} (the ResNet is reported, not judged); in the judged runs a random direction's band is "
            f"{v['rel_lo']:.2g} to {v['rel_hi']:.2g} times as tall as the gradient's"
            + (f"; left out, its standard network does not train: {'; '.join(left_out)}" if left_out else ""))


RANDOM_RULE = Rule(
    "iv2_random", "\"The loss behaves in a similar way when we examine other (random) directions too\" (Section 3.2, "
                  "no figure): with BN the loss band is narrower along random directions as well.",
    "reproduced if along random directions the standard network's loss band, in decades (log10 max ÷ min over the "
    "step sizes; median over the directions, then over the probed steps), is at least twice as tall as BN's in "
    "both networks, for VGG at each of its two learning rates; partly if it is taller in one network (VGG: at both "
    f"learning rates); a pair whose standard network ends at or below {TRAINS_ACC:g}% training accuracy is left out, "
    "and the claim is then at most partly reproduced",
    "Section 3.1's threshold along the gradient (c31_loss), applied along the directions the paper says behave alike",
    tuple(RANDOM.values()) + tuple(RESNETS.values()), _measure_random, _judge_random, _describe_random)


# --- 2. gradients at initialisation --------------------------------------------------------------------------------

#: The runs whose recorded step-0 gradients `iv2_init` judges (VGG's step 0 is the same at every learning rate).
INIT_RUNS = {"vgg": SWEEP_LRS["vgg"][1], "dln": SWEEP_LRS["dln"][0]}
#: Yang et al.'s growth of the gradient norm per ReLU layer with BN, sqrt(pi / (pi - 1)): BN divides the backward
#: signal by the batch's standard deviation, which after a ReLU is smaller than the root mean square by this factor.
RELU_RATE = float(np.sqrt(np.pi / (np.pi - 1)))
#: The rule asks for half its exponent.
INIT_RATE = 1.1


def _init_spec(model: str, norm: str) -> Spec:
    return RANDOM[model, norm, INIT_RUNS[model]]


def data_available(budget: str, data: str | None = None) -> bool:
    """Whether VGG's data can be found for `budget` (the argument, $BNREPRO_DATA or the budget's default)."""
    return data_location(data, get_budget(budget)) is not None


def init_gradients(budget: str, seeds: Sequence[int], batches: int = 4, data: str | None = None,
                   device: str | None = "cpu") -> dict[tuple[str, str], np.ndarray]:
    """||grad_W L|| of every layer's weight at step 0, for the budget's VGG (its width, batch and loss) and the DLN
    (loss scale 0.1), standard and BN: {(model, norm): float64 array [seed, batch, layer]} (layer i+1 at index i).

    Each seed's network is initialised as that seed's run is; batch b is the step-0 batch of the run of seed b
    (`probes.init_grads.init_gradient_norms`), so [s, s] is run s's own first gradient. VGG's data come from `data`,
    $BNREPRO_DATA or the budget's default (synthetic at `smoke`); nothing is trained, stored or read from records.
    """
    b, dev = get_budget(budget), pick_device(device)
    out, loaded = {}, None
    for model in INIT_RUNS:
        for norm in NORMS:
            spec = _init_spec(model, norm)
            if model == "dln":
                out[model, norm] = init_gradient_norms(make_config(spec, b, seeds[0]), seeds, batches, device=dev)
                continue
            root = data_root(data, b)
            cfg = make_config(spec, b, seeds[0], data_kind(root))
            if loaded is None:
                loaded = load_data(root, cfg, dev)
            out[model, norm] = init_gradient_norms(cfg, seeds, batches, loaded, dev)
    return out


def step0_gradients(rec: RunRecord) -> np.ndarray:
    """||grad_W L|| of every layer at step 0 as the run recorded it (`weight_norms`), on its own first batch."""
    return np.sqrt(initial_grad_sq_norms(rec).astype(float))


def recorded_init_gradients(by_seed: Mapping[int, Runs]) -> dict[tuple[str, str], np.ndarray]:
    """`init_gradients`' arrays from the runs' recorded step-0 gradients: one batch per seed (the run's own)."""
    return {(m, n): np.stack([step0_gradients(runs[m, n, lr])[None] for runs in by_seed.values()])
            for m, lr in INIT_RUNS.items() for n in NORMS}


def excess(grads: Mapping[tuple[str, str], np.ndarray], model: str) -> dict[str, float]:
    """BN's growth against the standard network's for `model`: the medians over seeds and batches of each network's
    `growth` (`std`, `bn`), their ratio (`excess`) and that ratio per layer between the first and the last normalised
    layer (`rate`, excess^(1/(layers - 2))); `layers` counts the network's layers."""
    std, bn = (float(np.median(growth(grads[model, n]))) for n in NORMS)
    layers = grads[model, "none"].shape[-1]
    ratio = _ratio(bn, std)
    return {"std": std, "bn": bn, "excess": ratio, "rate": ratio ** (1 / (layers - 2)), "layers": float(layers)}


def _measure_init(runs: Runs) -> dict[str, float]:
    grads = recorded_init_gradients({0: runs})
    return {f"{m}_{k}": v for m in INIT_RUNS for k, v in excess(grads, m).items()}


def _describe_init(v: Mapping[str, float]) -> str:
    return "; ".join(
        f"{NAMES[m]} ({v[f'{m}_layers']:.0f} layers): first ÷ last normalised layer's gradient norm, standard "
        f"{v[f'{m}_std']:.3g}, BN {v[f'{m}_bn']:.3g}: BN's excess {v[f'{m}_excess']:.3g}, "
        f"{v[f'{m}_rate']:.3g} per layer" for m in INIT_RUNS) + " (the DLN is reported, not judged)"


INIT = Rule(
    "iv2_init", "*Not a claim of the paper:* at initialisation BatchNorm makes gradients grow exponentially with "
                "depth (Yang et al., ICLR 2019): in a ReLU network by about √(π/(π−1)) ≈ 1.21 per layer.",
    f"reproduced if in VGG at step 0 BN's ratio of the first layer's gradient norm to the last normalised layer's "
    f"exceeds the standard network's by at least a factor {INIT_RATE:g} per layer in between; partly if it exceeds it",
    f"{INIT_RATE:g} is half the exponent of the predicted 1.21, which is for infinitely wide fully connected networks; "
    "the linear DLN, for which the same argument predicts no growth, is reported",
    tuple(_init_spec(m, n) for m in INIT_RUNS for n in NORMS), _measure_init,
    lambda v: grade([Check("VGG: BN's excess growth per layer", v["vgg_rate"], ">=", INIT_RATE)],
                    [[Check("VGG: BN's excess growth per layer", v["vgg_rate"], ">", 1)]]),
    _describe_init)


def init_figure(grads: Mapping[tuple[str, str], np.ndarray], title: str | None = None) -> Figure:
    """Each network's weight-gradient norm against depth at step 0 (one panel per network), standard and BN: the
    median over seeds and batches, shaded from the smallest to the largest; a dotted line at the last normalised
    layer."""
    models = list(dict.fromkeys(m for m, _ in grads))
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 4.0), squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], models):
        for n in NORMS:
            g = grads[m, n].reshape(-1, grads[m, n].shape[-1])
            layer = np.arange(1, g.shape[1] + 1)
            ax.plot(layer, np.median(g, 0), "o-", ms=3, color=COLORS[n], label=SHORT_NAMES[n])
            ax.fill_between(layer, g.min(0), g.max(0), color=COLORS[n], alpha=0.2, lw=0)
        ax.axvline(g.shape[1] - 1, color="grey", ls=":", lw=0.8)
        ax.set(yscale="log", xlabel="layer", ylabel="‖∇W L‖₂ at step 0",
               title=f"{NAMES[m]}:\n{grads[m, 'none'].shape[0]} seeds × {grads[m, 'none'].shape[1]} batches")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=len(NORMS))
    if title:
        fig.suptitle(title)
    return fig


def growth_series(rec: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """(steps, `growth` at each step) from the gradients the run recorded at every step (`weight_norms`)."""
    g = gradient_growth(rec).astype(float)
    return np.arange(len(g)), g


def late_growth(rec: RunRecord) -> float:
    """The median `growth` over the second half of the run's recorded steps."""
    steps, g = growth_series(rec)
    return _median(g[steps >= len(steps) / 2])


def growth_figure(runs: Runs) -> Figure:
    """The first layer's gradient norm ÷ the last normalised layer's at every training step, standard and BN, for
    the runs `iv2_init` reads (log axes; the x axis is the step + 1, so that step 0 shows)."""
    fig, axes = plt.subplots(1, len(INIT_RUNS), figsize=(WIDTH, 3.9), squeeze=False, layout="constrained")
    for ax, (m, lr) in zip(axes[0], INIT_RUNS.items()):
        for n in NORMS:
            steps, g = growth_series(runs[m, n, lr])
            ax.plot(steps + 1, g, color=COLORS[n], lw=0.8, label=SHORT_NAMES[n])
        ax.axhline(1, color="grey", lw=0.6, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="training step + 1", title=f"{NAMES[m]} at LR {lr:g}",
               ylabel="‖∇W‖, layer 1 ÷ last normalised")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=len(NORMS))
    return fig


# --- 3. the ResNet: Section 3.1's claims re-judged -------------------------------------------------------------

def _resnet_compare(stat: str, tag: str = ""):
    """A `landscape_summary` statistic of the ResNet and (reported beside it) the VGG at the same LR, standard and
    BN: values `[vgg_]<tag><std|bn|ratio>`, the ratio being standard ÷ BN."""
    def measure(runs: Runs) -> dict[str, float]:
        out = {}
        for prefix, model in (("", RESNET), ("vgg_", "vgg")):
            std, bn = (landscape_summary(runs[model, n, RESNET_LR])[stat] for n in NORMS)
            out |= {f"{prefix}{tag}std": std, f"{prefix}{tag}bn": bn, f"{prefix}{tag}ratio": _ratio(std, bn)}
        return out
    return measure


def _describe_pair(v: Mapping[str, float], what: str, tag: str = "") -> str:
    return (f"{what}: ResNet standard {v[f'{tag}std']:.3g}, BN {v[f'{tag}bn']:.3g} (ratio {v[f'{tag}ratio']:.3g}); "
            f"VGG at the same LR standard {v[f'vgg_{tag}std']:.3g}, BN {v[f'vgg_{tag}bn']:.3g} (ratio "
            f"{v[f'vgg_{tag}ratio']:.3g})")


def _judge_ratio(v: Mapping[str, float], what: str, full: float, tag: str = "") -> Judgement:
    return grade([Check(f"ResNet {what} standard ÷ BN", v[f"{tag}ratio"], ">=", full)],
                 [[Check(f"ResNet {what} standard ÷ BN", v[f"{tag}ratio"], ">", 1)]])


def _resnet_train(runs: Runs) -> dict[str, float]:
    return {"std_train": 100 * final_train_acc(runs[RESNET, "none", RESNET_LR])}


RESNET_NEEDS = {"needs": lambda v: [trains("the standard ResNet", v["std_train"])], "needs_reason": TRAINS_REASON}


RESNET_SPECS = tuple(RESNETS.values()) + tuple(PAPER_VGG.values())
ONE_NETWORK = ("Section 3.1's threshold for each network ({}), applied to the ResNet alone; VGG's numbers are shown "
               "beside")

RESNET_LOSS = Rule(
    "iv2_resnet_loss", "Section 3.1 on a ResNet-20: with BN the loss varies far less along the gradient (Figure 4a).",
    "reproduced if the standard ResNet's loss band (median over the probed steps) is at least twice BN's; partly if "
    "it is larger; judged by its absolute width (max − min over the step sizes) and by its height in decades",
    ONE_NETWORK.format("c31_loss"), RESNET_SPECS,
    lambda runs: (_resnet_compare("band_decades")(runs) | _resnet_compare("band_width", "width_")(runs)
                  | _resnet_train(runs)),
    None,
    lambda v: _describe_pair(v, "median height of the loss band in decades") + "; "
              + _describe_pair(v, "its median width (max − min)", "width_"),
    readings={name: (lambda v, name=name, tag=tag: _judge_ratio(v, f"loss band ({name})", 2, tag))
              for name, tag in BAND_READINGS.items()}, **RESNET_NEEDS)

RESNET_PREDICTIVE = Rule(
    "iv2_resnet_predictive", "Section 3.1 on a ResNet-20: gradients are more predictive with BN, the gradient change "
                             "along the gradient differing by \"close to two orders of magnitude\" (Figure 4b).",
    "reproduced if the standard ResNet's largest gradient change is at least 30× BN's; partly if it is larger",
    ONE_NETWORK.format("c31_predictive"), RESNET_SPECS,
    lambda runs: _resnet_compare("gd_max")(runs) | _resnet_compare("gd_median", "median_")(runs) | _resnet_train(runs),
    lambda v: _judge_ratio(v, "largest gradient change", 30),
    lambda v: _describe_pair(v, "largest gradient change over all probed steps and step sizes") + "; "
              + _describe_pair(v, "median over steps", "median_"), **RESNET_NEEDS)


def _judge_resnet_beta(v: Mapping[str, float]) -> Judgement:
    checks = [Check(f"ResNet {what} standard ÷ BN", v[f"{tag}ratio"], ">", 1)
              for what, tag in (("median β", ""), ("interquartile ratio of β", "iqr_"))]
    return grade(checks, any_of(checks))


RESNET_BETA = Rule(
    "iv2_resnet_beta", "Section 3.1 on a ResNet-20: BN's effective β-smoothness is lower and flat (Figure 4c).",
    "reproduced if BN's median β is lower and its interquartile ratio (75th ÷ 25th percentile over steps) smaller "
    "than the standard ResNet's; partly if one of the two holds",
    ONE_NETWORK.format("c31_beta"), RESNET_SPECS,
    lambda runs: (_resnet_compare("beta_median")(runs) | _resnet_compare("beta_iqr", "iqr_")(runs)
                  | _resnet_compare("beta_max", "max_")(runs) | _resnet_train(runs)),
    _judge_resnet_beta,
    lambda v: "; ".join(_describe_pair(v, what, tag) for what, tag in (
        ("median β", ""), ("interquartile ratio of β", "iqr_"), ("largest β", "max_"))), **RESNET_NEEDS)


def _measure_resnet_eos(runs: Runs) -> dict[str, float]:
    beta = _resnet_compare("beta_median")(runs)
    return {k: beta[k] * RESNET_LR / 2 for k in ("std", "bn", "vgg_std", "vgg_bn")} | {"two_over_lr": 2 / RESNET_LR}


RESNET_EOS = Rule(
    "iv2_resnet_eos", "*Our observation (Section 3.1), not a claim of the paper:* BN's effective β sits near 2/LR, "
                      "the edge-of-stability value; here on a ResNet-20.",
    "reproduced if BN's median β lies within a factor 2 of 2/LR in the ResNet",
    ONE_NETWORK.format("c31_eos"), RESNET_SPECS, _measure_resnet_eos,
    lambda v: grade([Check("ResNet BN's median β ÷ (2/LR)", v["bn"], ">=", 0.5),
                     Check("ResNet BN's median β ÷ (2/LR)", v["bn"], "<=", 2)]),
    lambda v: f"median β ÷ (2/LR) (2/LR = {v['two_over_lr']:g}): ResNet BN {v['bn']:.2g}, standard {v['std']:.2g}; "
              f"VGG BN {v['vgg_bn']:.2g}, standard {v['vgg_std']:.2g}")

SECTION = Section("IV.2", "Beyond the paper: random directions, initial gradients, a ResNet", "chapters/beyond_more",
                  SPECS, (RANDOM_RULE, INIT, RESNET_LOSS, RESNET_PREDICTIVE, RESNET_BETA, RESNET_EOS),
                  variants=False)


# --- figures and tables -------------------------------------------------------------------------------------------

def random_figure(runs: Runs) -> Figure:
    """For each network with random directions (rows, titled by the network), standard and BN, against training
    steps: the loss band's height in decades (left) and the effective beta (right), along the gradient (solid) and
    along the random directions (dashed: the median over directions, shaded from the smallest to the largest)."""
    tags = list(PAIRS | REPORTED)
    fig = plt.figure(figsize=(WIDTH, 2.5 * len(tags) + 0.5), layout="constrained")
    for tag, row in zip(tags, np.atleast_1d(fig.subfigures(len(tags), 1))):
        m, lr = (PAIRS | REPORTED)[tag]
        axes = row.subplots(1, 2)
        for n in NORMS:
            r = random_measures(runs[m, n, lr])
            for ax, grad, rand in ((axes[0], r["grad"], r["rand"]), (axes[1], r["grad_beta"], r["rand_beta"])):
                ax.plot(r["step"], grad, color=COLORS[n], lw=1.2)
                with np.errstate(all="ignore"):
                    ax.plot(r["step"], np.nanmedian(rand, 1), color=COLORS[n], lw=1.0, ls="--")
                    ax.fill_between(r["step"], np.nanmin(rand, 1), np.nanmax(rand, 1), color=COLORS[n], alpha=0.15,
                                    lw=0)
        row.suptitle(_pair_name(tag))
        axes[0].set(title="loss band height (decades)", yscale="log")
        axes[1].set(title="effective β (max over η)", yscale="log")
        if tag == tags[-1]:
            axes[0].set_xlabel("training steps")
            axes[1].set_xlabel("training steps")
    key = [(plt.Line2D([], [], color=COLORS[n], lw=1.2), SHORT_NAMES[n]) for n in NORMS]
    key += [(plt.Line2D([], [], color=FOREGROUND, lw=1.2), "along the gradient"),
            (plt.Line2D([], [], color=FOREGROUND, lw=1.0, ls="--"), "random directions (median)")]
    fig.legend(*zip(*key), loc="outside upper center", ncol=2)
    return fig


def resnet_table(runs: Runs) -> str:
    """Markdown: Section 3.1's measures for the ResNet and the VGG at the same learning rate, standard and BN, with
    the final training and test accuracies."""
    rows = ["| Measure | ResNet-20 standard | ResNet-20 BN | VGG standard | VGG BN |", "|---|---|---|---|---|"]
    summaries = {(m, n): landscape_summary(runs[m, n, RESNET_LR]) for m in (RESNET, "vgg") for n in NORMS}
    for what, key in (("loss band height (decades), median", "band_decades"), ("loss band width, median", "band_width"),
                      ("largest gradient change", "gd_max"), ("median gradient change", "gd_median"),
                      ("effective β, median", "beta_median"), ("effective β, interquartile ratio", "beta_iqr"),
                      ("effective β, largest", "beta_max")):
        rows.append(f"| {what} | " + " | ".join(f"{summaries[m, n][key]:.3g}" for m in (RESNET, "vgg")
                                                 for n in NORMS) + " |")
    for what, key in (("final training accuracy (%)", "final_train_acc"),
                      ("final test accuracy (%)", "final_test_acc")):
        rows.append(f"| {what} | " + " | ".join(f"{100 * runs[m, n, RESNET_LR].summary[key]:.1f}"
                                                 for m in (RESNET, "vgg") for n in NORMS) + " |")
    return "\n".join(rows)


def accuracies(by_seed: Mapping[int, Runs], model: str = RESNET) -> dict[str, float]:
    """Final test and training accuracy (%) of `model` at the ResNet's LR, standard and BN, over the seeds: keys
    `<norm>_<test|train>_<mean|lo|hi>`, and `<norm>_minutes`, the mean wall time of a run."""
    out = {}
    for n in NORMS:
        recs = [runs[model, n, RESNET_LR] for runs in by_seed.values()]
        for which, key in (("test", "final_test_acc"), ("train", "final_train_acc")):
            acc = np.array([0.0 if r.status == "diverged" else 100 * r.summary[key] for r in recs])
            out |= {f"{n}_{which}_mean": float(acc.mean()), f"{n}_{which}_lo": float(acc.min()),
                    f"{n}_{which}_hi": float(acc.max())}
        out[f"{n}_minutes"] = float(np.mean([r.summary["wall_time_s"] for r in recs]) / 60)
    return out


# --- costs ----------------------------------------------------------------------------------------------------

def resnet_probe_cost(budget: str, device: str | None = None, repeats: int = 3) -> dict[str, float | str]:
    """Time one training step of the budget's ResNet with BN and one landscape probe (the mode training uses) without
    and with Part IV's random directions; best of `repeats`. Returns `step_ms`, `probe_ms` (gradient only),
    `random_ms` (with the directions), their `*_per_step` ratios to step_ms, `dirs` and `device`
    (as `costs.random_dirs_cost` does for VGG and the DLN, whose networks `costs` builds)."""
    b, dev, dirs = get_budget(budget), pick_device(device), PART4_PROBES["random_dirs"]
    with device_settings(False, dev), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.randn(b.vgg_batch_size, 3, 32, 32, device=dev)
        y = torch.randint(0, 10, (b.vgg_batch_size,), device=dev)
        ctx = ProbeContext(build_model(RESNET, "batch", b.resnet_width).to(dev).train(), x, y, F.cross_entropy,
                           RESNET_LR, 0)
        t = time_calls({"step": _step_fn(ctx), "probe": lambda: measure_landscape(ctx, VGG_GRID),
                        "random": lambda: measure_landscape(ctx, VGG_GRID, random_dirs=dirs)}, repeats, dev)
        name = environment(dev)["device_name"]
    return {"step_ms": t["step"], "probe_ms": t["probe"], "random_ms": t["random"], "dirs": dirs,
            "probe_per_step": t["probe"] / t["step"], "random_per_step": t["random"] / t["step"], "device": name}


def timed_init_gradients(*args, **kw) -> tuple[dict[tuple[str, str], np.ndarray], float]:
    """`init_gradients` and its wall time in seconds."""
    t = time.perf_counter()
    out = init_gradients(*args, **kw)
    return out, time.perf_counter() - t
