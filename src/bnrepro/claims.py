"""What every section shares to judge the paper's claims: rules that measure records and judge the numbers, the
`Claim` they produce, a `Section` (a chapter's runs and rules), verdicts across seeds, and the tables and glue that
show claims.

A `Rule` keeps *measuring* (records -> numbers) apart from *judging* (numbers -> verdict), so that every rule's
judgement is unit-tested on constructed numbers, driven to each of its outcomes. A judgement compares numbers with
thresholds through `Check`s and `grade`; a deciding number within `NEAR` of its threshold is reported with the
verdict. Four outcomes: reproduced, partly reproduced, not reproduced, and *not testable*: a rule first checks its
preconditions (`Rule.needs`: what its comparison needs, such as a standard network that trains), and a failed one,
or a deciding number that is undefined (NaN), gives "not testable" with the reason, never "not reproduced". Where two
measures or readings of a claim are both defensible, a rule judges each (`Rule.readings`) and shows both. Each paper section lives in a module of its own (`bnrepro.sections`) holding its runs, figures and rules;
this module is what they have in common.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .records import RunRecord
from .specs import Spec


def prose_list(items: Sequence[str]) -> str:
    """Items as prose: "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"
NOT_TESTABLE = "not testable"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTABLE)
VERDICT_SHORT = {REPRODUCED: "yes", PARTLY: "partly", NOT_REPRODUCED: "no", NOT_TESTABLE: "not testable"}  # cells

#: A deciding number within this fraction of its threshold is "near" it: the verdict says so. 10%: the book's
#: ratios move by 10-30% from seed to seed, so a number within 10% of its bar could sit on the other side at another.
NEAR = 0.10

#: The "trains" bar of the preconditions: a CIFAR-10 network trains if it does not diverge and ends above this
#: training accuracy (%). Three times chance (10%): a run there has left chance well behind and is fitting its
#: batches, while a stalled run (the standard VGG at LR 0.01 for 2,500 steps ends at 17%) stays below it.
TRAINS_ACC = 30.0

#: A section's runs of one seed and budget, keyed (model, norm, lr).
Runs = Mapping[tuple[str, str, float], RunRecord]

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True, eq=False)
class Check:
    """One comparison a judgement makes: `value` `op` `threshold`, e.g. Check("loss ratio", 2.4, ">=", 2).

    `graded` is False for a number that moves in whole steps (a count, a share of a few items) or that equals its
    threshold by construction: no small change of it exists, so it is never reported "near" its threshold."""

    what: str  # the compared number, in words
    value: float
    op: str  # "<", "<=", ">" or ">="
    threshold: float
    graded: bool = True

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}: choose one of {', '.join(_OPS)}")

    @property
    def holds(self) -> bool:
        return bool(_OPS[self.op](self.value, self.threshold))

    @property
    def near(self) -> bool:
        """The value lies within NEAR (relative) of the threshold, and can move by that much (`graded`)."""
        v, t = float(self.value), float(self.threshold)
        return self.graded and math.isfinite(v) and math.isfinite(t) and abs(v - t) <= NEAR * abs(t)

    @property
    def undefined(self) -> bool:
        return math.isnan(float(self.value)) or math.isnan(float(self.threshold))

    def __str__(self) -> str:
        return f"{self.what} {self.value:.3g} against {self.threshold:.3g}"

    def as_need(self) -> str:
        """The check as a precondition, in words: "the standard network's final training accuracy (%) > 30
        (measured 17.1)"."""
        return f"{self.what} {self.op} {self.threshold:.3g} (measured {self.value:.3g})"


@dataclass(frozen=True)
class Judgement:
    verdict: str
    near: tuple[str, ...] = ()  # the deciding comparisons within NEAR of their threshold, in words
    reason: str = ""  # why the claim is not testable (NOT_TESTABLE only)


def not_testable(reason: str) -> Judgement:
    return Judgement(NOT_TESTABLE, reason=reason)


def final_train_acc(rec: RunRecord) -> float:
    """The final training accuracy (mean over the last 2% of steps, a fraction); 0 for a diverged run."""
    return 0.0 if rec.status == "diverged" else float(rec.summary["final_train_acc"])


def trains(network: str, acc: float) -> Check:
    """The precondition that a CIFAR-10 network trains: its final training accuracy (%, 0 when it diverged) above
    `TRAINS_ACC`."""
    return Check(f"{network}'s final training accuracy (%)", acc, ">", TRAINS_ACC)


