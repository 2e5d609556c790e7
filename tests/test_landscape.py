"""Tests of the loss-landscape probe (Sec. 3.2 / Fig. 4): loop and vmap agree, match a direct module-API
computation and the exact curvature of a quadratic, and leave the model, its gradients and the RNG untouched."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnrepro.models import DeepLinearNet, NoisyBatchNorm, VGG, _mix, dln_data
from bnrepro.probes import ProbeContext
from bnrepro.probes import landscape
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID, measure_landscape

KEYS = ("loss", "grad_diff", "beta", "eta", "loss0", "grad_norm")
CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))

ULPS = 128
"""Rounding allowance, in units of the dtype's eps, between two evaluations of one quantity by different kernels or
operation orders (loop vs vmap, probe vs module API): a forward+backward pass through these networks (at most 9
layers; sums of at most 8 x 32 x 32 = 2^13 terms, the first convolution's weight gradient) errs by at most about
depth x log2(terms) = 9 x 13 ulps with blocked summation; measured: at most 18 ulps against float64, with AVX-512,
AVX2 and portable (ATEN_CPU_CAPABILITY=default) kernels. A difference of two such values amplifies it: see `rtol`."""


def rtol(out: dict[str, torch.Tensor], key: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Relative tolerance for `out[key]` from its conditioning: ULPS eps, and for the gradient change ||g - g'|| (and
    beta, its ratio to eta ||g||) times the cancellation factor (||g|| + ||g'||) / ||g - g'||, which is at most
    1 + 2 ||g|| / ||g - g'||: errors of size eps ||g|| and eps ||g'|| survive the subtraction. At eta = 0.01 LR on the
    DLN that factor is ~1e3."""
    tol = torch.tensor(ULPS * torch.finfo(dtype).eps, dtype=torch.float64)
    if key in ("grad_diff", "beta"):
        return tol * (1 + 2 * out["grad_norm"].double() / out["grad_diff"].double())
    return tol


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: torch.Tensor, what: str):
    """|actual - expected| <= tol |expected| elementwise, with a per-element tolerance (assert_close takes a scalar)."""
    err = (actual.double() - expected.double()).abs() / expected.double().abs()
    assert (err <= tol).all(), f"{what}: relative error {err.tolist()} exceeds {torch.as_tensor(tol).tolist()}"


def sse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The DLN's sum-of-squares loss."""
    return (out - target).pow(2).sum()


def vgg_ctx(norm: str, device: str = "cpu") -> ProbeContext:
    """A small VGG-11 (width 1/16) in training mode on 8 random images, with noisy BN keyed to step 7."""
    torch.manual_seed(0)
    model = VGG("vgg11", norm=norm, width=1 / 16).to(device).train()
    for m in model.modules():
        if isinstance(m, NoisyBatchNorm):
            m.noise_step = 7
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    return ProbeContext(model, x.to(device), y.to(device), F.cross_entropy, lr=0.1, step=7)


def dln_ctx(norm: str, device: str = "cpu") -> ProbeContext:
    """A DeepLinearNet(depth 6, dim 4) on 32 regression samples with the sum-of-squares loss."""
    torch.manual_seed(0)
    model = DeepLinearNet(depth=6, dim=4, norm=norm).to(device).train()
    x, y = dln_data(n=32, dim=4)
    return ProbeContext(model, x.to(device), y.to(device), sse, lr=1e-4, step=0)


CASES = [("vgg", "none"), ("vgg", "batch"), ("vgg", "noisy"), ("dln", "none"), ("dln", "batch")]


def make_ctx(kind: str, norm: str, device: str = "cpu") -> tuple[ProbeContext, tuple[float, ...]]:
    return (vgg_ctx(norm, device), VGG_GRID) if kind == "vgg" else (dln_ctx(norm, device), DLN_GRID)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("kind,norm", CASES)
