"""The book's runs: one run per (model, norm, learning rate, seed, budget) carries every probe the book needs.

Chapters ask for runs through `get_run`, which loads a stored record when one exists and trains (then stores)
otherwise, so chapters share runs instead of retraining. `book_configs` lists every run the book needs at a budget;
`bnrepro.distributed` computes the missing ones in parallel. `resolve_budget("best", ...)` picks the most faithful
budget that has every requested run recorded, which is how the published book shows the highest budget recorded.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass

from .budgets import BUDGET_ORDER, Budget, dln_home, get_budget
from .probes.landscape import DLN_GRID, VGG_GRID
from .records import RunRecord, RunStore, default_cache_dir
from .train import RunConfig, pick_device, train

# Layers the book's figures look at (the paper's numbering, 1-based).
VGG_ACT_LAYERS = (2, 3, 9, 11, 13)  # Figures 1c (3, 11), 2 and 8 (2, 9, 13), 6 (11)
VGG_ICS_LAYERS = (5, 10)  # Figure 3a
DLN_ACT_LAYERS = (1, 11, 24)  # Figure 9
DLN_ICS_LAYERS = (9, 17)  # Figure 3b
#: The DLN loss scale the chapters lead with: the loss is this times the summed squared error. Why 0.1 and not the
#: plain sum is measured in the book's appendix on the DLN (bnrepro.readings): with the plain sum the standard DLN
#: at the paper's LR 1e-6 trains at the edge of stability, where float rounding decides whether it diverges.
DLN_LOSS_SCALE = 0.1
#: Part IV's learning-rate sweep adds these to the paper's LRs (VGG 0.01, 0.1, 0.5; DLN 1e-7, 1e-6).
SWEEP_LRS = {"vgg": (0.02, 0.05, 0.2), "dln": (3e-7, 3e-6)}
#: The probes Part IV's runs carry besides the book's: curvature (batch sharpness at every probed step, the top
#: Hessian eigenvalue by Lanczos at every fourth), per-layer weight norms, the landscape along random directions.
PART4_PROBES = {"curvature_iters": 20, "curvature_every": 4, "weight_norms": True, "random_dirs": 3}


@dataclass(frozen=True)
class Spec:
    """A run the book needs, independent of budget and seed."""

    model: str  # "vgg" (the budget's VGG), "dln" or a ResNet name ("resnet20", at the budget's `resnet_width`)
    norm: str
    lr: float
    loss_scale: float = 1.0  # the DLN's loss is this times the summed squared error (`RunConfig.dln_loss_scale`)
    dtype: str = "float32"  # float64 reruns check that a verdict does not hang on float rounding


def _data_location(root: str | None, budget: Budget) -> str | None:
    """The argument, else BNREPRO_DATA, else the budget's default (None if there is none)."""
    return root or os.environ.get("BNREPRO_DATA") or budget.default_data


def data_root(root: str | None, budget: Budget) -> str:
    """The data location (see `_data_location`), or a clear error naming how to give one."""
    root = _data_location(root, budget)
    if not root:
        raise ValueError(
            f"the {budget.name!r} budget trains on CIFAR-10 but no data location was given: pass data=PATH "
            "(--data PATH) or set BNREPRO_DATA to a cifar-10-batches-py folder, an image-folder directory or "
            ".tar.gz (e.g. ../shared/data/cifar10-jpeg.tar.gz), or use data='synthetic'")
    return str(root)


def data_kind(root: str) -> str:
    return root if root.startswith("synthetic") else "cifar10"


