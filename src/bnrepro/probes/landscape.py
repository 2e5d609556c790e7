"""Loss-landscape probes of Sec. 3.2 / Fig. 4: loss, gradient predictiveness and effective beta-smoothness.

At step t, with w_t, the batch B_t and g_t = grad L(w_t; B_t) over all trainable parameters, the probe moves along
-g_t by eta = m * lr for each multiplier m of `grid` and records, on the same batch with BatchNorm in training mode:
the loss L(w_t - eta g_t), the gradient change ||g_t - grad L(w_t - eta g_t)||_2 and its ratio to the distance
moved, beta = that change / ||eta g_t||_2 (the paper's effective beta-smoothness is the max of beta over the grid).

With `random_dirs` = D > 0 the probe also moves along D random directions d_1..d_D (Sec. 3.2: "the loss behaves
in a similar way when we examine other (random) directions too"), with the same step sizes and the same
definitions: L(w_t - eta d_j), ||g_t - grad L(w_t - eta d_j)||_2 and that change over ||eta d_j||_2. Each d_j is
Gaussian over all trainable parameters, drawn from the probe's local generator keyed by (run seed, step, j), and
scaled to ||d_j|| = ||g_t||, so that the step eta along it moves as far as the gradient step it stands in for.

The step sizes of each direction are evaluated either one after another ("loop") or in one `torch.func.vmap` over
stacked parameter copies ("vmap"). Both give the same numbers; which one is faster depends on the device (see
benchmarks/bench_landscape.py): the loop on CPU, vmap on CUDA.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch.func import functional_call, grad_and_value, vmap

from bnrepro.probes import ProbeContext

VGG_GRID = (0.5, 1.0, 2.0, 4.0)
"""Step-size multipliers of the LR for VGG: [1/2, 4] x LR (App. A.2.2), vertices read off Fig. 11."""
DLN_GRID = (0.01, 1.0, 10.0, 30.0)
"""Step-size multipliers of the LR for the deep linear network: [1/100, 30] x LR, vertices read off Fig. 11."""
MODES = ("auto", "loop", "vmap")
RANDOM_DIR_KEY = 0xD1C
"""Keys the random directions' generators (with the run's seed, the step and the direction's index)."""

Params = dict[str, torch.Tensor]


def preferred_mode(device: torch.device) -> str:
    """The mode "auto" tries first: the loop on CPU, vmap on CUDA (benchmarks/bench_landscape.py).

    On CPU, vmap over the step sizes measured 1.2-1.6x slower than the loop for VGG-16 (its batched convolutions
    are grouped ones), though 1.3-2x faster for the tiny, overhead-bound DLN (a few ms per probe). On CUDA one
    batched pass replaces len(grid) passes; run the benchmark there to confirm.
    """
    return "vmap" if device.type == "cuda" else "loop"


