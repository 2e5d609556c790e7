"""bnrepro.sections.sec4: the numerical checks' summary, known-answer tests of the probe summaries on constructed
records, the gamma/beta-gradient identity behind the trained-network claims, and the claims' measurements and
verdicts on constructed records; that every figure draws (no training). The rules' judgements at and around each
threshold are in test_rules.py, with every section's."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bnrepro import theory as T
from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED
from bnrepro.models import build_model, dln_data
from bnrepro.probes.bn_theory import LAYER_QUANTITIES, PERCENTILES, UNIT_QUANTITIES, _layer_quantities
from bnrepro.records import RunRecord
from bnrepro.sections import sec4

matplotlib.use("Agg")


def test_driver():
    assert sec4.driver(0.8) == "the γ/σ scale" and sec4.driver(0.2) == "the projections"
    assert sec4.driver(0.5) == "both"


def fake_record(steps: int = 4, layers: int = 3, scale: float = 0.01, removed=(0.1, 0.2), sigma=(1.0, 3.0),
                last_positive: float = 0.1, model: str = "dln") -> RunRecord:
    """A BN record whose probe arrays hold known values: gain = scale x (1 - removed_mean - removed_yhat); every
    unit's sigma_j rising linearly from sigma[0] to sigma[1] over the probed steps; a share 0.5 of units with
    <g, y_hat> > 0 in every layer but the last, whose share is 0.8 at the first step and `last_positive` after."""
    unit = np.zeros((steps, layers, len(UNIT_QUANTITIES), len(PERCENTILES)), np.float32)
    unit[:, :, UNIT_QUANTITIES.index("gamma_over_sigma")] = np.sqrt(scale)
    var = np.linspace(*sigma, steps) ** 2
    unit[:, :, UNIT_QUANTITIES.index("eps_share")] = (sec4.EPS / (var + sec4.EPS))[:, None, None]
    kept = 1 - sum(removed)
    values = {"scale": scale, "removed_mean": removed[0], "removed_yhat": removed[1], "positive": 0.5,
              "gain": scale * kept, "gain_identity": scale * kept, "live": 1.0}
    layer = np.array([values[q] for q in LAYER_QUANTITIES], np.float32) * np.ones((steps, layers, 1), np.float32)
    layer[:, -1, LAYER_QUANTITIES.index("positive")] = last_positive
    layer[0, -1, LAYER_QUANTITIES.index("positive")] = 0.8
    rng = np.random.default_rng(0)
    moments = np.stack([rng.normal(size=(20, 3)), np.linspace(1, 9, 20)[:, None] * np.ones((20, 3))], -1)
    return RunRecord({"model": model, "norm": "batch", "lr": 1e-6, "steps": 20}, {}, "completed", {},
                     {"probe_step": np.arange(steps) * 5, "bn_theory_unit": unit, "bn_theory_layer": layer,
                      "act_pre_moments": moments.astype(np.float32), "act_layers": np.array([1, 11, 24])})


def without_probe(rec: RunRecord) -> RunRecord:
    arrays = {k: v for k, v in rec.arrays.items() if not k.startswith("bn_theory")}
    return RunRecord(rec.config, rec.env, rec.status, rec.summary, arrays)


def test_mechanism_splits_the_gain_into_scale_and_projections():
    m = sec4.mechanism(fake_record(scale=0.01, removed=(0.1, 0.2)))
    assert m["scale"] == pytest.approx(0.01, rel=1e-6) and m["kept"] == pytest.approx(0.7, rel=1e-6)
    assert m["gain"] == pytest.approx(0.007, rel=1e-6) and m["positive"] == pytest.approx(0.5)
    assert m["scale_share"] == pytest.approx(2 / (2 - np.log10(0.7)), rel=1e-5)
    assert m["identity_dev"] == 0 and m["probed"] == 4


def test_a_record_without_the_probe_has_no_numbers_but_says_so():
    rec = without_probe(fake_record())
    assert sec4.probed_steps(rec) == 0
    for summary in (sec4.mechanism(rec), sec4.sigma_summary(rec), sec4.last_layer_sign(rec)):
        assert summary["probed"] == 0 and all(np.isnan(v) for k, v in summary.items() if k not in ("probed", "layers"))
    with pytest.raises(ValueError, match="bn_theory=True"):
        sec4.probe_arrays(rec)


def test_layer_sigma_reads_every_unit_from_the_eps_share():
    sd = sec4.layer_sigma(fake_record(steps=5, sigma=(0.5, 4.0)))
    assert sd.shape == (5, 3) and sd[:, 0] == pytest.approx(np.linspace(0.5, 4.0, 5), rel=1e-5)
    s = sec4.sigma_summary(fake_record(steps=5, sigma=(0.5, 4.0)))
    assert s["largest"] == pytest.approx(4, rel=1e-5) and s["spread"] == pytest.approx(8, rel=1e-5)
    assert s["layers"] == 3 and s["probed"] == 5


def test_last_layer_sign_separates_the_last_layer():
    s = sec4.last_layer_sign(fake_record(steps=5, last_positive=0.2))
    assert s == pytest.approx({"last_positive": 0.2, "last_positive_init": 0.8, "other_positive": 0.5,
                               "probed": 5}, rel=1e-6)


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
    literal = [c["thm44"][f"printed_fail_{name}"] for name in sec4.LOSS_SCALES]
    assert all(0 <= f <= 1 for f in literal) and literal[0] == 1.0 and literal[-1] == 0.0
    # read as g_j, every term scales as the loss squared: the same draws fail at every loss scale
    assert len({c["thm44"][f"unsquared_fail_{name}"] for name in sec4.LOSS_SCALES}) == 1


def test_the_second_form_fails_exactly_where_vhv_exceeds_ghg():
    """Theorem 4.2's first form is an equality, so its second form fails exactly where v^T H v > g^T H g, which
    needs ||v|| > ||g|| or a larger Rayleigh quotient along v: every failing draw has one of the two."""
    c = sec4.statement_checks()["thm42"]
    assert 0 < c["second_fail"] < 1 and c["second_fail_explained"] == 1.0
    assert 0 <= c["second_fail_v_above"] <= 1 and 0 <= c["second_fail_v_within"] < 1


def test_theorem_4_4_unsquared_reading_keeps_the_other_misprints():
    gen = torch.Generator().manual_seed(3)
    y, loss, gamma, beta = T.random_problem(16, gen)
    s = T.theorem_4_4(loss, y, gamma, lam=0.7, beta=beta)
    _, _, _, g = T.layer_grads(loss, y, gamma, beta)
    k = gamma ** 2 / T.batch_moments(y)[1] ** 2
    gj = 0.7 ** 2 * g.dot(g)
    expected = k * (gj - 16 * g.mean() ** 2 - 0.7 ** 2 * g.dot(T.normalize(y)) ** 2)
    assert float(s["unsquared"]) == pytest.approx(float(expected), rel=1e-12)


# --- the gamma/beta-gradient identity -------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["dln", "vgg11"])
def test_g_hat_y_hat_is_the_gamma_gradient_and_g_hat_sum_the_beta_gradient(model):
    """<g_hat, y_hat> = dL/dgamma and <1, g_hat> = dL/dbeta on every unit of a whole network, to rounding."""
    r = sec4.affine_identity(model)
    assert r["worst_tol"] <= 1 and r["units"] == (240 if model == "dln" else 172)


def test_the_probe_removes_the_squared_gamma_and_beta_gradients():
    """The probe's removed fractions are (dL/dbeta)^2 / (m ||g||^2) and (dL/dgamma)^2 (1 + eps/var) / (m ||g||^2),
    and its sign share is the share of units with dL/dgamma > 0: training drives all three towards zero / 1/2."""
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm1d(4).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 1.0, 1.5, -2.0]))
    y = (torch.randn(32, 4, dtype=torch.float64) * torch.tensor([1e-3, 0.5, 1.0, 3.0])).requires_grad_()
    z = norm(y)
    a = torch.randn(32, 4, dtype=torch.float64)
    loss = (a * z).sum() + 0.5 * z.pow(2).sum() ** 1.5
    dy, g = torch.autograd.grad(loss, (y, z), retain_graph=True)
    loss.backward()
    unit, layer = _layer_quantities(y.detach(), dy, g, norm.weight.detach(), norm.eps)
    m, gg, var = 32, g.pow(2).sum(0), y.detach().var(0, unbiased=False)
    assert unit[1] * m * gg == pytest.approx(norm.bias.grad ** 2, rel=1e-10)
    assert unit[2] * m * gg == pytest.approx(norm.weight.grad ** 2 * (1 + norm.eps / var), rel=1e-10)
    assert float(layer[LAYER_QUANTITIES.index("positive")]) == float((norm.weight.grad > 0).double().mean())


def test_in_the_dlns_last_bn_layer_the_negative_gradient_points_at_each_units_minimum():
    """The DLN's last BN layer feeds one linear map and the summed squared error: a quadratic in each unit's output
    z_j with Hessian 2 ||w_j||^2 I, so -g_hat_j = 2 ||w_j||^2 (z_j* - z_j), z_j* the unit's least-squares output."""
    torch.manual_seed(1)
    net = build_model("dln", "batch").double().train()
    x, t = (v.double() for v in dln_data(64, seed=1))
    blocks = list(net.blocks)
    h = x
    for block in blocks[:-1]:
        h = block(h)
    z = h.detach().requires_grad_()
    loss = (blocks[-1](z) - t).pow(2).sum()
    g = torch.autograd.grad(loss, z)[0]
    w = blocks[-1].linear.weight.detach()
    for j in range(z.shape[1]):
        rest = z.detach() @ w.T - torch.outer(z.detach()[:, j], w[:, j])
        z_star = (t - rest) @ w[:, j] / w[:, j].dot(w[:, j])
        assert -g[:, j] == pytest.approx(2 * w[:, j].dot(w[:, j]) * (z_star - z.detach()[:, j]), rel=1e-9, abs=1e-9)


