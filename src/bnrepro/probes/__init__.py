"""Probes: measurements taken at chosen training steps that never change the run's trajectory.

Every probe receives a `ProbeContext` (the model at w_t in training mode, the step's batch B_t, the training
loss and learning rate) and evaluates the network *functionally* through `batch_loss`, which runs the model on
the batch with parameters the probe supplies and with throw-away copies of the buffers. BatchNorm therefore uses
the batch's statistics (as in training), its running statistics are never updated, no parameter is touched, and
no global random state is consumed (noisy BatchNorm's noise is keyed by the step, see `models.NoisyBatchNorm`;
a probe that needs random numbers draws them from a local generator keyed by the run's seed and the step, see
`ProbeContext.generator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from bnrepro.models import Layer, _mix


@dataclass
class ProbeContext:
    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lr: float
    step: int
    seed: int = 0  # the run's seed: keys the random numbers a probe draws (with the step)

    def params(self) -> dict[str, torch.Tensor]:
        """The trainable parameters w_t by name, detached (probes build their own autograd graphs)."""
        return {n: p.detach() for n, p in self.model.named_parameters()}

    def batch_loss(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """L(params; B_t) in training mode, with copies of the buffers so running statistics stay untouched."""
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        out = functional_call(self.model, {**params, **buffers}, (self.inputs,))
        return self.loss_fn(out, self.targets)

    def generator(self, *key: int) -> torch.Generator:
        """A CPU generator seeded from (run seed, step, *key): the probe's random numbers, the same on every device
        and whatever the global random state (draw on the CPU, then move the tensor to the model's device)."""
        return torch.Generator().manual_seed(_mix(self.seed, self.step, *key))

    def param_groups(self) -> list[list[str]]:
        """Parameter names of each paper layer (1-based layer i is entry i-1), from `model.layers()`."""
        owner = {id(p): n for n, p in self.model.named_parameters()}
        return [[owner[id(p)] for p in layer.parameters()] for layer in self.model.layers()]


def layer_weight(layer: nn.Module) -> nn.Parameter:
    """The conv/linear weight of one paper layer of `model.layers()` (a `models.Layer`, or a bare linear map such
    as VGG's classifier)."""
    return layer.linear.weight if isinstance(layer, Layer) else layer.weight
