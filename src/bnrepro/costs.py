"""What the probes cost: one measurement against one training step, and for the landscape probe batched (vmap)
against the loop.

Timed on the machine that calls it, at a budget's sizes and with the CPU settings training uses, so a chapter can
report it next to the runs; the timings differ between executions (a chapter glues them without displaying them).
benchmarks/bench_landscape.py prints the landscape comparison for every model and device at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .budgets import get_budget
from .experiments import DLN_ICS_LAYERS, VGG_ICS_LAYERS
from .models import build_model, dln_data
from .probes import ProbeContext
from .probes.bn_theory import measure_bn_theory
from .probes.ics import measure_ics
from .probes.landscape import DLN_GRID, VGG_GRID, measure_landscape, preferred_mode
from .records import environment
from .train import cpu_settings, dln_loss, pick_device


def _context(model: str, budget: str, device: torch.device) -> tuple[ProbeContext, tuple[float, ...]]:
    """A BatchNorm network of the budget's size at initialisation, on a batch like its training batches."""
    b = get_budget(budget)
    torch.manual_seed(0)
    if model == "dln":
        x, y = (t.to(device) for t in dln_data(b.dln_samples))
        net = build_model("dln", "batch").to(device).train()
        return ProbeContext(net, x, y, dln_loss, 1e-6, 0), DLN_GRID
    x = torch.randn(b.vgg_batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (b.vgg_batch_size,), device=device)
    net = build_model(b.vgg_arch, "batch", b.vgg_width).to(device).train()
    return ProbeContext(net, x, y, F.cross_entropy, 0.1, 0), VGG_GRID


def time_calls(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
               reduce: Callable[[list[float]], float] = min) -> dict[str, float]:
    """Wall time in ms of each function, `reduce`d over `repeats` calls (default: the best, least disturbed one)
    after a warm-up call; the functions alternate within a repeat so that background load hits them alike."""
    def timed(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return 1e3 * (time.perf_counter() - t)

    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(timed(fn))
    return {k: reduce(v) for k, v in samples.items()}


def _step_fn(ctx: ProbeContext) -> Callable[[], None]:
    opt = torch.optim.SGD(ctx.model.parameters(), lr=ctx.lr)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        ctx.loss_fn(ctx.model(ctx.inputs), ctx.targets).backward()
        opt.step()
    return step


def probe_cost(model: str, budget: str, device: str | None = None, repeats: int = 5) -> dict[str, float | str]:
    """Time one training step (forward, backward, SGD update) and one landscape probe in each mode, for the budget's
    VGG (model="vgg") or the deep linear network ("dln") with BatchNorm; each time is the best of `repeats`.

    Returns `step_ms`, `loop_ms`, `vmap_ms` (NaN where vmap cannot run the model), `auto` (the mode training uses),
    `probe_ms` (that mode's time), `probe_per_step` (probe_ms / step_ms), `loop_per_vmap` (loop_ms / vmap_ms) and
    `device` (its name, as in the run records).
    """
    dev = pick_device(device)
    with cpu_settings(model == "dln", dev):
        ctx, grid = _context(model, budget, dev)
        fns = {"step": _step_fn(ctx), "loop": lambda: measure_landscape(ctx, grid, "loop")}
        try:
            measure_landscape(ctx, grid, "vmap")
            fns["vmap"] = lambda: measure_landscape(ctx, grid, "vmap")
        except RuntimeError:
            pass
        t = time_calls(fns, repeats, dev)
        name = environment(dev)["device_name"]
    vmap_ms = t.get("vmap", float("nan"))
    auto = preferred_mode(dev) if "vmap" in t else "loop"
    probe_ms = t[auto]
    return {"step_ms": t["step"], "loop_ms": t["loop"], "vmap_ms": vmap_ms, "auto": auto, "probe_ms": probe_ms,
            "probe_per_step": probe_ms / t["step"], "loop_per_vmap": t["loop"] / vmap_ms, "device": name}


def ics_cost(model: str, budget: str, device: str | None = None, repeats: int = 5) -> dict[str, float | str]:
    """Time one training step and one ICS measurement of the book's layers (5 and 10 for VGG, 9 and 17 for the
    DLN), for the budget's network with BatchNorm; best of `repeats`. Returns `step_ms`, `probe_ms`,
    `probe_per_step` and `device`."""
    dev = pick_device(device)
    layers = DLN_ICS_LAYERS if model == "dln" else VGG_ICS_LAYERS
    with cpu_settings(model == "dln", dev):
        ctx, _ = _context(model, budget, dev)
        t = time_calls({"step": _step_fn(ctx), "probe": lambda: measure_ics(ctx, layers)}, repeats, dev)
        name = environment(dev)["device_name"]
    return {"step_ms": t["step"], "probe_ms": t["probe"], "probe_per_step": t["probe"] / t["step"], "device": name}


def bn_theory_cost(model: str, budget: str, device: str | None = None, repeats: int = 5) -> dict[str, float | str]:
    """Time one training step and one Section 4 probe (`probes.bn_theory`, every BatchNorm layer) for the budget's
    network with BatchNorm; best of `repeats`. Returns `step_ms`, `probe_ms`, `probe_per_step` and `device`."""
    dev = pick_device(device)
    with cpu_settings(model == "dln", dev):
        ctx, _ = _context(model, budget, dev)
        t = time_calls({"step": _step_fn(ctx), "probe": lambda: measure_bn_theory(ctx)}, repeats, dev)
        name = environment(dev)["device_name"]
    return {"step_ms": t["step"], "probe_ms": t["probe"], "probe_per_step": t["probe"] / t["step"], "device": name}