def test_loop_and_vmap_agree(kind, norm, device, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # float32 convolutions on CUDA
    ctx, grid = make_ctx(kind, norm, device)
    loop = measure_landscape(ctx, grid, mode="loop")
    vm = measure_landscape(ctx, grid, mode="vmap")
    assert set(loop) == set(KEYS)
    for k in KEYS:
        assert loop[k].device.type == "cpu"
        assert torch.isfinite(loop[k]).all()
        assert_rel_close(vm[k], loop[k], rtol(loop, k), k)
    assert loop["loss"].shape == loop["beta"].shape == (len(grid),)
    assert_rel_close(loop["eta"], torch.tensor(grid, dtype=torch.float64) * ctx.lr, rtol(loop, "eta"), "eta")


@pytest.mark.parametrize("mode", ["loop", "vmap"])
@pytest.mark.parametrize("norm", ["none", "batch", "noisy"])
def test_matches_direct_module_computation(norm, mode):
    ctx = vgg_ctx(norm)
    out = measure_landscape(ctx, VGG_GRID, mode=mode)
    i = 2
    eta = VGG_GRID[i] * ctx.lr
    ref = copy.deepcopy(ctx.model).train()
    loss0 = ctx.loss_fn(ref(ctx.inputs), ctx.targets)
    loss0.backward()
    g0 = [p.grad.clone() for p in ref.parameters()]
    with torch.no_grad():
        for p in ref.parameters():
            p -= eta * p.grad
            p.grad = None
    loss = ctx.loss_fn(ref(ctx.inputs), ctx.targets)
    loss.backward()
    diff = torch.cat([(a - p.grad).flatten() for a, p in zip(g0, ref.parameters())]).norm()
    grad_norm = torch.cat([a.flatten() for a in g0]).norm()
    assert_rel_close(out["loss0"], loss0.detach(), rtol(out, "loss0"), "loss0")
    assert_rel_close(out["grad_norm"], grad_norm, rtol(out, "grad_norm"), "grad_norm")
    assert_rel_close(out["loss"][i], loss.detach(), rtol(out, "loss"), "loss")
    assert_rel_close(out["grad_diff"][i], diff, rtol(out, "grad_diff")[i], "grad_diff")
    assert_rel_close(out["beta"][i], diff / (eta * grad_norm), rtol(out, "beta")[i], "beta")


@pytest.mark.parametrize("mode", ["loop", "vmap"])
@pytest.mark.parametrize("norm", ["none", "batch", "noisy"])
def test_probe_changes_nothing(norm, mode):
    ctx = vgg_ctx(norm)
    ctx.loss_fn(ctx.model(ctx.inputs), ctx.targets).backward()  # non-trivial .grad and running statistics
    state = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    grads = [p.grad.clone() for p in ctx.model.parameters()]
    rng = torch.get_rng_state()
    first = measure_landscape(ctx, VGG_GRID, mode=mode)
    second = measure_landscape(ctx, VGG_GRID, mode=mode)
    assert torch.equal(torch.get_rng_state(), rng)
    assert ctx.model.training
    after = ctx.model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert all(torch.equal(p.grad, g) for p, g in zip(ctx.model.parameters(), grads))
    assert all(torch.equal(first[k], second[k]) for k in KEYS)


def test_beta_is_exact_curvature_of_a_quadratic():
    """Depth-1 DLN = linear regression: L(W) = ||X W^T - Y||^2, so H[D] = 2 D X^T X and beta = ||H g|| / ||g||
    at every step size, and the loss along -g is exactly L0 - eta ||g||^2 + eta^2 g.Hg / 2."""
    torch.manual_seed(0)
    model = DeepLinearNet(depth=1, dim=5).double().train()
    x, y = (t.double() for t in dln_data(n=50, dim=5))
    ctx = ProbeContext(model, x, y, sse, lr=1e-3, step=0)
    out = measure_landscape(ctx, DLN_GRID)
    w = model.blocks[0].linear.weight.detach()
    g = 2 * (x @ w.T - y).T @ x
    hg = 2 * g @ x.T @ x
    eta = torch.tensor(DLN_GRID, dtype=torch.float64) * ctx.lr
    assert_rel_close(out["grad_norm"], g.norm(), rtol(out, "grad_norm", torch.float64), "grad_norm")
    assert_rel_close(out["beta"], (hg.norm() / g.norm()).expand(len(DLN_GRID)), rtol(out, "beta", torch.float64),
                     "beta")
    terms = (out["loss0"], -eta * g.norm() ** 2, eta ** 2 * (g * hg).sum() / 2)
    expected = sum(terms)
    cancellation = sum(t.abs() for t in terms) / expected.abs()  # up to ~20 where the step nearly reaches the minimum
    assert_rel_close(out["loss"], expected, rtol(out, "loss", torch.float64) * cancellation, "loss")


@pytest.mark.parametrize("grid,mode,match", [
    ((), "auto", "non-empty"),
    ((1.0, 0.0), "auto", "positive"),
    ((-1.0,), "loop", "positive"),
    ((float("nan"),), "loop", "finite"),
    ((1.0,), "fast", "auto, loop, vmap"),
])
def test_bad_input(grid, mode, match):
    with pytest.raises(ValueError, match=match):
        measure_landscape(dln_ctx("none"), grid, mode=mode)


def test_auto_prefers_loop_on_cpu_and_vmap_on_cuda():
    assert landscape.preferred_mode(torch.device("cpu")) == "loop"
    assert landscape.preferred_mode(torch.device("cuda")) == "vmap"


class Branchy(nn.Module):
    """Data-dependent control flow, which vmap cannot run."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x):
        h = self.lin(x)
        return h if h.sum() > 0 else -h


def test_vmap_failure_raises_and_auto_falls_back(monkeypatch):
    torch.manual_seed(0)
    ctx = ProbeContext(Branchy(), torch.randn(6, 3), torch.randn(6, 1), sse, lr=0.01, step=0)
    with pytest.raises(RuntimeError, match="mode='vmap' cannot evaluate Branchy"):
        measure_landscape(ctx, (1.0, 2.0), mode="vmap")
    monkeypatch.setattr(landscape, "preferred_mode", lambda device: "vmap")
    auto = measure_landscape(ctx, (1.0, 2.0), mode="auto")
    loop = measure_landscape(ctx, (1.0, 2.0), mode="loop")
    assert all(torch.equal(auto[k], loop[k]) for k in KEYS)


# --- random directions (Sec. 3.2: "other (random) directions") ------------------------------------------------------

RAND_KEYS = ("rand_loss", "rand_grad_diff", "rand_beta")


def expected_direction(ctx: ProbeContext, index: int) -> list[torch.Tensor]:
    """Direction `index` drawn directly: Gaussian per parameter in order from the generator keyed by (seed, step,
    RANDOM_DIR_KEY, index), scaled to the gradient's norm."""
    gen = torch.Generator().manual_seed(_mix(ctx.seed, ctx.step, landscape.RANDOM_DIR_KEY, index))
    draws = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in ctx.model.parameters()]
    ref = copy.deepcopy(ctx.model)
    ctx.loss_fn(ref(ctx.inputs), ctx.targets).backward()
    grad_norm = torch.cat([p.grad.flatten() for p in ref.parameters()]).norm()
    return [d * grad_norm / torch.cat([d.flatten() for d in draws]).norm() for d in draws]


