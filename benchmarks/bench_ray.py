"""Time a budget's book runs (seed 0; the cpu budget by default) one after another in one process, then through Ray
on the same machine, and print both wall times and their ratio.

    python benchmarks/bench_ray.py [--runs subset|seed] [--fraction F] [--budget B] [--data PATH] [--workers N]
                                   [--threads T]

`--runs subset` (the default) times four of Section 2.1's VGG runs (no BN and BN at LR 0.1 and 0.5) and two DLN runs
(no BN and BN at LR 1e-6): runs of unequal length, as in a book build, that split evenly over two workers, as a
build's dozens of runs do (with an odd number of equal runs the ratio would mostly measure one core idling through
the last run). `--runs seed` times every run of one seed of the book (what `book-runs --seeds 0` computes: 50 at the
cpu budget); `--fraction F` trains each run F of its steps with its probe schedule unchanged, so that the mix of
work stays the book's at a fraction of the time. The sequential leg is `book-runs --workers 1` (one process, on
torch's default thread count unless `--threads` says otherwise); the Ray leg is `book-runs` (a local Ray, one
single-threaded run per core, `--workers` of them). Each leg is timed whole (data loading, Ray's start and stop
included), with the decoded data already cached. Records go to temporary stores (nothing is written under records/).

Besides the ratio it prints its ceiling on this machine: the sequential wall time over the Ray runs' own time shared
evenly over the workers, which is what the ratio would be if Ray cost nothing and no worker waited at the end. The
ceiling is below `--workers` by how much slower a run is on one thread beside other runs than alone on torch's threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections import Counter

import torch

from bnrepro.budgets import BUDGET_ORDER, get_budget
from bnrepro.data import load_cifar10
from bnrepro.distributed import compute
from bnrepro.plan import book_configs
from bnrepro.records import RunStore
from bnrepro.specs import DLN_LOSS_SCALE, Spec, data_kind, data_root, make_config

SUBSET = (Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("vgg", "none", 0.5), Spec("vgg", "batch", 0.5),
          Spec("dln", "none", 1e-6, DLN_LOSS_SCALE), Spec("dln", "batch", 1e-6, DLN_LOSS_SCALE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", default="cpu", choices=BUDGET_ORDER, help="the runs' sizes (default: cpu)")
    ap.add_argument("--data", help="CIFAR-10 location (default: $BNREPRO_DATA, or the budget's default)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="Ray's runs at once (default: every core)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads of the sequential leg (default: torch's default, as book-runs --workers 1)")
    ap.add_argument("--runs", choices=("subset", "seed"), default="subset",
                    help="the six runs of SUBSET (default), or every run of seed 0 of the budget's book")
    ap.add_argument("--fraction", type=float, default=1.0,
                    help="train each run this fraction of its steps, probes as scheduled (default: 1, the budget's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.workers < 2:
        sys.exit("--workers must be at least 2: with 1 both legs would run one after another")
    if not 0 < args.fraction <= 1:
        sys.exit(f"--fraction must be in (0, 1], got {args.fraction}")
    try:
        root = data_root(args.data, get_budget(args.budget))
    except ValueError as e:
        sys.exit(f"error: {e}")
    kind = data_kind(root)
    if args.runs == "seed":
        configs = book_configs(args.budget, [0], kind)
    else:
        configs = [make_config(s, args.budget, 0, kind) for s in SUBSET]
    configs = [dataclasses.replace(c, steps=max(1, round(c.steps * args.fraction))) for c in configs]
    load_cifar10(root)  # decode once into the cache, outside the timings
    mix = Counter(f"{c.model} ({c.steps} steps)" for c in configs)
    print(f"{len(configs)} runs of the {args.budget} budget: {', '.join(f'{n} {m}' for m, n in mix.items())}; "
          f"{os.cpu_count()} cores, sequential leg on {torch.get_num_threads()} torch threads, Ray on "
          f"{args.workers} workers", flush=True)
    wall, runs = {}, {}  # per leg: its wall time, and the sum of its runs' own wall times (from their records)
    for leg, workers in (("sequential", 1), ("ray", args.workers)):
        with tempfile.TemporaryDirectory() as records:
            t0 = time.perf_counter()
            failed = compute(configs, root, store=RunStore(records), force=True, workers=workers, device="cpu")
            wall[leg] = time.perf_counter() - t0
            runs[leg] = sum(r.summary["wall_time_s"] for r in RunStore(records).all())
        if failed:
            sys.exit(f"{len(failed)} runs failed in the {leg} leg")
    # Ray's wall time is at least its runs' time shared evenly over the workers; at that bound it would have no start,
    # no data transfer and no worker idle at the end, so sequential wall / that share bounds the ratio on this machine.
    share = runs["ray"] / args.workers
    print(f"sequential: {wall['sequential']:.1f} s, its runs {runs['sequential']:.1f} s; ray: {wall['ray']:.1f} s, "
          f"its runs {runs['ray']:.1f} s over {args.workers} workers (each run {runs['ray'] / runs['sequential']:.2f}x "
          f"its sequential time, on one torch thread beside other runs)")
    print(f"ceiling {wall['sequential'] / share:.2f} (Ray with no overhead and no idle worker); "
          f"Ray reached {share / wall['ray']:.0%} of it")
    print(f"sequential {wall['sequential']:.1f} s, ray {wall['ray']:.1f} s: "
          f"ratio {wall['sequential'] / wall['ray']:.2f}")


if __name__ == "__main__":
    main()
