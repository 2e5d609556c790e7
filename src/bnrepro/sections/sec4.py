"""Section 4, the theory: each statement checked numerically (`bnrepro.theory`), real BatchNorm's eps against the
theorem's BN, the step-size toy, Figures 7 and 9, the Section 4 probe (`probes.bn_theory`) plotted over training,
and the section's claims with their rules.

The statements are checked on random draws in float64 (`statement_checks`); an identity "holds with equality" when
every draw's two sides agree within `theory.rounding_tolerance`. The trained networks' quantities come from the
`bn_theory_unit` and `bn_theory_layer` arrays of the BatchNorm runs (layer index k is paper layer k + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .. import theory as T
from ..claims import Check, Judgement, Rule, Runs, Section, any_of, grade
from ..figures import COLORS, activation, distributions_figure, label
from ..plotting import FOREGROUND, SEQUENCE_CMAP, WIDTH
from ..models import build_model, dln_data
from ..probes.bn_theory import LAYER_QUANTITIES, UNIT_QUANTITIES
from ..records import RunRecord
from ..specs import DLN_ACT_LAYERS, DLN_LOSS_SCALE, Spec

#: Batch sizes of the numerical checks: from the smallest batch BatchNorm allows to a large one.
BATCHES = (2, 3, 8, 128, 1024)
#: Random draws per batch size (each a unit's activations, a downstream loss, gamma and beta).
DRAWS = 20
#: Loss scales at which the printed Theorem 4.4 is evaluated (it is not invariant to the loss's scale), by name.
LOSS_SCALES = {"small": 1e-3, "unit": 1.0, "large": 1e3}
#: Batch variances, in units of eps, at which real BatchNorm is compared with the theorem's.
VAR_OVER_EPS = tuple(float(v) for v in np.logspace(-2, 6, 17))
EPS = 1e-5  # PyTorch's default BatchNorm eps, which the book's networks use
#: The step-size toy: its learning rate, and its largest curvature in units of 2/lr (just below and just above).
TOY_LR = 0.1
TOY_FACTORS = (0.95, 1.05)


# --- the statements, checked ----------------------------------------------------------------------------------------

def _record(out: dict, key: str, lhs, rhs, scale, tol: float) -> None:
    """Accumulate the largest |lhs - rhs| relative to the terms' size and to the rounding tolerance."""
    d = abs(float(lhs - rhs))
    out[key]["max_rel"] = max(out[key]["max_rel"], d / max(float(scale), 1e-300))
    out[key]["max_tol"] = max(out[key]["max_tol"], d / tol)


