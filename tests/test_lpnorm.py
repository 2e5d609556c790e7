"""The l_p normalisation layers of Section 3.3 (`bnrepro.models.LpNorm`) against their definitions.

Each option of the layer is checked in float64 against an independent per-unit computation of its definition
(written here, unit by unit on flattened values), in training and evaluation mode, with the gradients of the input,
gamma and beta taken by autograd through both. The defaults must also reproduce, bit for bit, the layer as it was
when the book's l_p runs were trained (the frozen copy `legacy_forward`).
"""

import itertools
import math

import pytest
import torch

from bnrepro.models import LpNorm, make_norm

PS = {"l1": 1.0, "l2": 2.0, "l3": 3.0, "linf": math.inf}
SHAPES = {"conv": (6, 3, 4, 5), "vector": (40, 4)}
OPTIONS = [dict(average=a, inf_average=i, eps_where=e, centre_scale=c)
           for a, i, e, c in itertools.product(LpNorm.AVERAGES, LpNorm.INF_AVERAGES, LpNorm.EPS_PLACES,
                                               (False, True))]


def option_id(o: dict) -> str:
    return f"{o['average']}-{o['inf_average']}-eps_{o['eps_where']}-{'centred' if o['centre_scale'] else 'raw'}"


def unit_values(x: torch.Tensor, j: int) -> torch.Tensor:
    """Unit j's values as [example, position] (one position for a vector input)."""
    return x[:, j].reshape(x.shape[0], -1)


def denominator(v: torch.Tensor, p: float, o: dict) -> torch.Tensor:
    """The definition's denominator, before eps, of one unit's values v [example, position]."""
    m = v.numel()
    a = (v - v.sum() / m).abs() if o["centre_scale"] else v.abs()
    if math.isinf(p):
        if o["inf_average"] == "max":
            return a.max()
        return torch.stack([row.max() for row in a]).sum() / a.shape[0]
    power = (a ** p).sum() / m
    return power ** (1 / p) if o["average"] == "power_mean" else power


def divide(centred: torch.Tensor, d: torch.Tensor, p: float, o: dict, eps: float) -> torch.Tensor:
    if o["eps_where"] == "inside" and o["average"] == "power_mean" and not math.isinf(p):
        return centred / (d ** p + eps) ** (1 / p)
    return centred / (d + eps)


def reference(x, gamma, beta, p, o, eps, stats=None):
    """gamma * (x - mean) / denominator + beta per unit, with the batch's statistics or `stats` (mean, denominator)
    per unit; returns the output and the batch statistics it used."""
    out, means, dens = torch.empty_like(x), [], []
    for j in range(x.shape[1]):
        v = unit_values(x, j)
        mean, d = (v.sum() / v.numel(), denominator(v, p, o)) if stats is None else (stats[0][j], stats[1][j])
        means.append(mean), dens.append(d)
        out[:, j] = gamma[j] * divide(x[:, j] - mean, d, p, o, eps) + beta[j]
    return out, torch.stack(means), torch.stack(dens)


