"""bnrepro.probes.bn_theory: its numbers against bnrepro.theory's closed form on tiny networks (float64), its wiring
into training (RunConfig.bn_theory), and that it never changes a run (bit for bit)."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import capture_models
from bnrepro import theory as T
from bnrepro.data import load_cifar10
from bnrepro.specs import Spec, make_config
from bnrepro.models import build_model, dln_data
from bnrepro.probes import ProbeContext
from bnrepro.probes.bn_theory import (LAYER_QUANTITIES, PERCENTILES, UNIT_QUANTITIES, batchnorm_layers,
                                      measure_bn_theory)
from bnrepro.train import RunConfig, dln_loss, train

SYNTH = "synthetic:256"


@pytest.fixture(scope="module")
def data():
    return load_cifar10(SYNTH)


def tiny_context(model: str) -> ProbeContext:
    """A float64 BatchNorm network away from its initialisation (random gamma and beta, so gamma != sigma), and a
    batch."""
    torch.manual_seed(0)
    net = build_model(model, "batch", 1 / 16).double().train()
    with torch.no_grad():
        for norm in batchnorm_layers(net):
            norm.weight.uniform_(0.2, 3.0)
            norm.bias.normal_()
    if model == "dln":
        x, y = (t.double() for t in dln_data(64))
        return ProbeContext(net, x, y, dln_loss, 1e-6, 0)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    return ProbeContext(net, x, torch.randint(0, 10, (8,)), F.cross_entropy, 0.1, 0)


def closed_form(ctx: ProbeContext):
    """Per BN layer, the unit quantities computed independently: y and g_hat = dL/dz from a plain forward and
    backward on a copy of the network, dL/dy from theory's closed form (eq. 47)."""
    net = copy.deepcopy(ctx.model)
    norms = batchnorm_layers(net)
    seen = {}
    for k, m in enumerate(norms):
        m.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, (inp[0], out)))
    loss = ctx.loss_fn(net(ctx.inputs), ctx.targets)
    gs = torch.autograd.grad(loss, [seen[k][1] for k in range(len(norms))])
    out = []
    for k, m in enumerate(norms):
        y = seen[k][0].detach().movedim(1, -1).reshape(-1, seen[k][0].shape[1])
        g = gs[k].movedim(1, -1).reshape(-1, y.shape[1])
        gamma = m.weight.detach()
        dy = T.bn_input_grad(g, y, gamma, m.eps)
        _, sigma = T.batch_moments(y, m.eps)
        var = sigma ** 2 - m.eps
        y_hat = T.normalize(y)
        gg = g.pow(2).sum(0)
        out.append({"gamma_over_sigma": gamma.abs() / sigma, "removed_mean": g.sum(0) ** 2 / (len(y) * gg),
                    "removed_yhat": (g * y_hat).sum(0) ** 2 / (len(y) * gg), "gain": dy.pow(2).sum(0) / gg,
                    "eps_share": m.eps / (var + m.eps), "sign": (g * y_hat).sum(0),
                    "scale": gamma ** 2 / sigma ** 2, "gg": gg, "m": len(y), "y": y})
    return out


