"""A GPU window: a budget's missing runs trained within a wall-time limit, and what comes back checked into the store.

`python -m bnrepro window --limit-s 540 --out DIR` measures the step time of the budget's VGG at each precision,
then trains the budget's missing runs in order of value (`value_order`; after the first seed's, the precision
evidence: `--evidence-precision`), each only if its measured speed says it finishes before the limit, and writes
each finished record, as it finishes, into DIR, packed into at most 8 tar files of at most 16 MiB (`Packer`: what
a lent device machine hands back). `python -m bnrepro unpack DIR` checks every record that came back (its file
name is its config's hash, its arrays load, its status and steps agree) and copies it into the record store.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import tarfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .budgets import BUDGET_NAMES, get_budget
from .experiments import RecordLock
from .plan import EVIDENCE_BUDGET, EVIDENCE_SECTIONS, book_configs, evidence_configs
from .probes import ProbeContext
from .records import RunStore, _atomic_write, default_cache_dir
from .sections import SECTIONS
from .specs import Spec, data_kind, data_root, load_data, make_config
from .train import (PRECISIONS, RunConfig, _probe, check_precision, device_settings, dln_batch, evaluate,
                    initial_model, loss_function, pick_device, step_time, train_many)

VOLUMES, VOLUME_BYTES = 8, 16 * 2**20  # what a device machine hands back: 8 files of 16 MiB
FIRST = ("2.1", "3.1")  # the sections whose runs a window trains first
RESERVE_S = 10.0  # seconds of the limit kept for the last record's packing and the summary
MARGIN = 1.1  # a run starts only if its estimated wall time times this (and the estimates' measured error) fits
RECORD_GUESS = 4 * 2**20  # room kept for a record before one is measured (a paper VGG record is about 1.5 MiB)


def value_order(budget: str, seeds: Sequence[int], data_kind: str,
                sections: Sequence[str] | None = None) -> list[RunConfig]:
    """The budget's book runs in order of value: Sections 2.1 and 3.1 at the first seed, then the rest of the first
    seed, then each other seed in turn (each in book order); of `sections` only, when given."""
    have = get_budget(budget).sections or tuple(SECTIONS)
    wanted = [s for s in have if sections is None or s in sections]
    first = [s for s in FIRST if s in wanted]
    runs = book_configs(budget, seeds[:1], data_kind, first) if first else []
    runs += book_configs(budget, seeds[:1], data_kind, wanted)
    for seed in seeds[1:]:
        runs += book_configs(budget, [seed], data_kind, wanted)
    return list(dict.fromkeys(runs))


def bare(cfg: RunConfig) -> RunConfig:
    """`cfg` without probes or recorders: its training step alone."""
    return dataclasses.replace(cfg, act_layers=(), ics_layers=(), landscape_grid=(), random_dirs=0, curvature_iters=0,
                               weight_norms=False, bn_theory=False)


@dataclass
class Costs:
    """A kind of run's measured costs in seconds: one training step (with its recorders), one probe step's probes
    and one evaluation (each the first: the dearest, with the warm-up, and for the probes the top Hessian
    eigenvalue, taken at every `curvature_every`-th probe step only)."""

    step_s: float
    probe_s: float
    eval_s: float
    mode: str

    def run_s(self, cfg: RunConfig) -> float:
        """`cfg`'s estimated wall time."""
        evals = 0 if cfg.is_dln else cfg.steps // cfg.eval_every + 1
        return cfg.steps * self.step_s + len(cfg.probe_steps()) * self.probe_s + evals * self.eval_s


