"""Tests of the internal-covariate-shift probe (Definition 2.1) against a direct module-API implementation."""

import copy

import pytest
import torch
from torch import nn

from bnrepro.models import DeepLinearNet, Layer, NoisyBatchNorm, VGG
from bnrepro.probes import ProbeContext
from bnrepro.probes.ics import measure_ics

LR = 0.1


def sum_sq(out, y):
    return ((out - y) ** 2).sum()


def vgg_ctx(norm, dtype=torch.float64, step=3):
    torch.manual_seed(0)
    model = VGG("vgg11", norm=norm, width=1 / 16).to(dtype).train()
    for m in model.modules():
        if isinstance(m, NoisyBatchNorm):
            m.noise_step = step
    x, y = torch.randn(8, 3, 32, 32, dtype=dtype), torch.randint(0, 10, (8,))
    return ProbeContext(model, x, y, nn.functional.cross_entropy, LR, step)


def dln_ctx(norm):
    torch.manual_seed(0)
    model = DeepLinearNet(depth=6, dim=4, norm=norm).double().train()
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 4, dtype=torch.float64)
    return ProbeContext(model, x, y, sum_sq, 1e-2, 0)


def module_grads(model, ctx):
    """Every parameter's .grad after a real forward/backward on the step's batch (train mode)."""
    model.train().zero_grad()
    ctx.loss_fn(model(ctx.inputs), ctx.targets).backward()
    return [p.grad.clone() for p in model.parameters()]


def slow_ics(ctx, i, params):
    """Definition 2.1 done directly: step layers 1..i-1 of a copy by hand, then re-take layer i's gradient."""
    base = copy.deepcopy(ctx.model)
    grads = module_grads(base, ctx)
    moved = copy.deepcopy(ctx.model)
    grad_of = dict(zip(moved.parameters(), grads))
    with torch.no_grad():
        for layer in moved.layers()[: i - 1]:
            for p in layer.parameters():
                p -= ctx.lr * grad_of[p]
    new = module_grads(moved, ctx)

    layer = moved.layers()[i - 1]
    chosen = [layer.linear.weight if isinstance(layer, Layer) else layer.weight] if params == "weight" \
        else list(layer.parameters())
    idx = [k for k, p in enumerate(moved.parameters()) if any(p is q for q in chosen)]
    g = torch.cat([grads[k].flatten() for k in idx])
    g2 = torch.cat([new[k].flatten() for k in idx])
    return (g - g2).norm().item(), (g @ g2 / (g.norm() * g2.norm())).item()


@pytest.mark.parametrize("make,layers", [
    (lambda: vgg_ctx("none"), [1, 3, 5, 9]),
    (lambda: vgg_ctx("batch"), [2, 5, 9]),
    (lambda: vgg_ctx("noisy"), [4, 8]),
    (lambda: dln_ctx("batch"), [1, 2, 4, 6]),
    (lambda: dln_ctx("none"), [3, 6]),
])
@pytest.mark.parametrize("params", ["weight", "layer"])
def test_matches_direct_definition(make, layers, params):
    ctx = make()
    out = measure_ics(ctx, layers, params)
    for k, i in enumerate(layers):
        l2, cos = slow_ics(ctx, i, params)
        assert out["l2"][k].item() == pytest.approx(l2, rel=1e-8, abs=1e-12)
        assert out["cos"][k].item() == pytest.approx(cos, rel=1e-10)
    assert (out["l2"][torch.tensor(layers) > 1] > 0).all()  # the shift is real, not a vacuous match


def snapshot(model):
    return ([p.detach().clone() for p in model.parameters()], [p.requires_grad for p in model.parameters()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [b.clone() for b in model.buffers()], torch.get_rng_state(), model.training)


def same(a, b):
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("norm", ["none", "batch", "noisy"])
def test_changes_nothing_and_is_repeatable(norm):
    ctx = vgg_ctx(norm, torch.float32)
    ctx.loss_fn(ctx.model(ctx.inputs), ctx.targets).backward()  # populate .grad and move the running stats
    for p in list(ctx.model.parameters())[::2]:
        p.grad = None
    before = snapshot(ctx.model)
    first = measure_ics(ctx, [1, 5, 9], "layer")
    assert same(snapshot(ctx.model), before)
    second = measure_ics(ctx, [1, 5, 9], "layer")
    assert torch.equal(first["l2"], second["l2"]) and torch.equal(first["cos"], second["cos"])


def test_noise_is_keyed_by_step():
    a, b = (measure_ics(vgg_ctx("noisy", step=s), [5]) for s in (3, 4))
    assert not torch.equal(a["l2"], b["l2"])


def test_layer_params_cover_bias_and_affine():
    ctx = vgg_ctx("batch")
    weight, layer = measure_ics(ctx, [5], "weight"), measure_ics(ctx, [5], "layer")
    assert layer["l2"].item() > weight["l2"].item()  # conv bias, gamma and beta shift too
    bare = dln_ctx("none")  # no bias, no normalisation: a layer is its weight
    a, b = measure_ics(bare, [3, 6], "weight"), measure_ics(bare, [3, 6], "layer")
    assert torch.equal(a["l2"], b["l2"]) and torch.equal(a["cos"], b["cos"])


def test_bad_input():
    ctx = vgg_ctx("none")
    for bad in ([0], [2, 10]):
        with pytest.raises(ValueError, match=r"1\.\.9"):
            measure_ics(ctx, bad)
    with pytest.raises(ValueError, match="weight, layer"):
        measure_ics(ctx, [2], params="bias")
