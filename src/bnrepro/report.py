"""Book-wide tables: the replication status, verdicts across seeds, the budgets, each chapter's setup, and the
provenance and cost of the runs behind a page.

The claims themselves, with the rules that judge them, live in their section's module (`bnrepro.sections`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import yaml

from .budgets import BUDGET_ORDER, BUDGETS, Budget, get_budget, width_fraction
from .claims import NEAR, Judged, _cell, claim_details, mark_verdicts, prose_list, short_verdict
from .plan import book_configs
from .records import RunRecord, RunStore
from .sections import SECTIONS
from .specs import DLN_LOSS_SCALE, Spec, make_config
from .train import PRECISIONS

CIFAR10_TEST_IMAGES = 10_000  # a budget's test_limit None means all of them
CIFAR10_TRAIN_IMAGES = 50_000


def citation_authors(cff: Path = Path(__file__).resolve().parents[2] / "CITATION.cff") -> str:
    """The authors CITATION.cff names, as prose ("A, B and C"): the book's footer says "By" them."""
    people = yaml.safe_load(cff.read_text())["authors"]
    return prose_list([p.get("name") or f"{p['given-names']} {p['family-names']}" for p in people])


def _section_link(number: str) -> str:
    """A link to a section's chapter from the book's root, so it works on a page in any folder."""
    return f"[{number}](/{SECTIONS[number].doc}.ipynb)"


def seed_agreement(by_section: dict[str, Judged]) -> tuple[int, int]:
    """(claims whose verdict is the same at every seed judged, claims in all)."""
    same = [j.unanimous(i) for j in by_section.values() for i in range(len(j.first))]
    return sum(same), len(same)


def seeds_markdown(by_section: dict[str, Judged]) -> str:
    """A table of every claim's verdict at each seed (yes / partly / no, "near" where a deciding number sits near
    its threshold, — where the seed was not judged), then what was measured at each seed, claim by claim."""
    seeds = sorted({s for j in by_section.values() for s in j.seeds})
    head = "| Section | The paper says | " + " | ".join(f"Seed {s}" for s in seeds) + " | Across seeds |"
    rows, details = [head, "|---" * (len(seeds) + 3) + "|"], []
    for number, judged in by_section.items():
        details.append(f"### Section {number} at the `{judged.budget}` budget\n")
        for i, claim in enumerate(judged.first):
            at = dict(zip(judged.seeds, judged.across(i)))
            cells = [(short_verdict(at[s].verdict) + (" (near)" if at[s].near else "")) if s in at else "—" for s in seeds]
            paper = _cell(claim.paper)
            rows.append(f"| {_section_link(number)} `{judged.budget}` | {paper} | " + " | ".join(cells)
                        + f" | **{judged.headline(i)}** |")
            details.append(f"- {paper}")
            details += [f"  - seed {s}: {_cell(c.ours)} ({c.verdict}" + (f"; near its threshold: {'; '.join(c.near)}"
                                                                         if c.near else "") + ")"
                        for s, c in at.items()]
        details.append("")
    return "\n".join(rows + [""] + details)


def status_markdown(by_section: dict[str, Judged]) -> str:
    """The book's replication-status table: every section's claims, the budget checked at and the verdict across
    the seeds judged."""
    rows = ["| Section | Claim | Budget | Verdict |", "|---|---|---|---|"]
    for number, judged in by_section.items():
        rows += [f"| {_section_link(number)} | {_cell(c.paper)} | {judged.budget} | "
                 f"**{mark_verdicts(_cell(judged.headline(i)))}** |" for i, c in enumerate(judged.first)]
    return "\n".join(rows)


def budgets_markdown(store: RunStore | None = None) -> str:
    """Every budget's settings side by side, read from `bnrepro.budgets`, then each budget's description and what
    its recorded runs cost (`recorded_cost`)."""
    names = [f.name for f in fields(Budget) if f.name not in ("name", "description")]
    rows = ["| setting | " + " | ".join(f"`{b}`" for b in BUDGET_ORDER) + " |", "|---" * (len(BUDGET_ORDER) + 1) + "|"]
    rows += [f"| `{n}` | " + " | ".join(str(getattr(BUDGETS[b], n)) for b in BUDGET_ORDER) + " |" for n in names]
    rows += ["", *(f"- `{b}`: {BUDGETS[b].description}. {recorded_cost(b, store)}" for b in BUDGET_ORDER)]
    return "\n".join(rows)


def duration(seconds: float) -> str:
    """A wall time in the unit a reader would use: s, min or h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def _trained_on(meta: dict) -> str:
    """The device a record names, in words: a GPU's name, or a CPU and its threads."""
    env = meta["env"]
    if env["device"].startswith("cuda"):
        return env["device_name"]
    threads = env.get("threads")
    if not threads:
        return "a CPU whose thread count was not recorded"
    return "one CPU thread" if threads == 1 else f"{threads} CPU threads"