def measure_costs(cfg: RunConfig, data, device: torch.device, seconds: float) -> Costs:
    """Time `cfg`'s training step (`step_time`, about `seconds`), its probes at step 0 and an evaluation, once each,
    on `device`."""
    step_s, _, mode = step_time(cfg, data, device=device, seconds=seconds, min_steps=3, warmup=2)
    with device_settings(cfg.is_dln, device):
        torch.manual_seed(cfg.seed)
        model = initial_model(cfg, device)
        x, y = dln_batch(cfg, cfg.seed, device) if cfg.is_dln else data.batch(0, cfg.batch_size, cfg.seed)

        def timed(fn) -> float:
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            return time.perf_counter() - t

        ctx = ProbeContext(model, x.to(cfg.torch_dtype), y, loss_function(cfg), cfg.lr, 0, cfg.seed)
        probe_s = timed(lambda: _probe(cfg, ctx, "auto"))
        eval_s = 0.0 if cfg.is_dln else timed(lambda: evaluate(model, data))
    return Costs(step_s, probe_s, eval_s, mode)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_precisions(cfg: RunConfig, data, device: torch.device, seconds: float) -> dict[str, float]:
    """Print and return the seconds per training step of `cfg` (the budget's BatchNorm VGG, without probes) at each
    precision the device has."""
    b = bare(cfg)
    print(f"step time of {cfg.model} x{cfg.width:g} + BatchNorm, batch {cfg.batch_size}, at each precision "
          f"(about {seconds:g} s each; a {cfg.steps:,}-step run's training steps alone):", flush=True)
    times = {}
    for precision in PRECISIONS:
        if precision == "tf32" and device.type != "cuda":
            print(f"  {precision:8s} skipped: TF32 is a CUDA arithmetic", flush=True)
            continue
        s, n, mode = step_time(dataclasses.replace(b, precision=precision), data, device=device, seconds=seconds)
        times[precision] = s
        print(f"  {precision:8s} {1e3 * s:9.2f} ms/step  {cfg.batch_size / s:9.0f} img/s  "
              f"x{times['float32'] / s if 'float32' in times else 1:.2f} against float32  "
              f"{cfg.steps * s:8.0f} s per run  ({n} steps, {mode})", flush=True)
    return times


class OutputFull(RuntimeError):
    """No volume has room for another record."""


class Packer:
    """Finished records packed, as they finish, into at most `volumes` tar files `records-NN.tar` of at most
    `volume_bytes` each under `out`. A volume is rewritten whole with every record it holds (into a temporary file,
    then renamed), so whatever stops the job, each volume there is a complete tar file."""

    def __init__(self, out: Path, volumes: int = VOLUMES, volume_bytes: int = VOLUME_BYTES):
        self.out, self.max, self.volume_bytes = Path(out), volumes, volume_bytes
        self.out.mkdir(parents=True, exist_ok=True)
        if old := sorted(self.out.glob("records-*.tar")):
            raise ValueError(f"{self.out} already holds packed records ({old[0].name}...): unpack them (python -m "
                             "bnrepro unpack) and empty the folder, or name another --out")
        self.volumes: list[list[tuple[Path, str]]] = []

    def path(self, i: int) -> Path:
        return self.out / f"records-{i:02d}.tar"

    def has_room(self, nbytes: int) -> bool:
        """Whether a record of about `nbytes` fits: in the last volume, or in a new one."""
        if len(self.volumes) < self.max:
            return nbytes + 4096 <= self.volume_bytes
        return self.path(len(self.volumes) - 1).stat().st_size + nbytes + 4096 <= self.volume_bytes

    def add(self, files: list[tuple[Path, str]]) -> Path:
        """Pack `files` ((path, name in the tar) of one record) into the last volume, or a new one if it is full."""
        if self.volumes and self._write(len(self.volumes) - 1, self.volumes[-1] + files):
            self.volumes[-1] += files
            return self.path(len(self.volumes) - 1)
        if len(self.volumes) == self.max:
            raise OutputFull(f"all {self.max} volumes of {self.volume_bytes / 2**20:g} MiB are full")
        if not self._write(len(self.volumes), files):
            raise OutputFull(f"a record of {sum(p.stat().st_size for p, _ in files) / 2**20:.1f} MiB does not fit "
                             f"in a volume of {self.volume_bytes / 2**20:g} MiB")
        self.volumes.append(list(files))
        return self.path(len(self.volumes) - 1)

    def _write(self, i: int, members: list[tuple[Path, str]]) -> bool:
        tmp = self.out / f"{self.path(i).name}.tmp"
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            for path, name in members:
                tar.add(path, arcname=name, recursive=False)
        if tmp.stat().st_size > self.volume_bytes:
            tmp.unlink()
            return False
        os.replace(tmp, self.path(i))
        return True


