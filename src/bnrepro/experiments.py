"""Computing a run: `get_or_train` loads a config's record or trains it on its data and stores it, under the
record's lock (`RecordLock`), so that a run is never computed twice; `train_run` trains one, resuming from its
checkpoint. `python -m bnrepro train` computes one run through here, and `bnrepro.distributed` (`book-runs`) every
run `bnrepro.plan` lists.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .budgets import get_budget
from .records import RunRecord, RunStore, default_cache_dir
from .specs import data_root, load_data
from .train import RunConfig, pick_device, train


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
        loaded = None if cfg.is_dln else load_data(data_root(root, get_budget(cfg.budget)), cfg, dev)
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
    `with RecordLock(store, cfg):` waits for it. The lock dies with its process: a killed process leaves only the
    empty file, which blocks nobody; the next process to take that lock removes it, and `remove_stale` removes every
    such file of a folder.
    """

    def __init__(self, store: RunStore | None = None, cfg: RunConfig | None = None, *, path: Path | None = None):
        """The lock of `cfg`'s record in `store`, or the lock file at `path`."""
        self.path = path or store.path(cfg.to_dict(), ".lock")
        self._fd: int | None = None

    @classmethod
    def remove_stale(cls, folder: Path) -> None:
        """Remove the lock files in `folder` that no live process holds (left by killed processes)."""
        for path in folder.glob("*.lock"):
            lock = cls(path=path)
            if lock.acquire(wait=False):
                lock.release()

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
