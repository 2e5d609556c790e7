"""Verdicts across seeds: agreement counts and the table, on hand-made claims (no training)."""

from bnrepro import report
from bnrepro.claims import NOT_REPRODUCED, PARTLY, REPRODUCED, Claim


def claim(key: str, verdict: str, ours: str) -> Claim:
    return Claim(key, f"the paper's {key} | with a bar", ours, verdict, "rule")


def by_seed() -> dict:
    """Section 2.1 with two claims at three seeds: the first agrees everywhere, the second does not."""
    per_seed = [[claim("a", REPRODUCED, "a0"), claim("b", REPRODUCED, "b0")],
                [claim("a", REPRODUCED, "a1"), claim("b", PARTLY, "b1")],
                [claim("a", REPRODUCED, "a2"), claim("b", NOT_REPRODUCED, "b2")]]
    return {"2.1": ("cpu", per_seed)}


def test_seed_agreement_counts_claims_with_one_verdict_at_every_seed():
    assert report.seed_agreement(by_seed()) == (1, 2)
    one_seed = {"2.1": ("cpu", [by_seed()["2.1"][1][0]])}
    assert report.seed_agreement(one_seed) == (2, 2)


def test_seeds_markdown_has_a_column_per_seed_and_every_seed_s_numbers():
    text = report.seeds_markdown(by_seed(), [0, 1, 2])
    lines = text.splitlines()
    assert lines[0].count("| Seed ") == 3 and lines[1].count("|---") == 6
    row_a, row_b = lines[2], lines[3]
    assert row_a.endswith("| **reproduced** at every seed |") and "\\| with a bar" in row_a
    assert row_b.startswith("| [2.1](/chapters/sec21_performance.ipynb) `cpu` |")
    assert "| yes | partly | no | **mixed**: 1 yes, 1 partly, 1 no |" in row_b
    for s in range(3):
        assert f"  - seed {s}: b{s} (" in text
    assert "### Section 2.1 at the `cpu` budget" in text


def test_budgets_markdown_has_a_column_per_budget_and_a_row_per_setting():
    from bnrepro.budgets import BUDGET_ORDER, BUDGETS

    lines = report.budgets_markdown().splitlines()
    assert lines[0] == "| setting | " + " | ".join(f"`{b}`" for b in BUDGET_ORDER) + " |"
    row = next(line for line in lines if line.startswith("| `vgg_steps` |"))
    assert row == "| `vgg_steps` | " + " | ".join(str(BUDGETS[b].vgg_steps) for b in BUDGET_ORDER) + " |"
    for b in BUDGET_ORDER:
        assert f"- `{b}`: {BUDGETS[b].description}" in lines
