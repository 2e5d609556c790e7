"""Command line: `python -m bnrepro train ...` (one run), `python -m bnrepro book-runs ...` (every book run, in
parallel through Ray) and `python -m bnrepro results` (the README's table of the paper's claims beside ours)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from . import plan, records, results, window
from .budgets import BUDGET_NAMES, get_budget
from .data import check_location, load_cifar10
from .distributed import GPUS_PER_RUN, RayStartError, compute
from .experiments import get_or_train
from .models import NORMS, RESNET_BLOCKS, VGG_CONFIGS
from .records import RunStore
from .specs import Spec, data_kind, make_config, run_name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bnrepro", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one run (or load its stored record) and print its summary",
                       description="Train one run at a budget, or load its stored record if it exists.")
    t.add_argument("--budget", default="cpu", choices=BUDGET_NAMES,
                   help="size preset from bnrepro.budgets (default: cpu): smoke = seconds on CPU, "
                        "cpu = narrow VGG on two cores, paper = the paper's setup for a GPU")
    t.add_argument("--model", default=None, choices=[*VGG_CONFIGS, *RESNET_BLOCKS, "dln"],
                   help="network: a VGG or a ResNet for CIFAR-10, or the 25-layer deep linear network (default: the "
                        "budget's VGG)")
    t.add_argument("--norm", default="batch", choices=NORMS,
                   help="normalisation after each conv/linear map: none, batch (BatchNorm), noisy (Algorithm 1), "
                        "l1, l2, linf (Section 3.3); default batch")
    t.add_argument("--lr", type=float, default=None,
                   help="fixed SGD learning rate (default: 0.1 for VGG, 1e-6 for the DLN, as in the paper)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default: the budget's)")
    t.add_argument("--seed", type=int, default=0, help="seed for initialisation, data order and noise (default 0)")
    t.add_argument("--data", default=None,
                   help="CIFAR-10 location: cifar-10-batches-py folder, image-folder dir or .tar.gz, or 'synthetic' "
                        "(default: $BNREPRO_DATA, or synthetic for the smoke budget)")
    t.add_argument("--download", action="store_true",
                   help="download CIFAR-10 through torchvision into --data if it is missing (needs internet)")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when present; default)")
    t.add_argument("--force", action="store_true", help="retrain even if a stored record exists")
    t.add_argument("--records", default=None, help="record store folder (default: $BNREPRO_RECORDS or ./records)")
    add_modified_option(t)

    r = sub.add_parser("book-runs", help="compute every run the book needs at a budget (stored ones are skipped)",
                       description="Compute every run the book's chapters need at a budget that is not stored yet, "
                                   "each as a Ray task: on a local Ray using every core, or on the cluster at "
                                   "--address / $RAY_ADDRESS. Exits 1 naming every run that failed.")
    r.add_argument("--budget", default="cpu", choices=BUDGET_NAMES, help="size preset (default: cpu)")
    r.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    r.add_argument("--sections", default=None,
                   help="comma-separated paper sections whose runs to compute, e.g. 2.2,3.3 (default: every section "
                        "of the budget)")
    r.add_argument("--data", default=None, help="CIFAR-10 location (default: $BNREPRO_DATA)")
    r.add_argument("--device", default="auto",
                   help="cpu, cuda or auto (default: the GPUs when the machine or cluster has any)")
    r.add_argument("--records", default=None, help="record store folder (default: $BNREPRO_RECORDS or ./records)")
    r.add_argument("--force", action="store_true", help="recompute runs that are stored")
    add_compute_options(r)

    s = sub.add_parser("results", help="the paper's headline claims beside ours, as a Markdown table from the records",
                       description="Print the README's results table, computed from the stored records (nothing "
                                   "is trained): each section at the most faithful budget that has recorded its "
                                   "first seed (as the book's `best` build), judged at each seed recorded there; or "
                                   "check or write the table between a file's results markers.")
    s.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2, as the seeds appendix)")
    out = s.add_mutually_exclusive_group()
    out.add_argument("--check", type=Path, metavar="FILE",
                     help="exit 1 with a diff when FILE's table (e.g. README.md) differs from the records")
    out.add_argument("--write", type=Path, metavar="FILE", help="replace the table between FILE's results markers")

    c = sub.add_parser("compact-records", help="convert stored records to the record format, in place",
                       description="Rewrite every stored record that is not in the record format (bnrepro.records: "
                                   "each array at the precision and sampling its readers need) in place, nothing "
                                   "retrained; records in it already are left as they are, so a second run changes "
                                   "nothing.")
    c.add_argument("--records", default=None, help="record store folder (default: $BNREPRO_RECORDS or ./records)")
    c.add_argument("--budget", default=None, choices=BUDGET_NAMES, help="only this budget's records (default: all)")
    window.add_parsers(sub)  # window, unpack
    return p


def add_modified_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-modified", action="store_true",
                   help="train records although src/ has uncommitted changes (refused otherwise at every budget but "
                        "smoke, so that each record names the commit that made it)")


def add_compute_options(p: argparse.ArgumentParser) -> None:
    """The options of `bnrepro.distributed.compute` and --allow-modified (shared with book/build.py)."""
    add_modified_option(p)

    p.add_argument("--workers", type=int, default=None,
                   help="runs at once on the local Ray this command starts (default: one per core); 1 trains one "
                        "after another in this process, without Ray (for debugging)")
    p.add_argument("--address", default=None,
                   help="join the Ray cluster at this address (e.g. HEAD:6379) instead of starting a local Ray "
                        "(default: $RAY_ADDRESS if set)")
    p.add_argument("--gpus-per-run", type=float, default=GPUS_PER_RUN,
                   help=f"share of a GPU each run takes when running on GPUs (default {GPUS_PER_RUN:g}: "
                        f"{round(1 / GPUS_PER_RUN)} runs per GPU)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("window", "unpack"):
        return window.command(args)
    if args.command == "results":
        try:
            if not all(x.strip().isdigit() for x in args.seeds.split(",")):
                raise ValueError(f"--seeds takes comma-separated seeds, e.g. 0,1,2; got {args.seeds!r}")
            return results.command([int(x) for x in args.seeds.split(",")], args.check, args.write)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.command == "compact-records":
        done = RunStore(args.records).compact_all(args.budget)
        before, after = (sum(d[i] for d in done) / 1e6 for i in (1, 2))
        print(f"compacted {len(done)} record(s): {before:.1f} MB -> {after:.1f} MB" if done else
              "every record is compact already")
        return 0
    store = RunStore(args.records)
    try:
        if args.command == "train":
            train_command(args, store)
        else:
            sections = args.sections.split(",") if args.sections else None
            return book_runs(args.budget, parse_seeds(args.seeds), args.data, store, args, force=args.force,
                             sections=sections)
    except ValueError as e:  # bad input: say what is wrong and how to fix it, without a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def train_command(args: argparse.Namespace, store) -> None:
    """`train`: load the run's stored record or train and store it; print its summary as JSON on stdout and on
    stderr which of the two it did."""
    budget = get_budget(args.budget)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be a positive number, got {args.lr:g}")
    check_device(args.device)
    data = given_data(args.data)
    if args.download:
        if not data:
            raise ValueError("--download needs --data PATH: the folder to download CIFAR-10 into")
        load_cifar10(data, download=True)
    model = args.model or "vgg"
    lr = args.lr if args.lr is not None else (1e-6 if model == "dln" else 0.1)
    root = "gaussian" if model == "dln" else data or budget.default_data
    kind = model if model == "dln" or model in RESNET_BLOCKS else "vgg"
    cfg = make_config(Spec(kind, args.norm, lr), budget, args.seed, data_kind(root) if root else "cifar10")
    if kind == "vgg" and args.model:
        cfg = dataclasses.replace(cfg, model=args.model)
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    path = store.path(cfg.to_dict())
    stored = not args.force and path.exists()
    if not stored:
        if not root:
            raise ValueError(f"the {budget.name} budget trains on CIFAR-10 and this run is not stored yet: pass "
                             f"--data PATH or set BNREPRO_DATA ({DATA_FORMS})")
        check_source(budget.name, args.allow_modified)
    rec = get_or_train(cfg, root, device=args.device, store=store, force=args.force, progress=True)
    if stored:
        print(f"loaded the stored record {path} (nothing trained; --force retrains it)", file=sys.stderr)
    else:
        print(f"trained the run ({rec.status}, {rec.summary['wall_time_s']:.1f} s) and stored {path}", file=sys.stderr)
    print(json.dumps({"record": str(path), "status": rec.status, **rec.summary}, indent=1))


DATA_FORMS = "a cifar-10-batches-py folder, an image-folder directory or .tar.gz, or 'synthetic'"
DEVICES = "cpu, cuda, cuda:N or auto"


def given_data(data: str | None) -> str | None:
    """The data location the command was given (--data, else BNREPRO_DATA; None if neither), checked as far as can
    be without reading it: an error names the option it came from."""
    origin = "--data" if data else "BNREPRO_DATA"
    data = data or os.environ.get("BNREPRO_DATA") or None
    if data:
        check_location(data, f" (from {origin})")
    return data


def check_device(device: str, local: bool = True) -> None:
    """A one-line error for a --device that is not one of DEVICES, or (when `local`, the device being this
    machine's) a CUDA device this machine lacks."""
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if device in ("auto", "cpu") or (m and not local):
        return
    if not m:
        raise ValueError(f"--device {device!r} is not a device: choose {DEVICES}")
    n = torch.cuda.device_count()
    if n == 0:
        raise ValueError(f"--device {device}: no CUDA device here; use --device cpu (or auto)")
    if m[1] is not None and int(m[1]) >= n:
        raise ValueError(f"--device {device}: this machine has {n} CUDA device{'s' if n > 1 else ''} (cuda:0"
                         + (f" to cuda:{n - 1})" if n > 1 else ")"))


def check_source(budget: str, allow_modified: bool) -> None:
    """Refuse to train records of `budget` (any but smoke, whose records are not committed) from a source tree with
    uncommitted changes, unless `allow_modified`: every committed record names the commit that made it."""
    if budget != "smoke" and not allow_modified and records.git_state()[1]:
        raise ValueError(f"src/ has uncommitted changes (git status -- src), and a {budget} record names the commit "
                         "that made it: commit them first, or pass --allow-modified to train anyway (the records "
                         "then name the commit as modified)")


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers such as 0,1,2, got {text!r}") from None


def book_runs(budget: str, seeds: list[int], data: str | None, store, args: argparse.Namespace,
              force: bool = False, sections: list[str] | None = None) -> int:
    """Compute the book's missing runs at `budget` (all of them if `force`) with the options of
    `add_compute_options` and `--device` in `args`; the exit status: 0, 1 if runs failed (named on stderr), 130 if
    interrupted. Bad input (no data where CIFAR-10 runs are missing, a bad --device, src/ modified) raises
    ValueError naming the option."""
    check_device(args.device, local=not (args.address or os.environ.get("RAY_ADDRESS")))
    root = given_data(data) or get_budget(budget).default_data
    configs = plan.book_configs(budget, seeds, data_kind(root) if root else "cifar10", sections)
    todo = [c for c in configs if force or not store.path(c.to_dict()).exists()]
    if any(not c.is_dln for c in todo) and not root:
        raise ValueError(f"the {budget} budget trains on CIFAR-10 and {sum(not c.is_dln for c in todo)} of its runs "
                         f"are not stored yet: pass --data PATH or set BNREPRO_DATA ({DATA_FORMS})")
    if todo:
        check_source(budget, args.allow_modified)
    try:
        failed = compute(configs, root, store=store, force=force, device=args.device, workers=args.workers,
                         address=args.address, gpus_per_run=args.gpus_per_run)
    except KeyboardInterrupt:
        print("interrupted: the runs still going were cancelled; finished runs are stored, and the same command "
              "resumes the others", file=sys.stderr)
        return 130
    except RayStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if failed:
        print(f"error: {len(failed)} of {len(configs)} runs failed (tracebacks above): "
              + "; ".join(run_name(f.config) for f in failed), file=sys.stderr)
        return 1
    return 0


def compute_missing(budget: str, seeds: Sequence[int], sections: Sequence[str] | None = None, data: str | None = None,
                    device: str = "auto", workers: int | None = None) -> None:
    """Compute what pages at `budget` and `seeds` showing `sections` (None: every section) lack, as `book-runs` does
    with its defaults (`--workers`: `workers`), `plan.to_compute` saying what: at "best", the smoke runs of the
    sections no budget has recorded. What a chapter runs first when its parameter `compute` is True. Bad input raises
    ValueError (as `book-runs` reports it); failed or interrupted runs raise RuntimeError."""
    target = plan.to_compute(budget, seeds, sections)
    if target is None:
        return
    argv = plan.book_runs_argv(target[0], seeds, target[1], data) + ["--device", device] + \
        (["--workers", str(workers)] if workers else [])
    args = _parser().parse_args(argv)
    status = book_runs(args.budget, parse_seeds(args.seeds), args.data, RunStore(args.records), args,
                       sections=target[1])
    if status:
        raise RuntimeError(f"`python -m bnrepro {shlex.join(argv)}` failed with exit status {status} (see above)")
