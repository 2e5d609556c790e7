"""Every run the book needs, in one place: each section's runs (`Section.specs`) at a budget and seeds, every DLN run
of the paper's sections also under the other loss-scale readings and, at `readings.F64_SEEDS`, in float64, as the
configs `bnrepro.distributed` computes (`book_configs`); the budget a page shows (`resolve_budget`); and the
`book-runs` command that computes what a page lacks (`to_compute`, `book_runs_argv`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .budgets import BUDGET_ORDER, get_budget
from .readings import DTYPES, F64_SEEDS, READINGS, variant
from .records import RunStore
from .sections import SECTIONS
from .specs import Spec, make_config
from .train import RunConfig


def book_specs(budget: str, sections: Sequence[str] | None = None) -> tuple[Spec, ...]:
    """The runs of every section of the book (of the budget's sections, when it names some; of those also in
    `sections`, when given), in book order."""
    numbers = get_budget(budget).sections or tuple(SECTIONS)
    if sections is not None:
        unknown = [n for n in sections if n not in numbers]
        if unknown:
            raise ValueError(f"the {budget!r} budget has no section {', '.join(unknown)}: choose among "
                             f"{', '.join(numbers)}")
        numbers = tuple(n for n in numbers if n in sections)
    return tuple(dict.fromkeys(s for number in numbers for s in SECTIONS[number].specs))


def book_configs(budget: str, seeds: Sequence[int], data_kind: str,
                 sections: Sequence[str] | None = None) -> list[RunConfig]:
    """Every run the book needs at `budget` and `seeds` (seed-major), on data of `data_kind` ("cifar10" or
    "synthetic[:N]"): each section's runs at every seed (of `sections` only, when given), and each DLN run of the
    paper's sections also under the other loss-scale readings and, at `F64_SEEDS`, in float64 (what
    `judge.variants` judges)."""
    paper = {s for section in SECTIONS.values() if section.variants for s in section.specs}
    out = []
    for seed in seeds:
        for spec in book_specs(budget, sections):
            out.append(make_config(spec, budget, seed, data_kind))
            if spec.model == "dln" and spec in paper:
                out += [make_config(variant(spec, c, d), budget, seed, data_kind) for c in READINGS for d in DTYPES
                        if (c, d) != (spec.loss_scale, spec.dtype) and (d == "float32" or seed in F64_SEEDS)]
    return list(dict.fromkeys(out))


#: The precision evidence: the sections whose VGG runs are trained again at another arithmetic of the training step
#: (`RunConfig.precision`) and judged beside the strict float32 records, and the budget they are trained at (a CPU
#: records it in float32; a GPU window adds the other precision: `window --evidence-precision`).
EVIDENCE_SECTIONS, EVIDENCE_BUDGET = ("2.1", "3.1"), "cpu"


def evidence_configs(precision: str, seeds: Sequence[int], data_kind: str,
                     budget: str = EVIDENCE_BUDGET) -> list[RunConfig]:
    """The VGG runs of `EVIDENCE_SECTIONS` at `budget` and `seeds`, their training step in `precision`."""
    return [dataclasses.replace(c, precision=precision) for c in book_configs(budget, seeds, data_kind,
                                                                              EVIDENCE_SECTIONS) if not c.is_dln]


def resolve_budget(budget: str, specs: list[Spec], seeds: list[int], store: RunStore | None = None,
                   section: str | None = None) -> str:
    """`budget` itself, or for "best" the most faithful budget with every (spec, seed) recorded on CIFAR-10 (of the
    budgets that record `section`, when given: `cpu15k` records some sections only).

    With nothing recorded, "best" falls back to "smoke", whose runs compute in seconds.
    """
    if budget != "best":
        return get_budget(budget).name
    store = store or RunStore()
    for name in reversed(BUDGET_ORDER):
        sections = get_budget(name).sections
        if name == "smoke" or (section is not None and sections is not None and section not in sections):
            continue
        if all(store.path(make_config(s, name, seed).to_dict()).exists() for s in specs for seed in seeds):
            return name
    return "smoke"


def to_compute(budget: str, seeds: Sequence[int], sections: Sequence[str] | None = None,
               store: RunStore | None = None) -> tuple[str, list[str] | None] | None:
    """What `book-runs` computes for pages at `budget` and `seeds` that show `sections` (None: every section), as
    (its --budget, its --sections or None for all), or None when there is nothing to compute. At "best" a page shows
    the most faithful budget with its first seed's runs recorded, else `smoke`: the smoke runs of the sections that
    no budget has recorded."""
    if budget != "best":
        return get_budget(budget).name, None if sections is None else list(sections)
    unrecorded = [n for n in (SECTIONS if sections is None else sections)
                  if resolve_budget("best", list(SECTIONS[n].specs), list(seeds[:1]), store, n) == "smoke"]
    return ("smoke", unrecorded) if unrecorded else None


def book_runs_argv(budget: str, seeds: Sequence[int], sections: Sequence[str] | None = None,
                   data: str | None = None) -> list[str]:
    """The arguments of `python -m bnrepro book-runs` that compute `sections`' runs (None: every section's) at
    `budget` and `seeds`, on the data at `data` (None: $BNREPRO_DATA or the budget's default)."""
    return (["book-runs", "--budget", budget, "--seeds", ",".join(map(str, seeds))]
            + (["--sections", ",".join(sections)] if sections else []) + (["--data", data] if data else []))
