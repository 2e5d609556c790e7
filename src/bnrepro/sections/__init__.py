"""The paper's sections, one module each, in book order: each module holds the runs its chapter needs, its
figures and its claim rules, and exports one `SECTION`.

Adding a chapter's section is one line: its module's name in `MODULES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

from ..claims import Claim, Section
from ..experiments import get_run, resolve_budget
from ..records import RunRecord

#: The section modules in book order.
MODULES = ("sec21", "sec22", "sec31", "sec4")

#: Paper section number ("2.1") -> its `Section`.
SECTIONS: dict[str, Section] = {s.number: s for s in (import_module(f"{__name__}.{m}").SECTION for m in MODULES)}


def load_section(number: str, budget: str, seeds: Sequence[int], data: str | None = None,
                 device: str | None = None) -> tuple[str, dict[tuple[str, str, float], RunRecord]]:
    """The budget used ("best" resolved) and the section's runs of the first seed, keyed (model, norm, lr);
    runs that are not recorded are trained and stored."""
    section = SECTIONS[number]
    used = resolve_budget(budget, list(section.specs), list(seeds))
    return used, section_runs(section, used, seeds[0], data, device)


def section_runs(section: Section, budget: str, seed: int, data: str | None = None,
                 device: str | None = None) -> dict[tuple[str, str, float], RunRecord]:
    """The section's runs at one budget and seed, keyed (model, norm, lr); missing runs are trained and stored."""
    return {(s.model, s.norm, s.lr): get_run(s, budget, seed, data=data, device=device) for s in section.specs}


def claims_by_seed(budget: str, seeds: Sequence[int], data: str | None = None,
                   device: str | None = None) -> dict[str, tuple[str, list[list[Claim]]]]:
    """For every section: the budget used (the most faithful with every seed recorded, for "best") and its claims
    computed separately on each seed's runs (missing runs are trained and stored)."""
    out = {}
    for number, section in SECTIONS.items():
        used = resolve_budget(budget, list(section.specs), list(seeds))
        out[number] = used, [section.claims(section_runs(section, used, seed, data, device)) for seed in seeds]
    return out