#: The one-line argument of `trains`, for a rule's `needs_reason`.
TRAINS_REASON = (f"a network trains when it ends above {TRAINS_ACC:g}% training accuracy, three times chance; a "
                 "comparison with a network that has not left chance says nothing about BatchNorm")


def grade(full: Sequence[Check], partly: Sequence[Sequence[Check]] = ()) -> Judgement:
    """REPRODUCED if every check of `full` holds; else PARTLY if every check of one group of `partly` holds; else
    NOT_REPRODUCED; NOT_TESTABLE if a compared number is undefined (NaN). A check is *deciding* if its failing or
    holding alone would change the verdict; the deciding checks whose value is near their threshold are returned
    with the verdict."""
    checks = list({id(c): c for c in itertools.chain(full, *partly)}.values())
    undefined = [c.what for c in checks if c.undefined]
    if undefined:
        return not_testable(f"{prose_list(undefined)} {'is' if len(undefined) == 1 else 'are'} undefined (NaN)")

    def verdict(flipped: Check | None = None) -> str:
        def ok(c: Check) -> bool:
            return c.holds != (c is flipped)

        if all(ok(c) for c in full):
            return REPRODUCED
        return PARTLY if any(all(ok(c) for c in group) for group in partly) else NOT_REPRODUCED

    v = verdict()
    return Judgement(v, tuple(str(c) for c in checks if c.near and verdict(c) != v))


def any_of(checks: Sequence[Check], k: int = 1) -> list[tuple[Check, ...]]:
    """`partly` groups of `grade` meaning "at least k of these checks hold"."""
    return list(itertools.combinations(checks, k))


@dataclass
class Claim:
    key: str  # glue prefix, e.g. "c21_generalise"
    paper: str  # what the rule tests, with the paper's numbers as context
    ours: str  # what we measured, formatted
    verdict: str  # one of VERDICTS, or for a rule with readings that disagree, each reading's ("... by X, ... by Y")
    rule: str  # how the verdict was decided: the thresholds
    values: dict = field(default_factory=dict)  # numbers to glue as f"{key}_{name}"
    reason: str = ""  # why the thresholds are where they are, in one line
    near: tuple[str, ...] = ()  # deciding numbers near their threshold
    untestable: str = ""  # why it is not testable (a failed precondition, an undefined number), if it is not
    readings: dict = field(default_factory=dict)  # reading name -> its verdict, for a rule with `readings`


def short_verdict(verdict: str) -> str:
    """A verdict for a table cell: "yes", "partly", "no", "not testable"; a combined one part by part ("yes by
    width, no by decades")."""
    if verdict in VERDICT_SHORT:
        return VERDICT_SHORT[verdict]
    return ", ".join(f"{VERDICT_SHORT[v]} by {name}" for v, name in (p.split(" by ", 1) for p in verdict.split(", ")))


def combined_verdict(readings: Mapping[str, str]) -> str:
    """One reading's verdict when all agree, else each with its reading: "reproduced by width, not reproduced by
    decades"."""
    if len(set(readings.values())) == 1:
        return next(iter(readings.values()))
    return ", ".join(f"{v} by {name}" for name, v in readings.items())


