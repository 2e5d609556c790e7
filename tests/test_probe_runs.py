"""The curvature probe, the landscape probe's random directions and the weight norms inside training: what the
records hold, that a run with them ends bit for bit where a run without them does, that they survive a resume, and
that configs without them keep their identity (hash)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import capture_models
from bnrepro.data import load_cifar10
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID
from bnrepro.train import RunConfig, train

SYNTH = "synthetic:512"
NEW_PROBES = dict(curvature_iters=4, curvature_every=2, random_dirs=2, weight_norms=True)
NEW_FIELDS = ("curvature_iters", "curvature_tol", "curvature_every", "random_dirs", "weight_norms")


@pytest.fixture(scope="module")
def data():
    return load_cifar10(SYNTH)


def vgg(norm: str, **kw) -> RunConfig:
    """VGG-11 at width 1/16, batch 32, 12 steps, probes at steps 0, 5 and 10 (with the landscape grid)."""
    base = dict(model="vgg11", norm=norm, lr=0.1, steps=12, batch_size=32, width=1 / 16, data=SYNTH,
                eval_every=6, probe_every=5, landscape_grid=VGG_GRID, budget="test")
    return RunConfig(**{**base, **kw})


def dln(**kw) -> RunConfig:
    return RunConfig(**{**dict(model="dln", norm="batch", lr=1e-6, steps=40, probe_every=15, data="gaussian",
                               landscape_grid=DLN_GRID, budget="test"), **kw})



CASES = [vgg("none"), vgg("batch"), vgg("noisy"), dln(), dln(dtype="float64")]


@pytest.mark.parametrize("plain", CASES, ids=["vgg-none", "vgg-batch", "vgg-noisy", "dln-batch", "dln-float64"])
def test_new_probes_never_change_the_trajectory(plain, data, monkeypatch):
    built = capture_models(monkeypatch)
    probed = dataclasses.replace(plain, **NEW_PROBES)
    with_probes, without = train(probed, data), train(plain, data)
    for k in without.arrays:
        assert np.array_equal(with_probes[k], without[k], equal_nan=True), k
    s1, s2 = (m.state_dict() for m in built)
    assert list(s1) == list(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)

    n_probes, n_layers = len(probed.probe_steps()), len(built[0].layers())
    eigen_steps = np.arange(n_probes) % probed.curvature_every == 0
    assert np.isfinite(with_probes["curvature_sharpness"]).all()
    assert np.isfinite(with_probes["curvature_eigenvalue"][eigen_steps]).all()
    assert np.isnan(with_probes["curvature_eigenvalue"][~eigen_steps]).all()
    assert np.isnan(with_probes["curvature_change"][~eigen_steps]).all()
    assert (with_probes["curvature_iters"][eigen_steps] >= 1).all()
    assert (with_probes["curvature_iters"][~eigen_steps] == 0).all()
    for k in ("landscape_rand_loss", "landscape_rand_grad_diff", "landscape_rand_beta"):
        assert with_probes[k].shape == (n_probes, 2, len(probed.landscape_grid))
        assert np.isfinite(with_probes[k]).all()
    for k in ("weight_sq_norm", "weight_grad_sq_norm"):
        assert with_probes[k].shape == (probed.steps, n_layers) and with_probes[k].dtype == np.float64
        assert (with_probes[k] > 0).all()


def test_resume_keeps_the_new_probes(data, tmp_path):
    cfg = vgg("noisy", steps=14, **NEW_PROBES)
    full = train(cfg, data)
    ckpt = tmp_path / "run.pt"
    assert train(cfg, data, checkpoint=ckpt, checkpoint_every=4, stop_after=7) is None
    resumed = train(cfg, data, checkpoint=ckpt)
    assert sorted(full.arrays) == sorted(resumed.arrays)
    for k in full.arrays:
        assert np.array_equal(full[k], resumed[k], equal_nan=True), k


def test_new_fields_keep_older_configs_identity():
    """At their defaults the new fields stay out of the config dict (so older records keep their hash); set, they
    are in it and round-trip."""
    assert not set(NEW_FIELDS) & set(vgg("batch").to_dict())
    cfg = vgg("batch", curvature_tol=1e-4, **NEW_PROBES)
    d = cfg.to_dict()
    assert set(NEW_FIELDS) <= set(d)
    assert RunConfig.from_dict(json.loads(json.dumps(d))) == cfg


@pytest.mark.parametrize("bad,match", [
    (dict(curvature_iters=-1), "curvature_iters"),
    (dict(curvature_every=0), "curvature_every"),
    (dict(curvature_tol=-1.0), "curvature_tol"),
    (dict(curvature_tol=float("inf")), "curvature_tol"),
    (dict(random_dirs=-1), "random_dirs"),
    (dict(random_dirs=2, landscape_grid=()), "landscape_grid"),
])
def test_bad_config(bad, match):
    with pytest.raises(ValueError, match=match):
        vgg("batch", **bad)