@lru_cache(maxsize=4)
def statement_checks(batches: tuple[int, ...] = BATCHES, draws: int = DRAWS, seed: int = 0) -> dict[str, dict]:
    """Every statement on `draws` random problems per batch size (`theory.random_problem`, float64).

    Per statement (and `grad`: eq. 47, Fact C.1 and Fact C.2's Jacobian against autograd, each entry of the
    gradient): `max_rel`, the largest |lhs - rhs| over the size of the terms, and `max_tol`, the same over the
    rounding tolerance (<= 1: equality up to rounding on every draw); `n`, the draws. For a printed form that
    differs: `printed_fail`, the fraction of draws where it is violated beyond rounding (lhs > printed + tol), and
    `printed_max_rel`, its largest violation over the size of the terms (Theorem 4.4: `printed_fail_<name>` per loss
    scale of LOSS_SCALES with g_j^2 read literally, `unsquared_fail_<name>` with g_j^2 read as g_j).
    Theorem 4.2 also has `second_fail` (its second form fails), of the draws where it fails the share with
    ||v|| > ||g|| (`second_fail_v_above`) and the share with ||v|| > ||g|| or a larger Rayleigh quotient of H along v
    than along g (`second_fail_explained`), of the draws with ||v|| <= ||g|| the share where it fails
    (`second_fail_v_within`), and `positive` (fraction of draws with <g, y_hat> > 0).
    Deterministic, so cached: every seed and reading a section is judged at reuses one computation (do not mutate
    the result).
    """
    keys = ("grad", "thm41", "thm42", "thm44", "obs43", "lemma45")
    out = {k: {"max_rel": 0.0, "max_tol": 0.0, "n": 0} for k in keys}
    out["thm41"] |= {"printed_fail": 0, "printed_max_rel": 0.0}
    out["thm42"] |= {"second_fail": 0, "positive": 0}
    out["thm44"] |= {f"{form}_fail_{name}": 0 for form in ("printed", "unsquared") for name in LOSS_SCALES}
    second = []  # per draw of Theorem 4.2: (the second form fails, ||v|| > ||g||, H's Rayleigh quotient larger on v)
    for m in batches:
        gen = torch.Generator().manual_seed(seed * 100_003 + m)
        for _ in range(draws):
            y, loss, gamma, beta = T.random_problem(m, gen)
            _, _, grad_y, g = T.layer_grads(loss, y, gamma, beta)
            _, sigma = T.batch_moments(y)
            size = abs(gamma) / float(sigma) * float(g.abs().max())
            tol = T.rounding_tolerance(m, size, y)
            for closed in (T.bn_input_grad(g, y, gamma), T.fact_c1_grad(g, y, gamma),
                           gamma * T.fact_c2_jacobian(y).T @ g):
                _record(out, "grad", (closed - grad_y).abs().max(), 0.0, size, tol)
            s = T.theorem_4_1(loss, y, gamma, beta)
            tol = T.rounding_tolerance(m, s["scale"], y)
            _record(out, "thm41", s["lhs"], s["rhs"], s["scale"], tol)
            out["thm41"]["printed_fail"] += bool(s["lhs"] > s["printed"] + tol)
            out["thm41"]["printed_max_rel"] = max(out["thm41"]["printed_max_rel"],
                                                  float((s["lhs"] - s["printed"]) / s["scale"]))
            s = T.theorem_4_2(loss, y, gamma, beta)
            tol = T.rounding_tolerance(m, s["scale"], y)
            _record(out, "thm42", s["lhs"], s["rhs"], s["scale"], tol)
            second.append((bool(s["lhs"] > s["second"] + tol), bool(s["gain"] > 1), bool(s["rayleigh"] > 1)))
            out["thm42"]["second_fail"] += second[-1][0]
            out["thm42"]["positive"] += bool(s["sign"] > 0)
            lam = 0.5 + abs(beta)
            for name, c in LOSS_SCALES.items():
                s = T.theorem_4_4(lambda z, c=c: c * loss(z), y, gamma, lam, beta=beta)
                tol = T.rounding_tolerance(m, s["scale"], y)
                _record(out, "thm44", s["lhs"], s["rhs"], s["scale"], tol)
                for form in ("printed", "unsquared"):
                    out["thm44"][f"{form}_fail_{name}"] += bool(s["lhs"] > s[form] + tol)
            s = T.observation_4_3(y)
            _record(out, "obs43", (s["lhs"] - s["rhs"]).abs().max(), 0.0, s["scale"],
                    T.rounding_tolerance(m, s["scale"], y))
            w0 = torch.randn(m, generator=gen, dtype=torch.float64)
            ws = torch.randn(m, generator=gen, dtype=torch.float64) + w0  # so that <W0, W*> > 0 mostly
            if float(w0.dot(ws)) > 0:
                s = T.lemma_4_5(w0, ws)
                _record(out, "lemma45", s["lhs"], s["rhs"], s["scale"], T.rounding_tolerance(m, s["scale"]))
                out["lemma45"]["n"] += 1
            for k in ("grad", "thm41", "thm42", "thm44", "obs43"):
                out[k]["n"] += 1
    for k, v in out.items():
        for name in [n for n in v if n.startswith(("printed_fail", "unsquared_fail", "second_fail", "positive"))]:
            v[name] /= out[k]["n"]
    failed = [(above, above or rq) for fail, above, rq in second if fail]
    within = [fail for fail, above, _ in second if not above]
    for key, share in (("v_above", [a for a, _ in failed]), ("explained", [e for _, e in failed]),
                       ("v_within", within)):
        out["thm42"][f"second_fail_{key}"] = float(np.mean(share)) if share else float("nan")
    return out


@lru_cache(maxsize=4)
def network_check(model: str, seed: int = 0) -> float:
    """Observation 4.3 on a whole network of the book (float64, `theory.match_standard`): the largest difference
    between the BN network's and the standard network's outputs on a batch, over the rounding tolerance of one
    layer times the depth (<= 1: the construction reproduces the activations)."""
    torch.manual_seed(seed)
    std, bnm = (build_model(model, norm, 1 / 16).double().train() for norm in ("none", "batch"))
    x = torch.randn(64, 10, dtype=torch.float64) if model == "dln" else torch.randn(16, 3, 32, 32,
                                                                                 dtype=torch.float64)
    T.match_standard(bnm, std, x)
    with torch.no_grad():
        out_std, out_bn = std(x), bnm(x)
    m = x.shape[0] * (1 if model == "dln" else x.shape[2] * x.shape[3])
    depth = len(std.layers())
    return float((out_bn - out_std).abs().max()) / (depth * T.rounding_tolerance(m, out_std.abs().max()))


def real_bn_curves(var_over_eps: Sequence[float] = VAR_OVER_EPS, eps: float = EPS, **kw) -> dict[str, np.ndarray]:
    """`theory.real_bn_deviation` at each batch variance var_over_eps * eps: `var_over_eps` and one array per
    statement."""
    rows = [T.real_bn_deviation(v * eps, eps, **kw) for v in var_over_eps]
    return {"var_over_eps": np.asarray(var_over_eps)} | {k: np.array([r[k] for r in rows]) for k in rows[0]}


def real_bn_figure(curves: dict[str, np.ndarray]) -> Figure:
    """How far real BatchNorm (variance + eps) is from each identity, against the batch variance over eps."""
    names = {"thm41": "Theorem 4.1 (gradient norm)", "thm42": "Theorem 4.2 (curvature along the gradient)",
             "obs43": "Observation 4.3 (activations, γ = σ)", "lemma45": "Lemma 4.5 (scale invariance, k = 1/2)"}
    fig, ax = plt.subplots(figsize=(WIDTH, 4.4), layout="constrained")
    x = curves["var_over_eps"]
    for (key, name), style in zip(names.items(), ("-", "--", ":", "-.")):
        ax.loglog(x, np.maximum(curves[key], 1e-17), style, lw=1.6, label=name)
    ax.axvline(1, color="grey", lw=0.8)
    ax.set(xlabel="batch variance of the unit ÷ eps", ylabel="relative deviation (median over draws)",
           title="Real BatchNorm against the theorem's")
    fig.legend(loc="outside lower center", ncol=2)
    return fig


