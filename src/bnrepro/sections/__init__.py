"""The paper's sections, one module each, in book order: each module holds the runs its chapter needs, its
figures and its claim rules, and exports one `SECTION`.

Adding a chapter's section is one line: its module's name in `MODULES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

from .. import readings
from ..claims import Judged, Runs, Section
from ..experiments import get_run, make_config, resolve_budget
from ..records import RunStore

#: The section modules in book order.
MODULES = ("sec21", "sec22", "sec31", "sec33", "sec4", "beyond_lr", "beyond_more")

#: Paper section number ("2.1") -> its `Section`.
SECTIONS: dict[str, Section] = {s.number: s for s in (import_module(f"{__name__}.{m}").SECTION for m in MODULES)}


def load_section(number: str, budget: str, seeds: Sequence[int], data: str | None = None,
                 device: str | None = None, store: RunStore | None = None) -> Judged:
    """A section's runs and claims. The budget is `budget`, or for "best" the most faithful one with the first seed's
    runs recorded; the runs of the first seed (the figures') are trained and stored if missing, and the claims are
    judged on them and on every other seed of `seeds` whose runs the budget has recorded (at `smoke`, which trains in
    seconds, on every seed of `seeds`). Claims that rest on DLN runs are also judged under the DLN's other loss-scale
    reading and in float64 (`readings.variants`), as far as those runs are recorded (for the paper's sections:
    `Section.variants`)."""
    section = SECTIONS[number]
    store = store or RunStore()
    used = resolve_budget(budget, list(section.specs), list(seeds[:1]), store)
    judged = [seeds[0]] + [s for s in seeds[1:] if not section.first_seed_only and (used == "smoke" or all(
        store.path(make_config(spec, used, s).to_dict()).exists() for spec in section.specs))]
    result = Judged.judge(section, used, {s: section_runs(section, used, s, data, device, store) for s in judged})
    if section.variants:
        result.variants = readings.variants(result, data=data, device=device, store=store)
    return result


def section_runs(section: Section, budget: str, seed: int, data: str | None = None, device: str | None = None,
                 store: RunStore | None = None) -> Runs:
    """The section's runs at one budget and seed, keyed (model, norm, lr); missing runs are trained and stored."""
    return {(s.model, s.norm, s.lr): get_run(s, budget, seed, data=data, device=device, store=store)
            for s in section.specs}


def claims_by_seed(budget: str, seeds: Sequence[int], data: str | None = None,
                   device: str | None = None) -> dict[str, Judged]:
    """Every section's claims judged at each seed, as `load_section` judges them, keyed by section number."""
    return {number: load_section(number, budget, seeds, data, device) for number in SECTIONS}