def _name(cfg: RunConfig) -> str:
    return f"{cfg.model} {cfg.norm} lr={cfg.lr:g} seed={cfg.seed}" + \
        (f" ({cfg.precision}, {cfg.budget})" if cfg.precision != "float32" else "")


def precision_evidence(args: argparse.Namespace, precision: str, seeds: Sequence[int], kind: str,
                       runs: Sequence[RunConfig]) -> list[RunConfig]:
    """The precision evidence the window trains after the first seed's runs: `plan.evidence_configs` at
    --evidence-precision (default: the budget's precision where it is not strict float32, else none) at the first
    seed; a ValueError for a precision no run can be compared at."""
    chosen = args.evidence_precision or (precision if precision != "float32" else "none")
    if chosen == "none":
        return []
    if chosen == "float32":
        raise ValueError("--evidence-precision float32 is the arithmetic the CPU records already have: name another "
                         f"({', '.join(p for p in PRECISIONS if p != 'float32')}) or none")
    evidence = evidence_configs(chosen, seeds[:1], kind, args.evidence_budget)
    sample = next((c for c in runs if not c.is_dln), None)
    if sample and any((c.train_limit, c.test_limit) != (sample.train_limit, sample.test_limit) for c in evidence):
        raise ValueError(f"the {args.evidence_budget} budget's runs use another share of CIFAR-10 than the "
                         f"{args.budget} budget's: choose an --evidence-budget with the same train and test limits")
    return evidence


