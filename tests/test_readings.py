"""The DLN's loss-scale readings: how a claim's verdicts under each reading and in float64 are compared and shown,
and the page's measures, on constructed numbers."""

import numpy as np
import pytest
import torch

from bnrepro import readings
from bnrepro.claims import FLIPS, NOT_REPRODUCED, PARTLY, REPRODUCED, Claim, Judged, Section, Variants
from bnrepro.specs import DLN_LOSS_SCALE, Spec
from bnrepro.models import build_model, dln_data
from bnrepro.records import RunRecord
from bnrepro.train import RunConfig, train

LEAD, OTHER = DLN_LOSS_SCALE, 1.0


def variants(lead32, other32=None, lead64=None, other64=None) -> Variants:
    """Verdicts per seed (lists) under the lead and the other reading, float32 and float64 (float64 at seed 0)."""
    v = {(LEAD, "float32", s): x for s, x in enumerate(lead32)}
    v |= {(OTHER, "float32", s): x for s, x in enumerate(other32 or [])}
    v |= {(LEAD, "float64", 0): lead64} if lead64 else {}
    v |= {(OTHER, "float64", 0): other64} if other64 else {}
    return Variants(LEAD, v)


def test_holds_under_both_compares_seed_by_seed():
    assert variants([REPRODUCED, PARTLY], [REPRODUCED, PARTLY]).holds_under_both() is True
    assert variants([REPRODUCED, PARTLY], [REPRODUCED, REPRODUCED]).holds_under_both() is False
    assert variants([REPRODUCED, PARTLY], [REPRODUCED]).holds_under_both() is True  # seed 1 not judged there
    assert variants([REPRODUCED]).holds_under_both() is None


def test_flips_with_rounding_per_reading():
    v = variants([PARTLY], [REPRODUCED], lead64=PARTLY, other64=PARTLY)
    assert v.flips_with_rounding() and v.flips_with_rounding(OTHER) and not v.flips_with_rounding(LEAD)
    assert v.flipping_scales() == [OTHER]
    assert not variants([PARTLY], [PARTLY], lead64=PARTLY).flips_with_rounding()
    assert "float rounding flips it under loss scale 1" in v.detail()


def judged_with(v: Variants) -> Judged:
    claims = [Claim("c_x", "paper", "ours", v.verdicts[LEAD, "float32", s], "rule") for s in (0, 1)]
    section = Section("9.9", "t", "chapters/x", (Spec("dln", "none", 1e-6, LEAD),), ())
    j = Judged(section, "cpu", (0, 1), {}, {0: claims[:1], 1: claims[1:]})
    j.variants = {"c_x": v}
    return j


def test_headline_shows_a_flip_of_the_lead_reading_only():
    assert judged_with(variants([REPRODUCED, REPRODUCED], lead64=PARTLY)).headline(0).startswith(FLIPS)
    other_flips = judged_with(variants([REPRODUCED, REPRODUCED], [REPRODUCED], other64=NOT_REPRODUCED))
    assert other_flips.headline(0) == "reproduced at 2 of 2 seeds"


def test_variants_table_lists_each_reading_and_the_flip():
    j = judged_with(variants([REPRODUCED, PARTLY], [REPRODUCED, PARTLY], other64=NOT_REPRODUCED))
    row = readings.variants_markdown([j]).splitlines()[2]
    assert "| yes, partly | yes, partly | yes |" in row and f"{FLIPS} under loss scale 1" in row


def test_figures_cited_are_read_from_the_claim():
    assert readings._figures("as Figure 3b shows, and Figures 10a and 10c") == "3b, 10a, 10c"
    assert readings._figures("no figure") == "—"


def record(status: str, final: float, lr: float = 1e-6, eig=(1e5, np.nan, 3e5)) -> RunRecord:
    loss = np.array([5.0, 4.0, 4.5, 3.0], np.float32)
    return RunRecord({"lr": lr, "seed": 0}, {}, status, {"final_train_loss": final, "diverged_at": 3},
                     {"train_loss": loss, "curvature_eigenvalue": np.asarray(eig, np.float32)})


def test_final_loss_decades_against_the_paper():
    d = readings.final_loss_decades({("none", 1e-6): [record("completed", 1.6e4), record("completed", 1.6e2),
                                                      record("completed", 1.6e3)]})
    assert abs(d["none", 1e-6]) < 1e-12  # the median over seeds is the paper's 1.6e3
    assert readings.final_loss_decades({("none", 1e-6): [record("diverged", 1.0)]})["none", 1e-6] == np.inf


def test_sharpness_against_two_over_lr():
    s = readings.sharpness_summary(record("completed", 1.0))
    assert np.isclose(s["init"], 1e5 * 1e-6 / 2) and np.isclose(s["max"], 3e5 * 1e-6 / 2)
    assert np.isclose(s["rises"], 1 / 3)  # one of three steps raised the loss



def test_rank_ladder_runs_from_the_targets_spread_to_zero():
    """Rank 0 leaves the whole (centred, for affine maps) target; rank 10 fits the exact linear targets A x."""
    _, t = (a.double() for a in dln_data(200, seed=0))
    for affine, spread in ((True, (t - t.mean(0)).pow(2).sum()), (False, t.pow(2).sum())):
        ladder = readings.rank_ladder(0, 200, affine)
        assert len(ladder) == 11 and ladder[0] == pytest.approx(float(spread), rel=1e-12)
        assert np.all(np.diff(ladder) < 0) and abs(ladder[-1]) < 1e-9 * ladder[0]


def test_rung_finds_the_nearest_rank_and_the_excess():
    ladder = np.array([100.0, 50.0, 10.0, 1e-12])
    assert readings.rung(10.5, ladder) == (2, pytest.approx(0.05))
    assert readings.rung(48.0, ladder) == (1, pytest.approx(-0.04))


def test_end_map_of_a_standard_dln_is_the_product_of_its_maps():
    torch.manual_seed(0)
    net = build_model("dln", "none").double()
    product = torch.eye(10, dtype=torch.float64)
    for layer in net.layers():
        product = layer.linear.weight.detach() @ product
    x = torch.randn(64, 10, dtype=torch.float64)
    assert readings.end_map(net, x) == pytest.approx(torch.linalg.svdvals(product).numpy(), rel=1e-8)


def test_rerun_follows_the_record():
    """A record's first steps trained again from its config give the record's losses."""
    cfg = RunConfig(model="dln", norm="batch", lr=1e-6, steps=4, batch_size=100, seed=0, budget="smoke",
                    data="gaussian", eval_every=4, probe_every=4, act_layers=(), ics_layers=(), landscape_grid=(),
                    dln_samples=100)
    r = readings.rerun(train(cfg), 4)
    assert r["deviation"] < 1e-6 and len(r["initial"]) == len(r["after"]) == 10
