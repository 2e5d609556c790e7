"""bnrepro.models: noisy BatchNorm's noise law (Algorithm 1), the l_p layers (Sec. 3.3), VGG and the deep linear net."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnrepro.models import NORMS, RESNET_BLOCKS, VGG_CONFIGS, DeepLinearNet, LpNorm, NoisyBatchNorm, ResNet, VGG, \
    build_model, dln_data, make_norm

C = 200  # channels of the noisy-BN input: 200 draws of (mu, sigma) per step
CONVS = {"vgg11": 8, "vgg13": 10, "vgg16": 13, "vgg19": 16}




def ks_uniform(v: torch.Tensor, lo: float, hi: float) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic of samples `v` against U(lo, hi), and its 0.1%-level critical value."""
    v = torch.sort(v.flatten().double()).values
    n = len(v)
    cdf = ((v - lo) / (hi - lo)).clamp(0, 1)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = max((i / n - cdf).max().item(), (cdf - (i - 1) / n).max().item())
    return d, 1.95 / math.sqrt(n)


def noisy_bn(step: int = 3, layer: int = 2) -> NoisyBatchNorm:
    bn = NoisyBatchNorm(C).double().train()  # affine weight 1, bias 0: BN's output is the standardised input
    bn.noise_seed, bn.layer_index, bn.noise_step = 0, layer, step
    return bn


def sign_input() -> torch.Tensor:
    """64 x C x 16 x 16 of values in {-2, 4}: the standardised input a is then far from 0 everywhere."""
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 2, (64, C, 16, 16), generator=g) * 6 - 2).double()