def window(args: argparse.Namespace) -> int:
    """The `window` command; exit status 0, or 1 if a run failed."""
    start = time.monotonic()
    stop = start + args.limit_s - RESERVE_S  # no run steps past this
    budget = get_budget(args.budget)
    device = pick_device(args.device)
    store = RunStore(args.records)
    seeds = [int(s) for s in args.seeds.split(",")]
    sections = args.sections.split(",") if args.sections else None
    root = data_root(args.data, budget)
    packer = Packer(Path(args.out))
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(f"window: budget {budget.name} (precision {budget.precision}), limit {args.limit_s:g} s, on {device} "
          f"({gpu}), torch {torch.__version__}, {args.concurrent} run(s) at once", flush=True)
    runs = value_order(budget.name, seeds, data_kind(root), sections)
    evidence = precision_evidence(args, budget.precision, seeds, data_kind(root), runs)
    if evidence:
        check_precision(evidence[0].precision, device)
    first = sum(c.seed == seeds[0] for c in runs)  # `value_order`: the first seed's runs come first
    runs = runs[:first] + evidence + runs[first:]
    ours = set(evidence) | {c for c in runs if c.budget == budget.name}
    elsewhere = [c for c in runs if c not in ours]
    todo = [c for c in runs if c in ours and not store.path(c.to_dict()).exists()]
    print(f"{len(runs)} runs at seeds {args.seeds}: {len(runs) - len(elsewhere) - len(todo)} stored under "
          f"{store.root / budget.name}, {len(elsewhere)} are other budgets' records (the DLN's, a CPU's work), "
          f"{len(todo)} to train", flush=True)
    t = time.monotonic()
    sample = next((c for c in runs if not c.is_dln), None)
    data = load_data(root, sample, device) if sample else None
    print(f"data: {data.source if data else 'none needed'} ({time.monotonic() - t:.0f} s)", flush=True)
    if sample and not args.skip_precisions:
        measure_precisions(make_config(Spec("vgg", "batch", 0.1), budget, 0, sample.data), data, device,
                           args.measure_s)

    costs: dict[RunConfig, Costs] = {}
    started: dict[RunConfig, tuple[float, float, RecordLock]] = {}  # config -> (start, estimate, lock)
    error, record_bytes, full = [MARGIN], [RECORD_GUESS], [False]  # the estimates' measured error (with the margin)
    done, unfinished, failed, skipped = [], [], [], []

    def admit():
        """The next run to start: the first of the queue whose estimate fits the time left and the volumes."""
        for i, cfg in enumerate(todo):
            if full[0] or not packer.has_room(record_bytes[0]):
                print(f"output full: {len(todo) - i} runs not started", flush=True)
                skipped.extend(todo[i:])
                return
            kind = dataclasses.replace(cfg, seed=0, lr=0.1)  # what a run costs depends on neither
            if kind not in costs:
                if stop - time.monotonic() < 4 * args.measure_s:
                    print(f"not started: {_name(cfg)}: too little time left to measure its kind", flush=True)
                    skipped.append(cfg)
                    continue
                c = costs[kind] = measure_costs(cfg, data, device, args.measure_s)
                print(f"measured {cfg.model} {cfg.norm}{' (with Part IV probes)' if cfg.weight_norms else ''}: step "
                      f"{1e3 * c.step_s:.2f} ms ({c.mode}), probes {1e3 * c.probe_s:.0f} ms, evaluation "
                      f"{1e3 * c.eval_s:.0f} ms: a run ~{c.run_s(cfg):.0f} s", flush=True)
            raw = costs[kind].run_s(cfg) * (len(started) + 1)  # the runs at once share the device
            left, lock = stop - time.monotonic(), RecordLock(store, cfg)
            if raw * error[0] > left or not lock.acquire(wait=False):
                print(f"not started: {_name(cfg)}: " + (f"needs ~{raw * error[0]:.0f} s, {left:.0f} s left"
                      if raw * error[0] > left else "another process is computing it"), flush=True)
                skipped.append(cfg)
                continue
            print(f"start: {_name(cfg)} ({cfg.budget}, {cfg.steps:,} steps, ~{raw * error[0]:.0f} s)", flush=True)
            started[cfg] = (time.monotonic(), raw, lock)
            yield cfg

    def checkpoint(cfg: RunConfig) -> Path:
        return default_cache_dir() / "checkpoints" / f"{store.path(cfg.to_dict(), '').name}.pt"

    def _finished(cfg: RunConfig, rec, wall: float, raw: float) -> None:
        """Store the record, pack it and learn from its wall time how far off the estimates are."""
        meta = store.save(rec)
        files = [(meta.with_suffix(".npz"), f"{cfg.budget}/{meta.stem}.npz"), (meta, f"{cfg.budget}/{meta.name}")]
        try:
            where = f"-> {packer.add(files).name}"
        except OutputFull as e:
            full[0], where = True, f"stored under {store.root}, NOT packed: {e}"
        size = int(1.2 * sum(path.stat().st_size for path, _ in files))
        record_bytes[0] = max(record_bytes[0], size) if done else size
        error[0] = max(error[0], MARGIN * wall / raw)
        done.append((cfg, rec, wall))
        print(f"done: {_name(cfg)} {rec.status} in {wall:.0f} s (estimated {raw:.0f} s), "
              f"{rec.summary['steps_done'] / wall:.0f} steps/s {where}", flush=True)

    for cfg, outcome in train_many(admit(), data, device=device, concurrent=args.concurrent, checkpoints=checkpoint,
                                   deadline=stop):
        began, raw, lock = started.pop(cfg)
        wall = time.monotonic() - began
        try:
            if isinstance(outcome, Exception):
                failed.append(cfg)
                print(f"FAILED: {_name(cfg)} after {wall:.0f} s:\n" + "".join(traceback.format_exception(outcome)),
                      file=sys.stderr, flush=True)
            elif outcome is None:
                unfinished.append(cfg)
                print(f"stopped at the limit: {_name(cfg)} after {wall:.0f} s (its checkpoint: {checkpoint(cfg)})",
                      flush=True)
            else:
                _finished(cfg, outcome, wall, raw)
        finally:
            lock.release()
    _summary(done, unfinished, failed, skipped, packer, device, time.monotonic() - start)
    return 1 if failed else 0


