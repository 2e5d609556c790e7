"""Part IV, page 2, drawn from tiny real runs (VGG-11 at width 1/16 on synthetic data, ResNet-20 at width 1/8, a
10-step DLN): the random-direction bands against a direct computation from the records, the gradients at
initialisation against the runs' own step-0 gradients and against `init_gradient_norms`, and every rule measured."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnrepro.budgets import get_budget
from bnrepro.claims import VERDICTS
from bnrepro.data import load_cifar10
from bnrepro.specs import DLN_LOSS_SCALE, make_config
from bnrepro.probes.init_grads import init_gradient_norms
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID
from bnrepro.sections import beyond_more as bm
from bnrepro.train import RunConfig, train

DIRS = 2


@pytest.fixture(scope="module")
def data():
    return load_cifar10("synthetic:256")


@pytest.fixture(scope="module")
def runs(data):
    """The section's runs, keyed like `judge.load_section`'s. To keep the test short the VGG pair at LR 0.05 also
    stands for LR 0.2 and 0.1 (the measures read the LR only where the rules name it)."""
    out = {}
    for norm in ("none", "batch"):
        vgg = train(RunConfig(model="vgg11", norm=norm, lr=0.05, steps=15, batch_size=32, width=1 / 16,
                              data="synthetic:256", eval_every=1000, probe_every=5, landscape_grid=VGG_GRID,
                              random_dirs=DIRS, weight_norms=True), data)
        for lr in (0.05, 0.2, 0.1):
            out["vgg", norm, lr] = vgg
        out["dln", norm, 3e-7] = train(RunConfig(model="dln", norm=norm, lr=3e-7, steps=10, data="gaussian",
                                                 eval_every=1000, probe_every=5, landscape_grid=DLN_GRID,
                                                 random_dirs=DIRS, weight_norms=True,
                                                 dln_loss_scale=DLN_LOSS_SCALE))
        out[bm.RESNET, norm, 0.1] = train(RunConfig(model=bm.RESNET, norm=norm, lr=0.1, steps=10, batch_size=32,
                                                    width=1 / 8, data="synthetic:256", eval_every=1000,
                                                    probe_every=5, landscape_grid=VGG_GRID, random_dirs=DIRS,
                                                    weight_norms=True), data)
    return out


def test_the_sections_runs_carry_what_its_rules_read():
    for spec in bm.SECTION.specs:
        cfg = make_config(spec, "cpu")
        assert cfg.landscape_grid
        if spec in bm.RANDOM.values() or spec in bm.RESNETS.values():
            assert cfg.random_dirs > 0 and cfg.weight_norms, spec
    assert make_config(bm.RESNETS["batch"], "cpu").width == get_budget("cpu").resnet_width


def test_random_measures_are_the_bands_along_each_direction(runs):
    rec = runs["vgg", "batch", 0.05]
    m = bm.random_measures(rec)
    loss, rand = rec["landscape_loss"].astype(float), rec["landscape_rand_loss"].astype(float)
    assert rand.shape == (3, DIRS, len(VGG_GRID)) and m["rand"].shape == (3, DIRS)
    np.testing.assert_allclose(m["grad"], np.log10(loss.max(1) / loss.min(1)))
    for s in range(3):
        for d in range(DIRS):
            np.testing.assert_allclose(m["rand"][s, d], math.log10(rand[s, d].max() / rand[s, d].min()))
    np.testing.assert_allclose(m["rand_beta"], rec["landscape_rand_beta"].max(-1))
    summary = bm.random_summary(rec)
    assert summary["rand"] == pytest.approx(np.median(np.median(m["rand"], 1)))
    assert summary["grad"] == pytest.approx(np.median(m["grad"]))
    assert summary["rel"] == pytest.approx(summary["rand"] / summary["grad"])


def test_random_measures_need_the_directions():
    rec = train(RunConfig(model="dln", norm="none", lr=1e-6, steps=2, data="gaussian", probe_every=1,
                          landscape_grid=DLN_GRID))
    with pytest.raises(ValueError, match="random_dirs"):
        bm.random_summary(rec)


def test_recorded_step0_gradients_are_init_gradient_norms_first_batch(runs, data):
    """The rule reads each run's own step-0 gradient; `init_gradients` recomputes it (seed s, batch s)."""
    for key in (("vgg", "batch", 0.05), ("vgg", "none", 0.05), ("dln", "batch", 3e-7)):
        rec = runs[key]
        direct = init_gradient_norms(RunConfig.from_dict(rec.config), [0], 1, data)
        np.testing.assert_allclose(bm.step0_gradients(rec), direct[0, 0], rtol=1e-6)
    grads = bm.recorded_init_gradients({0: runs, 1: runs})
    assert grads["vgg", "batch"].shape == (2, 1, 9) and grads["dln", "none"].shape == (2, 1, 25)


