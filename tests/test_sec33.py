"""Section 3.3: its measures on constructed records with known answers, each claim rule on constructed numbers for
every outcome, and its figures and claims drawn from tiny real runs (VGG-16 at width 1/16 on synthetic data, a
10-step DLN) under the five schemes."""

from statistics import NormalDist

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnrepro.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from bnrepro.data import load_cifar10
from bnrepro.experiments import VGG_ACT_LAYERS
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID
from bnrepro.records import RunRecord
from bnrepro.sections import sec33
from bnrepro.train import RunConfig, train

LEVELS = np.linspace(0, 1, 65)


def record(moments: np.ndarray, quantiles: np.ndarray | None = None, status: str = "completed") -> RunRecord:
    """A VGG record whose one followed unit (layer 11) has `moments` [step, (mean, var)] at every step and
    `quantiles` [probe step, 65] at steps 0, 10, 20, ... (both at the normalisation's output)."""
    steps = len(moments)
    act_step = np.arange(0, steps, 10)
    if quantiles is None:
        quantiles = np.zeros((len(act_step), len(LEVELS)))
    return RunRecord({"model": "vgg16", "norm": "l2", "steps": steps}, {}, status, {},
                     {"act_layers": np.array([11]), "act_units": np.array([0]), "act_step": act_step,
                      "act_moments": moments[:, None, :], "act_quantiles": quantiles[:, None, :]})


def test_shift_is_the_gaussian_w2_step_in_units_of_the_std():
    """Means moving 0.3 and stds 0.4 per step (from std 2): every step's shift is 0.5 / std_t; the median is
    taken over steps."""
    mean = 0.3 * np.arange(5)
    std = 2 + 0.4 * np.arange(5)
    rec = record(np.stack([mean, std ** 2], axis=1))
    want = np.median(0.5 / std[:-1])
    assert sec33.distribution_shift(rec) == pytest.approx(want, rel=1e-12)


def test_shift_stops_at_the_first_non_finite_step():
    """A diverged run's moments after its last finite step do not count."""
    m = np.array([[0.0, 1.0], [0.1, 1.0], [0.2, 1.0], [np.nan, np.nan], [50.0, 1.0]])
    assert sec33.distribution_shift(record(m)) == pytest.approx(0.1, rel=1e-9)


def test_distance_from_gaussian_is_zero_for_normal_quantiles_and_known_for_a_uniform():
    z = np.array([NormalDist(3.0, 2.0).inv_cdf(u) for u in LEVELS[1:-1]])
    q = np.concatenate([[-np.inf], z, [np.inf]])  # the extreme levels are left out
    moments = np.tile([3.0, 4.0], (30, 1))
    assert sec33.non_gaussianity(record(moments, np.tile(q, (3, 1)))) == pytest.approx(0.0, abs=1e-12)
    # U(-sqrt 3, sqrt 3) has mean 0 and std 1: its quantiles against the normal's, by the definition
    u = np.sqrt(3) * (2 * LEVELS - 1)
    want = np.mean(np.abs(u[1:-1] - [NormalDist().inv_cdf(v) for v in LEVELS[1:-1]]))
    got = sec33.non_gaussianity(record(np.tile([0.0, 1.0], (30, 1)), np.tile(u, (3, 1))))
    assert got == pytest.approx(want, rel=1e-12) and 0.05 < got < 0.5


ACC = {"none": 50.0, "batch": 76.0}
LOSS = {"none": 1.6e3, "l2": 5e2, "linf": 1e3}


@pytest.mark.parametrize("lp, want", [
    ({"l1": 74.0, "l2": 80.0, "linf": 71.0}, REPRODUCED),  # all within 5 points below BN (or above it)
    ({"l1": 74.0, "l2": 60.0, "linf": 30.0}, PARTLY),
    ({"l1": 70.9, "l2": 60.0, "linf": 10.0}, NOT_REPRODUCED),
])
def test_train_rule(lp, want):
    verdict, v = sec33.judge_train(ACC | lp)
    assert verdict == want and v["min_gap"] == pytest.approx(min(lp.values()) - 76.0)


@pytest.mark.parametrize("bn, l1, want", [(5e2, 1e2, REPRODUCED), (5e2, 2.5e2, REPRODUCED), (5e2, 3e2, PARTLY),
                                          (5e2, 5e2, NOT_REPRODUCED), (5e2, float("inf"), NOT_REPRODUCED)])
def test_dln_l1_rule_on_the_log_scale(bn, l1, want):
    verdict, v = sec33.judge_dln_l1(LOSS | {"batch": bn, "l1": l1})
    assert verdict == want
    if np.isfinite(l1):
        assert v["decades"] == pytest.approx(np.log10(bn / l1))


@pytest.mark.parametrize("lp, want", [
    ({"l1": 0.25, "l2": 0.3, "linf": 0.4}, REPRODUCED),  # every l_p at least 1.2x the standard's 0.2
    ({"l1": 0.25, "l2": 0.1, "linf": 0.001}, PARTLY),  # one above the standard's
    ({"l1": 0.05, "l2": 0.1, "linf": 0.02}, PARTLY),  # each above 1.2x BN's, none above the standard's
    ({"l1": 0.05, "l2": 0.1, "linf": 0.0101}, NOT_REPRODUCED),
])
def test_shift_rule(lp, want):
    assert sec33.judge_shift({"none": 0.2, "batch": 0.01} | lp)[0] == want