@dataclass(frozen=True)
class Rule:
    """One claim of the paper and how it is judged: `measure` turns the runs into numbers, `judge` the numbers into
    a verdict, `describe` the numbers into words. `specs` are the runs `measure` reads.

    `needs` gives the preconditions of the comparison as checks on the measured numbers (argued in `needs_reason`):
    if one fails, the claim is not testable on these runs. `readings`, when given, replaces `judge` by one judge per
    defensible reading (name -> judge); the claim's verdict then names each reading's where they disagree."""

    key: str
    paper: str  # what the rule tests, with the paper's numbers as context
    rule: str  # the thresholds, in words
    reason: str  # why they are where they are, in one line
    specs: tuple[Spec, ...]
    measure: Callable[[Runs], dict[str, float]]
    judge: Callable[[Mapping[str, float]], Judgement] | None
    describe: Callable[[Mapping[str, float]], str]
    min_steps: int = 0  # judged only on runs this long (a claim about the paper's schedule, e.g. 15,000 steps)
    needs: Callable[[Mapping[str, float]], Sequence[Check]] | None = None
    needs_reason: str = ""  # why the preconditions' thresholds are where they are, in one line
    readings: Mapping[str, Callable[[Mapping[str, float]], Judgement]] | None = None

    def __post_init__(self):
        if (self.judge is None) == (self.readings is None):
            raise ValueError(f"rule {self.key}: give either judge or readings")
        if self.needs is not None and not self.needs_reason:
            raise ValueError(f"rule {self.key}: argue its preconditions' thresholds in needs_reason")

    def applies(self, runs: Runs) -> bool:
        """The runs are long enough for this rule (every run this rule reads has at least `min_steps` steps)."""
        return not self.min_steps or all(runs[s.model, s.norm, s.lr].config["steps"] >= self.min_steps
                                         for s in self.specs if (s.model, s.norm, s.lr) in runs)

    def judgements(self, values: Mapping[str, float]) -> dict[str, Judgement]:
        """Each reading's judgement of `values` ({"": the judgement} for a rule with one), after the preconditions:
        a failed one makes every reading not testable; one near its threshold is reported as near."""
        needs = list(self.needs(values)) if self.needs else []
        failed = [c for c in needs if not c.holds]
        near = tuple(f"precondition {c}" for c in needs if c.near)
        judges = self.readings or {"": self.judge}
        if failed:
            j = not_testable("needs " + "; ".join(c.as_need() for c in failed))
            return {name: Judgement(j.verdict, near, j.reason) for name in judges}
        out = {}
        for name, judge in judges.items():
            j = judge(values)
            out[name] = Judgement(j.verdict, j.near + (near if j.verdict != NOT_TESTABLE else ()), j.reason)
        return out

    def apply(self, runs: Runs) -> Claim:
        """The claim judged on `runs` (any mapping holding this rule's specs, e.g. runs of another seed or under
        another reading of the setup)."""
        values = self.measure(runs)
        js = self.judgements(values)
        near = tuple(dict.fromkeys(n for j in js.values() for n in j.near))
        untestable = "; ".join(dict.fromkeys(j.reason for j in js.values() if j.verdict == NOT_TESTABLE))
        readings = {name: j.verdict for name, j in js.items()} if self.readings else {}
        verdict = combined_verdict(readings) if self.readings else js[""].verdict
        ours = self.describe(values) + (f" (not testable: {untestable})" if untestable else "")
        return Claim(self.key, self.paper, ours, verdict, self.rule, values, self.reason, near, untestable, readings)


@dataclass(frozen=True)
class Section:
    """A chapter's share of the book: the paper section it reproduces, the runs it needs and its claim rules."""

    number: str
    title: str
    doc: str  # the chapter's path in the book, for links from the replication-status table
    specs: tuple[Spec, ...]
    rules: tuple[Rule, ...]
    variants: bool = True  # its DLN runs also run under the other loss-scale readings and in float64 (`readings`)

    def __post_init__(self):
        missing = {s for r in self.rules for s in r.specs} - set(self.specs)
        if missing:
            raise ValueError(f"section {self.number}: its rules read runs it does not list: {sorted(map(str, missing))}")

    def claims(self, runs: Runs) -> list[Claim]:
        """Every rule applied to one set of runs, but those the runs are too short for (`Rule.min_steps`)."""
        return [rule.apply(runs) for rule in self.rules if rule.applies(runs)]


FLIPS = "flips with rounding"


