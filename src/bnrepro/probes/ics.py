"""Internal covariate shift as the paper defines it (Definition 2.1, Sec. 2.2).

For 1-based layer i at step t, G is the gradient of the training loss w.r.t. layer i's parameters at w_t on the
step's batch, and G' is the same gradient on the same batch after only layers 1..i-1 have taken their training
step, layer i and all later layers held at w_t. ICS is ||G - G'||_2; the paper also reports cos(G, G').

The "step" is plain SGD, w - lr * grad with the gradient at w_t on the batch: the update training makes (no
momentum, no weight decay). Every parameter of layers 1..i-1 steps (weight, bias, normalisation gamma/beta),
because training updates them all. Which parameters make up "layer i" in G is UNCONFIRMED in the paper, so
`params` chooses: "weight" (the conv/linear weight only) or "layer" (all of layer i's parameters).
BatchNorm runs in training mode (batch statistics) in both passes, also UNCONFIRMED but presumably the paper's.
"""

from __future__ import annotations

from typing import Sequence

import torch

from bnrepro.probes import ProbeContext, layer_weight

PARAM_CHOICES = ("weight", "layer")


def _measured_names(ctx: ProbeContext, params: str) -> list[list[str]]:
    """Per paper layer, the names of the parameters whose gradient G is taken over."""
    if params == "layer":
        return ctx.param_groups()
    owner = {id(p): n for n, p in ctx.model.named_parameters()}
    return [[owner[id(layer_weight(m))]] for m in ctx.model.layers()]


def measure_ics(ctx: ProbeContext, layers: Sequence[int], params: str = "weight") -> dict[str, torch.Tensor]:
    """ICS of each 1-based layer in `layers`: {"l2": ||G - G'||_2, "cos": cos(G, G')}, float64 tensors on CPU.

    Costs one forward/backward at w_t (G for every requested layer and the step of every earlier layer) plus one
    forward/backward per requested layer i > 1 for G' (that backward stops at layer i). Nothing in the model,
    its .grad fields, its buffers or the global RNG is touched: all passes go through `ctx.batch_loss`.
    A zero gradient makes cos NaN.
    """
    if params not in PARAM_CHOICES:
        raise ValueError(f"unknown params {params!r}: choose one of {', '.join(PARAM_CHOICES)}")
    groups = ctx.param_groups()
    bad = [i for i in layers if not 1 <= i <= len(groups)]
    if bad or not layers:
        raise ValueError(f"layers {list(layers)} invalid: give at least one layer in 1..{len(groups)}")
    measured = _measured_names(ctx, params)
    w = ctx.params()

    # One gradient at w_t serves G of every requested layer and the SGD step of every layer before it.
    names = [n for g in groups[: max(layers)] for n in g]
    leaves = {n: w[n].detach().requires_grad_() for n in names}
    grads = dict(zip(names, torch.autograd.grad(ctx.batch_loss({**w, **leaves}), list(leaves.values()))))
    stepped = {n: w[n] - ctx.lr * grads[n] for n in names}

    l2, cos = [], []
    for i in layers:
        g_old = torch.cat([grads[n].flatten() for n in measured[i - 1]]).double()
        earlier = {n: stepped[n] for g in groups[: i - 1] for n in g}
        if earlier:
            mine = {n: w[n].detach().requires_grad_() for n in measured[i - 1]}
            new = torch.autograd.grad(ctx.batch_loss({**w, **earlier, **mine}), list(mine.values()))
            g_new = torch.cat([g.flatten() for g in new]).double()
        else:  # layer 1: nothing moved, G' = G (a recomputation would only add floating-point noise)
            g_new = g_old
        l2.append(torch.linalg.vector_norm(g_old - g_new))
        # sqrt(a.a * b.b) rather than |a||b| so that G' = G gives exactly cos = 1
        cos.append(g_old.dot(g_new) / (g_old.dot(g_old) * g_new.dot(g_new)).sqrt())
    out = torch.stack([torch.stack(l2), torch.stack(cos)]).cpu()  # the probe's one device sync
    return {"l2": out[0], "cos": out[1]}