@pytest.mark.parametrize("lp, want", [({"l1": 0.2, "l2": 0.25, "linf": 0.3}, REPRODUCED),
                                      ({"l1": 0.2, "l2": 0.1, "linf": 0.1}, PARTLY),
                                      ({"l1": 0.19, "l2": 0.1, "linf": 0.05}, NOT_REPRODUCED)])
def test_gauss_rule(lp, want):
    assert sec33.judge_gauss({"none": 0.12, "batch": 0.1} | lp)[0] == want


def landscape_stats(vgg_band: float, vgg_gd: float, dln_band: float, dln_gd: float) -> dict:
    """Loss-band heights in decades and median gradient changes: VGG BN (0.29, 5), standard (0.20, 9); DLN BN
    (0.001, 1e3), standard (0.4, 1e9). Every l_p scheme gets the given values."""
    out = {("vgg", "batch"): (0.29, 5.0), ("vgg", "none"): (0.20, 9.0), ("dln", "batch"): (0.001, 1e3),
           ("dln", "none"): (0.4, 1e9)}
    out |= {(m, n): v for m, v in (("vgg", (vgg_band, vgg_gd)), ("dln", (dln_band, dln_gd))) for n in sec33.LP}
    return {k: {"band_decades": b, "gd_median": g} for k, (b, g) in out.items()}


@pytest.mark.parametrize("values, want, n_near", [
    ((0.27, 6.9, 0.1, 1e5), REPRODUCED, 12),
    # VGG's gradient change 7.1 is nearer the standard's 9 (linear axis); the DLN's 3e7 is nearer the standard's
    # 1e9 on its log axis, though nearer BN's 1e3 on a linear one
    ((0.25, 7.1, 0.1, 3e7), PARTLY, 6),
    ((0.24, 7.1, 0.1, 3e7), NOT_REPRODUCED, 3),
])
def test_smooth_rule_uses_the_papers_axes(values, want, n_near):
    assert sec33.judge_smooth(landscape_stats(*values)) == (want, {"n_near": n_near, "n_comparisons": 12})


@pytest.mark.parametrize("vgg, dln, want", [
    ((16.0, 12.0, 14.0), (1e6, 2.9e6, 0.35e6), REPRODUCED),  # BN: 13 (VGG), 1e6 (DLN)
    ((17.0, 12.0, 17.0), (1e6, 2.9e6, 0.3e6), PARTLY),  # 3 of the 6 within the tolerance
    ((17.0, 9.0, 17.0), (1e6, 2.9e6, 0.3e6), NOT_REPRODUCED),  # 2 of 6
])
def test_beta_rule(vgg, dln, want):
    beta = {("vgg", "batch"): 13.0, ("vgg", "none"): 19.0, ("dln", "batch"): 1e6, ("dln", "none"): 2e6}
    beta |= {("vgg", n): b for n, b in zip(sec33.LP, vgg)} | {("dln", n): b for n, b in zip(sec33.LP, dln)}
    assert sec33.judge_beta(beta)[0] == want


@pytest.fixture(scope="module")
def runs():
    """The section's ten runs at a tiny size, keyed like the chapter's: (model, norm, lr)."""
    data = load_cifar10("synthetic:256")
    out = {}
    for norm in sec33.SCHEMES:
        out["vgg", norm, 0.1] = train(RunConfig(model="vgg16", norm=norm, lr=0.1, steps=20, batch_size=32,
                                                width=1 / 16, data="synthetic:256", eval_every=1000, probe_every=5,
                                                act_layers=VGG_ACT_LAYERS, landscape_grid=VGG_GRID), data)
        out["dln", norm, 1e-6] = train(RunConfig(model="dln", norm=norm, lr=1e-6, steps=10, data="gaussian",
                                                 eval_every=1000, probe_every=5, landscape_grid=DLN_GRID))
    return out


def test_claims_have_valid_verdicts_and_finite_values(runs):
    claims = sec33.claims(runs)
    assert [c.key for c in claims] == ["c33_train", "c33_dln_l1", "c33_shift", "c33_gauss", "c33_smooth",
                                       "c33_beta"]
    for c in claims:
        assert c.verdict in (REPRODUCED, PARTLY, NOT_REPRODUCED) and c.rule and c.ours
        assert all(np.isfinite(v) for v in c.values.values()), c.key


def test_a_missing_scheme_is_named(runs):
    partial = {k: r for k, r in runs.items() if k[1] != "l2"}
    with pytest.raises(ValueError, match="needs vgg runs for l2"):
        sec33.claims(partial)


def test_figures(runs):
    fig = sec33.training_figure([runs, runs])
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]
    assert len(fig.axes[0].get_lines()) == len(sec33.SCHEMES)
    vgg = sec33.by_scheme(runs, "vgg")
    assert len(sec33.distributions_row(vgg).axes) == len(sec33.SCHEMES)
    assert isinstance(sec33.distributions_row_slider(vgg, n_frames=2), ipywidgets.VBox)
    table = sec33.distribution_table(vgg)
    assert table.count("\n") == 1 + len(sec33.SCHEMES) and "nan" not in table
    plt.close("all")


def test_seed_band_is_the_median_and_range_over_seeds_of_unequal_curves():
    x, mid, lo, hi = sec33._seed_band([np.array([1.0, 2, 3]), np.array([3.0, np.inf]), np.array([2.0, 4, 5])])
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_array_equal(mid, [2, 3, 4])
    np.testing.assert_array_equal(lo, [1, 2, 3])
    np.testing.assert_array_equal(hi, [3, 4, 5])
