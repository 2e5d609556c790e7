"""Gradients at initialisation: init_gradient_norms against a direct autograd computation (the model built as
training builds it, .backward on the batch), its batches and seeds, and the global random state left alone."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnrepro.data import load_cifar10
from bnrepro.models import NoisyBatchNorm, build_model, dln_data
from bnrepro.probes import layer_weight
from bnrepro.probes.init_grads import init_gradient_norms
from bnrepro.train import RunConfig, dln_loss, train


@pytest.fixture(scope="module")
def data():
    return load_cifar10("synthetic:512")


def direct(cfg: RunConfig, seed: int, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||grad_W L|| of each layer for the network of run `seed`, by .backward on the module."""
    torch.manual_seed(seed)
    model = build_model(cfg.model, cfg.norm, cfg.width).to(cfg.torch_dtype).train()
    for m in model.modules():
        if isinstance(m, NoisyBatchNorm):
            m.noise_seed = seed  # as training keys the noise (step 0)
    (dln_loss(model(x), y) if cfg.is_dln else F.cross_entropy(model(x), y)).backward()
    return [float(layer_weight(m).grad.double().norm()) for m in model.layers()]


@pytest.mark.parametrize("norm", ["none", "batch", "noisy"])
def test_vgg_matches_direct_autograd(norm, data):
    cfg = RunConfig(model="vgg11", norm=norm, width=1 / 16, batch_size=16, data="synthetic:512", dtype="float64")
    rng = torch.get_rng_state()
    out = init_gradient_norms(cfg, seeds=[3, 5], batches=2, data=data)
    assert torch.equal(torch.get_rng_state(), rng)
    assert out.shape == (2, 2, 9) and out.dtype == np.float64
    for i, seed in enumerate((3, 5)):
        for b in range(2):
            x, y = data.batch(0, cfg.batch_size, b)
            np.testing.assert_allclose(out[i, b], direct(cfg, seed, x.double(), y), rtol=1e-12)
    assert not np.array_equal(out[0, 0], out[0, 1]) and not np.array_equal(out[0, 0], out[1, 0])


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_dln_matches_direct_autograd_and_the_runs_first_step(norm):
    """Batch b is the data set of run seed b; entry [s, s] is run s's first gradient, as its record holds it."""
    cfg = RunConfig(model="dln", norm=norm, lr=1e-6, steps=1, data="gaussian", weight_norms=True)
    out = init_gradient_norms(cfg, seeds=[0, 1], batches=2)
    assert out.shape == (2, 2, 25)
    for s in (0, 1):
        for b in (0, 1):
            x, y = dln_data(cfg.dln_samples, seed=b)
            np.testing.assert_allclose(out[s, b], direct(cfg, s, x, y), rtol=1e-6)  # float32 network
    rec = train(cfg)
    np.testing.assert_array_equal(out[0, 0] ** 2, rec["weight_grad_sq_norm"][0])


def test_bad_input(data):
    with pytest.raises(ValueError, match="need data"):
        init_gradient_norms(RunConfig(model="vgg11"), seeds=[0], batches=1)
    with pytest.raises(ValueError, match="at least one seed"):
        init_gradient_norms(RunConfig(model="dln"), seeds=[], batches=1)