@dataclass
class Variants:
    """A claim that rests on DLN runs, judged under each reading of the DLN's loss scale and in float64
    (`bnrepro.readings`): its verdict per (loss scale, dtype, seed)."""

    lead: float  # the loss scale the chapters lead with
    verdicts: dict[tuple[float, str, int], str]

    def holds_under_both(self) -> bool | None:
        """Every other reading gives the lead reading's float32 verdict at each seed judged under both (None when no
        other reading was judged)."""
        pairs = [(v, self.verdicts[c, "float32", s]) for (c, d, s), v in self.verdicts.items()
                 if c != self.lead and d == "float32" and (self.lead, "float32", s) in self.verdicts
                 for v in [self.verdicts[self.lead, "float32", s]]]
        return all(a == b for a, b in pairs) if pairs else None

    def flips_with_rounding(self, scale: float | None = None) -> bool:
        """At some (reading, seed) judged in both dtypes (under reading `scale` only, if given), float64 gives
        another verdict than float32."""
        return any(d == "float64" and (scale is None or c == scale)
                   and self.verdicts.get((c, "float32", s)) not in (None, v) for (c, d, s), v in self.verdicts.items())

    def scales(self) -> list[float]:
        """The loss-scale readings judged, in order."""
        return list(dict.fromkeys(c for c, _, _ in self.verdicts))

    def seed_verdicts(self, scale: float) -> list[str]:
        """The float32 verdicts under reading `scale`, one per judged seed."""
        return [v for (c, d, _), v in self.verdicts.items() if c == scale and d == "float32"]

    def flipping_scales(self) -> list[float]:
        """The readings under which float rounding flips the verdict."""
        return [c for c in dict.fromkeys(c for c, _, _ in self.verdicts) if self.flips_with_rounding(c)]

    def detail(self) -> str:
        """Each reading's and float64's verdicts in words, for the claims table."""
        def seeds_text(c: float, d: str) -> str:
            return ", ".join(f"{v} at seed {s}" for (cc, dd, s), v in self.verdicts.items() if (cc, dd) == (c, d))

        scales = list(dict.fromkeys(c for c, _, _ in self.verdicts))
        parts = [f"loss scale {c:g}: {seeds_text(c, 'float32')}" for c in scales if c != self.lead]
        parts += [f"float64, loss scale {c:g}: {seeds_text(c, 'float64')}" for c in scales
                  if any(k[:2] == (c, "float64") for k in self.verdicts)]
        both = {True: "holds under both readings", False: "differs between the readings",
                None: "not judged under the other reading"}[self.holds_under_both()]
        flips = "".join(f"; float rounding flips it under loss scale {c:g}" for c in self.flipping_scales())
        return f"{both}{flips} ({'; '.join(parts)})"


@dataclass
class Judged:
    """A section's claims at one budget, judged separately on each seed's runs; the first seed is the figures'."""

    section: Section
    budget: str
    seeds: tuple[int, ...]
    runs: dict[int, Runs]  # seed -> runs
    claims: dict[int, list[Claim]]  # seed -> claims, in the section's rule order
    variants: dict[str, Variants] = field(default_factory=dict)  # claim key -> its DLN readings and float64
    # claim key -> {(training precision, seed): verdict} where its VGG runs are recorded at another precision too
    precision: dict[str, dict[tuple[str, int], str]] = field(default_factory=dict)
    notice: str = ""  # what the page says of its runs' training precision (`judge.precision_notice`)

    @classmethod
    def judge(cls, section: Section, budget: str, runs: dict[int, Runs]) -> Judged:
        """Every rule of `section` applied to each seed's runs (the first seed is the figures'). `runs` may be any
        runs with the section's keys, e.g. the DLN under another reading of its setup."""
        return cls(section, budget, tuple(runs), runs, {s: section.claims(r) for s, r in runs.items()})

    @property
    def seed(self) -> int:
        """The figures' seed."""
        return self.seeds[0]

    @property
    def first(self) -> list[Claim]:
        """The claims at the figures' seed."""
        return self.claims[self.seed]

    def across(self, i: int) -> list[Claim]:
        """Claim i at every seed."""
        return [self.claims[s][i] for s in self.seeds]

    def headline(self, i: int) -> str:
        """Claim i's verdict over the seeds, e.g. "reproduced at 3 of 3 seeds", with the seeds at which a deciding
        number sits near its threshold; per reading ("by width: ...; by decades: ...") where a rule's readings
        disagree at some seed, and per DLN loss-scale reading where those disagree."""
        per_seed = self.across(i)
        names = list(per_seed[0].readings)
        if names and any(len(set(c.readings.values())) > 1 for c in per_seed):
            text = "; ".join(f"by {name}: {count_verdicts([c.readings[name] for c in per_seed])}" for name in names)
        else:
            text = count_verdicts([c.verdict for c in per_seed])
        near = [s for s, c in zip(self.seeds, per_seed) if c.near]
        if near:
            text += f" (near a threshold at seed{'s' if len(near) > 1 else ''} {', '.join(map(str, near))})"
        v = self.variants.get(per_seed[0].key)
        if v is not None and v.flips_with_rounding(v.lead):
            text = f"{FLIPS} (float32: {text})"
        if v is not None and v.holds_under_both() is False:
            text = f"loss scale {v.lead:g}: {text}; " + "; ".join(
                f"loss scale {c:g}: {count_verdicts(v.seed_verdicts(c))}" for c in v.scales() if c != v.lead)
        return text

    def unanimous(self, i: int) -> bool:
        return len({c.verdict for c in self.across(i)}) == 1


