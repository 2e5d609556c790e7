"""Curvature probe (Part IV, "Beyond the paper"): batch sharpness along the gradient and the top Hessian eigenvalue.

At step t, with w_t, the batch B_t and g = grad L(w_t; B_t) over all trainable parameters, H the Hessian of
L(.; B_t) at w_t (BatchNorm in training mode, so H includes the batch statistics' dependence on the weights):

* batch sharpness g^T H g / ||g||^2, the curvature along the gradient (Andreyev & Beneventano's "edge of stochastic
  stability" quantity), from one Hessian-vector product;
* the top eigenvalue lambda_max(H), the largest *algebraic* one (Cohen et al.'s sharpness), by Lanczos.

Hessian-vector products are double backward passes through one retained graph of the gradient: building it costs
one forward and backward pass, each product one more backward pass through it (measured on VGG-16 x1/8 with
BatchNorm, one CPU thread: 2-4x cheaper than `torch.func.jvp(grad(...))`, which redoes the forward and backward pass
for every product; both agree, and agree with finite differences of the gradient over steps small enough). H is
the Hessian almost everywhere: in a network with ReLUs and max-pooling it does not see the kinks that a finite step
crosses, so the batch sharpness can differ from the curvature the landscape probe measures over a step of eta g_t,
even in sign (VGG-16 x1/8 with BatchNorm at initialisation: g^T H g / ||g||^2 = -34, while finite differences of
the gradient along g gave +27 over steps of 1e-3 g and settled at -34 only below 1e-7 g).

Why Lanczos rather than power iteration: the largest Ritz value of the Lanczos tridiagonal matrix approaches
lambda_max from below and never decreases with the iterations (Cauchy interlacing), so it targets the largest
algebraic eigenvalue by construction, whereas power iteration finds the eigenvalue of largest *magnitude* (a
strongly negative one early in training, say) and needs a shift and a sign check; on the same number of
Hessian-vector products Lanczos also converges much faster (Kaniel-Paige). The Lanczos vectors are fully
reorthogonalised (two Gram-Schmidt passes, "twice is enough"), which removes the spurious copies of converged Ritz
values that plain Lanczos produces in floating point; it keeps `iters` vectors of the parameters' size.
Lanczos stops after `iters` iterations, once the largest Ritz value changes by less than `tol` relative to itself
between two iterations, or when the Krylov space becomes invariant (then the Ritz value is an eigenvalue, exact to
rounding, and the recorded change is 0). The relative change is a stopping rule, not an error bound: on VGG-16 x1/8
with BatchNorm at initialisation, tol 1e-3 stopped after 24 iterations 0.14% below the value tol 1e-6 reached
after 41. The start vector is Gaussian, drawn from the probe's local generator keyed by (run seed, step) (a random
start has, with probability 1, a component along the top eigenvector; the gradient itself might not).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from bnrepro.probes import ProbeContext

LANCZOS_KEY = 0xC0E
"""Keys the Lanczos start vector's generator (with the run's seed and the step)."""


def measure_curvature(ctx: ProbeContext, iters: int, tol: float = 1e-3, eigen: bool = True) -> dict[str, torch.Tensor]:
    """Batch sharpness along the gradient and, if `eigen`, the top Hessian eigenvalue by at most `iters` Lanczos
    iterations with early stopping at relative change `tol` (0: never stop early).

    Returns CPU scalars in the parameters' dtype: `sharpness`, `eigenvalue`, `iters` (Lanczos iterations used) and
    `change` (the final relative change of the eigenvalue estimate); without `eigen`, `eigenvalue` and `change` are
    NaN and `iters` is 0. A zero gradient makes `sharpness` NaN. Touches no parameter, .grad, buffer or global
    random state.
    """
    if not (isinstance(iters, int) and iters >= 1):
        raise ValueError(f"iters must be a positive integer, got {iters!r}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    params = ctx.params()
    leaves = [p.detach().requires_grad_() for p in params.values()]
    loss = ctx.batch_loss(dict(zip(params, leaves)))
    grads = torch.autograd.grad(loss, leaves, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        chunks = [c.view(t.shape) for c, t in zip(v.split([t.numel() for t in leaves]), leaves)]
        out = torch.autograd.grad(grads, leaves, chunks, retain_graph=True, allow_unused=True,
                                  materialize_grads=True)
        return _flat(out)

    g = _flat(grads).detach()
    sharpness = g.dot(hvp(g)) / g.dot(g)
    nan = torch.full((), math.nan, dtype=g.dtype)
    if eigen:
        start = torch.randn(g.numel(), generator=ctx.generator(LANCZOS_KEY), dtype=g.dtype).to(g.device)
        eigenvalue, used, change = lanczos_top(hvp, start, iters, tol)
    else:
        eigenvalue, used, change = nan, 0, nan
    return {"sharpness": sharpness.detach().cpu(), "eigenvalue": eigenvalue,
            "iters": torch.tensor(float(used), dtype=g.dtype), "change": change}


def lanczos_top(matvec: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, iters: int,
                tol: float) -> tuple[torch.Tensor, int, torch.Tensor]:
    """The largest algebraic eigenvalue of the symmetric operator `matvec` by Lanczos with full
    reorthogonalisation from `start`: (estimate as a CPU scalar of start's dtype, iterations used, final relative
    change, NaN after a single iteration)."""
    n = start.numel()
    basis = torch.zeros(min(iters, n), n, dtype=start.dtype, device=start.device)
    basis[0] = start / torch.linalg.vector_norm(start)
    alphas: list[float] = []
    betas: list[float] = []
    theta, change = math.nan, math.nan
    eps = torch.finfo(start.dtype).eps
    for k in range(len(basis)):
        w = matvec(basis[k])
        alphas.append(float(basis[k].dot(w)))
        q = basis[: k + 1]
        for _ in range(2):  # full reorthogonalisation against every Lanczos vector so far
            w = w - q.T @ (q @ w)
        beta = float(torch.linalg.vector_norm(w))
        tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
        previous, theta = theta, float(torch.linalg.eigvalsh(tridiagonal)[-1])
        scale = max(max(abs(a) for a in alphas), max(betas, default=0.0))
        if beta <= math.sqrt(n) * eps * scale or k + 1 == n:  # invariant Krylov space: the Ritz value is exact
            change = 0.0
            break
        if k > 0:
            change = abs(theta - previous) / abs(theta) if theta != 0 else math.inf
            if change < tol:
                break
        if k + 1 < len(basis):
            betas.append(beta)
            basis[k + 1] = w / beta
    return torch.tensor(theta, dtype=start.dtype), k + 1, torch.tensor(change, dtype=start.dtype)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])