@torch.no_grad()
def recover_noise(bn: NoisyBatchNorm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, m) per element, as [C, N*H*W]: out = s*a + m is linear in a and BN(-x) = -BN(x), so
    m = (out(x) + out(-x)) / 2 and s = (out(x) - out(-x)) / (2a)."""
    a = F.batch_norm(x, None, None, training=True, eps=bn.eps)
    o1, o2 = bn(x), bn(-x)
    per_channel = lambda t: t.transpose(0, 1).reshape(C, -1)
    return per_channel((o1 - o2) / (2 * a)), per_channel((o1 + o2) / 2)


@pytest.fixture(scope="module")
def noise():
    return recover_noise(noisy_bn(), sign_input())


def test_noisy_bn_shift_follows_algorithm_1(noise):
    """m ~ U(mu - 0.1, mu + 0.1) per element, with mu ~ U(-0.5, 0.5) per channel."""
    _, m = noise
    mu = (m.amax(1) + m.amin(1)) / 2  # midrange: the centre of a uniform, to ~1e-5 with 16k samples
    assert mu.abs().max() <= 0.5 + 1e-3
    d, crit = ks_uniform(mu, -0.5, 0.5)
    assert d < crit, f"channel shifts mu are not U(-0.5, 0.5): KS {d:.3f} >= {crit:.3f}"
    assert abs(mu.mean()) < 0.1 and abs(mu.var() - 0.25 / 3) < 0.025
    r = m - mu[:, None]
    assert r.abs().max() <= 0.1 + 1e-6
    assert torch.all(r.amax(1) - r.amin(1) > 0.199)  # each channel spans the whole range 0.2
    assert abs(r.var() - 0.01 / 3) < 0.0001
    d, crit = ks_uniform(r[:5], -0.1, 0.1)
    assert d < crit, f"within-channel shifts are not U(mu-0.1, mu+0.1): KS {d:.4f} >= {crit:.4f}"


def test_noisy_bn_scale_follows_algorithm_1(noise):
    """s ~ N(sigma, 0.1) per element (0.1 a standard deviation), with sigma ~ U(1, 1.25) per channel."""
    s, _ = noise
    sigma = s.mean(1)
    assert sigma.min() > 1 - 0.005 and sigma.max() < 1.25 + 0.005
    d, crit = ks_uniform(sigma, 1.0, 1.25)
    assert d < crit, f"channel scales sigma are not U(1, 1.25): KS {d:.3f} >= {crit:.3f}"
    sd = s.std(1)
    assert torch.all((sd - 0.1).abs() < 0.004), (sd.min(), sd.max())
    z = (s - sigma[:, None]) / 0.1  # normal: 68.3% within 1 sd, 95.4% within 2, 99.7% within 3
    for k, p in ((1, 0.6827), (2, 0.9545), (3, 0.9973)):
        assert abs((z.abs() < k).double().mean().item() - p) < 0.003


@torch.no_grad()
def test_noisy_bn_noise_is_keyed_by_seed_layer_and_step():
    """Same (seed, layer, step) gives the same noise; another step or layer draws new (mu, sigma)."""
    x = torch.randn(4, 8, 5, 5, dtype=torch.float64)
    bn = NoisyBatchNorm(8).double().train()
    bn.layer_index, bn.noise_step = 1, 5
    y = bn(x)
    assert torch.equal(bn(x), y)
    assert not torch.allclose(y, F.batch_norm(x, None, None, training=True, eps=bn.eps))  # noise is on
    bn.noise_step = 6
    assert not torch.allclose(bn(x), y)
    bn.noise_step, bn.layer_index = 5, 2
    assert not torch.allclose(bn(x), y)
    bn.layer_index, bn.noise_seed = 1, 1
    assert not torch.allclose(bn(x), y)
    bn.noise_seed = 0
    assert torch.equal(bn(x), y)
    state = torch.get_rng_state()
    bn(x)
    assert torch.equal(torch.get_rng_state(), state)  # no global random state consumed


@torch.no_grad()
def test_noisy_bn_eval_is_plain_batchnorm():
    """In eval mode the noise is off: the output equals BatchNorm2d with the same running statistics."""
    x = torch.randn(6, 8, 5, 5) * 3 + 1
    noisy, plain = NoisyBatchNorm(8).train(), nn.BatchNorm2d(8).train()
    nn.init.uniform_(noisy.weight)
    nn.init.uniform_(noisy.bias)
    plain.load_state_dict(noisy.state_dict())
    noisy(x), plain(x)  # running statistics update as BatchNorm's do
    assert torch.equal(noisy.running_mean, plain.running_mean) and torch.equal(noisy.running_var, plain.running_var)
    noisy.eval(), plain.eval()
    assert torch.equal(noisy(x), plain(x))


@torch.no_grad()
def test_noisy_bn_noise_does_not_depend_on_the_layout():
    """A channels-last input gets the values of its NCHW copy up to BatchNorm's float rounding (the noise, about 0.1
    per element, is drawn in logical order) and keeps its layout."""
    x = torch.randn(4, 6, 5, 5)
    bn = NoisyBatchNorm(6).train()
    out, out_cl = bn(x), bn(x.contiguous(memory_format=torch.channels_last))
    # unit-scale outputs, statistics over 100 values: float32 rounding ~ log2(100) eps ~ 1e-6 (measured <= 7e-7)
    torch.testing.assert_close(out_cl, out, rtol=1e-5, atol=1e-5)
    assert out_cl.is_contiguous(memory_format=torch.channels_last) and out.is_contiguous()


@pytest.mark.parametrize("norm", ["none", "batch", "noisy"])
@torch.no_grad()
def test_vgg_computes_channels_last_and_matches_nchw(norm):
    """VGG's conv weights are channels-last, so its feature maps are NHWC even for an NCHW batch; the outputs agree
    with the same network in NCHW to float rounding."""
    torch.manual_seed(0)
    model = VGG("vgg11", norm=norm, width=0.125).train()
    assert all(l.linear.weight.is_contiguous(memory_format=torch.channels_last) for l in model.conv_layers())
    seen = []
    model.conv_layers()[1].register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(8, 3, 32, 32)
    out = model(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()
    nchw = VGG("vgg11", norm=norm, width=0.125).train().to(memory_format=torch.contiguous_format)
    nchw.load_state_dict(model.state_dict())
    # BN keeps activations at unit scale, so errors are absolute: 8 convolutions (sums of <= 576 terms) in two
    # layouts, ~ 8 x log2(576) ~ 80 eps ~ 1e-5; measured <= 1.5e-5 with AVX-512, AVX2 and portable kernels
    torch.testing.assert_close(nchw(x), out, rtol=1e-4, atol=1e-4)


def lp_denominator(x: torch.Tensor, p: float) -> torch.Tensor:
    """(mean |x|^p)^(1/p), or max |x| for p = inf, per channel over every dim but 1, on the UN-centred x."""
    xt = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return xt.abs().amax(1) if math.isinf(p) else xt.abs().pow(p).mean(1).pow(1 / p)


@pytest.mark.parametrize("shape", [(8, 5, 4, 4), (32, 10)], ids=["conv", "dln"])
@pytest.mark.parametrize("p", [1.0, 2.0, math.inf], ids=["l1", "l2", "linf"])
@torch.no_grad()
def test_lp_norm_matches_definition(p, shape):
    """Section 3.3: subtract the batch mean, divide by the average l_p norm of the un-centred input."""
    torch.manual_seed(0)
    x = torch.randn(shape) * 2 + 1.5  # non-zero mean, so centred and un-centred denominators differ
    layer = make_norm({1.0: "l1", 2.0: "l2", math.inf: "linf"}[p], shape[1], dims=len(shape) - 2 or 1)
    assert isinstance(layer, LpNorm) and layer.p == p
    y = layer(x)
    view = (1, -1) + (1,) * (x.dim() - 2)
    dims = [0] + list(range(2, x.dim()))
    mean, scale = x.double().mean(dim=dims), lp_denominator(x, p)
    expected = (x.double() - mean.view(view)) / (scale.view(view) + layer.eps)
    # float32 against a float64 reference on O(1) values, statistics over <= 128 values: measured <= 5e-7
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5)
    assert y.double().mean(dim=dims).abs().max() < 1e-5
    centred = lp_denominator(x - x.mean(dim=dims, keepdim=True), p)
    assert (scale - centred).abs().min() > 1e-3  # the test can tell the two readings apart
    torch.testing.assert_close(layer.running_mean.double(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.running_scale.double(), 0.9 + 0.1 * scale, rtol=1e-5, atol=1e-6)
    layer.eval()
    x2 = torch.randn(shape)
    expected = (x2.double() - layer.running_mean.double().view(view)) / (layer.running_scale.double().view(view)
                                                                         + layer.eps)
    torch.testing.assert_close(layer(x2).double(), expected, rtol=1e-5, atol=1e-5)


def test_lp_norm_affine_is_learnable():
    """gamma and beta scale and shift the normalised output and receive gradients."""
    layer = LpNorm(3, 2.0)
    with torch.no_grad():
        layer.weight.fill_(2.0), layer.bias.fill_(0.5)
    x = torch.randn(16, 3)
    y = layer(x)
    layer.weight.data.fill_(1.0), layer.bias.data.fill_(0.0)
    torch.testing.assert_close(y, 2 * layer(x) + 0.5)
    y.sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad is not None


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch", list(VGG_CONFIGS))
def test_vgg_builds_every_arch_and_norm(arch, norm):
    """Every arch x norm gives [N, 10] logits; layers() lists each conv (with its norm, then ReLU) and the head."""
    torch.manual_seed(0)
    model = VGG(arch, norm=norm, width=1 / 16).train()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    layers = model.layers()
    assert len(layers) == CONVS[arch] + 1 and layers[-1] is model.classifier
    kind = {"none": nn.Identity, "batch": nn.BatchNorm2d, "noisy": NoisyBatchNorm, "l1": LpNorm, "l2": LpNorm,
            "linf": LpNorm}[norm]
    for i, layer in enumerate(layers[:-1], 1):
        assert isinstance(layer.linear, nn.Conv2d) and isinstance(layer.norm, kind)
        assert isinstance(layer.act, nn.ReLU)  # normalisation sits before the non-linearity
        if norm == "noisy":
            assert layer.norm.layer_index == i  # distinct noise per layer


def test_vgg16_layers_and_width():
    """VGG-16 has 13 convs + classifier; the width multiplier scales every channel count."""
    full, quarter = VGG("vgg16", width=1.0), VGG("vgg16", width=0.25)
    assert len(full.layers()) == 14
    want = [v for v in VGG_CONFIGS["vgg16"] if v != "M"]
    assert [l.linear.out_channels for l in full.conv_layers()] == want
    assert [l.linear.out_channels for l in quarter.conv_layers()] == [v // 4 for v in want]
    assert full.classifier.in_features == 512 and quarter.classifier.in_features == 128
    assert build_model("vgg16", "batch", 0.25).classifier.in_features == 128


def test_vgg_glorot_init():
    """Glorot uniform: weights in +-sqrt(6/(fan_in+fan_out)), variance 2/(fan_in+fan_out); zero biases."""
    torch.manual_seed(0)
    model = VGG("vgg16", norm="batch", width=0.25)
    for m in [l.linear for l in model.conv_layers()] + [model.classifier]:
        w = m.weight.detach()
        rf = w[0, 0].numel() if w.dim() == 4 else 1
        fan_in, fan_out = w.shape[1] * rf, w.shape[0] * rf
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert w.abs().max() <= bound + 1e-7
        assert w.abs().max() > 0.9 * bound
        assert abs(w.var().item() / (2 / (fan_in + fan_out)) - 1) < 0.1 + 3 / math.sqrt(w.numel())
        assert torch.all(m.bias == 0)


@pytest.mark.parametrize("arch", list(RESNET_BLOCKS))
def test_resnet_structure(arch):
    """ResNet-(6n+2): 6n+1 convs (the stem, two per block) plus the classifier; channels 16-32-64 times the width;
    the shortcuts carry no parameters, so every weight belongs to a paper layer."""
    model = ResNet(arch, norm="batch", width=0.5)
    n = RESNET_BLOCKS[arch]
    layers = model.layers()
    assert len(layers) == 6 * n + 2 and layers[-1] is model.classifier
    assert [l.linear.out_channels for l in model.conv_layers()] == [8] + [8] * 2 * n + [16] * 2 * n + [32] * 2 * n
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for l in layers for p in l.parameters())
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_resnet_residual_init_defaults_to_identity_blocks_without_normalisation():
    """Without normalisation each block's second conv starts at zero (the block is the identity plus its bias);
    with BatchNorm the weights are Glorot like every other layer; either can be asked for."""
    torch.manual_seed(0)
    plain, bn = ResNet(norm="none"), ResNet(norm="batch")
    assert plain.residual_init == "zero" and bn.residual_init == "glorot"
    assert all((b.second.linear.weight == 0).all() for b in plain.blocks)
    assert all((b.second.linear.weight != 0).any() for b in bn.blocks)
    x = torch.randn(4, 16, 32, 32)
    block = plain.blocks[0].eval()
    nn.init.zeros_(block.second.linear.bias)
    assert torch.equal(block(x), torch.relu(x))
    assert ResNet(norm="none", residual_init="glorot").residual_init == "glorot"
    with pytest.raises(ValueError, match="zero or glorot"):
        ResNet(residual_init="fixup")


def test_resnet_downsampling_shortcut_pads_channels():
    """A block that halves the resolution and doubles the channels passes every second pixel through, padded with
    zero channels on both sides (He et al.'s option A)."""
    model = ResNet(norm="none", width=1.0).eval()
    block = model.blocks[3]  # the first block of the second stage: 16 -> 32 channels, stride 2
    assert block.stride == 2 and block.pad == 16
    nn.init.zeros_(block.second.linear.bias)
    x = torch.randn(2, 16, 8, 8)
    out = block(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], torch.relu(x[:, :, ::2, ::2])) and (out[:, :8] == 0).all()