def make_config(spec: Spec, budget: str | Budget, seed: int = 0, data: str = "cifar10",
                ics_params: str = "weight") -> RunConfig:
    """The full config of a book run at a budget: the budget's sizes and every probe."""
    b = get_budget(budget) if isinstance(budget, str) else budget
    if spec.model == "dln":
        return RunConfig(model="dln", norm=spec.norm, lr=spec.lr, steps=b.dln_steps, batch_size=b.dln_samples,
                         seed=seed, budget=dln_home(b), data="gaussian", eval_every=b.dln_steps,
                         probe_every=b.dln_probe_every, act_layers=DLN_ACT_LAYERS, ics_layers=DLN_ICS_LAYERS,
                         ics_params=ics_params, landscape_grid=DLN_GRID, dln_samples=b.dln_samples,
                         dln_loss_scale=spec.loss_scale, dtype=spec.dtype, **optional_probes(spec, seed))
    vgg = spec.model == "vgg"  # a ResNet trains like the VGG and carries the landscape probes only
    return RunConfig(model=b.vgg_arch if vgg else spec.model, norm=spec.norm, lr=spec.lr, steps=b.vgg_steps,
                     batch_size=b.vgg_batch_size, seed=seed, width=b.vgg_width if vgg else b.resnet_width,
                     budget=b.name, data=data, train_limit=b.train_limit, test_limit=b.test_limit,
                     eval_every=b.eval_every, probe_every=b.vgg_probe_every,
                     act_layers=VGG_ACT_LAYERS if vgg else (), ics_layers=VGG_ICS_LAYERS if vgg else (),
                     ics_params=ics_params, landscape_grid=VGG_GRID, dtype=spec.dtype, precision=b.precision,
                     **optional_probes(spec, seed))


def optional_probes(spec: Spec, seed: int) -> dict:
    """The costlier probes a book run carries besides activations, ICS and the landscape (see `bnrepro.costs`).

    Every DLN run: the curvature probe (batch sharpness at every probed step, the top Hessian eigenvalue at every
    fourth one), for its sharpness against 2/LR (appendix on the DLN). Section 4's probe, on the BatchNorm runs that
    Section 4 reads at the figures' seed 0: every DLN BatchNorm run, and VGG's at LR 0.1 at seed 0 only (its other
    seeds' records predate the probe and serve the other chapters as they are). Part IV's runs (the LR sweep's
    new learning rates and every ResNet run) carry `PART4_PROBES`; the paper's runs it reuses keep their records.
    """
    probes = {}
    if spec.norm == "batch" and (spec.model == "dln" or (spec.model == "vgg" and spec.lr == 0.1 and seed == 0)):
        probes["bn_theory"] = True
    if spec.model == "dln":
        probes |= {"curvature_iters": 20, "curvature_every": 4}
    if spec.model.startswith("resnet") or spec.lr in SWEEP_LRS.get(spec.model, ()):
        probes |= PART4_PROBES
    return probes


def book_specs(budget: str, sections: Sequence[str] | None = None) -> tuple[Spec, ...]:
    """The runs of every section of the book (of the budget's sections, when it names some; of those also in
    `sections`, when given), in book order."""
    from .sections import SECTIONS  # the sections import this module

    numbers = get_budget(budget).sections or tuple(SECTIONS)
    if sections is not None:
        unknown = [n for n in sections if n not in numbers]
        if unknown:
            raise ValueError(f"the {budget!r} budget has no section {', '.join(unknown)}: choose among "
                             f"{', '.join(numbers)}")
        numbers = tuple(n for n in numbers if n in sections)
    return tuple(dict.fromkeys(s for number in numbers for s in SECTIONS[number].specs))


def book_configs(budget: str, seeds: Sequence[int], data_kind: str,
                 sections: Sequence[str] | None = None) -> list[RunConfig]:
    """Every run the book needs at `budget` and `seeds` (seed-major), on data of `data_kind` ("cifar10" or
    "synthetic[:N]"): each section's runs at every seed (of `sections` only, when given), and each DLN run of the
    paper's sections also under the other loss-scale readings and, at seed 0, in float64 (what
    `readings.variants` judges)."""
    from .readings import DTYPES, READINGS, variant
    from .sections import SECTIONS

    paper = {s for section in SECTIONS.values() if section.variants for s in section.specs}
    out = []
    for seed in seeds:
        for spec in book_specs(budget, sections):
            out.append(make_config(spec, budget, seed, data_kind))
            if spec.model == "dln" and spec in paper:
                out += [make_config(variant(spec, c, d), budget, seed, data_kind) for c in READINGS for d in DTYPES
                        if (c, d) != (spec.loss_scale, spec.dtype) and (d == "float32" or seed == 0)]
    return list(dict.fromkeys(out))


