"""Recorded runs: one JSON file (config, environment, status, summary) plus one `.npz` of arrays per run.

A run is identified by the hash of its canonical config, so asking again for the same config finds the stored
result. Writes are atomic (temporary file, then `os.replace`; the JSON, written last, marks a complete record),
and loading never unpickles anything (`json` and `np.load(allow_pickle=False)`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import bnrepro

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_records_dir() -> Path:
    """`BNREPRO_RECORDS`, else the checkout's `records/` (when running from a source tree), else `./records`."""
    env = os.environ.get("BNREPRO_RECORDS")
    if env:
        return Path(env)
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "records"
    return Path("records")


def default_cache_dir() -> Path:
    """`BNREPRO_CACHE`, else the checkout's `cache/` (git-ignored), else `~/.cache/bnrepro`."""
    env = os.environ.get("BNREPRO_CACHE")
    if env:
        return Path(env)
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "cache"
    return Path.home() / ".cache" / "bnrepro"


def config_key(config: dict) -> str:
    """A short stable hash of a config dict (sorted-key JSON)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def git_state() -> tuple[str | None, bool | None]:
    """(the checkout's commit, whether src/ has uncommitted changes); None where git cannot tell (no git, or a copy
    without .git that BNREPRO_GIT_COMMIT names)."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    if not commit and os.environ.get("BNREPRO_GIT_COMMIT"):  # a copy of the checkout without .git (a remote GPU)
        commit, dirty = os.environ["BNREPRO_GIT_COMMIT"], None
    return commit, dirty


def environment(device) -> dict:
    """What produced a run: package and library versions, git commit, device name."""
    import torch

    commit, dirty = git_state()
    dev = torch.device(device)
    env = {
        "bnrepro": bnrepro.__version__, "git_commit": commit, "git_dirty_src": dirty,
        "torch": str(torch.__version__), "numpy": np.__version__, "python": platform.python_version(),
        "device": str(dev),
    }
    if dev.type == "cuda":
        # TF32 rounds float32 convolutions/matmuls to a 10-bit mantissa on Ampere and later: part of what ran
        env.update(device_name=torch.cuda.get_device_name(dev), cudnn_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_precision=torch.get_float32_matmul_precision())
    else:
        n = torch.get_num_threads()
        env["device_name"] = f"CPU ({platform.machine()}, {n} thread{'s' if n != 1 else ''})"
    # The arithmetic: which vector kernels PyTorch picked (ATEN_CPU_CAPABILITY overrides it) and on how many
    # threads. Float results are bit-reproducible only on the same capability and thread count.
    env.update(cpu_model=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
               threads=torch.get_num_threads())
    return env


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux, else `platform.processor()`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; records are for every reader of the checkout
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class RunRecord:
    """A finished (or diverged) run: its config, environment, status, scalar summary and arrays."""

    config: dict
    env: dict
    status: str  # "completed" | "diverged"
    summary: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return config_key(self.config)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


class RunStore:
    """Records under `root/<budget>/<model>-<norm>-lr<lr>-seed<seed>-<key>.{json,npz}`."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_records_dir()

    def path(self, config: dict, suffix: str = ".json") -> Path:
        extra = (f"-c{config['dln_loss_scale']:g}" if "dln_loss_scale" in config else "") + \
            (f"-{config['dtype']}" if "dtype" in config else "")  # later fields, present only when not default
        slug = (f"{config['model']}-{config['norm']}-lr{config['lr']:g}{extra}-seed{config['seed']}-"
                f"{config_key(config)}")
        return self.root / config["budget"] / (slug + suffix)

    def load(self, config: dict) -> RunRecord | None:
        meta_path, arr_path = self.path(config), self.path(config, ".npz")
        if not meta_path.exists():
            return None
        meta = json.loads(meta_path.read_text())
        with np.load(arr_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return RunRecord(meta["config"], meta["env"], meta["status"], meta["summary"], arrays)

    def save(self, record: RunRecord) -> Path:
        _atomic_write(self.path(record.config, ".npz"), lambda f: np.savez_compressed(f, **record.arrays))
        meta = {"config": record.config, "env": record.env, "status": record.status, "summary": record.summary}
        _atomic_write(self.path(record.config), lambda f: f.write(json.dumps(meta, indent=1).encode()))
        return self.path(record.config)

    def all(self, budget: str | None = None) -> list[RunRecord]:
        """Every stored record (of one budget, if given), sorted by path."""
        pattern = f"{budget}/*.json" if budget else "*/*.json"
        out = []
        for meta_path in sorted(self.root.glob(pattern)):
            meta = json.loads(meta_path.read_text())
            rec = self.load(meta["config"])
            if rec is not None:
                out.append(rec)
        return out