def count_verdicts(verdicts: Sequence[str]) -> str:
    """Verdicts over seeds counted: "reproduced at 2, not testable at 1 of 3 seeds" (in `VERDICTS` order, then any
    combined verdict in order of appearance)."""
    order = [v for v in VERDICTS if v in verdicts] + [v for v in dict.fromkeys(verdicts) if v not in VERDICTS]
    n = len(verdicts)
    return ", ".join(f"{v} at {verdicts.count(v)}" for v in order) + f" of {n} seed{'s' if n > 1 else ''}"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a literal | (as in |Δ mean|) would split the cell."""
    return text.replace("|", "\\|")


_VERDICT_WORDS = re.compile("|".join(re.escape(v) for v in sorted(VERDICTS, key=len, reverse=True)))


def mark_verdicts(text: str) -> str:
    """`text` with each verdict word in a span of its class, the word hyphenated ("verdict verdict-partly-reproduced";
    book/_static/bnrepro.css gives each a colour, bnrepro.js marks the prose's bold verdicts alike): coloured on the
    site, the word kept, so that verdicts can be scanned by colour and read without it."""
    return _VERDICT_WORDS.sub(lambda m: f'<span class="verdict verdict-{m[0].replace(" ", "-")}">{m[0]}</span>', text)


def claim_details(judged: Judged, i: int) -> list[str]:
    """What stands behind claim i's verdict across seeds: our numbers at the figures' seed, the verdict at each seed
    (each reading's where a rule's readings disagree) with any deciding number near its threshold, and the verdicts
    under the DLN's other readings."""
    c = judged.first[i]
    lines = [f"We measured (seed {judged.seed}): {c.ours}"]
    lines += [f"Seed {s}: {x.verdict}" + (f"; near its threshold: {'; '.join(x.near)}" if x.near else "")
              for s, x in zip(judged.seeds, judged.across(i))]
    if c.key in judged.variants:
        lines.append(f"The DLN's other readings: {judged.variants[c.key].detail()}")
    if c.key in judged.precision:
        lines.append(precision_detail(judged.precision[c.key]))
    return lines


def precision_detail(verdicts: Mapping[tuple[str, int], str]) -> str:
    """A claim's verdicts with its VGG runs trained at another precision, beside strict float32's, in words."""
    parts = []
    for p in dict.fromkeys(p for p, _ in verdicts if p != "float32"):
        seeds = [s for q, s in verdicts if q == p]
        same = all(verdicts[p, s] == verdicts.get(("float32", s)) for s in seeds)
        parts.append(f"with the VGG trained in {p}: " + ", ".join(f"{verdicts[p, s]} at seed {s}" for s in seeds)
                     + (", as in strict float32" if same else " (strict float32: " + ", ".join(
                         f"{verdicts.get(('float32', s), 'not judged')} at seed {s}" for s in seeds) + ")"))
    return "Training precision: " + "; ".join(parts)


def claims_markdown(judged: Judged) -> str:
    """A Markdown table: the paper's claim, our numbers at the figures' seed, the verdict across seeds with its
    verdict words marked (`mark_verdicts`) and, behind a toggle, each seed's (`claim_details`), and the rule that
    decided it with its reason behind a toggle."""
    def toggle(summary: str, lines: Sequence[str]) -> str:
        return f"<details><summary>{summary}</summary>{'<br>'.join(_cell(x) for x in lines)}</details>"

    rows = [f"| The paper says | We measured (seed {judged.seed}) | Verdict | Rule |", "|---|---|---|---|"]
    for i, c in enumerate(judged.first):
        seeds = [mark_verdicts(x) for x in claim_details(judged, i)[1:]]
        rows.append(f"| {_cell(c.paper)} | {_cell(c.ours)} | **{mark_verdicts(_cell(judged.headline(i)))}**"
                    f"{toggle('each seed', seeds)} | {_cell(c.rule)}{toggle('why', [c.reason]) if c.reason else ''} |")
    return "\n".join(rows)


def glue_claims(judged: Judged) -> None:
    """Glue each claim's verdict across seeds as `<key>_verdict`, our measurement in words as `<key>_ours` and its
    values at the figures' seed as `<key>_<name>`, for the chapter's prose (`{glue:text}`)."""
    from myst_nb import glue

    for i, c in enumerate(judged.first):
        glue(f"{c.key}_verdict", judged.headline(i), display=False)
        glue(f"{c.key}_ours", c.ours, display=False)
        for name, v in c.values.items():
            glue(f"{c.key}_{name}", v.item() if hasattr(v, "item") else v, display=False)  # NumPy scalars as Python