_DATA_CACHE: dict = {}


def _load_data(root: str, cfg: RunConfig, device):
    from .data import load_cifar10

    key = (root, str(device), cfg.train_limit, cfg.test_limit)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # keep one data set in memory at a time
        _DATA_CACHE[key] = load_cifar10(root, device=device, train_limit=cfg.train_limit,
                                        test_limit=cfg.test_limit)
    return _DATA_CACHE[key]


def get_run(spec: Spec, budget: str, seed: int = 0, *, data: str | None = None, device: str | None = None,
            store: RunStore | None = None, force: bool = False, progress: bool = False) -> RunRecord:
    """The stored record of a book run, training and storing it first if it is missing (or if `force`)."""
    b = get_budget(budget)
    root = _data_location(data, b)
    kind = data_kind(str(root)) if root else "cifar10"  # stored CIFAR-10 runs load without the data at hand
    return get_or_train(make_config(spec, b, seed, kind), root, device=device, store=store, force=force,
                        progress=progress)


def get_or_train(cfg: RunConfig, root: str | None, *, device: str | None = None, store: RunStore | None = None,
                 force: bool = False, progress: bool = False) -> RunRecord:
    """Load `cfg`'s record, or train it on the data at `root` (resuming from a checkpoint) and store it.

    Training holds the record's lock (`RecordLock`): a run another process is computing is waited for and then
    loaded, not trained twice.
    """
    store = store or RunStore()
    if not force and (rec := store.load(cfg.to_dict())) is not None:
        return rec
    with RecordLock(store, cfg):
        if not force and (rec := store.load(cfg.to_dict())) is not None:  # stored while we waited
            return rec
        dev = pick_device(device)
        loaded = None if cfg.is_dln else _load_data(data_root(root, get_budget(cfg.budget)), cfg, dev)
        rec = train_run(cfg, loaded, dev, restart=force, progress=progress)
        store.save(rec)
    return rec


def train_run(cfg: RunConfig, data, device, *, restart: bool = False, progress: bool = False) -> RunRecord:
    """Train `cfg` on `data` (a `Cifar10` on `device`, None for the DLN) and return its record, storing nothing.

    The run checkpoints into the cache (`cache/checkpoints/`, named like its record) and resumes from a checkpoint
    it finds there; `restart` discards that checkpoint first. `get_or_train` and the workers of
    `bnrepro.distributed` both train through here.
    """
    ckpt = default_cache_dir() / "checkpoints" / f"{RunStore().path(cfg.to_dict(), '').name}.pt"
    if restart:
        ckpt.unlink(missing_ok=True)
    return train(cfg, data, device=device, checkpoint=ckpt, progress=progress)


class RecordLock:
    """The lock of one record: an exclusive `flock` on `<record>.lock` beside it, the file removed on release.

    Whoever holds it is the one process computing and saving that record; re-check the store after taking it.
    `with RecordLock(store, cfg):` waits for it.
    """

    def __init__(self, store: RunStore, cfg: RunConfig):
        self.path = store.path(cfg.to_dict(), ".lock")
        self._fd: int | None = None

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock (waiting for it if `wait`); False if another process holds it and `wait` is False."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the previous holder removed the file on release: lock the file that is there now
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RecordLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def resolve_budget(budget: str, specs: list[Spec], seeds: list[int], store: RunStore | None = None) -> str:
    """`budget` itself, or for "best" the most faithful budget with every (spec, seed) recorded on CIFAR-10.

    With nothing recorded, "best" falls back to "smoke", which trains in seconds.
    """
    if budget != "best":
        return get_budget(budget).name
    store = store or RunStore()
    for name in reversed(BUDGET_ORDER):
        if name == "smoke":
            continue
        if all(store.load(make_config(s, name, seed).to_dict()) is not None for s in specs for seed in seeds):
            return name
    return "smoke"