def _summary(done, unfinished, failed, skipped, packer: Packer, device: torch.device, wall: float) -> None:
    steps = sum(rec.summary["steps_done"] for _, rec, _ in done)
    train_s = sum(w for _, _, w in done)
    print(f"\nsummary: {len(done)} runs done, {len(unfinished)} stopped at the limit, {len(failed)} failed, "
          f"{len(skipped)} not started, in {wall:.0f} s")
    for cfg, rec, w in done:
        print(f"  {_name(cfg):32s} {rec.status:9s} {w:7.0f} s  {rec.summary['steps_done'] / w:7.0f} steps/s")
    if done:
        print(f"  training: {steps:,} steps in {train_s:.0f} s of runs ({steps / train_s:.0f} steps/s)")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        print(f"  GPU memory: peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB allocated, "
              f"{torch.cuda.max_memory_reserved(device) / 2**30:.1f} GiB reserved, of {total / 2**30:.0f} GiB")
    else:
        print("  GPU memory: no GPU")
    for i in range(len(packer.volumes)):
        print(f"  {packer.path(i)}: {packer.path(i).stat().st_size / 2**20:.1f} MiB, {len(packer.volumes[i]) // 2} "
              "records")
    print("unpack with: python -m bnrepro unpack " + str(packer.out), flush=True)


# --- unpacking ------------------------------------------------------------------------------------------------------

def check_record(name: str, meta_bytes: bytes, npz_bytes: bytes | None, store: RunStore) -> str | None:
    """What is wrong with the record packed as `name` (`<budget>/<file>.json`), or None: its JSON and config read
    back as written, its file name is the one its config's hash gives, its arrays load, its status and step counts
    agree."""
    try:
        meta = json.loads(meta_bytes)
        config, status, summary, _ = (meta[k] for k in ("config", "status", "summary", "env"))
        if RunConfig.from_dict(config).to_dict() != config:
            return "its config is not one this code writes (unknown or non-canonical fields)"
    except (ValueError, KeyError, TypeError) as e:
        return f"unreadable record ({type(e).__name__}: {e})"
    expected = store.path(config).relative_to(store.root).as_posix()
    if expected != name:
        return f"its config's hash gives the name {expected}"
    if npz_bytes is None:
        return "its arrays (.npz) are missing"
    try:
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        return f"its arrays do not load ({e})"
    n = summary.get("steps_done")
    if status not in ("completed", "diverged"):
        return f"status {status!r} is neither completed nor diverged"
    per_step = [k for k in ("train_loss", "train_acc") if k in arrays]  # a stored VGG record may keep one of them
    if not per_step:
        return "it holds no per-step training numbers (train_loss, train_acc)"
    if any(len(arrays[k]) != n for k in per_step):
        return f"steps_done {n} but " + " and ".join(f"{len(arrays[k])} values of {k}" for k in per_step)
    if status == "completed" and n != config["steps"]:
        return f"completed after {n} of {config['steps']} steps"
    if status == "diverged" and summary.get("diverged_at") != n:
        return f"diverged at {summary.get('diverged_at')} but {n} steps recorded"
    return None


def unpack(sources: Sequence[str | os.PathLike], store: RunStore, force: bool = False) -> int:
    """Check every record in the tar files at `sources` (files, or folders of `*.tar`) and copy the good ones into
    `store`; exit status 0, or 1 if any failed a check (named on stderr) or no tar file was found."""
    tars, missing = [], [str(s) for s in sources if not Path(s).exists()]
    if missing:
        print(f"error: {', '.join(missing)} does not exist: give the folder the window's --out files came back to",
              file=sys.stderr)
        return 1
    for src in map(Path, sources):
        tars += sorted(src.glob("*.tar")) if src.is_dir() else [src]
    if not tars:
        print(f"error: no .tar files at {', '.join(map(str, sources))}: give the folder the window's --out files "
              "came back to", file=sys.stderr)
        return 1
    bad = stored = kept = 0
    for path in tars:
        with tarfile.open(path) as tar:
            files = {m.name: m for m in tar.getmembers() if m.isfile()}
            for name in sorted(n for n in files if n.endswith(".json")):
                parts = PurePosixPath(name).parts
                npz = name[:-5] + ".npz"
                meta_bytes = tar.extractfile(files[name]).read()
                npz_bytes = tar.extractfile(files[npz]).read() if npz in files else None
                problem = "not <budget>/<file>.json" if len(parts) != 2 or ".." in parts else \
                    check_record(name, meta_bytes, npz_bytes, store)
                if problem:
                    bad += 1
                    print(f"FAILED {path.name}: {name}: {problem}", file=sys.stderr)
                    continue
                target = store.root / name
                if target.exists() and not force:
                    same = target.read_bytes() == meta_bytes and target.with_suffix(".npz").read_bytes() == npz_bytes
                    kept += 1
                    print(f"kept   {name}: " + ("already in the store" if same else
                                                "the store holds another record of it (--force replaces it)"))
                    continue
                _atomic_write(target.with_suffix(".npz"), lambda f: f.write(npz_bytes))
                _atomic_write(target, lambda f: f.write(meta_bytes))
                stored += 1
                summary = json.loads(meta_bytes)["summary"]
                print(f"stored {name}: {json.loads(meta_bytes)['status']}, {summary['steps_done']} steps, "
                      f"{summary['wall_time_s']:.0f} s")
    print(f"{stored} records stored under {store.root}, {kept} kept, {bad} failed a check")
    return 1 if bad else 0