def test_the_sign_condition_fails_with_the_negative_gradient_pointing_straight_at_the_minimum():
    """A counterexample to "<g_hat, y_hat> > 0 as long as -g_hat points towards the minimum": L(z) = ||z - z*||^2/2
    with z* = beta + 2 gamma y_hat, the unit's best scale twice its gamma. -g_hat = z* - z points exactly at the
    minimum, and <g_hat, y_hat> = -gamma m < 0."""
    gen = torch.Generator().manual_seed(0)
    y = T.random_batch(16, gen)
    gamma, beta = 1.5, 0.3
    z_star = beta + 2 * gamma * T.normalize(y)
    _, z, _, g = T.layer_grads(lambda z: 0.5 * (z - z_star).pow(2).sum(), y, gamma, beta)
    assert -g == pytest.approx(z_star - z.detach(), abs=1e-12)
    assert float(g.dot(T.normalize(y))) == pytest.approx(-gamma * 16, rel=1e-12)


# --- the claims on constructed records ------------------------------------------------------------------------------

def section_runs(vgg: RunRecord) -> dict:
    dln = fake_record()
    return {("vgg", "batch", 0.1): vgg, ("dln", "batch", 1e-6): dln, ("dln", "none", 1e-6): dln}


def test_claims_measure_constructed_records():
    """The run-based rules read the constructed records and get the verdicts their numbers must; the statement
    rules need no runs."""
    claims = {c.key: c for c in sec4.SECTION.claims(section_runs(fake_record(scale=4.0, removed=(0.01, 0.01),
                                                                             sigma=(1.0, 1.5), model="vgg")))}
    assert claims["c4_sigma_dln"].values["largest"] == pytest.approx(3, rel=1e-5)
    assert claims["c4_sigma_dln"].verdict == REPRODUCED and claims["c4_sigma_vgg"].verdict == NOT_REPRODUCED
    assert claims["c4_sign"].values["last_positive"] == pytest.approx(0.1) and claims["c4_sign"].verdict == \
        NOT_REPRODUCED
    red = claims["c4_reduction_vgg"]
    assert red.values["gain"] == pytest.approx(4 * 0.98, rel=1e-5) and red.verdict == NOT_REPRODUCED
    assert "mostly the γ/σ scale" in red.ours and claims["c4_reduction_dln"].verdict == REPRODUCED
    assert claims["c4_grad"].verdict == REPRODUCED and claims["c4_thm41"].verdict == PARTLY
    assert claims["c4_thm44"].verdict == PARTLY and set(claims["c4_thm44"].readings.values()) == {PARTLY}


def test_a_vgg_record_without_the_probe_makes_its_claims_not_testable():
    claims = {c.key: c for c in sec4.SECTION.claims(section_runs(without_probe(fake_record(model="vgg"))))}
    for key in ("c4_sigma_vgg", "c4_reduction_vgg"):
        assert claims[key].verdict == NOT_TESTABLE and "probed steps" in claims[key].untestable
        assert claims[key].ours.startswith("this record has no Section 4 probe")
    assert claims["c4_sigma_dln"].verdict == REPRODUCED


def test_network_check_reproduces_the_dln():
    assert sec4.network_check("dln") <= 1


def test_figures_draw():
    rec = fake_record()
    for fig, n_axes in ((sec4.theory_figure(rec), 7), (sec4.network_diagram(), 1), (sec4.step_size_figure(), 2),
                        (sec4.real_bn_figure(sec4.real_bn_curves((0.1, 10.0), m=8, draws=2)), 1)):
        assert len(fig.axes) == n_axes
        plt.close(fig)
    assert not plt.get_fignums()