def test_unknown_arch_or_norm_lists_choices():
    with pytest.raises(ValueError, match="vgg11, vgg13, vgg16, vgg19"):
        VGG("vgg17")
    with pytest.raises(ValueError, match="none, batch, noisy, l1, l2, linf"):
        VGG("vgg16", norm="group")
    with pytest.raises(ValueError, match="none, batch, noisy, l1, l2, linf"):
        make_norm("group", 4)
    with pytest.raises(ValueError, match="none, batch, l1, l2, linf"):
        DeepLinearNet(norm="noisy")
    with pytest.raises(ValueError, match="resnet20, resnet32, resnet56"):
        ResNet("resnet18")
    with pytest.raises(ValueError, match="vgg11, vgg13, vgg16, vgg19, resnet20, resnet32, resnet56, dln"):
        build_model("alexnet", "none")


@pytest.mark.parametrize("norm", ["none", "batch", "l2"])
def test_dln_structure(norm):
    """25 square 10x10 maps without bias, the norm after every map but the last, Glorot weights."""
    model = build_model("dln", norm)
    layers = model.layers()
    assert len(layers) == 25
    for i, layer in enumerate(layers):
        assert isinstance(layer.linear, nn.Linear) and layer.linear.weight.shape == (10, 10)
        assert layer.linear.bias is None
        want = nn.Identity if norm == "none" or i == 24 else (nn.BatchNorm1d if norm == "batch" else LpNorm)
        assert isinstance(layer.norm, want) and isinstance(layer.act, nn.Identity)
        assert layer.linear.weight.abs().max() <= math.sqrt(6 / 20) + 1e-7
    assert model(torch.randn(7, 10)).shape == (7, 10)


def test_dln_is_linear_without_norm():
    """Without normalisation the network is the product W_25 ... W_1 applied to x."""
    model = DeepLinearNet(norm="none").double()
    prod = torch.eye(10, dtype=torch.float64)
    for layer in model.layers():
        prod = layer.linear.weight.detach() @ prod
    x = torch.randn(5, 10, dtype=torch.float64)
    torch.testing.assert_close(model(x), x @ prod.T)


def test_dln_data():
    """Deterministic per seed; x ~ N(0, I); targets are an exact linear map y = A x of the inputs."""
    x, y = dln_data(1000, 10, seed=0)
    x2, y2 = dln_data(1000, 10, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == y.shape == (1000, 10)
    assert not torch.equal(dln_data(1000, 10, seed=1)[0], x)
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
    a = torch.linalg.lstsq(x.double(), y.double()).solution.T  # y = x A^T
    torch.testing.assert_close(x.double() @ a.T, y.double(), rtol=1e-5, atol=1e-4)
    assert abs(a.mean()) < 0.4 and 0.6 < a.std() < 1.4  # A has i.i.d. N(0, 1) entries (100 of them)
