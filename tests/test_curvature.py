"""Tests of the curvature probe: batch sharpness and the top Hessian eigenvalue match an explicit Hessian of a tiny
float64 BatchNorm network and the known spectrum of quadratics (the largest algebraic eigenvalue, also when a
negative one is larger in magnitude); the probe respects the dtype and leaves the model, its gradients and the RNG
untouched."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bnrepro.models import DeepLinearNet, NoisyBatchNorm, VGG, _mix, dln_data
from bnrepro.probes import ProbeContext
from bnrepro.probes.curvature import LANCZOS_KEY, lanczos_top, measure_curvature

EPS64 = torch.finfo(torch.float64).eps


def conv_bn_net() -> nn.Module:
    """Conv -> BatchNorm2d -> ReLU -> linear: 101 parameters, small enough for an explicit Hessian."""
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 5))


def tiny_ctx(kind: str, dtype=torch.float64) -> ProbeContext:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if kind == "conv":
        model = conv_bn_net().to(dtype).train()
        x, y = torch.randn(10, 2, 4, 4, generator=g).to(dtype), torch.randint(0, 5, (10,), generator=g)
        return ProbeContext(model, x, y, F.cross_entropy, lr=0.1, step=3, seed=5)
    model = DeepLinearNet(depth=4, dim=3, norm="batch").to(dtype).train()
    x, y = (t.to(dtype) for t in dln_data(n=20, dim=3))
    return ProbeContext(model, x, y, lambda out, t: (out - t).pow(2).sum(), lr=1e-3, step=3, seed=5)


def explicit_hessian(ctx: ProbeContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient and the Hessian of the batch loss over all parameters as one flat vector (module API)."""
    names = [n for n, _ in ctx.model.named_parameters()]
    shapes = [p.shape for _, p in ctx.model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in ctx.model.parameters()])

    def loss(v: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, (c.view(s) for c, s in zip(v.split([s.numel() for s in shapes]), shapes))))
        buffers = {n: b.clone() for n, b in ctx.model.named_buffers()}
        return ctx.loss_fn(functional_call(ctx.model, {**params, **buffers}, (ctx.inputs,)), ctx.targets)

    leaf = flat.clone().requires_grad_()
    grad, = torch.autograd.grad(loss(leaf), leaf)
    return grad, torch.autograd.functional.hessian(loss, flat)


@pytest.mark.parametrize("kind", ["conv", "dln"])
def test_matches_an_explicit_hessian(kind):
    ctx = tiny_ctx(kind)
    g, hess = explicit_hessian(ctx)
    n = len(g)
    spectrum = torch.linalg.eigvalsh(hess)
    assert spectrum[0] < 0 < spectrum[-1]  # an indefinite Hessian: the top eigenvalue is the algebraic one
    out = measure_curvature(ctx, iters=n, tol=0.0)  # Lanczos runs until the Krylov space is exhausted: exact
    assert out["sharpness"].dtype == out["eigenvalue"].dtype == torch.float64
    tol = n * EPS64 * spectrum.abs().max()  # rounding of n-term sums, relative to the spectrum's scale
    torch.testing.assert_close(out["sharpness"], g @ hess @ g / (g @ g), rtol=0, atol=tol)
    torch.testing.assert_close(out["eigenvalue"], spectrum[-1], rtol=0, atol=tol)
    assert out["change"] == 0 and 1 <= out["iters"] <= n


def quadratic(eigenvalues: torch.Tensor, seed: int = 0) -> tuple[ProbeContext, torch.Tensor, torch.Tensor]:
    """L(w) = w^T A w / 2 + b^T w with A = Q diag(eigenvalues) Q^T for a random rotation Q: (context, A, gradient)."""
    n = len(eigenvalues)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(eigenvalues.double()) @ q.T
    b = torch.randn(n, generator=g, dtype=torch.float64)

    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))

        def forward(self, x):
            return self.w @ a @ self.w / 2 + b @ self.w

    model = Quadratic().train()
    ctx = ProbeContext(model, torch.zeros(1), torch.zeros(1), lambda out, t: out, lr=0.1, step=0)
    return ctx, a, a @ model.w.detach() + b


