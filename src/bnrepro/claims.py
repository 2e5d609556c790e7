"""What every section shares to judge the paper's claims: the `Claim` (paper's words, our numbers, verdict, rule),
the three verdicts, a `Section` (a chapter's runs and claim rules), and the tables and glue that show claims.

Each paper section lives in a module of its own (`bnrepro.sections`) holding its runs, figures and claim rules;
this module is what they have in common.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .experiments import Spec

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"


@dataclass
class Claim:
    key: str  # glue prefix, e.g. "c21_generalise"
    paper: str  # what the paper says, with its numbers
    ours: str  # what we measured, formatted
    verdict: str
    rule: str  # how the verdict was decided
    values: dict = field(default_factory=dict)  # numbers to glue as f"{key}_{name}"


@dataclass(frozen=True)
class Section:
    """A chapter's share of the book: the paper section it reproduces, the runs it needs and its claims."""

    number: str
    title: str
    doc: str  # the chapter's path in the book, for links from the replication-status table
    specs: tuple[Spec, ...]
    claims: Callable[[dict], list[Claim]]


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a literal | (as in |Δ mean|) would split the cell."""
    return text.replace("|", "\\|")


def claims_markdown(claims: Sequence[Claim]) -> str:
    """A Markdown table: the paper's claim, our numbers, the verdict and the rule that decided it."""
    rows = ["| The paper says | We measured | Verdict | Rule |", "|---|---|---|---|"]
    rows += [f"| {_cell(c.paper)} | {_cell(c.ours)} | **{c.verdict}** | {_cell(c.rule)} |" for c in claims]
    return "\n".join(rows)


def glue_claims(claims: Sequence[Claim]) -> None:
    """Glue each claim's verdict and values for the chapter's prose (`{glue:text}` keys `<key>_<name>`)."""
    from myst_nb import glue

    for c in claims:
        glue(f"{c.key}_verdict", c.verdict, display=False)
        for name, v in c.values.items():
            glue(f"{c.key}_{name}", v, display=False)