@pytest.mark.parametrize("model", ["dln", "vgg11"])
def test_probe_matches_the_closed_form(model):
    ctx = tiny_context(model)
    r = measure_bn_theory(ctx)
    ref = closed_form(ctx)
    assert r["unit"].shape == (len(ref), len(UNIT_QUANTITIES), len(PERCENTILES))
    assert r["layer"].shape == (len(ref), len(LAYER_QUANTITIES))
    for k, c in enumerate(ref):
        t = T.rounding_tolerance(c["m"], 1, c["y"])
        for i, name in enumerate(UNIT_QUANTITIES):
            want = np.nanpercentile(c[name].numpy(), PERCENTILES)  # units with g = 0 have no fractions
            size = float(c["scale"].max()) if name == "gain" else max(1.0, float(c[name].nan_to_num().abs().max()))
            assert np.abs(r["unit"][k, i].numpy() - want).max() <= t * size, (k, name)
        lay = dict(zip(LAYER_QUANTITIES, r["layer"][k].tolist()))
        total, live = float(c["gg"].sum()), c["gg"] > 0
        # units whose <g, y_hat> is within rounding of 0 may count either way
        unsure = int(((c["sign"].abs() <= t * (c["gg"] * c["m"]).sqrt())).sum())
        assert abs(lay["positive"] - float((c["sign"] > 0)[live].double().mean())) <= unsure / int(live.sum())
        assert lay["live"] == float(live.double().mean())
        assert abs(lay["removed_mean"] - float((c["removed_mean"] * c["gg"])[live].sum()) / total) <= t
        assert abs(lay["scale"] - float((c["scale"] * c["gg"]).sum()) / total) <= t * float(c["scale"].max())
        for name in ("gain", "gain_identity"):  # measured by autograd, and predicted by Theorem 4.1's identity
            want = float((c["gain"] * c["gg"])[live].sum()) / total
            assert abs(lay[name] - want) <= t * float(c["scale"].max()), (k, name)


def test_probe_refuses_networks_without_batchnorm():
    ctx = tiny_context("dln")
    for norm in ("none", "noisy"):
        net = build_model("vgg11" if norm == "noisy" else "dln", norm, 1 / 16)
        with pytest.raises(ValueError, match="norm='batch'"):
            measure_bn_theory(dataclasses.replace(ctx, model=net))
    with pytest.raises(ValueError, match="bn_theory probes BatchNorm"):
        RunConfig(norm="none", bn_theory=True)


def test_bn_theory_field_leaves_older_configs_their_identity():
    cfg = RunConfig()
    assert "bn_theory" not in cfg.to_dict() and RunConfig.from_dict(cfg.to_dict()) == cfg
    on = dataclasses.replace(cfg, bn_theory=True)
    assert on.to_dict()["bn_theory"] is True and RunConfig.from_dict(on.to_dict()) == on



@pytest.mark.parametrize("spec,short", [(Spec("vgg", "batch", 0.1), dict(steps=12, probe_every=5, eval_every=6)),
                                        (Spec("dln", "batch", 1e-6), dict(steps=40, probe_every=15))],
                         ids=["vgg", "dln"])
def test_probe_never_changes_the_run(spec, short, data, monkeypatch):
    """With and without the probe (every other probe on in both), the run ends bit for bit equal: the same arrays,
    final parameters and BatchNorm running statistics."""
    built = capture_models(monkeypatch)
    base = dataclasses.replace(make_config(spec, "smoke", data=SYNTH), **short)
    with_probe = train(dataclasses.replace(base, bn_theory=True), data)
    without = train(dataclasses.replace(base, bn_theory=False), data)
    n_layers = len(batchnorm_layers(built[0]))
    n_probes = len(base.probe_steps())
    assert with_probe["bn_theory_unit"].shape == (n_probes, n_layers, len(UNIT_QUANTITIES), len(PERCENTILES))
    assert with_probe["bn_theory_layer"].shape == (n_probes, n_layers, len(LAYER_QUANTITIES))
    assert np.isfinite(with_probe["bn_theory_layer"]).all()
    assert set(with_probe.arrays) - set(without.arrays) == {"bn_theory_unit", "bn_theory_layer"}
    for k in without.arrays:
        assert np.array_equal(with_probe[k], without[k], equal_nan=True), k
    s1, s2 = built[0].state_dict(), built[1].state_dict()
    assert list(s1) == list(s2) and any("running_mean" in k for k in s1)
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k


def test_bn_theory_cost():
    from bnrepro.costs import bn_theory_cost

    cost = bn_theory_cost("dln", "smoke", "cpu", repeats=1)
    assert cost["step_ms"] > 0 and cost["probe_ms"] > 0
    assert cost["probe_per_step"] == pytest.approx(cost["probe_ms"] / cost["step_ms"])