def test_quadratic_top_eigenvalue_is_the_largest_algebraic_one():
    """Spectrum -10, -3, 0.5, 1, 2, 4: power iteration would find -10; the probe must find 4, and the sharpness is
    g^T A g / g^T g."""
    ctx, a, g = quadratic(torch.tensor([-10.0, -3.0, 0.5, 1.0, 2.0, 4.0]))
    out = measure_curvature(ctx, iters=20, tol=0.0)
    torch.testing.assert_close(out["eigenvalue"], torch.tensor(4.0, dtype=torch.float64), rtol=1e-13, atol=0)
    assert out["iters"] == 6 and out["change"] == 0  # the space is exhausted after n = 6 iterations
    torch.testing.assert_close(out["sharpness"], g @ a @ g / (g @ g), rtol=1e-13, atol=0)


def test_lanczos_converges_on_a_large_quadratic_and_stops_early():
    """n = 300, top eigenvalue 10 above a gap (next 6, the rest in [-20, 5]): Lanczos reaches it far below n
    iterations, and with a tolerance it stops early, below the true value (Ritz values approach it from below)."""
    g = torch.Generator().manual_seed(3)
    eigenvalues = torch.cat([torch.tensor([10.0, 6.0]), torch.rand(298, generator=g, dtype=torch.float64) * 25 - 20])
    ctx, _, _ = quadratic(eigenvalues)
    full = measure_curvature(ctx, iters=80, tol=1e-13)
    torch.testing.assert_close(full["eigenvalue"], torch.tensor(10.0, dtype=torch.float64), rtol=1e-10, atol=0)
    assert full["iters"] < 80
    early = measure_curvature(ctx, iters=80, tol=1e-3)
    assert early["iters"] < full["iters"] and early["change"] < 1e-3
    assert 10 * (1 - 1e-2) < early["eigenvalue"] <= 10 * (1 + 1e-12)


def test_lanczos_start_vector_and_bad_input():
    """The start vector is the Gaussian drawn from the probe's generator keyed by (run seed, step)."""
    ctx = tiny_ctx("dln")
    n = sum(p.numel() for p in ctx.model.parameters())
    seen = []

    def record_start(v):
        seen.append(v.clone())
        return v

    lanczos_top(record_start, torch.randn(n, generator=ctx.generator(LANCZOS_KEY), dtype=torch.float64), 1, 0.0)
    expected = torch.randn(n, generator=torch.Generator().manual_seed(_mix(5, 3, LANCZOS_KEY)), dtype=torch.float64)
    torch.testing.assert_close(seen[0], expected / expected.norm(), rtol=0, atol=0)
    for kw, match in ((dict(iters=0), "iters"), (dict(iters=2, tol=-1.0), "tol"),
                      (dict(iters=2, tol=float("nan")), "tol")):
        with pytest.raises(ValueError, match=match):
            measure_curvature(ctx, **kw)


def test_without_eigen_only_the_sharpness():
    ctx = tiny_ctx("conv")
    full, part = measure_curvature(ctx, iters=5), measure_curvature(ctx, iters=5, eigen=False)
    assert torch.equal(full["sharpness"], part["sharpness"])
    assert torch.isnan(part["eigenvalue"]) and torch.isnan(part["change"]) and part["iters"] == 0


def test_float32_model_gives_float32_numbers_close_to_float64():
    """The same network and batch in float32: the numbers agree with float64 to float32 rounding of the
    Hessian-vector products' n-term sums (n parameters), relative to the spectrum's scale."""
    exact_ctx = tiny_ctx("conv")
    _, hess = explicit_hessian(exact_ctx)
    n, scale = len(hess), torch.linalg.eigvalsh(hess).abs().max()
    exact, single = measure_curvature(exact_ctx, iters=n, tol=0.0), \
        measure_curvature(tiny_ctx("conv", torch.float32), iters=n, tol=0.0)
    assert all(single[k].dtype == torch.float32 for k in ("sharpness", "eigenvalue", "change"))
    tol = n * torch.finfo(torch.float32).eps * scale
    for k in ("sharpness", "eigenvalue"):
        torch.testing.assert_close(single[k].double(), exact[k], rtol=0, atol=tol)


@pytest.mark.parametrize("norm", ["batch", "noisy", "none"])
def test_probe_changes_nothing(norm):
    torch.manual_seed(0)
    model = VGG("vgg11", norm=norm, width=1 / 16).train()
    for m in model.modules():
        if isinstance(m, NoisyBatchNorm):
            m.noise_step = 7
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    ctx = ProbeContext(model, x, y, F.cross_entropy, lr=0.1, step=7, seed=2)
    ctx.loss_fn(model(x), y).backward()  # non-trivial .grad and running statistics
    state = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    first, second = measure_curvature(ctx, iters=4), measure_curvature(ctx, iters=4)
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.isfinite(first["sharpness"]) and torch.isfinite(first["eigenvalue"])
