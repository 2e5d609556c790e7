"""The claim machinery: checks, grading and its "near" notes, verdicts across seeds, the claims table."""

import math

import pytest

from bnrepro.claims import (NOT_REPRODUCED, PARTLY, REPRODUCED, Check, Claim, Judged, Rule, Section, any_of,
                            claims_markdown, grade, prose_list)
from bnrepro.experiments import Spec


def test_check_compares_and_knows_when_it_is_near_its_threshold():
    assert Check("x", 2.0, ">=", 2).holds and not Check("x", 2.0, ">", 2).holds
    assert Check("x", 1.0, "<", 2).holds and not Check("x", math.nan, "<", 2).holds
    assert Check("x", 1.96, ">=", 2).near and Check("x", 2.09, ">=", 2).near
    assert not Check("x", 1.89, ">=", 2).near and not Check("x", math.inf, ">=", 2).near
    assert not Check("x", 0.01, ">", 0).near  # a zero threshold has no relative neighbourhood
    with pytest.raises(ValueError, match="<, <=, >, >="):
        Check("x", 1, "==", 1)


def test_grade_reaches_each_verdict():
    ok, fail = Check("a", 3, ">", 1), Check("b", 0, ">", 1)
    assert grade([ok, ok]).verdict == REPRODUCED
    assert grade([ok, fail]).verdict == NOT_REPRODUCED
    assert grade([ok, fail], [[ok]]).verdict == PARTLY
    assert grade([ok, fail], [[ok, fail], [fail]]).verdict == NOT_REPRODUCED


def test_any_of_makes_groups_of_k():
    a, b, c = (Check(n, 1, ">", 0) for n in "abc")
    assert any_of([a, b, c]) == [(a,), (b,), (c,)]
    assert any_of([a, b, c], 2) == [(a, b), (a, c), (b, c)]


def test_only_deciding_checks_near_their_threshold_are_reported():
    near_full = Check("ratio", 2.04, ">=", 2)
    assert grade([near_full]).near == ("ratio 2.04 against 2",)
    far = Check("far", 10, ">=", 2)
    assert grade([far]).near == ()
    # a near check whose flip would not change the verdict is not deciding: here another full check fails
    failing = Check("other", 0.1, ">=", 2)
    assert grade([near_full, failing]).near == ()
    # a near partial check decides between partly and not reproduced
    near_partly = Check("lower", 1.02, ">", 1)
    judged = grade([Check("ratio", 1.02, ">=", 2)], [[near_partly]])
    assert judged.verdict == PARTLY and judged.near == ("lower 1.02 against 1",)


def claim(verdict: str, near: tuple[str, ...] = ()) -> Claim:
    return Claim("k", "paper | words", "ours", verdict, "rule text", {"x": 1.0}, "the reason", near)


def judged(verdicts: list[str], near_at: int | None = None) -> Judged:
    seeds = tuple(range(len(verdicts)))
    claims = {s: [claim(v, ("x 1.01 against 1",) if s == near_at else ())] for s, v in zip(seeds, verdicts)}
    return Judged(Section("9.9", "t", "chapters/x", (), ()), "cpu", seeds, {}, claims)


def test_headline_is_the_verdict_across_seeds():
    assert judged([REPRODUCED] * 3).headline(0) == "reproduced at 3 of 3 seeds"
    assert judged([REPRODUCED]).headline(0) == "reproduced at 1 of 1 seed"
    assert (judged([NOT_REPRODUCED, REPRODUCED, REPRODUCED], near_at=2).headline(0)
            == "reproduced at 2, not reproduced at 1 of 3 seeds (near a threshold at seed 2)")
    assert judged([PARTLY] * 2).unanimous(0) and not judged([PARTLY, REPRODUCED]).unanimous(0)


def test_claims_markdown_shows_the_first_seed_s_numbers_the_verdict_across_seeds_and_the_reason():
    lines = claims_markdown(judged([REPRODUCED, PARTLY], near_at=1)).splitlines()
    assert lines[0] == "| The paper says | We measured (seed 0) | Verdict | Rule |"
    assert lines[2] == ("| paper \\| words | ours | **reproduced at 1, partly reproduced at 1 of 2 seeds (near a "
                        "threshold at seed 1)**<br>seed 1, near its threshold: x 1.01 against 1 | rule text. *Why:* "
                        "the reason |")


def test_rule_applies_measure_judge_and_describe():
    rule = Rule("k", "paper", "rule", "reason", (Spec("dln", "none", 1e-6),), lambda runs: {"x": runs["n"]},
                lambda v: grade([Check("x", v["x"], ">", 1)]), lambda v: f"x = {v['x']}")
    c = rule.apply({"n": 2.0})
    assert (c.key, c.ours, c.verdict, c.values, c.reason) == ("k", "x = 2.0", REPRODUCED, {"x": 2.0}, "reason")


def test_a_section_must_list_every_run_its_rules_read():
    rule = Rule("k", "p", "r", "why", (Spec("dln", "none", 1e-6),), dict, lambda v: grade([]), str)
    with pytest.raises(ValueError, match="does not list"):
        Section("9.9", "t", "chapters/x", (Spec("dln", "batch", 1e-6),), (rule,))


def test_prose_list_joins_one_two_and_more_items():
    assert prose_list(["0"]) == "0"
    assert prose_list(["0", "1"]) == "0 and 1"
    assert prose_list(["0", "1", "2"]) == "0, 1 and 2"
