"""The paper's two networks with a pluggable normalisation layer.

* `VGG`: a VGG for 32x32 CIFAR-10 inputs (Simonyan & Zisserman configurations A/B/D/E) with one switch for what
  follows each convolution: nothing, BatchNorm, noisy BatchNorm (Algorithm 1) or an l_p normalisation (Section 3.3).
* `DeepLinearNet`: the 25-layer deep linear network of Appendix A.1 (square 10x10 maps, no bias), optionally with
  a normalisation after each map.
* `ResNet`: a CIFAR-10 ResNet (He et al. 2016, Sec. 4.2: ResNet-20/32/56) with the same normalisation switch, for
  the book's question whether the paper's results carry over to residual networks (Part IV).

Both number their layers from 1 as the paper does; `layers()` returns them in order so probes can address
"layer i" (a layer is one weight map plus the normalisation that follows it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

NORMS = ("none", "batch", "noisy", "l1", "l2", "linf")

VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _mix(*ints: int) -> int:
    """A 63-bit seed from a tuple of integers (splitmix-style), stable across platforms and Python runs."""
    h = 0x9E3779B97F4A7C15
    for v in ints:
        h = ((h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class NoisyBatchNorm(nn.BatchNorm2d):
    """BatchNorm followed by the paper's Algorithm 1 noise (training mode only).

    Per step t and channel j, (mu, sigma) ~ U(-n_mu, n_mu) x U(1, n_sigma); then per element (example, h, w):
    m ~ U(mu - r_mu, mu + r_mu), s ~ N(sigma, r_sigma) (r_sigma read as a standard deviation), a <- s*a + m.
    The noise is drawn after BN's affine map (the paper only says "batch-normalised activation").
    The draws are a pure function of (noise_seed, layer index, step), set by the trainer through `noise_step`,
    so a probe that re-runs the forward pass of step t sees exactly the training step's noise and consumes no
    global random state. At evaluation the noise is off (the paper does not say; noise is a training device).
    """

    def __init__(self, channels: int, *, n_mu: float = 0.5, n_sigma: float = 1.25, r_mu: float = 0.1,
                 r_sigma: float = 0.1, **kw):
        super().__init__(channels, **kw)
        self.n_mu, self.n_sigma, self.r_mu, self.r_sigma = n_mu, n_sigma, r_mu, r_sigma
        self.noise_seed = 0
        self.layer_index = 0
        self.noise_step = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = super().forward(x)
        if not self.training:
            return a
        g = torch.Generator(device=a.device).manual_seed(_mix(self.noise_seed, self.layer_index, self.noise_step))
        c = a.shape[1]
        shape = (1, c) + (1,) * (a.dim() - 2)
        mu = (torch.rand(c, generator=g, device=a.device) * 2 - 1) * self.n_mu
        sigma = 1 + torch.rand(c, generator=g, device=a.device) * (self.n_sigma - 1)
        m = mu.view(shape) + (torch.rand(a.shape, generator=g, device=a.device) * 2 - 1) * self.r_mu
        s = sigma.view(shape) + torch.randn(a.shape, generator=g, device=a.device) * self.r_sigma
        # The noise is drawn in logical (N, C, H, W) order whatever a's layout; the result keeps a's layout, since
        # a layout change here would cost the next convolution a conversion.
        layout = torch.channels_last if a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        return (s.to(a.dtype) * a + m.to(a.dtype)).contiguous(memory_format=layout)


class LpNorm(nn.Module):
    """Section 3.3's l_p normalisation: subtract the batch mean, divide by an average l_p norm, then affine.

    Per unit j, over the m values of the batch (and height and width for convolutions), with the defaults:
    y_hat = (y - mean(y)) / ((mean |y|^p)^(1/p) + eps) for finite p and (y - mean(y)) / (max |y| + eps) for
    p = inf, the denominator taken on the un-centred y (the paper normalises "before shifting the mean"), then
    gamma * y_hat + beta. The paper leaves every other detail open; each is a parameter (the defaults are the
    book's runs):

    * `average` (finite p): "power_mean", the root (mean |y|^p)^(1/p) (for p = 2 the root mean square: scaling y
      leaves y_hat unchanged, as with BatchNorm), or "mean_power", mean |y|^p without the 1/p power.
    * `inf_average` (p = inf only): "max", max |y| over batch and positions (the limit of the power mean as
      p -> inf), or "mean_of_max", the mean over the batch of each example's max |y| over height and width (for a
      vector input, mean |y|: the l1 denominator).
    * `eps_where`: "outside", added to the denominator, or "inside", added to the mean p-th power before the root,
      as BatchNorm adds it to the variance (the two differ only for "power_mean" with p > 1).
    * `centre_scale`: False takes the denominator on y, True on y - mean(y).
    * `track_running_stats`: True evaluates with running averages of the mean and the denominator (before eps),
      as BatchNorm does; False normalises with the batch's own statistics at evaluation too.
    """

    AVERAGES = ("power_mean", "mean_power")
    INF_AVERAGES = ("max", "mean_of_max")
    EPS_PLACES = ("outside", "inside")

    def __init__(self, channels: int, p: float, eps: float = 1e-5, momentum: float = 0.1, *,
                 average: str = "power_mean", inf_average: str = "max", eps_where: str = "outside",
                 centre_scale: bool = False, track_running_stats: bool = True):
        super().__init__()
        if not p >= 1:
            raise ValueError(f"p must be at least 1 (an l_p norm; math.inf for l-infinity), got {p!r}")
        for name, value, allowed in (("average", average, self.AVERAGES), ("inf_average", inf_average,
                                                                         self.INF_AVERAGES),
                                     ("eps_where", eps_where, self.EPS_PLACES)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")
        self.p, self.eps, self.momentum = p, eps, momentum
        self.average, self.inf_average, self.eps_where = average, inf_average, eps_where
        self.centre_scale, self.track_running_stats = centre_scale, track_running_stats
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels) if track_running_stats else None)
        self.register_buffer("running_scale", torch.ones(channels) if track_running_stats else None)

    def extra_repr(self) -> str:
        return (f"{self.weight.numel()}, p={self.p}, eps={self.eps}, momentum={self.momentum}, "
                f"average={self.average}, inf_average={self.inf_average}, eps_where={self.eps_where}, "
                f"centre_scale={self.centre_scale}, track_running_stats={self.track_running_stats}")

    def _denominator(self, x: torch.Tensor, mean: torch.Tensor, dims: list[int]) -> torch.Tensor:
        """Per unit: the average l_p norm of x (of x - mean with `centre_scale`), before eps."""
        ax = (x - mean.view((1, -1) + (1,) * (x.dim() - 2))).abs() if self.centre_scale else x.abs()
        if math.isinf(self.p):
            if self.inf_average == "max":
                return ax.amax(dim=dims)
            return (ax.amax(dim=dims[1:]) if len(dims) > 1 else ax).mean(dim=0)
        power = ax.pow(self.p).mean(dim=dims)
        return power.pow(1 / self.p) if self.average == "power_mean" else power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weight.dtype)  # under bf16 autocast the statistics are taken in float32, as BatchNorm's are
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training or not self.track_running_stats:
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dim=dims)
            scale = self._denominator(x, mean, dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.running_mean.lerp_(mean.detach(), self.momentum)
                    self.running_scale.lerp_(scale.detach(), self.momentum)
        else:
            mean, scale = self.running_mean, self.running_scale
        if self.eps_where == "inside" and self.average == "power_mean" and not math.isinf(self.p):
            y = (x - mean.view(shape)) / (scale.pow(self.p) + self.eps).pow(1 / self.p).view(shape)
        else:
            y = (x - mean.view(shape)) / (scale.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def make_norm(norm: str, channels: int, dims: int = 2) -> nn.Module:
    """The normalisation layer named `norm` for `channels` units (`dims`=2 for conv maps, 1 for vectors)."""
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if norm == "noisy":
        return NoisyBatchNorm(channels)  # BatchNorm2d's checks accept 4-D input only; noisy BN is for VGG
    if norm in ("l1", "l2", "linf"):
        return LpNorm(channels, {"l1": 1.0, "l2": 2.0, "linf": math.inf}[norm])
    raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


class Layer(nn.Module):
    """One paper "layer": a weight map followed by its normalisation (and the ReLU, for VGG)."""

    def __init__(self, linear: nn.Module, norm: nn.Module, act: nn.Module | None):
        super().__init__()
        self.linear, self.norm = linear, norm
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.linear(x)))


def glorot_init_(module: nn.Module) -> None:
    """Glorot (Xavier) uniform weights and zero biases for every conv and linear map, as the paper uses."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VGG(nn.Module):
    """VGG for 32x32 inputs: 3x3 convs (each followed by `norm` and ReLU), 2x2 max-pools, one linear classifier.

    `width` multiplies every channel count (1.0: 64..512). The classifier is a single linear map from the final
    1x1 feature map (the common CIFAR VGG head; the paper does not describe its head). Layer i (1-based) is the
    i-th convolution with its normalisation; the classifier is the last layer.
    """

    def __init__(self, arch: str = "vgg16", norm: str = "none", width: float = 1.0, num_classes: int = 10):
        super().__init__()
        if arch not in VGG_CONFIGS:
            raise ValueError(f"unknown VGG {arch!r}: choose one of {', '.join(VGG_CONFIGS)}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")
        self.arch, self.norm_kind, self.width = arch, norm, width
        blocks: list[nn.Module] = []
        cin = 3
        for v in VGG_CONFIGS[arch]:
            if v == "M":
                blocks.append(nn.MaxPool2d(2))
                continue
            cout = max(1, round(v * width))
            blocks.append(Layer(nn.Conv2d(cin, cout, 3, padding=1), make_norm(norm, cout), nn.ReLU()))
            cin = cout
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(cin, num_classes)
        glorot_init_(self)
        for i, layer in enumerate(self.conv_layers()):
            if isinstance(layer.norm, NoisyBatchNorm):
                layer.norm.layer_index = i + 1
        # Channels-last weights make every conv compute in NHWC (inputs may stay NCHW): a VGG-16 ×1/8 training step
        # ran 1.4x faster on one CPU thread, and NHWC is cuDNN's native layout for tensor-core convolutions.
        self.to(memory_format=torch.channels_last)

    def conv_layers(self) -> list[Layer]:
        return [m for m in self.features if isinstance(m, Layer)]

    def layers(self) -> list[nn.Module]:
        """The paper's layers in order: every conv (with its norm), then the classifier."""
        return [*self.conv_layers(), self.classifier]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