@pytest.mark.parametrize("mode", ["loop", "vmap"])
@pytest.mark.parametrize("norm", ["none", "batch", "noisy"])
def test_random_directions_match_a_direct_module_computation(norm, mode):
    ctx = vgg_ctx(norm)
    ctx.seed = 4
    out = measure_landscape(ctx, VGG_GRID, mode=mode, random_dirs=2)
    assert all(out[k].shape == (2, len(VGG_GRID)) for k in RAND_KEYS)
    ref = copy.deepcopy(ctx.model).train()
    ctx.loss_fn(ref(ctx.inputs), ctx.targets).backward()
    g0 = [p.grad.clone() for p in ref.parameters()]
    w0 = [p.detach().clone() for p in ref.parameters()]
    for j, i in ((0, 1), (1, 3)):
        d = expected_direction(ctx, j)
        eta = VGG_GRID[i] * ctx.lr
        with torch.no_grad():
            for p, w, dp in zip(ref.parameters(), w0, d):
                p.copy_(w - eta * dp)
                p.grad = None
        loss = ctx.loss_fn(ref(ctx.inputs), ctx.targets)
        loss.backward()
        diff = torch.cat([(a - p.grad).flatten() for a, p in zip(g0, ref.parameters())]).norm()
        step = eta * torch.cat([dp.flatten() for dp in d]).norm()
        torch.testing.assert_close(out["rand_loss"][j, i], loss.detach(), rtol=1e-5, atol=0)
        torch.testing.assert_close(out["rand_grad_diff"][j, i], diff, rtol=1e-4, atol=0)
        torch.testing.assert_close(out["rand_beta"][j, i], diff / step, rtol=1e-4, atol=0)
    assert not torch.equal(out["rand_loss"][0], out["rand_loss"][1])  # two different directions