def recorded_cost(budget: str, store: RunStore | None = None) -> str:
    """What the book's runs at `budget` cost, from the records' wall times (each summed over the run's resumptions):
    at each seed that has records, how many of the book's runs are recorded and their total time, then the total
    and the devices that trained them. The smoke budget's runs are those on synthetic data."""
    store = store or RunStore()
    seeds = sorted({json.loads(p.read_text())["config"]["seed"] for p in (store.root / budget).glob("*.json")})
    parts, total, devices = [], 0.0, Counter()
    for seed in seeds:
        configs = book_configs(budget, [seed], "synthetic" if budget == "smoke" else "cifar10")
        metas = [json.loads(p.read_text()) for c in configs if (p := store.path(c.to_dict())).exists()]
        wall = sum(m["summary"]["wall_time_s"] for m in metas)
        parts.append(f"seed {seed}: {len(metas)} of {len(configs)} runs, {duration(wall)}")
        total += wall
        devices.update(map(_trained_on, metas))
    if not parts:
        return "Its runs are not recorded here."
    on = prose_list([f"{n} run{'s' if n > 1 else ''} on {d}" for d, n in devices.most_common()])
    return f"Its recorded runs took, in training wall time: {'; '.join(parts)}; {duration(total)} in all ({on})."


def data_sources_markdown(store: RunStore | None = None) -> str:
    """Which CIFAR-10 copies the stored records were trained on: each data source and content fingerprint the VGG
    and ResNet records name, with their budgets and how many records name it."""
    store = store or RunStore()
    seen: dict[tuple[str, str], Counter] = {}
    for path in sorted(store.root.glob("*/*.json")):
        meta = json.loads(path.read_text())
        if meta["config"]["model"] != "dln":
            key = (meta["summary"].get("data_source", NOT_RECORDED), meta["summary"].get("data_fingerprint", NOT_RECORDED))
            seen.setdefault(key, Counter())[meta["config"]["budget"]] += 1
    rows = ["| Data source | Fingerprint | Records |", "|---|---|---|"]
    rows += [f"| {source} | `{fp}` | " + ", ".join(f"{n} at `{b}`" for b, n in budgets.items()) + " |"
             for (source, fp), budgets in seen.items()]
    return "\n".join(rows) if seen else "No CIFAR-10 record is stored here."


def glue_setup(judged: Judged, data_source: str) -> None:
    """Glue what every chapter says about its setup: the budget used and its sizes, the data's source, the figures'
    seed and the seeds its claims were judged at."""
    from myst_nb import glue

    b = get_budget(judged.budget)
    seeds = [str(s) for s in judged.seeds]
    paper, cpu = get_budget("paper"), get_budget("cpu")
    for name, value in {"budget": judged.budget, "arch": f"{b.vgg_arch.upper()} at width ×{b.vgg_width:g}",
                        "width_frac": width_fraction(b.vgg_width), "cpu_width_frac": width_fraction(cpu.vgg_width),
                        "weights_frac": width_fraction(b.vgg_width ** 2), "cpu_steps": f"{cpu.vgg_steps:,}",
                        "paper_steps": f"{paper.vgg_steps:,}", "lead_loss_scale": f"{DLN_LOSS_SCALE:g}",
                        "paper_epochs": f"{paper.vgg_steps * paper.vgg_batch_size / CIFAR10_TRAIN_IMAGES:.0f}",
                        "near_pct": f"{100 * NEAR:g}%",
                        "batch": b.vgg_batch_size, "vgg_steps": b.vgg_steps, "vgg_every": b.vgg_probe_every,
                        "dln_steps": b.dln_steps, "dln_every": b.dln_probe_every, "dln_samples": b.dln_samples,
                        "test_images": f"{b.test_limit or CIFAR10_TEST_IMAGES:,}", "data_source": data_source,
                        "seed": judged.seed, "n_seeds": len(seeds),
                        "seeds": prose_list(seeds)}.items():
        glue(name, value, display=False)


def summary_box(judged: Judged) -> str:
    """The box a chapter opens with (MyST): the paper's claims, numbered, each with its verdict across seeds, then
    behind one toggle what stands behind each verdict (`claim_details`)."""
    claims = [f"{i + 1}. {c.paper} **{mark_verdicts(judged.headline(i))}**" for i, c in enumerate(judged.first)]
    details = [f"{i + 1}. " + "<br>".join(mark_verdicts(line) for line in claim_details(judged, i))
               for i in range(len(judged.first))]
    return ("::::{admonition} In short: the paper's claims and our verdicts\n:class: tip\n"
            f"Judged at the **{judged.budget}** budget, seed{'s' if len(judged.seeds) > 1 else ''} "
            f"{prose_list([str(s) for s in judged.seeds])}; the rules are in the table at the end of the page.\n\n"
            + (f"{judged.notice}\n\n" if judged.notice else "")
            + "\n".join(claims) + "\n\n:::{dropdown} What we measured, and the verdict at each seed\n"
            + "\n".join(details) + "\n:::\n::::")


