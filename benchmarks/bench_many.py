"""Several small runs at once in one process (`bnrepro.train.train_many`: one step of each in turn, a CUDA stream
each on a GPU) against the same runs one after another (`bnrepro.train.train`), on one device.

The runs are a budget's BatchNorm VGG run (default `cpu`: VGG-16 at 1/8 width, batch 128, its probes every 50
steps) at seeds 0..N-1, each cut to `--steps` steps (`--bare`: without probes or recorders, the training step
alone). A network this small leaves a GPU mostly idle between its kernels; on a CPU both legs use the same cores,
so the ratio is about 1 there.

    python benchmarks/bench_many.py [--device cpu|cuda] [--runs N] [--steps S] [--budget B] [--bare] [--data PATH]
                                    [--tiny]

`--tiny` runs 2 bare runs of 4 steps at the smoke budget on synthetic data: a check that it runs, on any device, in
seconds; its numbers mean nothing. Data: --data, else $BNREPRO_DATA, else the budget's default, else synthetic.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import torch

from bnrepro.budgets import BUDGET_NAMES, get_budget
from bnrepro.data import load_cifar10
from bnrepro.specs import Spec, make_config
from bnrepro.train import pick_device, train, train_many
from bnrepro.window import bare


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> tuple[float, object]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: CUDA when present)")
    p.add_argument("--runs", type=int, default=8, help="runs at once (default 8)")
    p.add_argument("--steps", type=int, default=500, help="steps of each run (default 500)")
    p.add_argument("--budget", default="cpu", choices=BUDGET_NAMES, help="the runs' budget (default cpu: 1/8 width)")
    p.add_argument("--bare", action="store_true", help="the runs without probes or recorders")
    p.add_argument("--data", default=None, help="CIFAR-10 location (default: $BNREPRO_DATA, else synthetic)")
    p.add_argument("--tiny", action="store_true",
                   help="2 bare runs of 4 steps at the smoke budget: checks that it runs")
    args = p.parse_args(argv)
    if args.tiny:
        args.runs, args.steps, args.budget, args.bare = 2, 4, "smoke", True
    device = pick_device(args.device)
    budget = get_budget(args.budget)
    root = args.data or os.environ.get("BNREPRO_DATA") or budget.default_data or "synthetic"
    if args.tiny:
        root = "synthetic:512"
    kind = root if root.startswith("synthetic") else "cifar10"
    configs = [dataclasses.replace(make_config(Spec("vgg", "batch", 0.1), budget, seed, kind), steps=args.steps)
               for seed in range(args.runs)]
    if args.bare:
        configs = [bare(c) for c in configs]
    c = configs[0]
    data = load_cifar10(root, device=device, train_limit=c.train_limit, test_limit=c.test_limit)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device} ({name}); data: {data.source}")
    print(f"{args.runs} runs of {c.model} x{c.width:g} + BatchNorm, batch {c.batch_size}, {args.steps} steps each "
          f"({'no probes' if args.bare else f'probes every {c.probe_every} steps, test accuracy every {c.eval_every}'}"
          f", precision {c.precision})", flush=True)
    train(dataclasses.replace(c, steps=min(3, c.steps)), data, device=device)  # warm-up: lazy initialisation
    one_by_one, recs = timed(lambda: [train(cfg, data, device=device) for cfg in configs], device)
    together, outcomes = timed(lambda: dict(train_many(configs, data, device=device)), device)
    failed = [cfg for cfg, out in outcomes.items() if isinstance(out, Exception)]
    if failed:
        sys.exit(f"{len(failed)} runs failed together: {outcomes[failed[0]]!r}")
    steps = args.runs * args.steps
    print(f"  one after another (train):           {one_by_one:8.2f} s  {steps / one_by_one:8.1f} steps/s in all")
    print(f"  at once in one process (train_many): {together:8.2f} s  {steps / together:8.1f} steps/s in all")
    print(f"  ratio one after another / at once: {one_by_one / together:.2f}", flush=True)


if __name__ == "__main__":
    main()
