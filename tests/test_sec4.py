"""bnrepro.sections.sec4: the numerical checks' summary, the probe summaries and the claims' measurements on
constructed records, and that every figure draws (no training). The rules' judgements are driven to each outcome in
test_rules.py, with every section's."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnrepro.claims import PARTLY, REPRODUCED
from bnrepro.probes.bn_theory import LAYER_QUANTITIES, PERCENTILES, UNIT_QUANTITIES
from bnrepro.records import RunRecord
from bnrepro.sections import sec4

matplotlib.use("Agg")


def test_driver():
    assert sec4.driver(0.8) == "the γ/σ scale" and sec4.driver(0.2) == "the projections"
    assert sec4.driver(0.5) == "both"


def fake_record(steps: int = 4, layers: int = 3, scale: float = 0.01, removed=(0.1, 0.2)) -> RunRecord:
    """A BN record whose probe arrays hold constants: gain = scale x (1 - removed_mean - removed_yhat)."""
    unit = np.zeros((steps, layers, len(UNIT_QUANTITIES), len(PERCENTILES)), np.float32)
    unit[:, :, UNIT_QUANTITIES.index("gamma_over_sigma")] = np.sqrt(scale)
    unit[:, :, UNIT_QUANTITIES.index("eps_share")] = 1e-6
    kept = 1 - sum(removed)
    values = {"scale": scale, "removed_mean": removed[0], "removed_yhat": removed[1], "positive": 0.8,
              "gain": scale * kept, "gain_identity": scale * kept, "live": 1.0}
    layer = np.array([values[q] for q in LAYER_QUANTITIES], np.float32) * np.ones((steps, layers, 1), np.float32)
    rng = np.random.default_rng(0)
    moments = np.stack([rng.normal(size=(20, 3)), np.linspace(1, 9, 20)[:, None] * np.ones((20, 3))], -1)
    return RunRecord({"model": "dln", "norm": "batch", "lr": 1e-6, "steps": 20}, {}, "completed", {},
                     {"probe_step": np.arange(steps) * 5, "bn_theory_unit": unit, "bn_theory_layer": layer,
                      "act_pre_moments": moments.astype(np.float32), "act_layers": np.array([1, 11, 24])})


def test_mechanism_splits_the_gain_into_scale_and_projections():
    m = sec4.mechanism(fake_record(scale=0.01, removed=(0.1, 0.2)))
    assert m["scale"] == pytest.approx(0.01, rel=1e-6) and m["kept"] == pytest.approx(0.7, rel=1e-6)
    assert m["gain"] == pytest.approx(0.007, rel=1e-6) and m["positive"] == pytest.approx(0.8)
    assert m["scale_share"] == pytest.approx(2 / (2 - np.log10(0.7)), rel=1e-5)
    assert m["identity_dev"] == 0 and m["eps_share"] == pytest.approx(1e-6)


def test_probe_arrays_name_the_fix_for_an_old_record():
    rec = fake_record()
    del rec.arrays["bn_theory_layer"]
    with pytest.raises(ValueError, match="bn_theory=True"):
        sec4.probe_arrays(rec)


def test_unit_std_reads_the_pre_normalisation_variance():
    sd = sec4.unit_std(fake_record())
    assert sd.shape == (20, 3) and sd[0, 0] == pytest.approx(1) and sd[-1, 0] == pytest.approx(3)


def test_statement_checks_summarise_the_draws():
    c = sec4.statement_checks(batches=(3, 16), draws=3)
    for key in ("grad", "thm41", "thm42", "thm44", "obs43"):
        assert c[key]["n"] == 6 and c[key]["max_tol"] <= 1, key
    assert 1 <= c["lemma45"]["n"] <= 6 and c["lemma45"]["max_tol"] <= 1
    assert c["thm41"]["printed_fail"] == 1.0 and c["thm41"]["printed_max_rel"] > 0
    assert 0 <= c["thm42"]["second_fail"] <= 1 and 0 <= c["thm42"]["positive"] <= 1
    fails = [c["thm44"][f"printed_fail_{name}"] for name in sec4.LOSS_SCALES]
    assert all(0 <= f <= 1 for f in fails) and fails[0] == 1.0 and fails[-1] == 0.0


def test_claims_measure_constructed_records():
    """The run-based rules read the constructed records; the statement rules need no runs."""
    dln = fake_record()
    runs = {("vgg", "batch", 0.1): fake_record(scale=4.0, removed=(0.01, 0.01)), ("dln", "batch", 1e-6): dln,
            ("dln", "none", 1e-6): dln}
    claims = {c.key: c for c in sec4.SECTION.claims(runs)}
    assert claims["c4_sigma"].values["largest"] == pytest.approx(3) and claims["c4_sigma"].verdict == REPRODUCED
    red = claims["c4_reduction"]
    assert red.values["vgg_gain"] == pytest.approx(4 * 0.98, rel=1e-5) and red.verdict == PARTLY
    assert "mostly the γ/σ scale" in red.ours and claims["c4_sign"].verdict == REPRODUCED
    assert claims["c4_grad"].verdict == REPRODUCED and claims["c4_thm41"].verdict == PARTLY


def test_network_check_reproduces_the_dln():
    assert sec4.network_check("dln") <= 1


def test_figures_draw():
    rec = fake_record()
    for fig, n_axes in ((sec4.theory_figure(rec), 7), (sec4.network_diagram(), 1), (sec4.step_size_figure(), 2),
                        (sec4.real_bn_figure(sec4.real_bn_curves((0.1, 10.0), m=8, draws=2)), 1)):
        assert len(fig.axes) == n_axes
        plt.close(fig)
    assert not plt.get_fignums()