# --- the step-size toy ----------------------------------------------------------------------------------------------

def step_size_figure(lr: float = TOY_LR, factors: Sequence[float] = TOY_FACTORS, steps: int = 25) -> Figure:
    """Gradient descent on a two-dimensional quadratic at learning rate `lr`: (a) the loss when the largest curvature
    is `factors` x 2/lr (just below and just above 2/lr), (b) for both, the curvature along each step and the
    effective beta (||A g|| / ||g||) against 2/lr."""
    w0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    runs = {f"λ_max = {f:g} × 2/LR": T.gd_on_quadratic(torch.tensor([0.3 * 2 / lr, f * 2 / lr],
                                                                      dtype=torch.float64), w0, lr, steps)
            for f in factors}
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.9), layout="constrained")
    for (name, r), color in zip(runs.items(), ("tab:blue", "tab:red")):
        axes[0].semilogy(r["loss"].numpy(), color=color, label=name)
    axes[0].set(xlabel="step", ylabel="loss", title="(a) loss")
    for r, color in zip(runs.values(), ("tab:blue", "tab:red")):
        axes[1].plot(r["curvature"].numpy(), color=color)
        axes[1].plot(r["beta"].numpy(), "--", color=color)
    axes[1].plot([], [], color="grey", label="curvature along the step")
    axes[1].plot([], [], "--", color="grey", label="effective β (‖Ag‖/‖g‖)")
    axes[1].axhline(2 / lr, color=FOREGROUND, lw=0.8, label="2/LR")
    axes[1].set(xlabel="step", title="(b) curvature along each step")
    keys = [ax.get_legend_handles_labels() for ax in axes]
    fig.legend([h for hs, _ in keys for h in hs], [k for _, ks in keys for k in ks], loc="outside lower center", ncol=3)
    return fig


# --- Figures 7 and 9 ------------------------------------------------------------------------------------------------

def network_diagram() -> Figure:
    """Figure 7: (a) the vanilla network x -> W -> y -> L and (b) the same network with one BatchNorm layer,
    y -> y_hat = (y - mu)/sigma -> z = gamma y_hat + beta -> L_hat. Boxes are outlined on the page's own colour
    (BatchNorm's tinted translucent blue), so that the diagram reads in the light and the dark theme."""
    rows = [("(a) vanilla network", ["$x$", "$W$", "$y$", "$\\mathcal{L}$"]),
            ("(b) with BatchNorm", ["$x$", "$W$", "$y$", "$\\hat y=\\dfrac{y-\\mu}{\\sigma}$",
                                    "$z=\\gamma\\hat y+\\beta$", "$\\hat{\\mathcal{L}}$"])]
    fig, ax = plt.subplots(figsize=(WIDTH, 2.6), layout="constrained")
    ax.set_axis_off()
    ax.set(xlim=(0, 10), ylim=(0, 2.3))
    for r, (title, nodes) in enumerate(rows):
        yc = 1.6 - 1.1 * r
        ax.text(0.05, yc + 0.42, title, fontsize=11, ha="left")
        xs = np.linspace(0.5, 9.5, len(nodes)) if r else np.linspace(0.5, 9.5, 6)[[0, 1, 2, 5]]
        half = [0.68 if r == 1 and i in (3, 4) else 0.3 for i in range(len(nodes))]
        for i, (x, text) in enumerate(zip(xs, nodes)):
            bn = half[i] > 0.3
            ax.add_patch(FancyBboxPatch((x - half[i], yc - 0.25), 2 * half[i], 0.5, boxstyle="round,pad=0.04",
                                        fc=(*matplotlib.colors.to_rgb(COLORS["batch"]), 0.18) if bn else "none",
                                        ec=COLORS["batch"] if bn else FOREGROUND))
            ax.text(x, yc, text, ha="center", va="center", fontsize=12)
            if i:
                ax.add_patch(FancyArrowPatch((xs[i - 1] + half[i - 1] + 0.06, yc), (x - half[i] - 0.06, yc),
                                             arrowstyle="-|>", mutation_scale=12, color=FOREGROUND, lw=1))
    return fig


def figure_9(std: RunRecord, bn: RunRecord, layers: Sequence[int] = DLN_ACT_LAYERS) -> Figure:
    """Figure 9: ridge plots of one random unit of DLN layers 1, 11 and 24 over training, for the standard network
    and for the BN network before (its sigma_j is Theorem 4.1's) and after its BatchNorm."""
    return distributions_figure([std, bn, bn], layers, points=["post", "pre", "post"])


def unit_std(rec: RunRecord) -> np.ndarray:
    """The pre-normalisation standard deviation of each followed unit at every step, [step, followed layer]."""
    return np.sqrt(activation(rec, "pre", "moments")[:, :, 1].astype(float))


# --- the trained networks -------------------------------------------------------------------------------------------