NOT_RECORDED = "not recorded"  # what records written before a field existed show for it


def step_precision(config: dict, env: dict) -> str:
    """What to add to a record's dtype about its training step's arithmetic (`RunConfig.precision`, read from the
    config: older records lack it and trained in strict float32): nothing for strict float32, except on CUDA, where
    it says TF32 was off; and how the steps ran there (CUDA graph or eager) where the record says."""
    precision = config.get("precision", "float32")
    if precision != "float32":
        text = f" with {PRECISIONS[precision]} in training (probes strict float32)"
    else:
        text = " (TF32 off)" if env.get("device", "cpu").startswith("cuda") and env.get("cudnn_tf32") is False else ""
    return text + (f", {env['train_step']} steps" if env.get("device", "cpu").startswith("cuda")
                   and "train_step" in env else "")


def device_name(env: dict, threads: bool = False) -> str:
    """A record's device in words: a GPU's name, or the CPU's architecture ("CPU (x86_64)"), with its threads if
    `threads` ("CPU (x86_64, 1 thread)", which older records' names spell "1 threads")."""
    name = env["device_name"]
    return re.sub(r"\b1 threads\)$", "1 thread)", name) if threads else re.sub(r", \d+ threads?\)$", ")", name)


def provenance_markdown(records: Sequence[RunRecord]) -> str:
    """Which runs a page's figures come from: config, budget, status, device, the arithmetic (dtype and the training
    step's precision; on a CPU also PyTorch's CPU capability and the threads), wall time, then the data, CPU models,
    code version, commit and library versions behind them. Older records lack the capability, threads and CPU model:
    they show "not recorded"."""
    rows = ["| Run | Budget | Seed | Steps | Status | Device | Arithmetic | Wall time |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        c = r.config
        run = c["model"] + (f" ×{c['width']:g}" if c["model"] != "dln" else "") + f", {c['norm']}, LR {c['lr']:g}"
        threads = r.env.get("threads")
        arithmetic = [c.get("dtype", "float32") + step_precision(c, r.env)]
        if not r.env.get("device", "cpu").startswith("cuda"):  # a GPU run's CPU only fed it
            arithmetic += [r.env.get("cpu_capability", f"capability {NOT_RECORDED}"),
                           f"{threads} thread{'s' if threads != 1 else ''}" if threads else f"threads {NOT_RECORDED}"]
        arithmetic = ", ".join(arithmetic)
        device = device_name(r.env)
        if "device_name" in (under := r.env.get("resumed_under", {})) and device_name(under) != device:
            device += f", finished on {device_name(under)}"
        rows.append(f"| {run} | {c['budget']} | {c['seed']} | {r.summary['steps_done']}/{c['steps']} | {r.status} "
                    f"| {device} | {arithmetic} | {r.summary['wall_time_s']:.0f} s |")

    def distinct(values) -> str:
        return ", ".join(dict.fromkeys(str(v) for v in values))

    def commit(env: dict) -> str:
        return (env.get("git_commit") or "unknown")[:10] + (" (modified)" if env.get("git_dirty_src") else "")

    commits = (commit(r.env) + (f", resumed under {commit(r.env['resumed_under'])}" if "resumed_under" in r.env
                                else "") for r in records)
    rows += ["", f"- Data: {distinct(r.summary.get('data_source', '') for r in records)}",
             f"- CPU: {distinct(r.env.get('cpu_model', NOT_RECORDED) for r in records)}",
             f"- bnrepro {distinct(r.env['bnrepro'] for r in records)}, commit {distinct(commits)}; "
             f"torch {distinct(r.env['torch'] for r in records)}, Python {distinct(r.env['python'] for r in records)}"]
    return "\n".join(rows)


def budget_costs_markdown(specs: Sequence[Spec], seeds: Sequence[int], store: RunStore | None = None) -> str:
    """How long this page's runs took at each budget, from the records (or that a budget has no records yet)."""
    store = store or RunStore()
    rows = ["| Budget | Runs recorded | Total wall time | Device |", "|---|---|---|---|"]
    for name in BUDGET_ORDER:
        kinds = ("cifar10", "synthetic") if name == "smoke" else ("cifar10",)
        recs = [next((r for k in kinds if (r := store.load(make_config(s, name, seed, k).to_dict()))), None)
                for s in specs for seed in seeds]
        found = [r for r in recs if r is not None]
        if not found:
            rows.append(f"| {name} | 0 of {len(recs)} | not recorded here | |")
            continue
        total = sum(r.summary["wall_time_s"] for r in found)
        devices = ", ".join(sorted({device_name(r.env, threads=True) for r in found}))
        rows.append(f"| {name} | {len(found)} of {len(recs)} | {total / 60:.1f} min | {devices} |")
    return "\n".join(rows)
