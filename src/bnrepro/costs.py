"""What the probes cost: one measurement against one training step, and for the landscape probe batched (vmap)
against the loop. Each function times one probe (`probe_cost`: the landscape, `ics_cost`, `curvature_cost`,
`random_dirs_cost`, `weight_norms_cost`) on a BatchNorm network at a budget's sizes.

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
from .models import build_model, dln_data
from .probes import ProbeContext
from .probes.curvature import measure_curvature
from .probes.bn_theory import measure_bn_theory
from .probes.ics import measure_ics
from .probes.landscape import DLN_GRID, VGG_GRID, measure_landscape, preferred_mode
from .probes.weight_norms import WeightNormRecorder
from .records import environment
from .specs import DLN_ICS_LAYERS, VGG_ICS_LAYERS
from .train import device_settings, dln_loss, pick_device


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


def _timed_against_step(model: str, budget: str, device: str | None, repeats: int,
                        probes: Callable[[ProbeContext, tuple[float, ...]], dict[str, Callable[[], object]]]
                        ) -> tuple[dict[str, float], str]:
    """Best-of-`repeats` times in ms of one training step ("step") and of each function `probes(ctx, grid)` makes
    on the budget's BatchNorm network, under training's CPU settings; and the device's name."""
    dev = pick_device(device)
    with device_settings(model == "dln", dev):
        ctx, grid = _context(model, budget, dev)
        t = time_calls({"step": _step_fn(ctx), **probes(ctx, grid)}, repeats, dev)
        name = environment(dev)["device_name"]
    return t, name


def probe_cost(model: str, budget: str, device: str | None = None, repeats: int = 5) -> dict[str, float | str]:
    """Time one training step (forward, backward, SGD update) and one landscape probe in each mode, for the budget's
    VGG (model="vgg") or the deep linear network ("dln") with BatchNorm; each time is the best of `repeats`.

    Returns `step_ms`, `loop_ms`, `vmap_ms` (NaN where vmap cannot run the model), `auto` (the mode training uses),
    `probe_ms` (that mode's time), `probe_per_step` (probe_ms / step_ms), `loop_per_vmap` (loop_ms / vmap_ms) and
    `device` (its name, as in the run records).
    """
    def probes(ctx: ProbeContext, grid: tuple[float, ...]) -> dict[str, Callable[[], object]]:
        fns = {"loop": lambda: measure_landscape(ctx, grid, "loop")}
        try:
            measure_landscape(ctx, grid, "vmap")
            fns["vmap"] = lambda: measure_landscape(ctx, grid, "vmap")
        except RuntimeError:
            pass
        return fns

    t, name = _timed_against_step(model, budget, device, repeats, probes)
    vmap_ms = t.get("vmap", float("nan"))
    auto = preferred_mode(pick_device(device)) if "vmap" in t else "loop"
    probe_ms = t[auto]
    return {"step_ms": t["step"], "loop_ms": t["loop"], "vmap_ms": vmap_ms, "auto": auto, "probe_ms": probe_ms,
            "probe_per_step": probe_ms / t["step"], "loop_per_vmap": t["loop"] / vmap_ms, "device": name}


def ics_cost(model: str, budget: str, device: str | None = None, repeats: int = 5) -> dict[str, float | str]:
    """Time one training step and one ICS measurement of the book's layers (5 and 10 for VGG, 9 and 17 for the
    DLN), for the budget's network with BatchNorm; best of `repeats`. Returns `step_ms`, `probe_ms`,
    `probe_per_step` and `device`."""
    layers = DLN_ICS_LAYERS if model == "dln" else VGG_ICS_LAYERS
    t, name = _timed_against_step(model, budget, device, repeats,
                                  lambda ctx, grid: {"probe": lambda: measure_ics(ctx, layers)})
    return {"step_ms": t["step"], "probe_ms": t["probe"], "probe_per_step": t["probe"] / t["step"], "device": name}


def curvature_cost(model: str, budget: str, device: str | None = None, repeats: int = 3,
                   iters: int = 20) -> dict[str, float | str]:
    """Time one training step, the curvature probe's batch sharpness alone (a probe step without the eigenvalue)
    and the sharpness with `iters` Lanczos iterations (no early stop), for the budget's network with BatchNorm;
    best of `repeats`. Returns `step_ms`, `sharpness_ms`, `eigen_ms`, `iter_ms` (one Lanczos iteration, from the
    difference), `sharpness_per_step`, `eigen_per_step` (the times over step_ms) and `device`."""
    t, name = _timed_against_step(model, budget, device, repeats, lambda ctx, grid: {
        "sharpness": lambda: measure_curvature(ctx, iters, eigen=False),
        "eigen": lambda: measure_curvature(ctx, iters, tol=0.0)})
    return {"step_ms": t["step"], "sharpness_ms": t["sharpness"], "eigen_ms": t["eigen"],
            "iter_ms": (t["eigen"] - t["sharpness"]) / iters, "sharpness_per_step": t["sharpness"] / t["step"],
            "eigen_per_step": t["eigen"] / t["step"], "device": name}


def random_dirs_cost(model: str, budget: str, device: str | None = None, repeats: int = 5,
                     dirs: int = 2) -> dict[str, float | str]:
    """Time one training step and the landscape probe (the mode training uses) without and with `dirs` random
    directions, for the budget's network with BatchNorm; best of `repeats`. Returns `step_ms`, `probe_ms` (with
    the directions), `dir_ms` (one direction, from the difference), `dir_per_step` (dir_ms / step_ms) and
    `device`."""
    t, name = _timed_against_step(model, budget, device, repeats, lambda ctx, grid: {
        "gradient": lambda: measure_landscape(ctx, grid),
        "probe": lambda: measure_landscape(ctx, grid, random_dirs=dirs)})
    dir_ms = (t["probe"] - t["gradient"]) / dirs
    return {"step_ms": t["step"], "probe_ms": t["probe"], "dir_ms": dir_ms, "dir_per_step": dir_ms / t["step"],
            "device": name}


def weight_norms_cost(model: str, budget: str, device: str | None = None,
                      repeats: int = 5) -> dict[str, float | str]:
    """Time one training step and one step's weight-norm recording (every layer's ||W||^2 and ||grad_W L||^2),
    for the budget's network with BatchNorm; best of `repeats`. Returns `step_ms`, `probe_ms`, `probe_per_step`
    and `device`."""
    def probes(ctx: ProbeContext, grid) -> dict[str, Callable[[], object]]:
        recorder = WeightNormRecorder(ctx.model, 1, ctx.inputs.device)
        return {"probe": lambda: recorder.record(0)}  # reads the .grad the timed steps leave

    t, name = _timed_against_step(model, budget, device, repeats, probes)
    return {"step_ms": t["step"], "probe_ms": t["probe"], "probe_per_step": t["probe"] / t["step"], "device": name}


def bn_theory_cost(model: str, budget: str, device: str | None = None, repeats: int = 5) -> dict[str, float | str]:
    """Time one training step and one Section 4 probe (`probes.bn_theory`, every BatchNorm layer) for the budget's
    network with BatchNorm; best of `repeats`. Returns `step_ms`, `probe_ms`, `probe_per_step` and `device`."""
    t, name = _timed_against_step(model, budget, device, repeats,
                                  lambda ctx, grid: {"probe": lambda: measure_bn_theory(ctx)})
    return {"step_ms": t["step"], "probe_ms": t["probe"], "probe_per_step": t["probe"] / t["step"], "device": name}
