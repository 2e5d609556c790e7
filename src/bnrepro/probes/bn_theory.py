"""Section 4's quantities in the trained networks: for every BatchNorm layer at a probed step, how the layer changes
the gradient, in the terms of Theorems 4.1 and 4.2.

At step t, on the step's batch in training mode (through `ProbeContext.batch_loss`: batch statistics, no running
statistic updated, no parameter or global random state touched), one forward and backward pass gives for every
BatchNorm layer its input y (the conv/linear output) and output z, g_hat = dL/dz (Theorem 4.1's standard-network
gradient) and dL/dy (the BN network's). Units are channels; for convolutions the "batch" is batch x height x width,
as in the paper. Per unit j (batch size m), with e_j = (y_j - mu_j)/||y_j - mu_j||, the direction of y_hat_j:

* `gamma_over_sigma` |gamma_j| / sqrt(var_j + eps): the scale the layer applies (Theorem 4.1's gamma/sigma, with
  real BatchNorm's eps);
* `removed_mean` <1, g_j>^2 / (m ||g_j||^2) and `removed_yhat` <g_j, e_j>^2 / ||g_j||^2: the fractions of ||g_j||^2
  that the two projections of eq. 47 remove (the first two subtracted terms of Theorem 4.1, over ||g||^2);
* `gain` ||dL/dy_j||^2 / ||g_j||^2, measured by autograd: what the layer does to the squared gradient in all;
* `eps_share` eps / (var_j + eps): how far real BatchNorm is from the theorem's (0: not at all).

Stored per layer, to stay compact whatever the width: the 25th, 50th and 75th percentiles of each unit quantity over
the layer's units (units with g_j = 0, e.g. channels a ReLU switched off for the whole batch, have no fractions and
are left out), as `unit` [layer, quantity, percentile]; and gradient-weighted layer totals as `layer` [layer,
quantity]: `scale` sum_j gamma_j^2/(var_j+eps) ||g_j||^2 / sum_j ||g_j||^2, `removed_mean` and `removed_yhat` (the
removed squared norm of all units over the layer's ||g||^2), `positive` the fraction of units with
<g_j, y_hat_j> > 0 (Theorem 4.2's sign condition) among those with g_j != 0, `gain` ||dL/dy||^2 / ||g||^2 over the
layer, `gain_identity` the same predicted from the other quantities by Theorem 4.1's identity for real BatchNorm
(`theory.gain_identity`; it equals `gain` up to rounding), and `live` the fraction of units with g_j != 0.
Layer index k of both arrays is the k-th BatchNorm layer in the network's order, paper layer k + 1 in the book's
VGG and DLN (every layer but the DLN's last and VGG's classifier has one).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models import NoisyBatchNorm
from ..theory import gain_identity
from . import ProbeContext

UNIT_QUANTITIES = ("gamma_over_sigma", "removed_mean", "removed_yhat", "gain", "eps_share")
LAYER_QUANTITIES = ("scale", "removed_mean", "removed_yhat", "positive", "gain", "gain_identity", "live")
PERCENTILES = (25, 50, 75)


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm modules in order; a clear error if it has none or uses noisy BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms or any(isinstance(m, NoisyBatchNorm) for m in norms):
        raise ValueError("the bn_theory probe measures BatchNorm layers: train with norm='batch' (noisy BatchNorm "
                         "adds noise after the layer, which Section 4's theory does not cover), or set "
                         "bn_theory=False")
    return norms


def measure_bn_theory(ctx: ProbeContext) -> dict[str, torch.Tensor]:
    """`unit` [layer, len(UNIT_QUANTITIES), len(PERCENTILES)] and `layer` [layer, len(LAYER_QUANTITIES)] on the CPU
    (see the module docstring). Costs one forward and one backward pass (no weight gradients)."""
    norms = batchnorm_layers(ctx.model)
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(k: int):
        def record(module, inputs, output):
            seen[k] = inputs[0], output
        return record

    handles = [m.register_forward_hook(hook(k)) for k, m in enumerate(norms)]
    try:
        # The input requires grad (not the weights), so the backward computes activation gradients only.
        probe = dataclasses.replace(ctx, inputs=ctx.inputs.detach().requires_grad_())
        loss = probe.batch_loss(ctx.params())
    finally:
        for h in handles:
            h.remove()
    ys, zs = zip(*(seen[k] for k in range(len(norms))))
    grads = torch.autograd.grad(loss, [*ys, *zs])
    units, layers = [], []
    for k, norm in enumerate(norms):
        units_k, layer_k = _layer_quantities(ys[k].detach(), grads[k], grads[len(norms) + k],
                                             norm.weight.detach().double(), norm.eps)
        units.append(units_k)
        layers.append(layer_k)
    q = torch.tensor(PERCENTILES, dtype=torch.float64, device=ctx.inputs.device) / 100
    unit = torch.stack([torch.nanquantile(u, q, dim=1).T for u in units])  # [layer, quantity, percentile]
    layer = torch.stack(layers)
    flat = torch.cat([unit.flatten(), layer.flatten()]).cpu()  # the probe's one device sync
    return {"unit": flat[:unit.numel()].view(unit.shape), "layer": flat[unit.numel():].view(layer.shape)}


def _layer_quantities(y: torch.Tensor, dy: torch.Tensor, g: torch.Tensor, gamma: torch.Tensor,
                      eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit quantities [len(UNIT_QUANTITIES), units] (NaN where g_j = 0) and the layer totals, from a layer's
    input y, dL/dy and g = dL/dz, each (batch, units[, H, W]). The per-unit sums run in the network's dtype
    (PyTorch's CPU sums are cascaded: error ~ log2(m) u, not m u) and everything after them in float64; casting the
    activations to float64 first cost more than the probe's forward and backward passes."""
    dims = [0, *range(2, y.dim())]
    m = y.numel() // y.shape[1]

    def total(t: torch.Tensor) -> torch.Tensor:
        return t.sum(dims).double()

    shape = (1, -1) + (1,) * (y.dim() - 2)
    c = y - (total(y) / m).to(y.dtype).view(shape)
    cc, gg, gc = total(c * c), total(g * g), total(g * c)
    var = cc / m
    mean_part = total(g).pow(2) / m
    yhat_part = torch.where(cc > 0, gc.pow(2) / torch.where(cc > 0, cc, 1.0), 0.0)  # constant unit: no y_hat
    live = gg > 0
    safe = torch.where(live, gg, 1.0)
    nan = torch.full_like(gg, float("nan"))
    removed_mean = torch.where(live, mean_part / safe, nan)
    removed_yhat = torch.where(live, yhat_part / safe, nan)
    dd = total(dy * dy)
    gain = torch.where(live, dd / safe, nan)
    scale = gamma.pow(2) / (var + eps)
    predicted = gain_identity(gamma, var, eps, removed_mean, removed_yhat)
    unit = torch.stack([scale.sqrt(), removed_mean, removed_yhat, gain, eps / (var + eps)])
    g_total, n_live = gg.sum(), live.sum()
    layer = torch.stack([(scale * gg).sum() / g_total, mean_part.sum() / g_total, yhat_part[live].sum() / g_total,
                         (gc > 0)[live].double().sum() / n_live, dd.sum() / g_total,
                         (predicted * gg)[live].sum() / g_total, n_live / len(gg)])
    return unit, layer
