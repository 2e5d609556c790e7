"""Training: plain SGD at a fixed learning rate, with probes at chosen steps, divergence recording and resume.

VGG trains on CIFAR-10 minibatches (cross-entropy); the deep linear network trains by full-batch gradient descent
on its Gaussian regression task (summed squared error, which matches the paper's plotted loss scale of 1e3-1e5).
Probes run before the update of their step on the step's batch and never change the trajectory: with the same
seed, a run with probes and one without end bit-for-bit equal on the CPU. Weight norms (`weight_norms`) are read at
every step, between the backward pass and the update.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import NORMS, NoisyBatchNorm, build_model, dln_data
from .probes import ProbeContext
from .probes.activations import ActivationRecorder
from .probes.bn_theory import measure_bn_theory
from .probes.curvature import measure_curvature
from .probes.ics import measure_ics
from .probes.landscape import measure_landscape
from .probes.weight_norms import WeightNormRecorder
from .records import RunRecord, environment


DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: The arithmetic of a training step (`RunConfig.precision`): strict float32 (no TF32: float32 means float32, as on
#: a CPU), TF32 convolutions and matmuls (NVIDIA GPUs from Ampere on), or bf16 autocast of the forward pass (weights,
#: gradients and the update stay float32). Probes and evaluation always compute in strict float32.
PRECISIONS = {"float32": "strict float32", "tf32": "TF32 convolutions and matmuls", "bf16": "bf16 autocast"}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers. Its hash is the run's identity in the record store."""

    model: str = "vgg16"  # vgg11 | vgg13 | vgg16 | vgg19 | dln
    norm: str = "batch"  # none | batch | noisy | l1 | l2 | linf
    lr: float = 0.1
    steps: int = 15_000
    batch_size: int = 128  # VGG minibatch; the DLN always uses the full batch of dln_samples
    seed: int = 0
    width: float = 1.0  # channel multiplier of the VGG or ResNet
    budget: str = "custom"
    data: str = "cifar10"  # data kind: "cifar10" (any copy; the record names which) or "synthetic:N"
    augment: bool = False  # the paper trains without augmentation
    train_limit: int | None = None
    test_limit: int | None = None
    eval_every: int = 500
    probe_every: int = 100
    act_layers: tuple[int, ...] = ()
    ics_layers: tuple[int, ...] = ()
    ics_params: str = "weight"  # which parameters are "layer i" in Definition 2.1: weight | layer
    landscape_grid: tuple[float, ...] = ()  # step sizes as multiples of lr
    dln_samples: int = 1000
    # --- Fields added after records existed: `to_dict` leaves them out at their default, so older records keep
    # their identity (the config hash). Add new fields below this line, with a default that changes nothing. ---
    dtype: str = "float32"  # float32 | float64: the arithmetic of weights, data and probes
    dln_loss_scale: float = 1.0  # the DLN's loss is this times the summed squared error (see `dln_loss`)
    curvature_iters: int = 0  # curvature probe: at most this many Lanczos iterations (0: no curvature probe)
    curvature_tol: float = 1e-3  # Lanczos stops once the top eigenvalue changes by less than this, relatively
    curvature_every: int = 1  # the top eigenvalue at every k-th probe step only (the batch sharpness at every one)
    random_dirs: int = 0  # the landscape probe also along this many random directions
    weight_norms: bool = False  # record ||W||^2 and ||grad_W L||^2 of every layer's weight at every step
    bn_theory: bool = False  # probe Section 4's quantities in every BatchNorm layer (`probes.bn_theory`); norm="batch"
    precision: str = "float32"  # the training step's arithmetic (`PRECISIONS`); probes and evaluation: strict float32

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}: choose one of {', '.join(NORMS)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number, got {self.lr!r}")
        for name in ("steps", "batch_size", "eval_every", "probe_every", "curvature_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if not (self.dln_loss_scale > 0 and math.isfinite(self.dln_loss_scale)):
            raise ValueError(f"dln_loss_scale must be a positive number, got {self.dln_loss_scale!r}")
        for name in ("curvature_iters", "random_dirs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")
        if not (self.curvature_tol >= 0 and math.isfinite(self.curvature_tol)):
            raise ValueError(f"curvature_tol must be a finite number >= 0, got {self.curvature_tol!r}")
        if self.random_dirs and not self.landscape_grid:
            raise ValueError("random_dirs needs the landscape probe: give landscape_grid as well")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.precision != "float32" and self.dtype != "float32":
            raise ValueError(f"precision {self.precision!r} is an arithmetic for float32 weights, but dtype is "
                             f"{self.dtype!r}: use precision='float32' with dtype={self.dtype!r}")
        if self.bn_theory and self.norm != "batch":
            raise ValueError(f"bn_theory probes BatchNorm layers, but norm is {self.norm!r}: use norm='batch' or "
                             "bn_theory=False")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def is_dln(self) -> bool:
        return self.model == "dln"

    def to_dict(self) -> dict:
        """The config as JSON-ready values, without the later fields that are at their default (see above)."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {k: v for k, v in d.items() if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})

    def probe_steps(self) -> list[int]:
        return list(range(0, self.steps, self.probe_every))


_LATER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)
                   if f.name in ("dtype", "dln_loss_scale", "curvature_iters", "curvature_tol", "curvature_every",
                                 "random_dirs", "weight_norms", "bn_theory", "precision")}


def pick_device(device: str | None = None) -> torch.device:
    """`device`, or "auto"/None: CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def dln_loss(out: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """`scale` times the summed squared error ||W_k...W_1 x - A x||^2 over the whole data set.

    scale 1 is the book's reading (the paper's "sum"); gradient descent on scale*L at LR eta follows exactly the
    trajectory of L at LR scale*eta, with every loss multiplied by scale (see the setup appendix).
    """
    err = (out - target).pow(2).sum()
    return err if scale == 1 else scale * err


def initial_model(cfg: RunConfig, device: torch.device | str) -> nn.Module:
    """The run's network at step 0, in training mode, from the global random state (the trainer seeds it first)."""
    model = build_model(cfg.model, cfg.norm, cfg.width).to(device=device, dtype=cfg.torch_dtype)
    model.train()
    for m in model.modules():
        if isinstance(m, NoisyBatchNorm):
            m.noise_seed = cfg.seed
    return model


def loss_function(cfg: RunConfig):
    """The run's training loss: cross-entropy for VGG, the scaled summed squared error for the DLN."""
    return partial(dln_loss, scale=cfg.dln_loss_scale) if cfg.is_dln else F.cross_entropy


def dln_batch(cfg: RunConfig, seed: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """The DLN's full batch for a run of `seed`: its Gaussian regression data, in the run's dtype."""
    return tuple(t.to(device=device, dtype=cfg.torch_dtype) for t in dln_data(cfg.dln_samples, seed=seed))


@dataclass
class _State:
    """What a checkpoint holds besides the weights: everything recorded so far."""

    step: int = 0
    wall: float = 0.0
    losses: list = field(default_factory=list)
    accs: list = field(default_factory=list)
    evals: list = field(default_factory=list)  # (step, test_loss, test_acc)
    probes: dict = field(default_factory=dict)  # name -> list of tensors


@torch.no_grad()
def evaluate(model: nn.Module, data) -> tuple[float, float]:
    """Test loss and accuracy in evaluation mode (running statistics; noisy BN without noise)."""
    model.eval()
    total, loss, correct = 0, 0.0, 0
    dtype = next(model.parameters()).dtype
    for x, y in data.test_batches(1000):
        out = model(x.to(dtype))
        loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        total += len(y)
    model.train()
    return loss / total, correct / total


def _probe(cfg: RunConfig, ctx: ProbeContext, landscape_mode: str) -> dict[str, torch.Tensor]:
    out = {}
    if cfg.ics_layers:
        for k, v in measure_ics(ctx, cfg.ics_layers, cfg.ics_params).items():
            out[f"ics_{k}"] = v
    if cfg.curvature_iters:
        eigen = (ctx.step // cfg.probe_every) % cfg.curvature_every == 0
        for k, v in measure_curvature(ctx, cfg.curvature_iters, cfg.curvature_tol, eigen).items():
            out[f"curvature_{k}"] = v
    if cfg.landscape_grid:
        for k, v in measure_landscape(ctx, cfg.landscape_grid, landscape_mode, cfg.random_dirs).items():
            out[f"landscape_{k}"] = v
    if cfg.bn_theory:
        for k, v in measure_bn_theory(ctx).items():
            out[f"bn_theory_{k}"] = v
    return {k: v.detach().float().cpu() for k, v in out.items()}


def train(cfg: RunConfig, data=None, *, device: str | torch.device | None = None,
          checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
          progress: bool = False, landscape_mode: str = "auto", stop_after: int | None = None,
          deadline: float | None = None, cuda_graph: bool = True) -> RunRecord | None:
    """Train one run and return its record (status "completed" or "diverged").

    `data` is a `bnrepro.data.Cifar10` for VGG (ignored for the DLN). With `checkpoint`, the state is saved there
    every `checkpoint_every` steps and a run finding a checkpoint resumes from it; the file is removed at the end.
    `stop_after` ends the call after that many steps of this call, and `deadline` (a `time.monotonic()` time) at
    the first step that starts after it, leaving the checkpoint (for tests of resume, and time-limited jobs); it then
    returns None. On CUDA the training steps replay a CUDA graph where they can (`graph_obstacle`; `cuda_graph=False`
    trains eagerly), which computes what the eager steps compute.
    """
    device = pick_device(device)
    with device_settings(cfg.is_dln, device):
        return _finish(_run(cfg, data, device, checkpoint, checkpoint_every, progress, landscape_mode, stop_after,
                            deadline, cuda_graph))


def _finish(run):
    """Drive a run's step generator (`_run`) to its end; its record (None if it stopped early)."""
    try:
        while True:
            next(run)
    except StopIteration as end:
        return end.value


def train_many(configs: Iterable[RunConfig | None], data=None, *, device: str | torch.device | None = None,
               concurrent: int | None = None, checkpoints: Callable[[RunConfig], Path] | None = None,
               landscape_mode: str = "auto", deadline: float | None = None, cuda_graph: bool = True,
               ) -> Iterator[tuple[RunConfig, RunRecord | None | Exception]]:
    """Train several runs at once in this process, one step of each in turn; yield (config, outcome) as each run
    ends: its record, None if it stopped at `deadline` (see `train`), or the exception it raised.

    At most `concurrent` runs train at a time (default: all); the next config is taken from `configs` when a run
    ends, so `configs` may be a generator that decides then what to start (it may yield None: nothing to start
    now, ask again after the next round of steps; None while no run trains ends it). `checkpoints(cfg)` names a
    run's checkpoint file. On CUDA every run has its own stream, so small runs' kernels (and CUDA graphs) overlap on
    the GPU; on a CPU the records are bit for bit those of `train` called one run after another.
    """
    device = pick_device(device)
    queue, live, limit = iter(configs), [], concurrent or math.inf
    ended = False
    while True:
        while not ended and len(live) < limit:
            cfg = next(queue, _END)
            if cfg is _END or (cfg is None and not live):
                ended = True
            elif cfg is not None:
                live.append(_Live(cfg, data, device, checkpoints, landscape_mode, deadline, cuda_graph))
            else:
                break
        if not live:
            return
        for run in list(live):
            outcome = run.advance()
            if outcome is not _RUNNING:
                live.remove(run)
                yield run.cfg, outcome


_END, _RUNNING = object(), object()


class _Live:
    """One run of `train_many`: its step generator, its own view of the data (batch order cached per run) and, on
    CUDA, its own stream."""

    def __init__(self, cfg, data, device, checkpoints, landscape_mode, deadline, cuda_graph):
        if data is not None and hasattr(data, "_perm"):  # a Cifar10: its own cache of the epoch's batch order
            data = copy.copy(data)
            data._perm = (None, None)
        self.cfg, self.device = cfg, device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        if self.stream:  # the data (and whatever else is queued) is ready before the run's first kernel
            self.stream.wait_stream(torch.cuda.current_stream(device))
        self.steps = _run(cfg, data, device, checkpoints(cfg) if checkpoints else None, None, False,
                          landscape_mode, None, deadline, cuda_graph)

    def advance(self):
        """One step (the first call also sets the run up): _RUNNING, or the run's outcome once it ends."""
        with device_settings(self.cfg.is_dln, self.device), \
                (torch.cuda.stream(self.stream) if self.stream else nullcontext()):
            try:
                next(self.steps)
                return _RUNNING
            except StopIteration as end:
                return end.value
            except Exception as e:  # reported to the caller, which decides; the other runs go on
                return e


def step_time(cfg: RunConfig, data=None, *, device: str | torch.device | None = None, seconds: float = 2.0,
              min_steps: int = 5, max_steps: int = 2000, warmup: int = 3,
              cuda_graph: bool = True) -> tuple[float, int, str]:
    """Measure `cfg`'s training step as `train` takes it (same settings, precision, step path and per-step recorders:
    activation moments, weight norms; no probes and no evaluation): (seconds per step, steps timed, "CUDA graph" or
    "eager").

    After `warmup` steps (which include the CUDA graph's capture and cuDNN's autotuning), steps are timed until
    `seconds` have passed and at least `min_steps` (at most `max_steps`) were taken.
    """
    device = pick_device(device)
    total = warmup + max_steps + 1
    timed = dataclasses.replace(cfg, steps=total, probe_every=total, eval_every=total, ics_layers=(), landscape_grid=(),
                                random_dirs=0, curvature_iters=0, bn_theory=False)
    with device_settings(cfg.is_dln, device):
        run = _run(timed, data, device, None, None, False, "auto", None, None, cuda_graph)
        for _ in range(warmup):
            mode = next(run)
        _sync(device)
        t0, n = time.perf_counter(), 0
        while n < max_steps and (n < min_steps or time.perf_counter() - t0 < seconds):
            mode = next(run)
            n += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        run.close()
    return elapsed / n, n, mode


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def device_settings(is_dln: bool, device: torch.device):
    """The settings training runs under (timings of training steps use them too), restored on exit.

    On CUDA, TF32 is off: float32 means float32, as on the paper's 2018 GPUs and on a CPU (TF32's 10-bit mantissa
    would swamp the small gradient changes the landscape probe measures); a run whose `precision` is "tf32" turns it
    on for its training steps only (`step_arithmetic`). cuDNN autotunes its convolution algorithms (benchmark mode):
    it picks among kernels that compute the same convolution. Records name the settings (`environment`).
    """
    threads = torch.get_num_threads()
    tf32 = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # denormal floats slow CPU math ~30x once the DLN's gradients get tiny
        if is_dln:
            torch.set_num_threads(1)  # the DLN's 10-wide ops are too small for threads: 2 threads ran 6x slower
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.allow_tf32 = tf32[0]
        torch.set_float32_matmul_precision(tf32[1])
        torch.backends.cudnn.benchmark = tf32[2]


@contextmanager
def step_arithmetic(precision: str, device: torch.device):
    """The arithmetic of a training step's forward and backward pass: TF32 on for "tf32" (CUDA only), nothing for
    "float32" and "bf16" (whose autocast covers the forward pass alone, see `_forward`)."""
    if precision != "tf32":
        yield
        return
    check_precision(precision, device)
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


def check_precision(precision: str, device: torch.device) -> None:
    """Fail, saying why, where `device` lacks the arithmetic `precision` names (TF32 is CUDA's)."""
    if precision == "tf32" and device.type != "cuda":
        raise ValueError("precision 'tf32' is the TF32 arithmetic of NVIDIA GPUs (Ampere and later): train it on a "
                         "CUDA device, or use precision 'float32' or 'bf16' on a CPU")


def _forward(precision: str, device: torch.device):
    """The autocast of a training step's forward pass and loss: bf16 for "bf16" (without autocast's weight cache,
    which CUDA graphs cannot hold), none otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return nullcontext()


def graph_obstacle(cfg: RunConfig, device: torch.device) -> str | None:
    """Why `cfg`'s training steps cannot be captured as one CUDA graph on `device` (None: they can). Steps that keep
    activation quantiles (probe steps of a run with `act_layers`) always run eagerly."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if cfg.norm == "noisy":
        return ("noisy BatchNorm draws new noise at every step from a generator the host seeds with the step; a CUDA "
                "graph would replay the captured step's noise")
    return None


def _sgd_step(cfg: RunConfig, model, opt, loss_fn, x, y, device, observe, norms):
    """One training step on (x, y) in the run's precision: forward and loss (inside `observe`, the activation
    recorder's context), backward, the weight norms' row (before the update) and the plain SGD update. Returns the
    step's (loss, accuracy) on the device and the weight norms' row (None without `norms`)."""
    with step_arithmetic(cfg.precision, device):
        with observe, _forward(cfg.precision, device):
            out = model(x)
            loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        row = norms.row() if norms else None
        opt.step()
    acc = (out.argmax(1) == y).float().mean() if not cfg.is_dln else torch.zeros((), device=device)
    return torch.stack([loss.detach().float(), acc.detach()]), row


def _cuda_graph(step, device):
    """Capture `step()` as a CUDA graph: (replay, the step's outputs, which every replay overwrites)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = step()
    return graph.replay, outputs


class _GraphStep:
    """A run's training step captured once (`_cuda_graph`): each call copies the batch into the static inputs,
    replays the step and copies its numbers (loss, accuracy, activation moments, weight norms) out of the static
    outputs. The warm-up steps before the capture (cuDNN autotuning, lazy initialisation) are undone."""

    WARMUP = 3

    def __init__(self, cfg, model, opt, loss_fn, recorder, norms, x, y, device, capture):
        self.x = x.clone(memory_format=torch.channels_last if x.dim() == 4 else torch.contiguous_format)
        self.y = y.clone()
        self.recorder, self.norms = recorder, norms
        self.rows = (torch.zeros_like(recorder.moments[0]), torch.zeros_like(recorder.pre_moments[0])) \
            if recorder else None

        def step():
            observe = recorder.observe(0, keep_quantiles=False, rows=self.rows) if recorder else nullcontext()
            return _sgd_step(cfg, model, opt, loss_fn, self.x, self.y, device, observe, norms)

        saved = {k: v.clone() for k, v in model.state_dict().items()}
        try:
            side = torch.cuda.Stream(device) if device.type == "cuda" else None
            if side:
                side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side) if side else nullcontext():
                for _ in range(self.WARMUP):
                    step()
            if side:
                torch.cuda.current_stream(device).wait_stream(side)
            opt.zero_grad(set_to_none=True)
            self.replay, (self.stats, self.norm_row) = capture(step, device)
        finally:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    v.copy_(saved[k])
        self.grads = [p.grad for p in model.parameters()]  # the graph's gradient buffers, kept alive

    def __call__(self, x, y, step: int) -> torch.Tensor:
        self.x.copy_(x)
        self.y.copy_(y)
        self.replay()
        if self.rows:
            self.recorder.moments[step].copy_(self.rows[0])
            self.recorder.pre_moments[step].copy_(self.rows[1])
        if self.norms:
            self.norms.values[step].copy_(self.norm_row)
        return self.stats.clone()


class _Stepper:
    """How a run takes its training steps: replaying a CUDA graph where `graph_obstacle` allows it (captured at the
    first step that keeps no activation quantiles; steps that keep them run eagerly), else eagerly. `mode` names
    the path; where capture cannot work on CUDA it says why on stderr and trains eagerly."""

    def __init__(self, cfg, model, opt, loss_fn, recorder, norms, device, cuda_graph: bool):
        self.cfg, self.model, self.opt, self.loss_fn = cfg, model, opt, loss_fn
        self.recorder, self.norms, self.device = recorder, norms, device
        self.obstacle = graph_obstacle(cfg, device) if cuda_graph else "CUDA graphs turned off (cuda_graph=False)"
        self.graph = None
        if self.obstacle and device.type == "cuda":
            self._say(self.obstacle)

    @property
    def mode(self) -> str:
        return "eager" if self.obstacle else "CUDA graph"

    def _say(self, why: str) -> None:
        c = self.cfg
        print(f"{c.model} {c.norm} lr={c.lr:g} seed={c.seed}: training steps run eagerly: {why}", file=sys.stderr,
              flush=True)

    def __call__(self, x, y, step: int, quantiles: bool) -> torch.Tensor:
        """Take the step on (x, y); its (loss, accuracy) on the device."""
        if self.obstacle is None and not quantiles:
            if self.graph is None:
                try:
                    self.graph = _GraphStep(self.cfg, self.model, self.opt, self.loss_fn, self.recorder, self.norms,
                                            x, y, self.device, _cuda_graph)
                except RuntimeError as e:  # the state is restored: the eager step below is the run's step
                    self.obstacle = f"CUDA graph capture failed ({e})"
                    self._say(self.obstacle)
            if self.graph is not None:
                return self.graph(x, y, step)
        observe = self.recorder.observe(step, keep_quantiles=quantiles) if self.recorder else nullcontext()
        stats, row = _sgd_step(self.cfg, self.model, self.opt, self.loss_fn, x, y, self.device, observe, self.norms)
        if row is not None:
            self.norms.values[step] = row
        return stats


def _run(cfg, data, device, checkpoint, checkpoint_every, progress, landscape_mode, stop_after, deadline,
         cuda_graph):
    """A run as a generator: it sets the run up, yields its step path ("CUDA graph" or "eager") after every training
    step and returns its record (None if it stopped at `stop_after` or `deadline`, see `train`)."""
    if not cfg.is_dln and data is None:
        raise ValueError("a VGG run needs data: pass a bnrepro.data.Cifar10 (see bnrepro.data.load_cifar10)")
    check_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    model = initial_model(cfg, device)
    noisy = [m for m in model.modules() if isinstance(m, NoisyBatchNorm)]
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)  # plain SGD: no momentum, no weight decay
    if cfg.is_dln:
        dx, dy = dln_batch(cfg, cfg.seed, device)
    loss_fn = loss_function(cfg)
    recorder = ActivationRecorder(model, cfg.act_layers, cfg.steps, cfg.seed, device) if cfg.act_layers else None
    norms = WeightNormRecorder(model, cfg.steps, device) if cfg.weight_norms else None
    probe_steps = set(cfg.probe_steps())

    st = _State()
    env = environment(device)  # read before training: the code imported now is the code that runs
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        if saved["config"] != cfg.to_dict():
            raise ValueError(f"checkpoint {ckpt} belongs to another config; delete it or pass force")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optim"])
        st = _State(**{k: saved["state"][k] for k in ("step", "wall", "losses", "accs", "evals", "probes")})
        st.probes = {k: [t.cpu() for t in v] for k, v in st.probes.items()}  # probes keep their values on the CPU
        env = _resumed_env(saved.get("env", env), env)  # checkpoints older than this field hold no environment
        if norms:
            norms.values.copy_(saved["weight_norms"])
        if recorder:
            recorder.moments.copy_(saved["moments"])
            recorder.quantiles = list(saved["quantiles"])
            recorder.pre_moments.copy_(saved["pre_moments"])
            recorder.pre_quantiles = list(saved["pre_quantiles"])
    every = checkpoint_every or max(1, cfg.steps // 10)
    stepper = _Stepper(cfg, model, opt, loss_fn, recorder, norms, device, cuda_graph)
    env["train_precision"] = cfg.precision

    def save_checkpoint():
        env["train_step"] = stepper.mode
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"config": cfg.to_dict(), "env": env, "model": model.state_dict(), "optim": opt.state_dict(),
                    "state": dataclasses.asdict(st),
                    "moments": recorder.moments if recorder else None,
                    "quantiles": recorder.quantiles if recorder else [],
                    "pre_moments": recorder.pre_moments if recorder else None,
                    "pre_quantiles": recorder.pre_quantiles if recorder else [],
                    "weight_norms": norms.values if norms else None}, tmp)
        tmp.replace(ckpt)

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=st.step, disable=None if progress else True,
               desc=f"{cfg.model} {cfg.norm} lr={cfg.lr:g}", leave=False)
    diverged_at = None
    start_step, t0 = st.step, time.perf_counter()
    pending: list[torch.Tensor] = []  # per-step (loss, acc) kept on the device between syncs

    def flush() -> int | None:
        """Move pending per-step values to the host; return the first non-finite step, if any."""
        if not pending:
            return None
        vals = torch.stack(pending).cpu()
        first = len(st.losses)
        pending.clear()
        bad = (~torch.isfinite(vals[:, 0])).nonzero()
        n_ok = int(bad[0]) if len(bad) else len(vals)
        st.losses.extend(vals[:n_ok, 0].tolist())
        st.accs.extend(vals[:n_ok, 1].tolist())
        return first + n_ok if len(bad) else None

    step = st.step
    while step < cfg.steps:
        if (stop_after is not None and step - start_step >= stop_after) or \
                (deadline is not None and time.monotonic() >= deadline):
            break
        if cfg.is_dln:
            x, y = dx, dy
        else:
            x, y = data.batch(step, cfg.batch_size, cfg.seed, augment=cfg.augment)
            x = x.to(cfg.torch_dtype)
            if step % cfg.eval_every == 0:
                st.evals.append((step, *evaluate(model, data)))
        for m in noisy:
            m.noise_step = step
        if step in probe_steps:
            ctx = ProbeContext(model, x, y, loss_fn, cfg.lr, step, cfg.seed)
            for k, v in _probe(cfg, ctx, landscape_mode).items():
                st.probes.setdefault(k, []).append(v)
            st.probes.setdefault("probe_step", []).append(torch.tensor(step))
        pending.append(stepper(x, y, step, quantiles=recorder is not None and step in probe_steps))
        step += 1
        st.step = step
        if step % 50 == 0 or step == cfg.steps or step in probe_steps or (ckpt and step % every == 0):
            diverged_at = flush()
            if diverged_at is not None:
                break
            bar.update(step - bar.n)
        if ckpt and step % every == 0 and step < cfg.steps:
            st.wall += time.perf_counter() - t0
            t0 = time.perf_counter()
            save_checkpoint()
        yield stepper.mode
    if diverged_at is None:
        diverged_at = flush()
    bar.close()
    st.wall += time.perf_counter() - t0
    if diverged_at is None and step < cfg.steps:  # stopped early on request: keep the checkpoint
        if ckpt:
            save_checkpoint()
        return None
    if diverged_at is None and not cfg.is_dln:
        st.evals.append((cfg.steps, *evaluate(model, data)))
    if recorder:
        recorder.close()
    env["train_step"] = stepper.mode  # "eager" too if the CUDA graph's capture failed
    record = _make_record(cfg, st, recorder, norms, diverged_at, env, data)
    if ckpt:
        ckpt.unlink(missing_ok=True)
    return record


RESUME_KEYS = ("git_commit", "git_dirty_src", "device", "device_name", "torch", "cpu_model", "cpu_capability",
               "threads")


def _resumed_env(started: dict, now: dict) -> dict:
    """The environment of a resumed run: the one it started under, plus, under "resumed_under", the code and machine
    it finished under if they differ (commit, device, PyTorch, CPU and its arithmetic)."""
    env = dict(started)
    if (now["git_commit"], now["git_dirty_src"]) != (started["git_commit"], started["git_dirty_src"]):
        env["resumed_under"] = {"git_commit": now["git_commit"], "git_dirty_src": now["git_dirty_src"]}
    if now.get("device_name") != started.get("device_name"):
        env["resumed_under"] = {k: now.get(k) for k in RESUME_KEYS}
    return env


def _make_record(cfg, st: _State, recorder, norms, diverged_at, env: dict, data) -> RunRecord:
    n = len(st.losses)
    arrays: dict[str, np.ndarray] = {"train_loss": np.asarray(st.losses, np.float32)}
    if not cfg.is_dln:
        arrays["train_acc"] = np.asarray(st.accs, np.float32)
        ev = np.asarray(st.evals, np.float64).reshape(-1, 3)
        keep = ev[:, 0] <= n
        arrays["test_step"] = ev[keep, 0].astype(np.int32)
        arrays["test_loss"] = ev[keep, 1].astype(np.float32)
        arrays["test_acc"] = ev[keep, 2].astype(np.float32)
    if st.probes:
        steps = torch.stack(st.probes["probe_step"]).numpy()
        keep = steps < n
        arrays["probe_step"] = steps[keep].astype(np.int32)
        for k, vs in st.probes.items():
            if k != "probe_step":
                arrays[k] = torch.stack(vs).numpy()[keep]
    if norms:
        arrays["weight_sq_norm"] = norms.values[:n, 0].cpu().numpy()
        arrays["weight_grad_sq_norm"] = norms.values[:n, 1].cpu().numpy()
    if recorder:
        arrays["act_layers"] = np.asarray(recorder.layers, np.int32)
        arrays["act_units"] = np.asarray(recorder.units, np.int32)
        arrays["act_moments"] = recorder.moments[:n].cpu().numpy()
        q_steps = [s for s in cfg.probe_steps() if s < n]
        arrays["act_step"] = np.asarray(q_steps, np.int32)
        if recorder.quantiles:
            arrays["act_quantiles"] = torch.stack(recorder.quantiles[: len(q_steps)]).cpu().numpy()
        arrays["act_pre_moments"] = recorder.pre_moments[:n].cpu().numpy()
        if recorder.pre_quantiles:
            arrays["act_pre_quantiles"] = torch.stack(recorder.pre_quantiles[: len(q_steps)]).cpu().numpy()
    tail = max(1, n // 50)  # "final" training numbers: the mean over the last 2% of steps
    summary = {
        "steps_done": n,
        "diverged_at": diverged_at,
        "wall_time_s": round(st.wall, 2),
        "final_train_loss": float(np.mean(st.losses[-tail:])) if n else None,
    }
    if not cfg.is_dln:
        summary["final_train_acc"] = float(np.mean(st.accs[-tail:])) if n else None
        summary["final_test_acc"] = float(arrays["test_acc"][-1]) if len(arrays["test_acc"]) else None
        summary["data_source"] = data.source
        summary["data_fingerprint"] = data.fingerprint
    else:
        summary["data_source"] = f"Gaussian regression, {cfg.dln_samples} samples (seed {cfg.seed})"
    return RunRecord(cfg.to_dict(), env, "diverged" if diverged_at is not None else "completed",
                     summary, arrays)
