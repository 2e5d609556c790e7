"""Judging from the record store: a section's runs read back, its claims judged at each recorded seed and, where
they rest on DLN runs, under the other loss-scale reading and in float64.

Nothing here computes a run: one that is not recorded is a `MissingRuns` error naming it and the `python -m bnrepro
book-runs` command that computes it. `book/build.py` computes every missing run before it executes a page, and a
chapter does so first when its parameter `compute` is True (`cli.compute_missing`).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence

from .budgets import get_budget
from .claims import Judged, Runs, Variants
from .plan import EVIDENCE_BUDGET, EVIDENCE_SECTIONS, book_runs_argv, resolve_budget
from .readings import DTYPES, F64_SEEDS, READINGS, uses_dln, variant
from .records import RunRecord, RunStore
from .sections import SECTIONS
from .specs import DLN_LOSS_SCALE, Spec, data_kind, data_location, make_config, run_name
from .train import PRECISIONS, RunConfig

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
                 store: RunStore | None = None, notice: bool = True) -> Judged:
    """A section's runs and claims, read from the record store. The budget is `budget`, or for "best" the most
    faithful one with the first seed's runs recorded (else smoke). The first seed's runs (the figures') must be
    recorded, else MissingRuns names them; the claims are judged on them and on every other seed of `seeds` whose
    runs the budget has recorded. Claims that rest on DLN runs are also judged under the DLN's other loss-scale
    reading and in float64 (`variants`), as far as those runs are recorded (for the paper's sections:
    `Section.variants`). Claims of `plan.EVIDENCE_SECTIONS` carry their verdicts at other training precisions
    where recorded (`precision_evidence`), and, if `notice`, the page what its precision changes
    (`precision_notice`)."""
    section, store = SECTIONS[number], store or RunStore()
    used = resolve_budget(budget, list(section.specs), list(seeds[:1]), store, number)
    if missing := unrecorded(section.specs, used, seeds[0], data, store):
        raise MissingRuns(missing, used, seeds, [number], data)
    runs = {s: recorded_runs(section.specs, used, s, data, store)
            for s in seeds}
    result = Judged.judge(section, used, {s: r for s, r in runs.items() if r is not None})
    if section.variants:
        result.variants = variants(result, data, store)
    result.precision = precision_evidence(result, data, store)
    result.notice = precision_notice(used, seeds, data, store) if notice else ""
    return result


def precision_evidence(judged: Judged, data: str | None = None,
                       store: RunStore | None = None) -> dict[str, dict[tuple[str, int], str]]:
    """Each claim of a judged evidence section (`plan.EVIDENCE_SECTIONS`) judged again with its VGG runs trained in
    each other precision recorded at its budget and seed (its DLN runs as they are): claim key -> {(precision,
    seed): verdict}, strict float32's beside them; empty where no such set of runs is recorded."""
    if judged.section.number not in EVIDENCE_SECTIONS:
        return {}
    store, table = store or RunStore(), {}
    for p in (p for p in PRECISIONS if p != "float32"):
        for seed in judged.seeds:
            runs = dict(judged.runs[seed])
            for spec in (s for s in judged.section.specs if s.model != "dln"):
                cfg = dataclasses.replace(config(spec, judged.budget, seed, data), precision=p)
                if (rec := store.load(cfg.to_dict())) is None:
                    break
                runs[spec.model, spec.norm, spec.lr] = rec
            else:
                table[p, seed] = judged.section.claims(runs)
    seeds = [s for s in judged.seeds if any(k[1] == s for k in table)]
    return {c.key: {("float32", s): judged.claims[s][i].verdict for s in seeds}
            | {k: claims[i].verdict for k, claims in table.items()} for i, c in enumerate(judged.first)} \
        if table else {}


def precision_notice(budget: str, seeds: Sequence[int], data: str | None = None,
                     store: RunStore | None = None) -> str:
    """What a page at `budget` says where its runs train in another precision than strict float32: whether that
    precision changes a verdict of the precision evidence (`plan.EVIDENCE_SECTIONS` at `plan.EVIDENCE_BUDGET`),
    naming each claim it changes, or that the evidence is not recorded yet and how to record it."""
    p = get_budget(budget).precision
    if p == "float32":
        return ""
    judged, changed = 0, []
    for number in EVIDENCE_SECTIONS:
        try:
            evidence = load_section(number, EVIDENCE_BUDGET, seeds, data, store, notice=False)
        except MissingRuns:
            continue
        for key, verdicts in evidence.precision.items():
            at = [s for (q, s), v in verdicts.items() if q == p]
            judged += bool(at)
            differs = [s for s in at if verdicts[p, s] != verdicts.get(("float32", s))]
            if differs:
                changed.append(f"{key} (seed{'s' if len(differs) > 1 else ''} {', '.join(map(str, differs))})")
    what = f"This page's runs train in {PRECISIONS[p]} (probes in strict float32). "
    if not judged:
        return what + (f"Whether that changes a verdict is not measured yet: `python -m bnrepro window "
                       f"--evidence-precision {p}` trains Sections {' and '.join(EVIDENCE_SECTIONS)} at the "
                       f"{EVIDENCE_BUDGET} budget in {p}, to be judged beside their strict float32 records.")
    return what + (f"Trained so at the {EVIDENCE_BUDGET} budget, Sections {' and '.join(EVIDENCE_SECTIONS)} give "
                   + (f"another verdict than in strict float32 for {', '.join(changed)}." if changed else
                      f"the strict float32 verdict for all {judged} of their claims."))


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