def test_random_directions_on_a_quadratic_are_exact():
    """Depth-1 DLN = linear regression, H[D] = 2 D X^T X: along d (||d|| = ||g||) the loss is exactly
    L0 - eta g.d + eta^2 d.Hd / 2 and the gradient change is eta ||H d||."""
    torch.manual_seed(0)
    model = DeepLinearNet(depth=1, dim=5).double().train()
    x, y = (t.double() for t in dln_data(n=50, dim=5))
    ctx = ProbeContext(model, x, y, sse, lr=1e-3, step=2, seed=9)
    out = measure_landscape(ctx, DLN_GRID, random_dirs=3)
    w = model.blocks[0].linear.weight.detach()
    g = 2 * (x @ w.T - y).T @ x
    eta = torch.tensor(DLN_GRID, dtype=torch.float64) * ctx.lr
    for j in range(3):
        d, = expected_direction(ctx, j)
        torch.testing.assert_close(d.norm(), g.norm())
        hd = 2 * d @ x.T @ x
        torch.testing.assert_close(out["rand_grad_diff"][j], eta * hd.norm(), rtol=1e-9, atol=0)
        torch.testing.assert_close(out["rand_beta"][j], (hd.norm() / g.norm()).expand(len(eta)), rtol=1e-9, atol=0)
        expected = out["loss0"] - eta * (g * d).sum() + eta ** 2 * (d * hd).sum() / 2
        torch.testing.assert_close(out["rand_loss"][j], expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("kind,norm", CASES)
def test_random_directions_leave_the_gradient_direction_alone(kind, norm):
    """Adding random directions changes none of the gradient direction's numbers (bit for bit), and the loop and
    vmap agree on the random directions. In float64: at the smallest step the gradient change is a difference of
    nearly equal gradients, whose float32 rounding would need a tolerance scaled by ||g|| / change."""
    ctx, grid = make_ctx(kind, norm)
    ctx.model.double()
    ctx.inputs, ctx.targets = ctx.inputs.double(), (ctx.targets.double() if kind == "dln" else ctx.targets)
    plain = measure_landscape(ctx, grid, mode="loop")
    loop = measure_landscape(ctx, grid, mode="loop", random_dirs=2)
    vm = measure_landscape(ctx, grid, mode="vmap", random_dirs=2)
    assert set(loop) == set(KEYS) | set(RAND_KEYS) and set(plain) == set(KEYS)
    assert all(torch.equal(plain[k], loop[k]) for k in KEYS)
    for k in RAND_KEYS:
        assert torch.isfinite(loop[k]).all()
        torch.testing.assert_close(vm[k], loop[k], rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_directions_change_nothing_and_follow_the_dtype(dtype):
    ctx = vgg_ctx("batch")
    ctx.model.to(dtype)
    ctx.inputs = ctx.inputs.to(dtype)
    ctx.loss_fn(ctx.model(ctx.inputs), ctx.targets).backward()
    state = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    grads = [p.grad.clone() for p in ctx.model.parameters()]
    rng = torch.get_rng_state()
    first = measure_landscape(ctx, VGG_GRID, random_dirs=2)
    second = measure_landscape(ctx, VGG_GRID, random_dirs=2)
    assert torch.equal(torch.get_rng_state(), rng) and ctx.model.training
    after = ctx.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert all(torch.equal(p.grad, g) for p, g in zip(ctx.model.parameters(), grads))
    assert all(torch.equal(first[k], second[k]) and first[k].dtype == dtype for k in first)
    ctx.step += 1  # another step draws other directions
    assert not torch.equal(measure_landscape(ctx, VGG_GRID, random_dirs=2)["rand_loss"], first["rand_loss"])


def test_random_directions_bad_input():
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="random_dirs"):
            measure_landscape(dln_ctx("none"), DLN_GRID, random_dirs=bad)