def probe_arrays(rec: RunRecord) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(probe steps, unit quantities {name: [step, layer, percentile]}, layer quantities {name: [step, layer]})."""
    if "bn_theory_layer" not in rec.arrays:
        raise ValueError("this record has no Section 4 probe (it predates it): retrain it with bn_theory=True "
                         "(python -m bnrepro book-runs --force ...)")
    unit, layer = rec["bn_theory_unit"].astype(float), rec["bn_theory_layer"].astype(float)
    return (rec["probe_step"], {n: unit[:, :, i] for i, n in enumerate(UNIT_QUANTITIES)},
            {n: layer[:, :, i] for i, n in enumerate(LAYER_QUANTITIES)})


def probed_steps(rec: RunRecord) -> int:
    """How many probed steps of `rec` carry the Section 4 probe (0 for a record that predates it)."""
    return len(rec["probe_step"]) if "bn_theory_layer" in rec.arrays else 0


MECHANISM_KEYS = ("scale", "kept", "gain", "removed_mean", "removed_yhat", "positive", "positive_min",
                  "gamma_over_sigma", "eps_share", "eps_share_max", "identity_dev", "scale_share")


def mechanism(rec: RunRecord) -> dict[str, float]:
    """Medians over probed steps and BatchNorm layers of the layer totals, and how the gain splits; `probed`, the
    probed steps (every other value NaN for a record without the probe).

    gain = scale x kept exactly (Theorem 4.1, up to eps), with scale the gradient-weighted gamma^2/sigma^2 and kept
    = 1 - removed_mean - removed_yhat. `scale_share` = |median log10 scale| / (|median log10 scale| + |median
    log10 kept|): the part of the gradient's change in decades that the gamma/sigma scale accounts for.
    """
    if not probed_steps(rec):
        return dict.fromkeys(MECHANISM_KEYS, float("nan")) | {"probed": 0}
    _, unit, layer = probe_arrays(rec)
    kept = 1 - layer["removed_mean"] - layer["removed_yhat"]
    log_scale = float(np.nanmedian(np.log10(layer["scale"])))
    log_kept = float(np.nanmedian(np.log10(np.clip(kept, 1e-30, None))))
    ident = np.abs(layer["gain"] - layer["gain_identity"]) / layer["scale"]
    return {"scale": 10 ** log_scale, "kept": 10 ** log_kept,
            "gain": float(10 ** np.nanmedian(np.log10(layer["gain"]))),
            "removed_mean": float(np.nanmedian(layer["removed_mean"])),
            "removed_yhat": float(np.nanmedian(layer["removed_yhat"])),
            "positive": float(np.nanmedian(layer["positive"])),
            "positive_min": float(np.nanmin(layer["positive"])),
            "gamma_over_sigma": float(np.nanmedian(unit["gamma_over_sigma"][:, :, 1])),
            "eps_share": float(np.nanmedian(unit["eps_share"][:, :, 1])),
            "eps_share_max": float(np.nanmax(unit["eps_share"][:, :, 2])),
            "identity_dev": float(np.nanmax(ident)),
            "scale_share": abs(log_scale) / max(abs(log_scale) + abs(log_kept), 1e-30),
            "probed": probed_steps(rec)}


def layer_sigma(rec: RunRecord) -> np.ndarray:
    """The median unit's sigma_j (the biased batch standard deviation) of every BatchNorm layer at every probed
    step, [step, layer], from the probe's eps_share = eps / (var + eps): var = eps / eps_share - eps, a decreasing
    map, so the median unit's share gives the median unit's sigma (between the middle two for an even count)."""
    share = probe_arrays(rec)[1]["eps_share"][:, :, 1]
    return np.sqrt(EPS / share - EPS)


def sigma_summary(rec: RunRecord) -> dict[str, float]:
    """Over training, for each BatchNorm layer's median unit: the largest sigma_j and its max ÷ min, medians over
    the layers (`largest`, `spread`), the number of `layers` and `probed` steps (NaNs without the probe)."""
    if not probed_steps(rec):
        return {"largest": float("nan"), "spread": float("nan"), "layers": 0, "probed": 0}
    sd = layer_sigma(rec)
    return {"largest": float(np.median(sd.max(0))), "spread": float(np.median(sd.max(0) / sd.min(0))),
            "layers": sd.shape[1], "probed": probed_steps(rec)}


def last_layer_sign(rec: RunRecord) -> dict[str, float]:
    """The sign condition of Theorem 4.2 in a network whose last BatchNorm layer feeds one linear map and the
    squared error (the DLN), where -g_hat points at each unit's minimum: `last_positive`, the median over probed
    steps of the share of that layer's units with <g_hat, y_hat> > 0, `last_positive_init` the share at the first
    probed step, `other_positive` the median over steps and the other layers, and `probed` (NaNs without the
    probe)."""
    if not probed_steps(rec):
        return dict.fromkeys(("last_positive", "last_positive_init", "other_positive"), float("nan")) | {"probed": 0}
    positive = probe_arrays(rec)[2]["positive"]
    return {"last_positive": float(np.median(positive[:, -1])), "last_positive_init": float(positive[0, -1]),
            "other_positive": float(np.median(positive[:, :-1])), "probed": probed_steps(rec)}


def affine_grads(model: torch.nn.Module, x: torch.Tensor, loss_fn) -> list[dict[str, torch.Tensor]]:
    """For every BatchNorm layer of `model` on the batch `x` (training mode): <g_hat, y_hat> and <1, g_hat> per unit
    (g_hat = dL/dz at the layer's output z, y_hat its normalised input, sums over batch x height x width) beside
    autograd's dL/dgamma and dL/dbeta, with `size` = sum |g_hat y_hat| and `m`, for their rounding tolerance."""
    norms = [mod for mod in model.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    seen = {}
    handles = [mod.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, (inp[0], out)))
               for k, mod in enumerate(norms)]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    zs = [seen[k][1] for k in range(len(norms))]
    model.zero_grad()
    loss = loss_fn(out)
    g_hats = torch.autograd.grad(loss, zs, retain_graph=True)
    loss.backward()
    rows = []
    for norm, (y, _), g in zip(norms, (seen[k] for k in range(len(norms))), g_hats):
        y, g = y.detach(), g.detach()
        dims = [0, *range(2, y.dim())]
        shape = (1, -1) + (1,) * (y.dim() - 2)
        mu, var = y.mean(dims), y.var(dims, unbiased=False)
        y_hat = (y - mu.view(shape)) / (var + norm.eps).sqrt().view(shape)
        rows.append({"g_yhat": (g * y_hat).sum(dims), "dgamma": norm.weight.grad, "g_sum": g.sum(dims),
                     "dbeta": norm.bias.grad, "size": (g * y_hat).abs().sum(dims) + g.abs().sum(dims),
                     "m": y.numel() // y.shape[1]})
    return rows


@lru_cache(maxsize=4)
def affine_identity(model: str, seed: int = 0) -> dict[str, float]:
    """<g_hat, y_hat> = dL/dgamma and <1, g_hat> = dL/dbeta checked on a whole network of the book in float64 (the
    DLN on its regression data and summed squared error, or VGG-11 at 1/16 width on random images and labels with
    cross-entropy): the largest difference of either pair over the rounding tolerance of its sum (<= 1: equal up to
    rounding), over every unit of every BatchNorm layer (`units`)."""
    torch.manual_seed(seed)
    net = build_model(model, "batch", 1 / 16).double().train()
    if model == "dln":
        x, t = (a.double() for a in dln_data(seed=seed))
        loss_fn = lambda out: (out - t).pow(2).sum()  # noqa: E731
    else:
        x, t = torch.randn(16, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (16,))
        loss_fn = lambda out: torch.nn.functional.cross_entropy(out, t)  # noqa: E731
    worst, units = 0.0, 0
    for r in affine_grads(net, x, loss_fn):
        for a, b in (("g_yhat", "dgamma"), ("g_sum", "dbeta")):
            tol = torch.tensor([T.rounding_tolerance(r["m"], s) for s in r["size"]], dtype=torch.float64)
            worst = max(worst, float(((r[a] - r[b]).abs() / tol).max()))
        units += len(r["size"])
    return {"worst_tol": worst, "units": units}


def theory_figure(rec: RunRecord, title: str | None = None) -> Figure:
    """The Section 4 probe over training, one line per BatchNorm layer (coloured from the first layer, dark, to the
    last, light): (a) gamma/sigma (median over units), (b) the fraction of ||g_hat||^2 the mean projection removes
    and (c) the fraction the y_hat projection removes, (d) the fraction of units with <g_hat, y_hat> > 0, (e) the
    layer's gain ||dL/dy||^2 / ||g_hat||^2 and (f) its two factors, the gamma^2/sigma^2 scale and the part the
    projections keep (medians over layers)."""
    steps, unit, layer = probe_arrays(rec)
    n = layer["scale"].shape[1]
    colors = SEQUENCE_CMAP(np.linspace(0, 1, n))
    fig, axes = plt.subplots(3, 2, figsize=(WIDTH, 8.6), sharex=True, layout="constrained")
    panels = [(axes[0, 0], unit["gamma_over_sigma"][:, :, 1], "(a) γ/σ (median over units)", True),
              (axes[0, 1], layer["removed_mean"], "(b) fraction of ‖ĝ‖² along 1", True),
              (axes[1, 0], layer["removed_yhat"], "(c) fraction of ‖ĝ‖² along ŷ", True),
              (axes[1, 1], layer["positive"], "(d) units with ⟨ĝ, ŷ⟩ > 0", False),
              (axes[2, 0], layer["gain"], "(e) gain ‖∂L̂/∂y‖² ÷ ‖ĝ‖²", True)]
    for ax, values, name, log in panels:
        for k in range(n):
            ax.plot(steps, values[:, k], color=colors[k], lw=0.9)
        ax.set_title(name)
        if log:
            ax.set_yscale("log")
    axes[1, 1].axhline(0.5, color=FOREGROUND, lw=0.8, ls=":")
    axes[1, 1].set_ylim(-0.02, 1.02)
    axes[2, 0].axhline(1, color=FOREGROUND, lw=0.8, ls=":")
    kept = 1 - layer["removed_mean"] - layer["removed_yhat"]
    ax = axes[2, 1]
    lines = ((layer["scale"], "γ²/σ² scale", {"lw": 4, "alpha": 0.4}), (kept, "kept by the projections", {"ls": "--"}),
             (layer["gain"], "gain (their product)", {"ls": ":", "lw": 2}))  # the gain shows on the scale's wide line
    for values, name, style in lines:
        ax.plot(steps, np.nanmedian(values, axis=1), color=COLORS["batch"], label=name, **style)
    ax.set(yscale="log", title="(f) gain = scale × kept\n(layer medians)")
    ax.axhline(1, color=FOREGROUND, lw=0.8, ls=":")
    for bottom in axes[-1]:
        bottom.set_xlabel("training steps")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3)
    sm = plt.cm.ScalarMappable(cmap=SEQUENCE_CMAP, norm=plt.Normalize(1, n))
    fig.colorbar(sm, ax=axes.ravel().tolist(), label="BatchNorm layer", shrink=0.5, ticks=[1, n])
    fig.suptitle(title or label(rec))
    return fig


# --- the claims -----------------------------------------------------------------------------------------------------

LRS = {"vgg": 0.1, "dln": 1e-6}
MODEL_NAMES = {"vgg": "VGG", "dln": "DLN"}
#: The section's runs: the BatchNorm networks the probe measures, and the standard DLN for Figure 9.
SPECS = {("vgg", "batch"): Spec("vgg", "batch", LRS["vgg"]),
         ("dln", "none"): Spec("dln", "none", LRS["dln"], DLN_LOSS_SCALE),
         ("dln", "batch"): Spec("dln", "batch", LRS["dln"], DLN_LOSS_SCALE)}
BN_SPECS = (SPECS["vgg", "batch"], SPECS["dln", "batch"])

WITHIN = "largest deviation ÷ rounding tolerance"
ROUNDING_REASON = ("two computations of one quantity can differ only by rounding, bounded by the error of the sums "
                   "involved (theory.rounding_tolerance); anything beyond it would be a real difference")
MISPRINT_REASON = ("a printed inequality violated beyond rounding on random draws is wrong as printed; the "
                   "proof-consistent form holding to rounding shows where the misprint lies")


def _judge_identity(v: Mapping[str, float]) -> Judgement:
    return grade([Check(WITHIN, v["max_tol"], "<=", 1)])


def _judge_misprint(v: Mapping[str, float], prefix: str = "printed_fail") -> Judgement:
    """Reproduced if the printed form (every `prefix`* share: one per loss scale for Theorem 4.4) never fails and
    the corrected one holds to rounding; partly if only the corrected one holds."""
    corrected = Check(f"proof-consistent form's {WITHIN}", v["max_tol"], "<=", 1)

    def what(key: str) -> str:
        scale = key.removeprefix(prefix).removeprefix("_")
        return "share of draws failing the printed form" + (f" at loss scale {scale}" if scale else "")

    printed = [Check(what(k), v[k], "<=", 0, graded=False) for k in v if k.startswith(prefix)]
    return grade(printed + [corrected], [[corrected]])


#: Theorem 4.4's two readings of its printed g_j^2: literally (the definition's squared norm, squared again) or as
#: the squared norm itself (g_j); the other misprints (lam^2 and 1/m) are printed alike under both.
THM44_READINGS = {"g_j² read literally": "printed_fail_", "g_j² read as g_j": "unsquared_fail_"}


def _checked(key: str) -> dict[str, float]:
    return dict(statement_checks()[key])


GRAD = Rule(
    "c4_grad", "Facts C.1 and C.2: the gradient through BatchNorm is ∂L̂/∂y = (γ/σ)(I − 11ᵀ/m − ŷŷᵀ/m) ĝ (eq. 47).",
    "reproduced if eq. 47, Fact C.1 and Fact C.2's Jacobian all agree with autograd within the rounding tolerance "
    "on every draw", ROUNDING_REASON, (), lambda runs: _checked("grad"), _judge_identity,
    lambda v: f"eq. 47, Fact C.1 and Fact C.2's Jacobian agree with autograd to {v['max_rel']:.1e} of the "
              f"gradient's size ({v['max_tol']:.2g} × the rounding tolerance) over {v['n']:.0f} draws")

THM41 = Rule(
    "c4_thm41", "Theorem 4.1: ‖∂L̂/∂y‖² ≤ γ²/σ² (‖ĝ‖² − ⟨1, ĝ⟩²/m − ⟨ĝ, ŷ⟩²/√m) (as printed).",
    "reproduced if the printed form holds on every draw (beyond rounding) and the form with 1/m holds with "
    "equality; partly if only the form with 1/m does", MISPRINT_REASON, (), lambda runs: _checked("thm41"),
    _judge_misprint,
    lambda v: f"with coefficient 1/m it holds with equality: largest |lhs − rhs| {v['max_rel']:.1e} of the terms' "
              f"size ({v['max_tol']:.2g} × the rounding tolerance) over {v['n']:.0f} draws; as printed (1/√m) it "
              f"fails on {100 * v['printed_fail']:.0f}% of them, by up to {v['printed_max_rel']:.2g} of the terms' "
              "size")

THM42 = Rule(
    "c4_thm42", "Theorem 4.2: vᵀ(∂²L̂/∂y²)v ≤ γ²/σ² vᵀHv − γ/(mσ²) ⟨ĝ, ŷ⟩ ‖v‖², v = ∂L̂/∂y (first form).",
    "reproduced if both sides agree within the rounding tolerance on every draw (the first form is then an "
    "equality)", ROUNDING_REASON, (), lambda runs: _checked("thm42"), _judge_identity,
    lambda v: f"holds with equality: largest |lhs − rhs| {v['max_rel']:.1e} of the terms' size ({v['max_tol']:.2g} "
              f"× the rounding tolerance) over {v['n']:.0f} draws; the second form (ĝᵀHĝ in place of vᵀHv) fails "
              f"on {100 * v['second_fail']:.0f}% of the same draws, {100 * v['second_fail_v_above']:.0f}% of them "
              f"with ‖v‖ > ‖ĝ‖ and {100 * v['second_fail_explained']:.0f}% with ‖v‖ > ‖ĝ‖ or vᵀHv/‖v‖² > "
              "ĝᵀHĝ/‖ĝ‖² (where the assumption that H preserves relative norms fails)")


def _measure_obs43(runs: Runs) -> dict[str, float]:
    v = _checked("obs43") | {f"net_{m}": network_check(m) for m in ("dln", "vgg11")}
    return v | {"worst_tol": max(v["max_tol"], v["net_dln"], v["net_vgg11"])}


OBS43 = Rule(
    "c4_obs43", "Observation 4.3: for any input and weights a BN configuration with γ = σ gives the same "
                "activations, so every minimum of the standard landscape is one of the BN landscape.",
    "reproduced if every unit and both networks are reproduced within the rounding tolerance", ROUNDING_REASON, (),
    _measure_obs43, lambda v: grade([Check(WITHIN, v["worst_tol"], "<=", 1)]),
    lambda v: f"γ = σ (γ = √(σ² + ε) for real BatchNorm), β = µ reproduces a unit's activations to "
              f"{v['max_rel']:.1e} of their size ({v['max_tol']:.2g} × the rounding tolerance, {v['n']:.0f} draws), "
              f"and whole networks' outputs within {v['net_dln']:.2g} (DLN) and {v['net_vgg11']:.2g} (VGG-11) × "
              "the rounding tolerance")

THM44 = Rule(
    "c4_thm44", "Theorem 4.4: ĝ_j ≤ γ²/σ² (g_j² − mµ_g² − λ²⟨∂L/∂y, ŷ⟩²) (as printed).",
    "on each reading of the printed g_j² (literally, or as g_j): reproduced if the printed form holds on every "
    "draw at every loss scale and the proof-consistent form holds with equality; partly if only the "
    "proof-consistent form does", MISPRINT_REASON, (), lambda runs: _checked("thm44"), None,
    lambda v: "the proof-consistent form γ²/σ² (g_j − λ²mµ_g² − (λ²/m)⟨ĝ, ŷ⟩²) holds with equality: largest "
              f"deviation {v['max_rel']:.1e} of the terms' size over {v['n']:.0f} draws at each loss scale; as "
              "printed it fails, with the loss scaled by " + ", ".join(f"{c:g}" for c in LOSS_SCALES.values())
              + "; " + "; ".join(f"{name}: on " + ", ".join(f"{100 * v[prefix + n]:.0f}%" for n in LOSS_SCALES)
                                 + " of them" for name, prefix in THM44_READINGS.items()),
    readings={name: (lambda v, p=prefix: _judge_misprint(v, p)) for name, prefix in THM44_READINGS.items()})

LEMMA45 = Rule(
    "c4_lemma45", "Lemma 4.5: if ⟨W₀, W*⟩ > 0, ‖W₀ − Ŵ*‖² ≤ ‖W₀ − W*‖² − (‖W*‖² − ⟨W*, W₀⟩)²/‖W*‖².",
    "reproduced if both sides agree within the rounding tolerance at the proof's construction on every draw (the "
    "bound then holds, the closest BN optimum being no farther)", ROUNDING_REASON, (),
    lambda runs: _checked("lemma45"), _judge_identity,
    lambda v: f"at the proof's construction Ŵ* = kW* it holds with equality: largest deviation {v['max_rel']:.1e} "
              f"of the terms' size ({v['max_tol']:.2g} × the rounding tolerance) over {v['n']:.0f} draws")


PROBED = "probed steps carrying the Section 4 probe"
PROBE_REASON = ("a quantity over training needs the probe at two probed steps at least; a record that predates the "
                "probe (VGG's at seeds other than 0) has it at none")


def _probe_needs(model: str) -> Callable[[Mapping[str, float]], list[Check]]:
    return lambda v: [Check(f"{MODEL_NAMES[model]} record's {PROBED}", v["probed"], ">=", 2, graded=False)]


def _no_probe(v: Mapping[str, float]) -> str | None:
    return "this record has no Section 4 probe" if v["probed"] < 2 else None


def _measure_sigma(model: str) -> Callable[[Runs], dict[str, float]]:
    def measure(runs: Runs) -> dict[str, float]:
        v = sigma_summary(runs[model, "batch", LRS[model]])
        if model == "dln":  # Figure 9's top row: the standard DLN's followed units, for context
            v["std_largest"] = float(np.median(unit_std(runs["dln", "none", LRS["dln"]]).max(0)))
        return v
    return measure


def _judge_sigma(v: Mapping[str, float]) -> Judgement:
    checks = [Check("largest σ_j over training", v["largest"], ">=", 2),
              Check("σ_j's max ÷ min over training", v["spread"], ">=", 2)]
    return grade(checks, any_of(checks))


def _sigma_rule(model: str) -> Rule:
    name = MODEL_NAMES[model]
    context = "the DLN, Figure 9's network" if model == "dln" else "VGG, the book's CIFAR-10 network"
    return Rule(
        f"c4_sigma_{model}", f"σ_j, the batch standard deviation BatchNorm divides by, \"tends to be large and highly "
                             f"uncontrolled in practice\" (Section 4, citing Figure 9): in {context}.",
        "reproduced if the largest σ_j over training is at least 2 (large) and it changes by a factor (max ÷ min over "
        f"training) of at least 2 (uncontrolled), for the median unit of each BN layer, medians over the {name}'s BN "
        "layers; partly if one holds",
        "σ_j ≥ 2 makes γ²/σ² ≤ 1/4 at BatchNorm's initial γ = 1, a reduction of at least 4×; a factor 2 over training "
        "is a change no one would call controlled", (SPECS[model, "batch"],) + ((SPECS["dln", "none"],) if
                                                                              model == "dln" else ()),
        _measure_sigma(model), _judge_sigma,
        lambda v: _no_probe(v) or (
            f"the median unit of each of the {name}'s {v['layers']:.0f} BN layers (every unit, {v['probed']:.0f} "
            f"probed steps): largest σ_j over training {v['largest']:.3g}, changing by a factor {v['spread']:.3g} "
            "over training (medians over the layers)"
            + (f"; the standard DLN's followed units reach {v['std_largest']:.3g}" if "std_largest" in v else "")),
        needs=_probe_needs(model), needs_reason=PROBE_REASON)


SIGMA_DLN, SIGMA_VGG = _sigma_rule("dln"), _sigma_rule("vgg")


def _measure_sign(runs: Runs) -> dict[str, float]:
    return last_layer_sign(runs["dln", "batch", LRS["dln"]])


SIGN = Rule(
    "c4_sign", "Theorem 4.2's reduction needs ⟨ĝ, ŷ⟩ > 0, which \"holds as long as the negative gradient ĝ is "
               "pointing towards the minimum\": tested where −ĝ provably points at the minimum, the DLN's last BN "
               "layer (its downstream loss is a quadratic in each unit's output).",
    "reproduced if the median share (over probed steps) of the DLN's last BN layer's units with ⟨ĝ, ŷ⟩ > 0 is at "
    "least 3/4, else not reproduced",
    "\"holds as long as\" reads as the usual case, three units in four; nothing between 1/2 and 3/4 counts for "
    "it, because ⟨ĝ, ŷ⟩ = ∂L/∂γ, which training drives to zero, so a share near 1/2 is what a trained layer shows "
    "whether or not the claim holds",
    (SPECS["dln", "batch"],), _measure_sign,
    lambda v: grade([Check("median share of the DLN's last BN layer's units with ⟨ĝ, ŷ⟩ > 0", v["last_positive"],
                           ">=", 0.75)]),
    lambda v: _no_probe(v) or (
        f"the DLN's last BN layer, where −ĝ points at each unit's minimum: median share of units with ⟨ĝ, ŷ⟩ > 0 "
        f"{v['last_positive']:.2f} over {v['probed']:.0f} probed steps ({v['last_positive_init']:.2f} at step 0); "
        f"its other BN layers, where that is not known: {v['other_positive']:.2f} (⟨ĝ, ŷ⟩ is ∂L/∂γ there too)"),
    needs=_probe_needs("dln"), needs_reason=PROBE_REASON)


DRIVER_RULE = ("\"mostly\" names the factor that moves the gain more, in decades: the γ/σ scale if its share of "
               "|log scale| + |log kept| is at least 2/3, the projections if at most 1/3, else both")


def driver(scale_share: float) -> str:
    """Which factor of the gain moves it more (DRIVER_RULE): "the γ/σ scale" (share of the decades >= 2/3), "the
    projections" (<= 1/3) or "both"."""
    return "the γ/σ scale" if scale_share >= 2 / 3 else "the projections" if scale_share <= 1 / 3 else "both"


def _reduction_rule(model: str) -> Rule:
    name = MODEL_NAMES[model]
    return Rule(
        f"c4_reduction_{model}",
        "BatchNorm makes the loss more Lipschitz in the layer's activations: the gradient is scaled by γ/σ and loses "
        f"its components along 1 and ŷ (Theorem 4.1, applied to the trained {name}).",
        f"reproduced if the median gain ‖∂L̂/∂y‖²/‖ĝ‖² over probed steps and the {name}'s BN layers is below 1; "
        + DRIVER_RULE,
        "a gain below 1 is a smaller gradient at the layer's input than the standard reading's, what \"more "
        "Lipschitz\" means here", (SPECS[model, "batch"],), lambda runs: mechanism(runs[model, "batch", LRS[model]]),
        lambda v: grade([Check(f"{name} median gain", v["gain"], "<", 1)]),
        lambda v: _no_probe(v) or (
            f"median gain ‖∂L̂/∂y‖²/‖ĝ‖² over probed steps and BN layers {v['gain']:.3g} = scale γ²/σ² "
            f"{v['scale']:.3g} × kept by the projections {v['kept']:.3g} (mostly {driver(v['scale_share'])}; the "
            "removed parts are (∂L/∂β)² and (∂L/∂γ)² over m‖ĝ‖², which training drives towards zero)"),
        needs=_probe_needs(model), needs_reason=PROBE_REASON)


REDUCTION_DLN, REDUCTION_VGG = _reduction_rule("dln"), _reduction_rule("vgg")

SECTION = Section("4", "Theory: BatchNorm and the landscape, checked", "chapters/sec4_theory", tuple(SPECS.values()),
                  (GRAD, THM41, THM42, OBS43, THM44, LEMMA45, SIGMA_DLN, SIGMA_VGG, SIGN, REDUCTION_DLN,
                   REDUCTION_VGG))
