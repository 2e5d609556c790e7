"""The deep linear network's loss scale and float rounding: which reading the chapters lead with, and which
verdicts hold under another reading or in float64.

The paper minimises ||W_1...W_k x - A x||^2 over 1,000 samples without saying whether the loss is summed or
averaged. Gradient descent on c*L at learning rate eta takes exactly the steps of L at learning rate c*eta (every
loss multiplied by c), so the loss scale c and the learning rate are one knob: each reading c is the paper's
learning rate applied to another effective learning rate c*eta. Which c matches the paper is an empirical question
this module answers with runs: it lists the readings and dtypes every DLN run of the paper's sections is
computed under (`bnrepro.plan`), and `bnrepro.judge.variants` evaluates every claim that rests on DLN runs under each
reading, and again with the runs recomputed in float64 (a change that is mathematically a no-op), so a verdict that
hangs on float rounding shows as such.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .claims import FLIPS, Judged, Section, short_verdict
from .figures import COLORS, NAMES
from .models import dln_data
from .plotting import WIDTH
from .records import RunRecord
from .specs import DLN_LOSS_SCALE, Spec
from .train import RunConfig, device_settings, dln_batch, initial_model, loss_function

#: Every reading of the DLN's loss scale the book computes: c -> what the loss is. The lead reading comes first.
READINGS = {DLN_LOSS_SCALE: "0.1 × the summed squared error", 1.0: "the summed squared error"}
DTYPES = ("float32", "float64")
F64_SEEDS = (0,)  # the seeds whose DLN runs are also computed in float64


def variant(spec: Spec, loss_scale: float, dtype: str = "float32") -> Spec:
    """`spec` under another DLN loss scale and dtype (VGG specs are returned unchanged)."""
    if spec.model != "dln":
        return spec
    return dataclasses.replace(spec, loss_scale=loss_scale, dtype=dtype)


def uses_dln(section: Section) -> bool:
    return any(s.model == "dln" for s in section.specs)


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
    fig, axes = plt.subplots(1, len(runs), figsize=(WIDTH, 4.4), squeeze=False, sharey=True, layout="constrained")
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
        ax.set(yscale="log", xlabel="training steps", title="\n".join(textwrap.wrap(f"loss = {READINGS[c]}", 30)))
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2)
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


#: The standard DLN's largest landscape values in the paper's Figure 10, read off the figure (/work/shared/paper.md
#: §4): the loss band, the gradient predictiveness and the effective beta.
PAPER_FIGURE10 = {"loss": 1e14, "grad_diff": 1e16, "beta": 1e15}


def figure10_peaks(rec: RunRecord) -> dict[str, float]:
    """A DLN record's largest landscape values over training, Figure 10's three panels (`PAPER_FIGURE10`'s keys):
    the loss along the gradient, the gradient change and the effective beta, each over the probe's step sizes."""
    return {key: float(np.nanmax(rec[f"landscape_{key}"].astype(float))) for key in PAPER_FIGURE10}


def rank_ladder(seed: int, samples: int = 1000, affine: bool = True) -> np.ndarray:
    """The least summed squared error a map of rank k from the DLN's inputs to its targets can reach on the data of
    `seed`, for k = 0, 1, ..., 10 (reduced-rank regression in float64: the least-squares fit truncated to its k
    largest singular directions, plus its residual). `affine`: maps with an offset (a normalised DLN: BatchNorm's
    and the l_p layers' batch means and beta make its output an affine map of its input), else linear maps (the
    standard DLN). A network computing such a map of rank at most k has a loss of at least entry k."""
    x, t = (a.double() for a in dln_data(samples, seed=seed))
    if affine:
        x, t = x - x.mean(0), t - t.mean(0)
    fit = x @ torch.linalg.lstsq(x, t).solution
    s2 = torch.linalg.svdvals(fit).pow(2)
    resid = float((t - fit).pow(2).sum())
    return np.array([float(s2[k:].sum()) + resid for k in range(len(s2) + 1)])


def rung(loss: float, ladder: np.ndarray) -> tuple[int, float]:
    """The rank k whose least loss (`ladder`, from `rank_ladder`) is nearest to `loss` in ratio, and loss ÷ that
    least loss - 1 (negative: below it, so the map has a part of one more direction)."""
    k = int(np.argmin(np.abs(np.log(loss / ladder[:-1]))))  # the last rung, full rank, has loss 0 up to rounding
    return k, float(loss / ladder[k] - 1)


@torch.no_grad()
def end_map(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The singular values of the map a DLN computes on its batch x (training mode: batch statistics), largest
    first: the least-squares fit of its outputs on the centred inputs, exact since given the batch's statistics
    every layer is affine in its input."""
    out, xc = model(x).double(), (x - x.mean(0)).double()
    return torch.linalg.svdvals(torch.linalg.lstsq(xc, out - out.mean(0)).solution).numpy()


def rerun(rec: RunRecord, steps: int) -> dict[str, np.ndarray | float]:
    """A DLN record's first `steps` steps trained again from its config as the trainer does (its seed, plain
    full-batch gradient descent; its probes never change the trajectory, so they are left out): the singular values
    of the network's map at step 0 (`initial`) and after `steps` steps (`after`), and `deviation`, the largest
    relative difference between the re-run's losses and the record's (0: the record's trajectory, bit for bit)."""
    cfg = RunConfig.from_dict(rec.config)
    device = torch.device("cpu")
    with device_settings(True, device):
        torch.manual_seed(cfg.seed)
        model = initial_model(cfg, device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        x, y = dln_batch(cfg, cfg.seed, device)
        loss_fn = loss_function(cfg)
        initial, losses = end_map(model, x), []
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        after = end_map(model, x)
    ref = rec["train_loss"][:steps].astype(float)
    return {"initial": initial, "after": after,
            "deviation": float(np.max(np.abs(np.asarray(losses, np.float32) - ref) / ref))}


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
