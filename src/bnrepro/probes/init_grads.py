"""Gradients at initialisation (Part IV, "Beyond the paper"; Yang et al., ICLR 2019, "A Mean Field Theory of Batch
Normalization": at initialisation BatchNorm makes gradients grow exponentially with depth in deep fully connected
networks).

For a run's network at step 0 (initialised exactly as `train` initialises the run of that seed, BatchNorm in
training mode) the norm ||grad_W L||_2 of each paper layer's conv/linear weight, over several initialisation seeds
and several batches. Batch b is the step-0 batch of the run with seed b (VGG: its first training batch; the DLN:
its full Gaussian regression data set), so with seeds = range(n) the diagonal [s, s] holds each run's own first
gradients, and the batches are the same for every initialisation.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from bnrepro.probes import layer_weight
from bnrepro.train import RunConfig, dln_batch, initial_model, loss_function


def init_gradient_norms(cfg: RunConfig, seeds: Sequence[int], batches: int, data=None,
                        device: torch.device | str = "cpu") -> np.ndarray:
    """||grad_W L|| per paper layer at step 0 for the network, norm, width, dtype and loss of the `RunConfig`
    `cfg`: a float64 array [seed, batch, layer] (layer i+1 at index i). `data` is a `bnrepro.data.Cifar10` for VGG
    (ignored for the DLN). Consumes no global random state (the initialisation runs on a forked one)."""
    if not cfg.is_dln and data is None:
        raise ValueError("VGG's gradients need data: pass a bnrepro.data.Cifar10 (see bnrepro.data.load_cifar10)")
    if not (len(seeds) >= 1 and batches >= 1):
        raise ValueError(f"give at least one seed and one batch, got seeds={list(seeds)}, batches={batches}")
    device = torch.device(device)
    if cfg.is_dln:
        inputs = [dln_batch(cfg, b, device) for b in range(batches)]
    else:
        inputs = [data.batch(0, cfg.batch_size, b, augment=cfg.augment) for b in range(batches)]
        inputs = [(x.to(device=device, dtype=cfg.torch_dtype), y.to(device)) for x, y in inputs]
    loss_fn = loss_function(cfg)
    rows = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):  # models are initialised on the CPU, then moved
            torch.manual_seed(seed)
            model = initial_model(dataclasses.replace(cfg, seed=seed), device)
        weights = [layer_weight(layer) for layer in model.layers()]
        rows.append(torch.stack([
            torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64)
                         for g in torch.autograd.grad(loss_fn(model(x), y), weights)])
            for x, y in inputs]))
    return torch.stack(rows).cpu().numpy()
