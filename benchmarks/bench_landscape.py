"""Time the landscape probe's "loop" and "vmap" modes against each other and against one training step.

On the same model and batch, in one run: VGG-16 with and without BatchNorm (batch 128) and the paper's deep linear
network (25 layers, dim 10, 1000 samples, full batch). Each timing is the median of several repeats after a
warm-up; the three timed functions alternate within each repeat so background load hits them alike. The table
shows whether the mode that `measure_landscape(mode="auto")` picks is the faster one on each device.

    python benchmarks/bench_landscape.py [--device cpu|cuda] [--width W] [--batch B] [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
from typing import Callable

import torch
import torch.nn.functional as F

from bnrepro.costs import time_calls
from bnrepro.models import VGG, DeepLinearNet, dln_data
from bnrepro.probes import ProbeContext
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID, measure_landscape, preferred_mode
from bnrepro.train import dln_loss


def contexts(device: str, width: float, batch: int) -> list[tuple[str, ProbeContext, tuple[float, ...]]]:
    """(label, probe context, grid) for each benchmarked model, with the paper's learning rates."""
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    dx, dy = (t.to(device) for t in dln_data(n=1000, dim=10))
    out = []
    for norm in ("none", "batch"):
        model = VGG("vgg16", norm=norm, width=width).to(device).train()
        out.append((f"vgg16 w={width:g} b={batch} {norm}", ProbeContext(model, x, y, F.cross_entropy, 0.1, 0),
                    VGG_GRID))
    for norm in ("none", "batch"):
        model = DeepLinearNet(depth=25, dim=10, norm=norm).to(device).train()
        out.append((f"dln 25x10 n=1000 {norm}", ProbeContext(model, dx, dy, dln_loss, 1e-6, 0), DLN_GRID))
    return out


def train_step(ctx: ProbeContext) -> Callable[[], None]:
    """One forward+backward pass on a copy of the model (the cost of a training step, less the update)."""
    model = copy.deepcopy(ctx.model)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        ctx.loss_fn(model(ctx.inputs), ctx.targets).backward()

    return step


def vmap_runs(ctx: ProbeContext, grid: tuple[float, ...]) -> bool:
    try:
        measure_landscape(ctx, grid, mode="vmap")
    except RuntimeError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), help="default: every available device")
    ap.add_argument("--width", type=float, help="VGG width multiplier (default 1/8 on CPU, 1.0 on CUDA)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice); on a machine "
                    "shared with other jobs, 1 thread avoids timing the threads' waits for each other")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    head = f"{'device':6} {'model':28} {'step ms':>9} {'loop ms':>9} {'vmap ms':>9} {'loop/vmap':>9} " \
           f"{'loop/step':>9} {'auto':>5} {'faster':>6}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, median of {args.repeats} repeats")
    print(head)
    print("-" * len(head))
    for device in devices:
        width = args.width if args.width is not None else (1.0 if device == "cuda" else 1 / 8)
        for label, ctx, grid in contexts(device, width, args.batch):
            fns: dict[str, Callable[[], object]] = {
                "step": train_step(ctx), "loop": lambda: measure_landscape(ctx, grid, mode="loop")}
            if vmap_runs(ctx, grid):
                fns["vmap"] = lambda: measure_landscape(ctx, grid, mode="vmap")
            t = time_calls(fns, args.repeats, torch.device(device), statistics.median)  # ms
            vm = t.get("vmap", float("nan"))
            auto = preferred_mode(torch.device(device)) if "vmap" in t else "loop"
            faster = "vmap" if vm < t["loop"] else "loop"
            print(f"{device:6} {label:28} {t['step']:9.1f} {t['loop']:9.1f} {vm:9.1f} "
                  f"{t['loop'] / vm:9.2f} {t['loop'] / t['step']:9.2f} {auto:>5} {faster:>6}")


if __name__ == "__main__":
    main()