def test_growth_and_excess():
    norms = np.array([8.0, 4.0, 2.0, 1.0, 5.0])  # layer 1 ... layer 4 (last normalised), output layer
    assert bm.growth(norms) == 8.0
    grads = {("m", "none"): np.ones((2, 3, 5)), ("m", "batch"): np.tile(norms, (2, 3, 1))}
    e = bm.excess(grads, "m")
    assert e["std"] == 1 and e["bn"] == 8 and e["excess"] == 8 and e["layers"] == 5
    assert e["rate"] == pytest.approx(2.0)  # 8 = 2^3 over the three layers from 1 to 4


def test_init_gradients_at_smoke_sizes(monkeypatch):
    """VGG-16 at the smoke width on synthetic data and the DLN, standard and BN: [seed, batch, layer], each entry
    the direct computation; batch s of seed s is the smoke run's own first gradient."""
    grads = bm.init_gradients("smoke", seeds=[0, 1], batches=2, data="synthetic")
    assert set(grads) == {(m, n) for m in ("vgg", "dln") for n in ("none", "batch")}
    assert grads["vgg", "batch"].shape == (2, 2, 14) and grads["dln", "batch"].shape == (2, 2, 25)
    assert all(np.isfinite(g).all() and (g > 0).all() for g in grads.values())
    cfg = make_config(bm.RANDOM["dln", "batch", 3e-7], "smoke", 0)
    np.testing.assert_array_equal(grads["dln", "batch"], init_gradient_norms(cfg, [0, 1], 2))
    smoke = load_cifar10("synthetic", train_limit=get_budget("smoke").train_limit,
                         test_limit=get_budget("smoke").test_limit)
    cfg = make_config(bm.RANDOM["vgg", "none", 0.05], "smoke", 1, "synthetic")
    np.testing.assert_allclose(grads["vgg", "none"][1], init_gradient_norms(cfg, [1], 2, smoke)[0], rtol=1e-6)
    monkeypatch.delenv("BNREPRO_DATA", raising=False)
    assert bm.data_available("smoke") and not bm.data_available("paper") and bm.data_available("paper", "x.tar.gz")


def test_each_rule_measures_its_own_runs_into_finite_numbers(runs):
    claims = [rule.apply({(s.model, s.norm, s.lr): runs[s.model, s.norm, s.lr] for s in rule.specs})
              for rule in bm.SECTION.rules]
    assert [c.key for c in claims] == ["iv2_random", "iv2_init", "iv2_resnet_loss", "iv2_resnet_predictive",
                                       "iv2_resnet_beta", "iv2_resnet_eos"]
    for c in claims:
        assert set(c.readings.values() or [c.verdict]) <= set(VERDICTS)
        assert c.values and all(math.isfinite(v) for v in c.values.values()), (c.key, c.values)
    random, init = claims[0].values, claims[1].values
    assert random["vgg_lo_ratio"] == pytest.approx(random["vgg_lo_std"] / random["vgg_lo_bn"])
    assert init["vgg_layers"] == 9 and init["dln_layers"] == 25
    grads = bm.recorded_init_gradients({0: runs})
    assert init["vgg_bn"] == pytest.approx(bm.growth(grads["vgg", "batch"])[0, 0])
    assert claims[-1].values["two_over_lr"] == 20


def test_figures_and_table(runs):
    fig = bm.random_figure(runs)
    assert len(fig.axes) == 8  # two rows, one column per network (VGG at two LRs, DLN, ResNet)
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert len(fig.axes[0].get_lines()) == 4  # gradient and random median, standard and BN
    plt.close(fig)
    fig = bm.init_figure(bm.recorded_init_gradients({0: runs}))
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    plt.close(fig)
    table = bm.resnet_table(runs)
    assert table.count("\n") == 10 and "final test accuracy" in table
    acc = bm.accuracies({0: runs, 1: runs})
    assert acc["batch_test_lo"] <= acc["batch_test_mean"] <= acc["batch_test_hi"] and acc["none_minutes"] > 0


def test_resnet_probe_cost_at_smoke():
    cost = bm.resnet_probe_cost("smoke", "cpu", repeats=1)
    assert cost["dirs"] == 3 and cost["step_ms"] > 0 and cost["random_ms"] > cost["probe_ms"] > 0
