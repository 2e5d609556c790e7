"""The scale appendix's measures on constructed points (no records needed): deciding numbers, directions, the table
and the sentences."""

import math

from bnrepro import scale
from bnrepro.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from bnrepro.sections import SECTIONS


def point(value: float, verdict: str = REPRODUCED) -> scale.Point:
    return scale.Point(value, {0: value}, [verdict])


def test_every_deciding_number_belongs_to_a_scale_section_rule_and_reading():
    rules = {r.key: r for n in scale.SCALE_SECTIONS for r in SECTIONS[n].rules}
    for key, numbers in scale.DECIDING.items():
        assert key in rules, key
        for d in numbers:
            assert d.reading in (rules[key].readings or {"": None}), (key, d.reading)
            assert d.sense in ("≈", ">=")


def test_towards_reads_a_bar_by_its_side_and_a_value_by_its_distance():
    bar = scale.Deciding("ratio", lambda v: v["r"], 2.0, "bar", sense=">=")
    assert scale.towards(0.8, 0.9, bar) == "below the paper's bar (2) at both"
    assert scale.towards(1.5, 2.5, bar) == "onto the paper's side of its bar (2)"
    assert scale.towards(2.5, 1.5, bar) == "off the paper's side of its bar (2)"
    value = scale.Deciding("ratio", lambda v: v["r"], 1.0, "paper")
    assert scale.towards(4.0, 2.0, value) == "towards the paper's 1"
    assert scale.towards(2.0, 4.0, value) == "away from the paper's 1"
    assert scale.towards(2.0, 0.5, value) == "about as far from the paper's 1 as before"  # a factor 2 either way
    assert scale.distance(10.0, value) == 1.0
    points = scale.Deciding("points", lambda v: v["p"], 3.0, "paper", log=False)
    assert scale.distance(-1.0, points) == 4.0
    assert "not finite" in scale.towards(math.inf, 1.0, value)


def test_point_verdict_is_the_most_common_over_the_seeds():
    assert scale.Point(1.0, {}, [PARTLY, REPRODUCED, PARTLY]).verdict == PARTLY
    assert scale.Point(1.0, {}, [NOT_REPRODUCED, REPRODUCED]).verdict == REPRODUCED  # a tie: VERDICTS order


def test_sentence_table_and_changes_from_points():
    rows = {("c31_loss", 1): {"cpu_w16": point(0.7, NOT_REPRODUCED), "cpu": point(0.8, NOT_REPRODUCED),
                              "cpu_w4": point(2.2, PARTLY), "cpu15k": point(0.9, NOT_REPRODUCED)}}
    text = scale.sentence("c31_loss", 1, rows["c31_loss", 1])
    assert text.startswith("`c31_loss` (by decades), VGG standard ÷ BN loss-band height in decades: at widths 1/16, "
                           "1/8 and 1/4 it is 0.7, 0.8 and 2.2: from 1/16 to 1/4, onto the paper's side of its bar (2);")
    turning = dict(rows["c31_loss", 1], cpu=point(0.5, NOT_REPRODUCED))
    assert "0.7, 0.5 and 2.2: from 1/16 to 1/4, onto the paper's side of its bar (2) (not steadily: it turns between)" \
        in scale.sentence("c31_loss", 1, turning)
    assert "from 2,500 to 15,000 steps it moves from 0.8 to 0.9, below the paper's bar (2) at both" in text
    assert ("its verdict changes with scale: not reproduced at 1/16, 2,500 steps, not reproduced at 1/8, 2,500 steps, "
            "partly reproduced at 1/4") in text
    assert scale.changes_with_scale(rows) == {"c31_loss": "by decades: no at 1/16, 2,500 steps, no at 1/8, 2,500 "
                                                          "steps, partly at 1/4, 2,500 steps, no at 1/8, 15,000 steps"}
    lines = scale.table_markdown(rows).splitlines()
    assert lines[0] == ("| Rule | Deciding number | Paper | 1/16, 2,500 steps | 1/8, 2,500 steps | 1/4, 2,500 steps "
                        "| 1/8, 15,000 steps |")
    assert lines[2].endswith("| 2 | 0.7 (no) | 0.8 (no) | 2.2 (partly) | 0.9 (no) |")
    one = scale.sentence("c22_larger", 0, {"cpu": point(1.2)})
    assert "recorded at one budget only" in one and one.endswith("same wherever recorded (reproduced).")
    assert sum(ax.get_visible() for ax in scale.scale_figure(rows).axes) == 1


def test_scale_cells_say_whether_a_verdict_changes_across_the_rungs_that_judged_it():
    rows = {("c31_loss", 0): {"cpu": point(2.5, PARTLY), "cpu15k": point(7.0, PARTLY)},
            ("c31_loss", 1): {"cpu": point(0.8, NOT_REPRODUCED), "cpu15k": point(2.1, PARTLY)},
            ("c31_eos", 0): {"cpu": point(0.7)}, ("c31_beta", 0): {"cpu": point(1.5), "cpu_w4": point(1.4)}}
    cells = scale.scale_cells(rows)
    assert cells["c31_loss"] == "**changes**: by decades: no at 1/8, 2,500 steps, partly at 1/8, 15,000 steps"
    assert cells["c31_eos"] == "judged at 1/8, 2,500 steps only"
    assert cells["c31_beta"] == "same at 1/8, 2,500 steps; 1/4, 2,500 steps"