def data(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # a non-zero mean and unequal units, so centred and un-centred readings (and every option) differ
    return (torch.randn(shape, generator=g, dtype=dtype) * torch.linspace(0.5, 3, shape[1], dtype=dtype).view(
        (1, -1) + (1,) * (len(shape) - 2)) + 1.5)


def layer_for(channels, p, o, **kw):
    layer = LpNorm(channels, p, **o, **kw).double()
    with torch.no_grad():  # gamma and beta away from 1 and 0, so their gradients and effect are tested
        layer.weight.copy_(torch.linspace(0.7, 1.9, channels))
        layer.bias.copy_(torch.linspace(-0.4, 0.8, channels))
    return layer


def gradients(out: torch.Tensor, wrt) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    w = torch.randn(out.shape, generator=g, dtype=out.dtype)  # a generic loss, so every gradient term is non-zero
    return torch.autograd.grad((out * w).sum(), wrt)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("p", PS.values(), ids=PS.keys())
@pytest.mark.parametrize("o", OPTIONS, ids=option_id)
def test_training_mode_matches_definition(o, p, shape):
    """Output and input/gamma/beta gradients with batch statistics; the running averages move toward them."""
    layer = layer_for(shape[1], p, o, eps=1e-3, momentum=0.25)
    x = data(shape).requires_grad_()
    gamma, beta = (t.detach().clone().requires_grad_() for t in (layer.weight, layer.bias))
    x_ref = x.detach().clone().requires_grad_()
    want, mean, den = reference(x_ref, gamma, beta, p, o, layer.eps)
    got = layer(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(gradients(got, (x, layer.weight, layer.bias)), gradients(want, (x_ref, gamma, beta))):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, 0.25 * mean.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(layer.running_scale, 0.75 + 0.25 * den.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("p", PS.values(), ids=PS.keys())
@pytest.mark.parametrize("o", OPTIONS, ids=option_id)
def test_evaluation_mode_uses_running_statistics(o, p, shape):
    """After three training batches, evaluation normalises a new batch with the running mean and denominator (the
    exponential averages, computed here step by step), gradients included."""
    layer = layer_for(shape[1], p, o, eps=1e-3, momentum=0.3)
    run_mean, run_den = torch.zeros(shape[1], dtype=torch.float64), torch.ones(shape[1], dtype=torch.float64)
    for seed in (1, 2, 3):
        x = data(shape, seed)
        layer(x)
        _, mean, den = reference(x, layer.weight.detach(), layer.bias.detach(), p, o, layer.eps)
        run_mean, run_den = 0.7 * run_mean + 0.3 * mean, 0.7 * run_den + 0.3 * den
    layer.eval()
    x = data(shape, 4).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    gamma, beta = (t.detach().clone().requires_grad_() for t in (layer.weight, layer.bias))
    want, _, _ = reference(x_ref, gamma, beta, p, o, layer.eps, stats=(run_mean, run_den))
    before = layer.running_mean.clone(), layer.running_scale.clone()
    got = layer(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(gradients(got, (x, layer.weight, layer.bias)), gradients(want, (x_ref, gamma, beta))):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert torch.equal(layer.running_mean, before[0]) and torch.equal(layer.running_scale, before[1])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("p", PS.values(), ids=PS.keys())
def test_without_running_statistics_evaluation_uses_the_batch(p, shape):
    """track_running_stats=False: no buffers, and evaluation computes exactly what training does."""
    layer = layer_for(shape[1], p, {}, track_running_stats=False)
    assert layer.running_mean is None and layer.running_scale is None and not list(layer.buffers())
    x = data(shape)
    want, _, _ = reference(x, layer.weight.detach(), layer.bias.detach(), p, OPTIONS[0], layer.eps)
    train_out = layer(x)
    layer.eval()
    torch.testing.assert_close(train_out, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(layer(x), train_out)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("p", PS.values(), ids=PS.keys())
def test_options_are_distinct_readings(p, shape):
    """The test data tell each option apart where the definitions differ (else the tests above prove little)."""
    x = data(shape)
    den = {option_id(o): denominator(unit_values(x, 0), p, o) for o in OPTIONS}
    base = den[option_id(OPTIONS[0])]
    centred = den[option_id(OPTIONS[1])]
    assert abs(base - centred) > 1e-3
    other = denominator(unit_values(x, 0), p, OPTIONS[0] | {"average": "mean_power", "inf_average": "mean_of_max"})
    assert (abs(base - other) > 1e-3) == (p != 1.0)  # l1: the root changes nothing


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_power_mean_is_scale_invariant(p):
    """With the default power mean (and eps = 0), scaling a unit's input by c > 0 leaves the output unchanged."""
    layer = LpNorm(3, p, eps=0.0).double()
    x = data((16, 3))
    torch.testing.assert_close(layer(7.5 * x), layer(x), rtol=1e-12, atol=1e-12)


def legacy_forward(layer: LpNorm, x: torch.Tensor) -> torch.Tensor:
    """LpNorm.forward as it was when the book's VGG and DLN l_p runs were trained (frozen; do not edit)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    if layer.training:
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dim=dims)
        ax = x.abs()
        if math.isinf(layer.p):
            scale = ax.amax(dim=dims)
        else:
            scale = ax.pow(layer.p).mean(dim=dims).pow(1 / layer.p)
        with torch.no_grad():
            layer.running_mean.lerp_(mean.detach(), layer.momentum)
            layer.running_scale.lerp_(scale.detach(), layer.momentum)
    else:
        mean, scale = layer.running_mean, layer.running_scale
    y = (x - mean.view(shape)) / (scale.view(shape) + layer.eps)
    return y * layer.weight.view(shape) + layer.bias.view(shape)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "vector"])
@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_defaults_reproduce_the_trained_layer_bit_for_bit(norm, layout):
    """make_norm's l_p layers (the runs' layers, float32, VGG's channels-last maps included) give bit-identical
    outputs, gradients and running statistics to the frozen layer, in training and evaluation mode."""
    shape = (16, 8) if layout == "vector" else (16, 8, 4, 4)
    new = make_norm(norm, 8, dims=1 if layout == "vector" else 2)
    old = make_norm(norm, 8, dims=1 if layout == "vector" else 2)
    for seed, mode in enumerate(("train", "train", "eval")):
        new.train(mode == "train"), old.train(mode == "train")
        x = data(shape, seed, dtype=torch.float32) * 2
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        x_new, x_old = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_new, y_old = new(x_new), legacy_forward(old, x_old)
        assert torch.equal(y_new, y_old)
        g_new = gradients(y_new, (x_new, new.weight, new.bias))
        g_old = gradients(y_old, (x_old, old.weight, old.bias))
        assert all(torch.equal(a, b) for a, b in zip(g_new, g_old))
        assert torch.equal(new.running_mean, old.running_mean) and torch.equal(new.running_scale, old.running_scale)


@pytest.mark.parametrize("kw, match", [
    (dict(p=0.5), "p must be at least 1"), (dict(p=float("nan")), "p must be at least 1"),
    (dict(p=2.0, average="mean"), "unknown average 'mean': choose one of power_mean, mean_power"),
    (dict(p=2.0, inf_average="avg"), "unknown inf_average 'avg': choose one of max, mean_of_max"),
    (dict(p=2.0, eps_where="under"), "unknown eps_where 'under': choose one of outside, inside"),
])
def test_bad_options_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        LpNorm(4, **kw)
