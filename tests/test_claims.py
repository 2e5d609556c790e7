"""The claim machinery: checks, grading and its "near" notes, verdicts across seeds, the claims table."""

import math

import pytest

from bnrepro.claims import (NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, Check, Claim, Judged, Rule, Section,
                            Variants, any_of, claims_markdown, combined_verdict, count_verdicts, grade, prose_list,
                            precision_detail, trains)
from bnrepro.specs import Spec


def test_check_compares_and_knows_when_it_is_near_its_threshold():
    assert Check("x", 2.0, ">=", 2).holds and not Check("x", 2.0, ">", 2).holds
    assert Check("x", 1.0, "<", 2).holds and not Check("x", math.nan, "<", 2).holds
    assert Check("x", 1.81, ">=", 2).near and Check("x", 2.19, ">=", 2).near
    assert not Check("x", 1.79, ">=", 2).near and not Check("x", math.inf, ">=", 2).near
    assert not Check("share", 1.0, ">=", 1, graded=False).near  # a count or share has no small change
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
    paper, ours, verdict, rule = lines[2].replace("\\|", "¦").split(" | ")
    assert paper == "| paper ¦ words" and ours == "ours"
    assert rule == "rule text<details><summary>why</summary>the reason</details> |"
    headline, seeds = verdict.split("<details>")
    assert headline == ('**<span class="verdict verdict-reproduced">reproduced</span> at 1, <span class="verdict '
                        'verdict-partly-reproduced">partly reproduced</span> at 1 of 2 seeds (near a threshold at '
                        'seed 1)**')
    assert seeds == ('<summary>each seed</summary>Seed 0: <span class="verdict verdict-reproduced">reproduced</span>'
                     '<br>Seed 1: <span class="verdict verdict-partly-reproduced">partly reproduced</span>; near its '
                     'threshold: x 1.01 against 1</details>')


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


def test_an_undefined_number_is_not_testable_never_not_reproduced():
    j = grade([Check("slope", math.nan, ">=", -1.25), Check("b", 3, ">", 1)], [[Check("b", 3, ">", 1)]])
    assert j.verdict == NOT_TESTABLE and j.reason == "slope is undefined (NaN)"
    assert grade([Check("steps", math.inf, "<", 10)]).verdict == NOT_REPRODUCED  # infinity is a number: never reached


def rule_with(needs=None, readings=None) -> Rule:
    judge = None if readings else (lambda v: grade([Check("x", v["x"], ">", 1)]))
    return Rule("k", "paper", "rule", "reason", (), lambda runs: dict(runs), judge, lambda v: f"x = {v['x']}",
                needs=needs, needs_reason="why" if needs else "", readings=readings)


def test_a_failed_precondition_gives_not_testable_with_the_reason_and_keeps_the_measurement():
    rule = rule_with(needs=lambda v: [trains("the standard network", v["acc"])])
    c = rule.apply({"x": 2.0, "acc": 17.1})
    assert c.verdict == NOT_TESTABLE and c.untestable.startswith("needs the standard network's final training")
    assert c.ours.startswith("x = 2.0 (not testable: needs")
    assert rule.apply({"x": 2.0, "acc": 60.0}).verdict == REPRODUCED
    # a precondition near its bar is noted: a small change would make the claim not testable
    assert rule.apply({"x": 2.0, "acc": 31.0}).near
    with pytest.raises(ValueError, match="needs_reason"):
        Rule("k", "p", "r", "why", (), dict, lambda v: grade([]), str, needs=lambda v: [])


def test_readings_are_judged_each_and_named_where_they_disagree():
    rule = rule_with(readings={"width": lambda v: grade([Check("w", v["w"], ">=", 2)], [[Check("w", v["w"], ">", 1)]]),
                               "decades": lambda v: grade([Check("d", v["d"], ">=", 2)])})
    c = rule.apply({"x": 0, "w": 2.5, "d": 0.8})
    assert c.readings == {"width": REPRODUCED, "decades": NOT_REPRODUCED}
    assert c.verdict == "reproduced by width, not reproduced by decades"
    assert rule.apply({"x": 0, "w": 2.5, "d": 3}).verdict == REPRODUCED
    assert combined_verdict({"a": PARTLY, "b": PARTLY}) == PARTLY
    with pytest.raises(ValueError, match="either judge or readings"):
        Rule("k", "p", "r", "why", (), dict, None, str)


def test_headline_counts_each_reading_where_they_disagree_and_not_testable_apart():
    c = [Claim("k", "p", "o", "reproduced by w, not reproduced by d", "r", readings={"w": REPRODUCED,
                                                                                  "d": NOT_REPRODUCED})] * 2
    j = Judged(Section("9.9", "t", "chapters/x", (), ()), "cpu", (0, 1), {}, {0: [c[0]], 1: [c[1]]})
    assert j.headline(0) == "by w: reproduced at 2 of 2 seeds; by d: not reproduced at 2 of 2 seeds"
    assert count_verdicts([NOT_TESTABLE, REPRODUCED, NOT_TESTABLE]) == "reproduced at 1, not testable at 2 of 3 seeds"


def test_headline_shows_both_dln_readings_where_they_differ():
    j = judged([PARTLY, PARTLY])
    j.variants["k"] = Variants(0.1, {(0.1, "float32", 0): PARTLY, (0.1, "float32", 1): PARTLY,
                                     (1.0, "float32", 0): REPRODUCED, (1.0, "float32", 1): PARTLY})
    assert j.headline(0) == ("loss scale 0.1: partly reproduced at 2 of 2 seeds; loss scale 1: reproduced at 1, "
                             "partly reproduced at 1 of 2 seeds")


def test_short_verdict_shortens_each_reading():
    from bnrepro.claims import short_verdict
    assert short_verdict(PARTLY) == "partly" and short_verdict(NOT_TESTABLE) == "not testable"
    assert short_verdict("reproduced by width, not reproduced by decades") == "yes by width, no by decades"


def test_precision_detail_says_whether_the_other_precision_changes_the_verdict():
    same = {("float32", 0): REPRODUCED, ("bf16", 0): REPRODUCED}
    assert precision_detail(same) == "Training precision: with the VGG trained in bf16: reproduced at seed 0, as in " \
                                     "strict float32"
    differs = {("float32", 0): REPRODUCED, ("float32", 1): PARTLY, ("bf16", 0): REPRODUCED, ("bf16", 1): NOT_REPRODUCED}
    assert precision_detail(differs) == ("Training precision: with the VGG trained in bf16: reproduced at seed 0, not "
                                         "reproduced at seed 1 (strict float32: reproduced at seed 0, partly "
                                         "reproduced at seed 1)")