# --- the commands ---------------------------------------------------------------------------------------------------

def add_parsers(sub) -> None:
    """The `window` and `unpack` subcommands."""
    w = sub.add_parser("window", help="train a budget's missing runs within a wall-time limit (a GPU window), "
                                      "packing each finished record into --out",
                       description=__doc__.split("\n\n")[1])
    w.add_argument("--limit-s", type=float, required=True, help="wall-time limit of the whole command, in seconds")
    w.add_argument("--out", required=True, help="folder for the packed records (at most 8 tar files of 16 MiB)")
    w.add_argument("--budget", default="paper", choices=BUDGET_NAMES, help="size preset (default: paper)")
    w.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, the first trained first (default: 0,1,2)")
    w.add_argument("--sections", default=None, help="comma-separated paper sections (default: every section)")
    w.add_argument("--data", default=None, help="CIFAR-10 location (default: $BNREPRO_DATA, or the budget's)")
    w.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    w.add_argument("--records", default=None, help="record store folder (default: $BNREPRO_RECORDS or ./records)")
    w.add_argument("--concurrent", type=int, default=1,
                   help="runs at once in this process, a CUDA stream each (default 1; more for networks too small "
                        "to fill the GPU)")
    w.add_argument("--measure-s", type=float, default=3.0,
                   help="seconds each step-time measurement takes (default 3)")
    w.add_argument("--skip-precisions", action="store_true", help="do not measure the step at each precision")
    w.add_argument("--evidence-precision", default=None, choices=[*PRECISIONS, "none"],
                   help="after the first seed's runs, train the VGG runs of Sections "
                        f"{' and '.join(EVIDENCE_SECTIONS)} at --evidence-budget in this precision, to be judged "
                        "beside their strict float32 records (default: the budget's precision where it is not "
                        "float32, else none)")
    w.add_argument("--evidence-budget", default=EVIDENCE_BUDGET, choices=BUDGET_NAMES,
                   help=f"the budget of the precision evidence (default: {EVIDENCE_BUDGET}, whose float32 records "
                        "a CPU makes)")
    u = sub.add_parser("unpack", help="check the records a window packed and copy them into the record store",
                       description="Check every record in the tar files (or folders of them) given: its file name "
                                   "is its config's hash, its arrays load, its status and steps agree; copy the "
                                   "good ones into the store. Exits 1 naming every record that failed a check.")
    u.add_argument("sources", nargs="+", help="tar files, or folders holding them (the window's --out)")
    u.add_argument("--records", default=None, help="record store folder (default: $BNREPRO_RECORDS or ./records)")
    u.add_argument("--force", action="store_true", help="replace records the store already holds")


def command(args: argparse.Namespace) -> int:
    """Run `window` or `unpack`; 2 on bad input (the message says what is wrong and how to fix it)."""
    try:
        if args.command == "unpack":
            return unpack(args.sources, RunStore(args.records), args.force)
        if args.limit_s <= RESERVE_S:
            raise ValueError(f"--limit-s must exceed the {RESERVE_S:g} s kept for packing, got {args.limit_s:g}")
        if args.concurrent < 1:
            raise ValueError(f"--concurrent must be at least 1, got {args.concurrent}")
        if not all(s.strip().isdigit() for s in args.seeds.split(",")):
            raise ValueError(f"--seeds takes comma-separated seeds, e.g. 0,1,2; got {args.seeds!r}")
        return window(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
