"""Compute many runs at once: as Ray tasks on an embedded local Ray or on an existing cluster, or one after another.

`compute(configs, data)` computes the runs of `configs` that the record store lacks. With `workers=1` they train
one after another in this process (no Ray: for debugging). Otherwise each run is a Ray task taking one CPU (one
torch thread) or, on GPUs, a fraction of one: with an `address` (or Ray's `RAY_ADDRESS`) on that cluster, else on a
local Ray started for the call with every core (`workers` of them, if given), its files under `cache/ray/`.

Nothing needs a shared filesystem: the driver decodes CIFAR-10 once and puts the arrays in Ray's object store, the
workers rebuild the data set on their device and return each record, and the driver writes it to the store
(atomically) while holding the record's lock (`experiments.RecordLock`), so that two drivers never compute or
write one record twice. A task whose worker dies is run again (`MAX_RETRIES`), resuming from its checkpoint when it
lands on the same node; a run that raises is reported with its traceback while the others finish. `import bnrepro`
does not import Ray: only the Ray path does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .budgets import get_budget
from .data import Cifar10, load_cifar10
from .experiments import RecordLock, train_run
from .records import RunRecord, RunStore, default_cache_dir
from .specs import data_root, load_data, run_name
from .train import RunConfig, pick_device

MAX_RETRIES = 3  # a task whose worker process or node dies runs again up to this many times
GPUS_PER_RUN = 0.25  # default share of a GPU per run: four small runs share one device
# Ray's logs: each file is rotated at RAY_LOG_BYTES, keeping RAY_LOG_BACKUPS old ones (Ray's RAY_ROTATION_* variables
# override these); of the embedded Ray's session folders under cache/ray/ the newest RAY_SESSIONS_KEPT are kept.
RAY_LOG_BYTES = 16 * 2**20
RAY_LOG_BACKUPS = 2
RAY_SESSIONS_KEPT = 3
# On a busy machine Ray's helper processes can miss the raylet's start-up deadlines (15-30 s, fixed in Ray): the
# embedded Ray is started this many times before giving up (a second try finds their modules in the page cache).
RAY_START_ATTEMPTS = 3
# Ray's Unix sockets live in its session folder, cache/ray/session_<date>_<pid>/sockets/plasma_store, and a socket
# path may hold at most 107 bytes (103 on macOS): the folder of the sessions can have at most this many characters.
RAY_DIR_MAX_CHARS = (103 if sys.platform == "darwin" else 107) - len(
    "/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")


class RayStartError(RuntimeError):
    """The embedded local Ray did not start."""


@dataclass
class Failure:
    """A run that raised (or whose task Ray gave up on): its config and the traceback."""

    config: RunConfig
    error: str

    def report(self) -> str:
        return f"FAILED: {run_name(self.config)}\nconfig: {json.dumps(self.config.to_dict())}\n{self.error.rstrip()}"


def ray_dir() -> Path:
    """Where an embedded Ray keeps its session folders (logs, sockets, spilled objects): `cache/ray/`."""
    return (default_cache_dir() / "ray").resolve()


def compute(configs: Sequence[RunConfig], data: str | None = None, *, store: RunStore | None = None,
            force: bool = False, device: str = "auto", workers: int | None = None, address: str | None = None,
            gpus_per_run: float = GPUS_PER_RUN) -> list[Failure]:
    """Compute and store every run of `configs` the store lacks (every one if `force`); return the failed ones.

    `data`: the CIFAR-10 location for the VGG runs (else BNREPRO_DATA, else the budget's default). `workers=1`: one
    after another in this process, without Ray; otherwise Ray tasks on the cluster at `address` (else
    `RAY_ADDRESS`), or on an embedded local Ray with `workers` CPUs (default: every core). `device`: auto (the GPUs
    when there are any), cpu, or cuda; on GPUs each run takes `gpus_per_run` of one. Ctrl-C cancels the runs
    still going (KeyboardInterrupt propagates) and stores nothing partial.
    """
    store = store or RunStore()
    configs = list(dict.fromkeys(configs))
    todo = [c for c in configs if force or not store.path(c.to_dict()).exists()]
    roots = {c: data_root(data, get_budget(c.budget)) for c in todo if not c.is_dln}  # bad input fails here
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if not 0 < gpus_per_run <= 1:
        raise ValueError(f"--gpus-per-run must be in (0, 1], got {gpus_per_run}")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and workers not in (None, 1):
        raise ValueError("--workers sets the size of the embedded local Ray; a cluster (--address or RAY_ADDRESS) "
                         "has its own size: drop --workers, or use --workers 1 to run without Ray")
    print(f"{len(configs) - len(todo)} of {len(configs)} runs are stored under {store.root}; "
          f"computing {len(todo)}", flush=True)
    for budget in {c.budget for c in configs}:  # lock files of killed processes: harmless, but they look alive
        RecordLock.remove_stale(store.root / budget)
    if not todo:
        return []
    todo.sort(key=_work, reverse=True)
    runner = _Sequential(device) if workers == 1 else _Ray(address, workers, device, gpus_per_run)
    try:
        return _schedule(todo, roots, runner, store, force)
    finally:
        runner.close()


#: Multiply-accumulates per 32x32 image at width 1, in millions: what a CIFAR network's step costs, relatively.
MACS = {"vgg11": 153, "vgg13": 229, "vgg16": 314, "vgg19": 399, "resnet20": 41, "resnet32": 69, "resnet56": 125}

#: A step's cost with each normalization relative to none, for the CIFAR networks and the DLN: the cpu budget's seed-0
#: runs one after another on a 2-core Zen 3 (VGG none 18.8 s, BN 30.2, l_p 30.6, noisy 44.8 at a tenth of the steps;
#: DLN none 6.1 s, BN 13.0, l_p 21.7).
NORM_COST = {"cifar": {"none": 1.0, "batch": 1.6, "noisy": 2.4, "l1": 1.6, "l2": 1.6, "linf": 1.6},
             "dln": {"none": 1.0, "batch": 2.1, "l1": 3.6, "l2": 3.6, "linf": 3.6}}


def _work(cfg: RunConfig) -> tuple[bool, float]:
    """A sort key for the work of a run, largest first (so that the last runs to finish are short ones): CIFAR runs
    before the DLN's (10-wide layers), then steps x batch x the network's MACs x width^2 x its normalization's cost."""
    return (not cfg.is_dln, cfg.steps * cfg.batch_size * MACS.get(cfg.model, 1) * cfg.width**2
            * NORM_COST["dln" if cfg.is_dln else "cifar"].get(cfg.norm, 1.0))


def _schedule(todo: list[RunConfig], roots: dict, runner, store: RunStore, force: bool) -> list[Failure]:
    """Feed `runner` the runs of `todo` in order, at most `runner.slots()` at a time, each under its record's lock;
    store what comes back; report each run as it ends and the failures at the end."""
    from tqdm.auto import tqdm

    queue, running, failures = list(todo), {}, []
    bar = tqdm(total=len(todo), unit="run", desc="runs", disable=None, dynamic_ncols=True)

    def counts(waiting: int = 0) -> None:
        bar.set_postfix(running=len(running), failed=len(failures), **({"waiting": waiting} if waiting else {}))

    def finished(cfg: RunConfig, what: str) -> None:
        bar.update(1)
        counts()
        tqdm.write(f"{cfg.model:5s} {cfg.norm:6s} lr={cfg.lr:<6g} seed={cfg.seed} {what}  "
                   f"{store.path(cfg.to_dict(), '').name}", file=sys.stdout)

    try:
        while queue or running:
            slots, busy = runner.slots(), []
            while queue and len(running) < slots:
                cfg = queue.pop(0)
                lock = RecordLock(store, cfg)
                if not lock.acquire(wait=False):  # another process computes it: come back to it later
                    busy.append(cfg)
                elif not force and store.path(cfg.to_dict()).exists():  # it stored the run meanwhile
                    lock.release()
                    finished(cfg, "stored by another process")
                else:
                    running[cfg] = lock
                    runner.submit(cfg, roots.get(cfg), force)
            queue += busy
            counts(waiting=len(busy))  # runs that another process is computing
            if not running:
                time.sleep(1)  # only runs that other processes hold are left
                continue
            for cfg, result in runner.wait(timeout=1.0):
                lock = running.pop(cfg)
                try:
                    if isinstance(result, RunRecord):
                        store.save(result)
                        finished(cfg, f"{result.status:9s} {result.summary['wall_time_s']:8.1f}s")
                    else:
                        failures.append(Failure(cfg, result))
                        finished(cfg, "FAILED (traceback at the end)")
                finally:
                    lock.release()
    except BaseException:
        runner.cancel()
        raise
    finally:
        for lock in running.values():
            lock.release()
        bar.close()
    for f in failures:
        print(f.report(), file=sys.stderr, flush=True)
    return failures


class _Sequential:
    """One run after another in this process (`workers=1`): no Ray, for debugging."""

    def __init__(self, device: str):
        self.device = pick_device(device)
        self.queue: list[tuple[RunConfig, str | None, bool]] = []

    def slots(self) -> int:
        return 1

    def submit(self, cfg: RunConfig, root: str | None, restart: bool) -> None:
        self.queue.append((cfg, root, restart))

    def wait(self, timeout: float) -> list[tuple[RunConfig, RunRecord | str]]:
        """Train the next run (with a bar over its steps on a terminal); its record, or the traceback if it raised."""
        cfg, root, restart = self.queue.pop(0)
        try:
            data = None if cfg.is_dln else load_data(root, cfg, self.device)
            return [(cfg, train_run(cfg, data, self.device, restart=restart, progress=True))]
        except Exception:
            return [(cfg, traceback.format_exc())]

    def cancel(self) -> None:
        self.queue.clear()

    def close(self) -> None:
        pass


class _Ray:
    """Runs as Ray tasks: on the cluster at `address`, else on a local Ray started here and stopped by `close`."""

    def __init__(self, address: str | None, workers: int | None, device: str, gpus_per_run: float):
        try:
            import ray
        except ImportError:
            raise ValueError("running the runs in parallel needs Ray: pip install ray==2.60.0 (see "
                             "requirements.txt), or run them one after another without it (--workers 1)") from None
        self.ray = ray
        _start_ray(address, workers)
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            if device.startswith("cuda") and not gpus:
                raise ValueError(f"--device {device} but the Ray cluster has no GPU; use --device cpu or auto")
            self.gpus_per_run = gpus_per_run if gpus and device != "cpu" else 0
            self.device = "cuda" if self.gpus_per_run else "cpu"
            self.task = ray.remote(_train_task).options(num_cpus=1, num_gpus=self.gpus_per_run,
                                                        max_retries=MAX_RETRIES)
        except BaseException:
            ray.shutdown()
            raise
        self.data: dict[tuple, object] = {}  # (root, train_limit, test_limit) -> ObjectRef of the arrays
        self.pending: dict = {}  # ObjectRef of a task's record -> its config

    def slots(self) -> int:
        """How many runs the cluster runs at once: one per CPU, or per `gpus_per_run` of a GPU (and CPU)."""
        res = self.ray.cluster_resources()
        n = int(res.get("CPU", 0))
        if self.gpus_per_run:
            n = min(n, int(res.get("GPU", 0) / self.gpus_per_run + 1e-9))
        return max(n, 1)

    def submit(self, cfg: RunConfig, root: str | None, restart: bool) -> None:
        arrays = None
        if not cfg.is_dln:
            key = (root, cfg.train_limit, cfg.test_limit)
            if key not in self.data:
                self.data[key] = self.ray.put(_host_arrays(root, cfg))
            arrays = self.data[key]
        self.pending[self.task.remote(cfg, arrays, self.device, restart)] = cfg

    def wait(self, timeout: float) -> list[tuple[RunConfig, RunRecord | str]]:
        """The runs that ended within `timeout` seconds: each one's record, or the error with its traceback."""
        done, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        out = []
        for ref in done:
            cfg = self.pending.pop(ref)
            try:
                out.append((cfg, self.ray.get(ref)))
            except self.ray.exceptions.RayError as e:  # a RayTaskError's text holds the run's own traceback
                out.append((cfg, f"{type(e).__name__}: {e}"))
        return out

    def cancel(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()

    def close(self) -> None:
        self.ray.shutdown()


def _start_ray(address: str | None, workers: int | None) -> None:
    """Join the cluster at `address`, or start a local Ray with `workers` CPUs (default: every core) whose
    files go to `ray_dir()`, keeping its newest session folders only."""
    import ray

    os.environ.setdefault("RAY_ROTATION_MAX_BYTES", str(RAY_LOG_BYTES))
    os.environ.setdefault("RAY_ROTATION_BACKUP_COUNT", str(RAY_LOG_BACKUPS))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    root = ray_dir()
    if len(str(root)) > RAY_DIR_MAX_CHARS:
        raise ValueError(f"Ray's temporary folder {root} is too long for its Unix sockets (at most "
                         f"{RAY_DIR_MAX_CHARS} characters): set BNREPRO_CACHE to a shorter folder, or join a "
                         "cluster started with `ray start --head --temp-dir SHORT` (--address)")
    for attempt in range(1, RAY_START_ATTEMPTS + 1):
        _prune_sessions(root, RAY_SESSIONS_KEPT - 1)
        try:
            ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                     _temp_dir=str(root), logging_level=logging.WARNING)
            return
        except Exception as e:
            ray.shutdown()
            if attempt == RAY_START_ATTEMPTS:
                raise RayStartError(
                    f"the local Ray did not start in {attempt} attempts ({e}); its logs are under {root}. On a busy "
                    "machine, try again, or run without Ray (--workers 1)") from e
            print(f"the local Ray did not start ({e}); trying again", file=sys.stderr, flush=True)


def _prune_sessions(root: Path, keep: int) -> None:
    """Delete all but the `keep` newest of Ray's session folders under `root`."""
    sessions = sorted((p for p in root.glob("session_*") if p.is_dir() and not p.is_symlink()),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sessions[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _host_arrays(root: str, cfg: RunConfig) -> dict:
    """The data set of `cfg` decoded on the driver's CPU, as arrays for Ray's object store."""
    d = load_cifar10(root, train_limit=cfg.train_limit, test_limit=cfg.test_limit)
    return {"train_x": d.train_x.numpy(), "train_y": d.train_y.numpy(), "test_x": d.test_x.numpy(),
            "test_y": d.test_y.numpy(), "source": d.source, "fingerprint": d.fingerprint}


def _train_task(cfg: RunConfig, arrays: dict | None, device: str, restart: bool) -> RunRecord:
    """A Ray task: train one run with one torch thread on `device`, on the data rebuilt from `arrays`."""
    import torch

    torch.set_num_threads(1)
    dev = torch.device(device)
    data = None
    if arrays is not None:
        with warnings.catch_warnings():  # the object store's arrays are read-only; training only reads the data
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensors = [torch.from_numpy(arrays[k]).to(dev) for k in ("train_x", "train_y", "test_x", "test_y")]
        data = Cifar10(*tensors, arrays["source"], arrays["fingerprint"])
    return train_run(cfg, data, dev, restart=restart)
