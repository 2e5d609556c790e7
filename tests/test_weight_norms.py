"""Weight norms and scale invariance: the recorded ||W||^2 and ||grad_W L||^2 are the model's, and on a BatchNorm
network trained by plain SGD ||W_{t+1}||^2 = ||W_t||^2 + lr^2 ||grad_W L||^2 holds to float64 rounding for every
weight that feeds a BatchNorm layer, and fails for the others and without BatchNorm."""

import numpy as np
import pytest
import torch
from torch import nn

import bnrepro.train as train_mod
from bnrepro.data import load_cifar10
from bnrepro.probes import layer_weight
from bnrepro.probes.weight_norms import scale_invariance_residuals
from bnrepro.records import RunRecord
from bnrepro.train import RunConfig, dln_batch, initial_model, loss_function, train

EPS64 = np.finfo(np.float64).eps


@pytest.fixture(scope="module")
def data():
    return load_cifar10("synthetic:512")


def tiny(model: str, norm: str) -> RunConfig:
    """A float64 run with weight norms: the DLN (25 x 10, 20 steps) or VGG-11 at width 1/16 (10 steps)."""
    if model == "dln":
        return RunConfig(model="dln", norm=norm, lr=1e-6, steps=20, data="gaussian", dtype="float64",
                         weight_norms=True, budget="test")
    return RunConfig(model="vgg11", norm=norm, lr=0.1, steps=10, batch_size=32, width=1 / 16, data="synthetic:512",
                     eval_every=1000, dtype="float64", weight_norms=True, budget="test")


@pytest.fixture
def negligible_bn_eps(monkeypatch):
    """BatchNorm divides by sqrt(var + eps), which makes <grad_W L, W> of order eps / var instead of 0; PyTorch
    refuses eps = 0, so the identity tests use eps = 1e-30, far below float64 rounding of var."""
    real = train_mod.build_model

    def build(*args, **kw):
        model = real(*args, **kw)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eps = 1e-30
        return model

    monkeypatch.setattr(train_mod, "build_model", build)


def rounding_scale(rec: RunRecord) -> np.ndarray:
    """eps ||W_t|| / (lr ||g_t||): float64 rounding of the update and of the squared norms, a few units of
    eps ||W||^2 in the residual's numerator, relative to its denominator 2 lr ||W|| ||g||."""
    w, g = rec["weight_sq_norm"][:-1], rec["weight_grad_sq_norm"][:-1]
    return EPS64 * np.sqrt(w) / (rec.config["lr"] * np.sqrt(g))


@pytest.mark.parametrize("model,norm", [("dln", "batch"), ("vgg", "batch"), ("vgg", "noisy")])
def test_scale_invariance_holds_with_batchnorm(model, norm, data, negligible_bn_eps):
    """Every layer but the last feeds a normalisation: residual within 100 rounding units (measured: up to 6).
    The last layer (VGG's classifier, the DLN's last map) has none, and its residual -cos(W, g) is of order 0.1."""
    rec = train(tiny(model, norm), data)
    res = scale_invariance_residuals(rec)
    assert res.shape == (rec.config["steps"] - 1, rec["weight_sq_norm"].shape[1])
    assert (np.abs(res[:, :-1]) <= 100 * rounding_scale(rec)[:, :-1]).all(), np.abs(res[:, :-1]).max()
    assert (np.abs(res[:, -1]) > 1e-3).all()


@pytest.mark.parametrize("model", ["dln", "vgg"])
def test_scale_invariance_fails_without_batchnorm(model, data):
    rec = train(tiny(model, "none"), data)
    res = scale_invariance_residuals(rec)
    assert np.median(np.abs(res)) > 1e6 * rounding_scale(rec).max()
    assert np.median(np.abs(res)) > 1e-3


@pytest.mark.parametrize("model", ["dln", "vgg"])
def test_recorded_norms_are_the_models(model, data):
    """Rows 0 and 1 against a direct computation: the initial model's weights and their gradient on step 0's batch
    (module API, .backward), then the weights after one manual SGD step."""
    cfg = tiny(model, "batch")
    rec = train(cfg, data)
    torch.manual_seed(cfg.seed)
    net = initial_model(cfg, "cpu")
    x, y = dln_batch(cfg, cfg.seed, "cpu") if cfg.is_dln else data.batch(0, cfg.batch_size, cfg.seed)
    loss_function(cfg)(net(x.double()), y).backward()
    weights = [layer_weight(m) for m in net.layers()]
    np.testing.assert_allclose(rec["weight_sq_norm"][0], [float(w.detach().pow(2).sum()) for w in weights],
                               rtol=1e-13)
    np.testing.assert_allclose(rec["weight_grad_sq_norm"][0], [float(w.grad.pow(2).sum()) for w in weights],
                               rtol=1e-13)
    with torch.no_grad():
        stepped = [w - cfg.lr * w.grad for w in weights]
    np.testing.assert_allclose(rec["weight_sq_norm"][1], [float(w.pow(2).sum()) for w in stepped], rtol=1e-13)


def test_residuals_need_weight_norms():
    rec = RunRecord(RunConfig(model="dln", data="gaussian").to_dict(), {}, "completed", {},
                    {"train_loss": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="weight_norms=True"):
        scale_invariance_residuals(rec)
