"""Judging from the record store: a section's runs read back, its claims judged at each recorded seed and, where
they rest on DLN runs, under the other loss-scale reading and in float64.

Nothing here computes a run: one that is not recorded is a `MissingRuns` error naming it and the `python -m bnrepro
book-runs` command that computes it. `book/build.py` computes every missing run before it executes a page, and a
chapter does so first when its parameter `compute` is True (`cli.compute_missing`).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from .budgets import get_budget
from .claims import Judged, Runs, Variants
from .plan import book_runs_argv, resolve_budget
from .readings import DTYPES, F64_SEEDS, READINGS, uses_dln, variant
from .records import RunRecord, RunStore
from .sections import SECTIONS
from .specs import DLN_LOSS_SCALE, Spec, data_kind, data_location, make_config, run_name
from .train import RunConfig

#: What the missing-run error puts after --data when CIFAR-10 runs are missing and no data location is known.
DATA_PLACEHOLDER = "PATH/TO/CIFAR10"


class MissingRuns(ValueError):
    """Runs that judging reads and the record store lacks; the message names them and the command computing them."""

    def __init__(self, configs: Sequence[RunConfig], budget: str, seeds: Sequence[int],
                 sections: Sequence[str] | None = None, data: str | None = None):
        self.configs, self.budget, self.seeds, self.sections, self.data = list(configs), budget, list(seeds), \
            None if sections is None else list(sections), data
        needs_data = any(not c.is_dln for c in self.configs) and not data_location(data, get_budget(budget))
        argv = book_runs_argv(budget, seeds, sections, DATA_PLACEHOLDER if needs_data else data)
        self.command = "python -m bnrepro " + shlex.join(argv)
        n = len(self.configs)
        where = f"section{'s' if len(sections) > 1 else ''} {', '.join(sections)}" if sections else "the book"
        super().__init__(f"{n} run{'s' if n > 1 else ''} of {where} at the {budget} budget {'are' if n > 1 else 'is'} "
                         f"not recorded: {'; '.join(run_name(c) for c in self.configs)}. Compute "
                         f"{'them' if n > 1 else 'it'} with `{self.command}` (in a chapter: set `compute = True` in "
                         "its parameters cell)")

    @classmethod
    def joined(cls, errors: Sequence[MissingRuns]) -> MissingRuns:
        """One error for several sections' missing runs at one budget and seeds."""
        first = errors[0]
        return cls([c for e in errors for c in e.configs], first.budget, first.seeds,
                   [n for e in errors for n in e.sections or ()], first.data)


def config(spec: Spec, budget: str, seed: int = 0, data: str | None = None) -> RunConfig:
    """The config of a book run as stored: its data kind from `data`, else $BNREPRO_DATA or the budget's default
    (CIFAR-10 runs load without the data at hand)."""
    root = data_location(data, get_budget(budget))
    return make_config(spec, budget, seed, data_kind(str(root)) if root else "cifar10")


def unrecorded(specs: Sequence[Spec], budget: str, seed: int, data: str | None = None,
               store: RunStore | None = None) -> list[RunConfig]:
    """The configs of `specs` at one budget and seed that the store lacks."""
    store = store or RunStore()
    return [c for s in specs if not store.path((c := config(s, budget, seed, data)).to_dict()).exists()]


def get_run(spec: Spec, budget: str, seed: int = 0, *, data: str | None = None,
            store: RunStore | None = None) -> RunRecord:
    """The stored record of a book run; MissingRuns if it is not recorded."""
    cfg = config(spec, budget, seed, data)
    rec = (store or RunStore()).load(cfg.to_dict())
    if rec is None:
        raise MissingRuns([cfg], budget, [seed], data=data)
    return rec


def recorded_runs(specs: Sequence[Spec], budget: str, seed: int, data: str | None = None,
                  store: RunStore | None = None) -> Runs | None:
    """The runs of `specs` at one budget and seed keyed (model, norm, lr), or None if one is not recorded."""
    store = store or RunStore()
    if unrecorded(specs, budget, seed, data, store):
        return None
    return {(s.model, s.norm, s.lr): get_run(s, budget, seed, data=data, store=store) for s in specs}


def load_section(number: str, budget: str, seeds: Sequence[int], data: str | None = None,
                 store: RunStore | None = None) -> Judged:
    """A section's runs and claims, read from the record store. The budget is `budget`, or for "best" the most
    faithful one with the first seed's runs recorded (else smoke). The first seed's runs (the figures') must be
    recorded, else MissingRuns names them; the claims are judged on them and on every other seed of `seeds` whose
    runs the budget has recorded. Claims that rest on DLN runs are also judged under the DLN's other loss-scale
    reading and in float64 (`variants`), as far as those runs are recorded (for the paper's sections:
    `Section.variants`)."""
    section, store = SECTIONS[number], store or RunStore()
    used = resolve_budget(budget, list(section.specs), list(seeds[:1]), store, number)
    if missing := unrecorded(section.specs, used, seeds[0], data, store):
        raise MissingRuns(missing, used, seeds, [number], data)
    runs = {s: recorded_runs(section.specs, used, s, data, store)
            for s in seeds}
    result = Judged.judge(section, used, {s: r for s, r in runs.items() if r is not None})
    if section.variants:
        result.variants = variants(result, data, store)
    return result


def variants(judged: Judged, data: str | None = None, store: RunStore | None = None) -> dict[str, Variants]:
    """Every claim of a judged section that rests on DLN runs, judged again under each other reading in float32 at
    the judged seeds, and under every reading in float64 at `readings.F64_SEEDS` (where those runs are recorded).

    A claim rests on DLN runs when its measured numbers change under another reading or in float64; claims about
    VGG alone do not.
    """
    section = judged.section
    if not uses_dln(section):
        return {}
    table = {(DLN_LOSS_SCALE, "float32", s): judged.claims[s] for s in judged.seeds}
    for c in READINGS:
        for d in DTYPES:
            for s in (judged.seeds if d == "float32" else [s for s in F64_SEEDS if s in judged.seeds]):
                if (c, d, s) not in table and (runs := recorded_runs([variant(x, c, d) for x in section.specs],
                                                                     judged.budget, s, data, store)):
                    table[c, d, s] = section.claims(runs)
    first = judged.first
    others = [v for (c, d, s), v in table.items() if (c, d) != (DLN_LOSS_SCALE, "float32") and s == judged.seed]
    return {claim.key: Variants(DLN_LOSS_SCALE, {k: v[i].verdict for k, v in table.items()})
            for i, claim in enumerate(first) if others and any(o[i].ours != claim.ours for o in others)}


def claims_by_seed(budget: str, seeds: Sequence[int], data: str | None = None,
                   store: RunStore | None = None) -> dict[str, Judged]:
    """Every section's claims judged at each seed, as `load_section` judges them, keyed by section number; the runs
    missing in any section are one MissingRuns."""
    out, missing = {}, []
    for number in SECTIONS:
        try:
            out[number] = load_section(number, budget, seeds, data, store)
        except MissingRuns as e:
            missing.append(e)
    if missing:
        raise MissingRuns.joined(missing)
    return out