def measure_landscape(ctx: ProbeContext, grid: Sequence[float], mode: str = "auto",
                      random_dirs: int = 0) -> dict[str, torch.Tensor]:
    """Probe the landscape along -g_t at step sizes eta = m * ctx.lr for each multiplier m in `grid`, and along
    `random_dirs` random directions of length ||g_t|| at the same step sizes.

    Returns CPU tensors: `loss`, `grad_diff`, `beta` and `eta` (one entry per multiplier), the scalars `loss0`
    = L(w_t) and `grad_norm` = ||g_t||, and with `random_dirs` > 0 `rand_loss`, `rand_grad_diff` and `rand_beta`
    ([direction, multiplier]). Touches no parameter, .grad, buffer or global random state.
    `mode`: "loop", "vmap" (raises RuntimeError if vmap cannot run the model) or "auto" (`preferred_mode`,
    falling back to the loop if vmap fails).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if len(grid) == 0 or not all(math.isfinite(m) and m > 0 for m in grid):
        raise ValueError(f"grid must be a non-empty sequence of finite, positive LR multipliers, got {list(grid)}")
    if not ctx.lr > 0:
        raise ValueError(f"the probe needs a positive learning rate, got {ctx.lr}")
    if not (isinstance(random_dirs, int) and random_dirs >= 0):
        raise ValueError(f"random_dirs must be an integer >= 0, got {random_dirs!r}")

    params = ctx.params()
    g0, loss0 = grad_and_value(ctx.batch_loss)(params)
    ref = next(iter(params.values()))
    etas = torch.tensor([m * ctx.lr for m in grid], dtype=ref.dtype, device=ref.device)
    grad_norm = _norm(g0.values())
    fallback = mode == "auto"  # to the loop, if vmap fails
    if fallback:
        mode = preferred_mode(ref.device)

    rows = []  # per direction: (loss, grad_diff, beta) at each step size
    for direction in [g0] + [random_direction(ctx, params, j, grad_norm) for j in range(random_dirs)]:
        shifted = {n: p - etas.view(-1, *[1] * p.dim()) * direction[n] for n, p in params.items()}
        result = None
        if mode == "vmap":
            try:
                result = _vmapped(ctx, shifted)
            except RuntimeError as e:  # vmap cannot run this model (or ran out of memory)
                if not fallback:
                    raise RuntimeError(f"mode='vmap' cannot evaluate {type(ctx.model).__name__}: {e}; "
                                       "use mode='loop' (or 'auto', which falls back to it)") from e
                mode = "loop"  # and for the remaining directions
        # auto's fallback runs here, after the failed attempt's tensors are freed with the exception
        grads, losses = result if result is not None else _looped(ctx, shifted)
        grad_diff = _norm([(g0[n] - grads[n]).flatten(1) for n in params], dim=1)
        rows.append(torch.stack([losses, grad_diff, grad_diff / (etas * grad_norm)]))

    k = len(grid)
    flat = torch.cat([torch.stack(rows).flatten(), etas, loss0.view(1), grad_norm.view(1)]).cpu()
    table, flat = flat[:3 * k * len(rows)].view(len(rows), 3, k), flat[3 * k * len(rows):]
    out = {"loss": table[0, 0], "grad_diff": table[0, 1], "beta": table[0, 2], "eta": flat[:k], "loss0": flat[k],
           "grad_norm": flat[k + 1]}
    if random_dirs:
        out |= {"rand_loss": table[1:, 0], "rand_grad_diff": table[1:, 1], "rand_beta": table[1:, 2]}
    return out


def random_direction(ctx: ProbeContext, params: Params, index: int, length: torch.Tensor) -> Params:
    """Random direction `index` of the probe at ctx.step: Gaussian over all of `params` (drawn in their order and
    logical element order on the CPU, so the same on every device and memory layout), scaled to norm `length`."""
    gen = ctx.generator(RANDOM_DIR_KEY, index)
    draws = {n: torch.empty_like(p).copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
             for n, p in params.items()}
    scale = length / _norm(draws.values())
    return {n: d * scale for n, d in draws.items()}


def _norm(tensors: Iterable[torch.Tensor], dim: int | None = None) -> torch.Tensor:
    """The l2 norm of several tensors taken as one vector (per row along `dim` 1 if given)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t, dim=dim) for t in tensors]), dim=0)


def _looped(ctx: ProbeContext, shifted: Params) -> tuple[Params, torch.Tensor]:
    """Gradients and losses at each stacked parameter point, one point after another."""
    k = len(next(iter(shifted.values())))
    outs = [grad_and_value(ctx.batch_loss)({n: p[i] for n, p in shifted.items()}) for i in range(k)]
    return {n: torch.stack([g[n] for g, _ in outs]) for n in shifted}, torch.stack([v for _, v in outs])


def _vmapped(ctx: ProbeContext, shifted: Params) -> tuple[Params, torch.Tensor]:
    """Gradients and losses at all stacked parameter points in one vmapped computation.

    Each point gets its own copy of the buffers, so BatchNorm's in-place running-statistic updates are batched
    too (vmap refuses to write batched statistics into a shared buffer); the copies are thrown away.
    randomness="same": noisy BatchNorm draws from its own per-step generator, identical for every step size.
    """
    k = len(next(iter(shifted.values())))
    buffers = {n: b.expand(k, *b.shape).clone() for n, b in ctx.model.named_buffers()}

    def loss_at(p: Params, b: Params) -> torch.Tensor:
        return ctx.loss_fn(functional_call(ctx.model, {**p, **b}, (ctx.inputs,)), ctx.targets)

    return vmap(grad_and_value(loss_at), randomness="same")(shifted, buffers)