RESNET_BLOCKS = {"resnet20": 3, "resnet32": 5, "resnet56": 9}  # ResNet-(6n+2): n basic blocks per stage


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (each with its normalisation) plus the shortcut, then ReLU.

    The shortcut is He et al.'s option A: the identity, or where the block halves the resolution and doubles the
    channels, every second pixel padded with zero channels (no parameters, so every weight is a probed layer's).
    """

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.first = Layer(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), make_norm(norm, cout), nn.ReLU())
        self.second = Layer(nn.Conv2d(cout, cout, 3, padding=1), make_norm(norm, cout), None)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            short = nn.functional.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return torch.relu(self.second(self.first(x)) + short)


class ResNet(nn.Module):
    """A CIFAR-10 ResNet-(6n+2): a 3x3 conv, three stages of n basic blocks (16, 32, 64 channels times `width`;
    the second and third start at stride 2), global average pooling and a linear classifier.

    Weights are Glorot-uniform like the paper's networks. `residual_init="zero"` starts the second convolution of
    every block at zero, so that each block starts as the identity: without it and without normalisation the
    residual stream's variance doubles in every block (2^9 over ResNet-20's nine blocks) and the network does not
    train at LR 0.1. The default, None, is "zero" for `norm="none"` and "glorot" otherwise (the usual BN ResNet).
    Layer i (1-based) is the i-th convolution in forward order with its normalisation; the classifier is the last.
    """

    def __init__(self, arch: str = "resnet20", norm: str = "none", width: float = 1.0, num_classes: int = 10,
                 residual_init: str | None = None):
        super().__init__()
        if arch not in RESNET_BLOCKS:
            raise ValueError(f"unknown ResNet {arch!r}: choose one of {', '.join(RESNET_BLOCKS)}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")
        residual_init = residual_init or ("zero" if norm == "none" else "glorot")
        if residual_init not in ("zero", "glorot"):
            raise ValueError(f"unknown residual_init {residual_init!r}: choose zero or glorot")
        self.arch, self.norm_kind, self.width, self.residual_init = arch, norm, width, residual_init
        widths = [max(1, round(c * width)) for c in (16, 32, 64)]
        self.stem = Layer(nn.Conv2d(3, widths[0], 3, padding=1), make_norm(norm, widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths):
            for i in range(RESNET_BLOCKS[arch]):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1, norm))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(cin, num_classes)
        glorot_init_(self)
        if residual_init == "zero":
            for block in self.blocks:
                nn.init.zeros_(block.second.linear.weight)
        for i, layer in enumerate(self.conv_layers()):
            if isinstance(layer.norm, NoisyBatchNorm):
                layer.norm.layer_index = i + 1
        self.to(memory_format=torch.channels_last)

    def conv_layers(self) -> list[Layer]:
        return [self.stem, *(layer for block in self.blocks for layer in (block.first, block.second))]

    def layers(self) -> list[nn.Module]:
        """The layers in order: every conv (with its norm), then the classifier."""
        return [*self.conv_layers(), self.classifier]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(x.mean(dim=(2, 3)))


class DeepLinearNet(nn.Module):
    """k square linear maps without bias, x -> W_k ... W_1 x, optionally normalised after each map.

    The normalisation follows every map but the last (`norm_last=False`), so the output stays a free linear
    prediction of the regression target; the paper does not say where its BN layers sit in the DLN.
    """

    def __init__(self, depth: int = 25, dim: int = 10, norm: str = "none", norm_last: bool = False):
        super().__init__()
        if norm not in NORMS or norm == "noisy":
            raise ValueError(f"unknown DLN norm {norm!r}: choose one of none, batch, l1, l2, linf")
        self.norm_kind = norm
        self.blocks = nn.ModuleList(
            Layer(nn.Linear(dim, dim, bias=False),
                  make_norm(norm if (i < depth - 1 or norm_last) else "none", dim, dims=1), None)
            for i in range(depth)
        )
        glorot_init_(self)

    def layers(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def dln_data(n: int = 1000, dim: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The DLN's regression task: x ~ N(0, I) (n samples), A with i.i.d. N(0, 1) entries, targets y = A x."""
    g = torch.Generator().manual_seed(_mix(seed, 0xD1A))
    x = torch.randn(n, dim, generator=g)
    a = torch.randn(dim, dim, generator=g)
    return x, x @ a.T


def build_model(model: str, norm: str, width: float = 1.0) -> nn.Module:
    """`model` is a VGG name (vgg11/13/16/19), a ResNet name (resnet20/32/56) or "dln"."""
    if model == "dln":
        return DeepLinearNet(norm=norm)
    if model in RESNET_BLOCKS:
        return ResNet(model, norm=norm, width=width)
    if model in VGG_CONFIGS:
        return VGG(model, norm=norm, width=width)
    raise ValueError(f"unknown model {model!r}: choose one of {', '.join([*VGG_CONFIGS, *RESNET_BLOCKS, 'dln'])}")
