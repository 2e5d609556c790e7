"""Recorded runs: one JSON file (config, environment, status, summary) plus one `.npz` of arrays per run.

A run is identified by the hash of its canonical config, so asking again for the same config finds the stored
result. Writes are atomic (temporary file, then `os.replace`; the JSON, written last, marks a complete record),
and loading never unpickles anything (`json` and `np.load(allow_pickle=False)`).

The record format: `train` returns every array as measured; a stored record keeps each at the precision and the
sampling its readers need, and none that no reader reads (`FORMAT` says per array what it holds, on which runs and
why; `compact` applies it). `RunStore.save` stores that form, LZMA-compressed (`np.load` reads it as any `.npz`);
`python -m bnrepro compact-records` converts records stored before it, in place and idempotently. Readers accept
both forms: a record straight from `train` and a stored one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import bnrepro
from bnrepro.probes.weight_norms import gradient_growth, initial_grad_sq_norms, residuals

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


# --- The record format -------------------------------------------------------------------------------------------

POST, PRE = ("post",), ("pre",)
BOTH = POST + PRE
#: Whose followed units' activations are read, and where: (network, LR) -> normalisation -> (the points whose
#: moments are kept at every step, those whose quantiles are kept at every probe step); "post" is the output of the
#: unit's normalisation, "pre" its input (a standard network's two coincide: only "post" is stored, and read for
#: both). Section 2.1 reads VGG at LR 0.1, standard, BN and noisy BN (Figures 1c, 2 and 8; `unit_jump`,
#: `relative_drift`); Section 3.3 its l_p networks there too (Figure 6; `distribution_shift`, `non_gaussianity`);
#: Section 4 the DLN at LR 1e-6 (Figure 9's quantiles; the standard DLN's sigma_j, `unit_std`). Every other run
#: stores no activations: no figure or measure reads them.
ACTIVATIONS: dict[tuple[str, float], dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    ("vgg", 0.1): {"none": (POST, POST), "batch": (BOTH, BOTH), "noisy": (POST, POST), "l1": (BOTH, BOTH),
                   "l2": (BOTH, BOTH), "linf": (BOTH, BOTH)},
    ("dln", 1e-6): {"none": (POST, POST), "batch": ((), BOTH)},
}
#: The runs Section 4's probe (`bn_theory`) is read on: BN at the section's learning rates.
SECTION4_RUNS = {("vgg", 0.1), ("dln", 1e-6)}


def network(config: dict) -> str:
    """"vgg" for any VGG, else the config's model ("dln", "resnet20")."""
    return "vgg" if config["model"].startswith("vgg") else config["model"]


def _points(config: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(moment points, quantile points) a run's record keeps (`ACTIVATIONS`); none for a run not listed there."""
    return ACTIVATIONS.get((network(config), config["lr"]), {}).get(config["norm"], ((), ()))


def _activation(kind: int, point: tuple[str, ...]) -> Callable[[dict], bool]:
    """Whether a run keeps `point` of the activations' moments (`kind` 0) or quantiles (1); a standard network keeps
    its "pre" as its "post"."""
    return lambda c: point[0] in _points(c)[kind] and not (point == PRE and c["norm"] == "none")


@dataclass(frozen=True)
class Stored:
    """How a record stores one array: its dtype (None: not stored), what it holds, why (its readers), on which
    runs (a predicate of the config) and, for a float32 its readers read to a few digits, the significant bits its
    values are rounded to (None: all 24)."""

    dtype: str | None
    holds: str
    why: str
    on: Callable[[dict], bool] = lambda config: True
    bits: int | None = None


def round_significand(a: np.ndarray, bits: int) -> np.ndarray:
    """float32 `a` rounded to `bits` significant bits (of float32's 24), to nearest, ties to even; NaN and
    infinities unchanged. Idempotent and monotonic, so a median or quantile of the rounded values is the rounded
    one; the zeroed low bits let LZMA store the array in about a third of the bytes at `bits` = 8 (bfloat16's)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    drop = 24 - bits
    u = a.view(np.uint32).astype(np.uint64)
    u = ((u + (1 << (drop - 1)) - 1 + ((u >> drop) & 1)) >> drop) << drop
    return np.where(np.isfinite(a), u.astype(np.uint32).view(np.float32), a)


def _probed(holds: str, why: str, on: Callable[[dict], bool] = lambda config: True) -> Stored:
    return Stored("float32", holds + ", at every probe step", why + "; as measured", on)


#: Every array of a record (`train`'s, and those `compact` derives from them) and how it is stored.
FORMAT: dict[str, Stored] = {
    "train_loss": Stored("float32", "the training loss at every step",
                         "the DLN's full-batch loss is read at every step (Section 2.2's share of rising steps, the "
                         "loss curves of Section 3.3 and the DLN appendix, Part IV's `trains`); no reader reads the "
                         "VGG's or ResNet's minibatch loss (its final mean is the summary's), so they drop it",
                         lambda c: network(c) == "dln"),
    "train_acc": Stored("float32", "the minibatch accuracy at every step (VGG, ResNet)",
                        "smoothed into every training curve and steps-to-accuracy (Sections 2.1, 3.3, Part IV)"),
    "test_step": Stored("int32", "the evaluated steps", "the test curves' steps"),
    "test_loss": Stored("float32", "the test loss at each evaluated step", "kept beside the accuracy; as measured"),
    "test_acc": Stored("float32", "the test accuracy at each evaluated step", "test curves, final test accuracy"),
    "probe_step": Stored("int32", "the probed steps", "every probe's steps"),
    **{f"ics_{k}": _probed(f"Definition 2.1's ICS ({k}) per ICS layer", "Section 2.2") for k in ("l2", "cos")},
    **{f"landscape_{k}": _probed(f"the landscape along the gradient ({k})", "Sections 3.1, 3.3, 4 and Part IV")
       for k in ("loss", "loss0", "grad_diff", "beta", "eta", "grad_norm")},
    **{f"landscape_rand_{k}": _probed(f"the landscape along random directions ({k})", "Part IV.2")
       for k in ("loss", "grad_diff", "beta")},
    **{f"curvature_{k}": _probed(f"the curvature probe ({k})", "Part IV.1 and the DLN appendix")
       for k in ("sharpness", "eigenvalue", "change", "iters")},
    **{f"bn_theory_{k}": _probed(f"Section 4's quantities per BatchNorm {k}", "read by Section 4 on its BN runs "
                                 "(`SECTION4_RUNS`); the DLN's BN runs at other LRs carry the probe but drop it",
                                 lambda c: (network(c), c["lr"]) in SECTION4_RUNS) for k in ("unit", "layer")},
    "act_layers": Stored("int32", "the layers whose unit the activation probe follows", "every activation reader",
                         lambda c: any(_points(c))),
    "act_units": Stored("int32", "the followed unit of each layer", "the ridge plots' titles",
                        lambda c: any(_points(c))),
    "act_step": Stored("int32", "the steps with quantiles (the probe steps)", "the ridge plots and sliders",
                       lambda c: any(_points(c))),
    "act_moments": Stored("float32", "each followed unit's (mean, variance) after its normalisation, every step",
                          "read at every step (Figure 8, the jump, drift and shift measures): `ACTIVATIONS`",
                          _activation(0, POST)),
    "act_pre_moments": Stored("float32", "the same before the normalisation (the conv/linear output)",
                              "the drift and shift measures at the normalisation's input: `ACTIVATIONS`",
                              _activation(0, PRE)),
    "act_quantiles": Stored("float32", "65 quantiles of each followed unit after its normalisation, every probe "
                            "step", "the ridge plots (Figures 1c, 2, 6 and 9) and `non_gaussianity`: `ACTIVATIONS`",
                            _activation(1, POST)),
    "act_pre_quantiles": Stored("float32", "the same before the normalisation", "the ridge plots of the conv "
                                "output (Figures 1c and 9) and `non_gaussianity` there: `ACTIVATIONS`",
                                _activation(1, PRE)),
    "weight_sq_norm": Stored("float32", "||W_t||^2 of every layer's weight at every step (`train`: float64)",
                             "Part IV.1's effective learning rate LR/||W||^2, drawn for the VGG BN runs; the float64 "
                             "it is measured in serves the residual, computed before it is stored",
                             lambda c: network(c) == "vgg" and c["norm"] == "batch"),
    "weight_grad_sq_norm": Stored(None, "||grad_W L||^2 of every layer's weight at every step, float64 (`train`)",
                                  "not stored (2 MB a DLN run): its readers read the growth and step 0 below"),
    "weight_residual": Stored("float32", "the identity's residual, -cos(W_t, grad_W L_t), of every layer but the "
                              "output layer at every step but the last (`probes.weight_norms.residuals`)",
                              "Part IV.1's scale-invariance check and figure (medians of |cos|, shown to one digit, "
                              "against bounds 10x apart or more); computed in float64 from the norms, stored to 8 "
                              "significant bits (bfloat16's: 3 digits; 11 MB of the DLN records at 24 bits, 3.5 MB "
                              "at 8); the ResNet's is read by no one",
                              lambda c: network(c) in ("vgg", "dln"), bits=8),
    "weight_grad_growth": Stored("float32", "the first layer's weight-gradient norm over the last normalised "
                                 "layer's at every step (`probes.weight_norms.gradient_growth`)",
                                 "Part IV.2's growth figure and late growth"),
    "init_grad_sq_norm": Stored("float32", "||grad_W L||^2 of every layer at step 0, on the run's first batch",
                                "Part IV.2's gradients at initialisation and the layer count"),
}


def compact(config: dict, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a record stores (`FORMAT`): what its readers read of `arrays` (as `train` returns them, or as a
    record holds them), at their precision. An array `FORMAT` does not know is kept as it is. Idempotent."""
    rec = RunRecord(config, {}, "", {}, dict(arrays))
    if "weight_grad_sq_norm" in arrays:  # the float64 norms of `train`: what their readers read of them
        rec.arrays |= {"weight_residual": residuals(rec), "weight_grad_growth": gradient_growth(rec),
                       "init_grad_sq_norm": initial_grad_sq_norms(rec)}
    return {k: a if k not in FORMAT else _stored(FORMAT[k], a) for k, a in rec.arrays.items()
            if k not in FORMAT or (FORMAT[k].dtype is not None and FORMAT[k].on(config))}


def _stored(how: Stored, a: np.ndarray) -> np.ndarray:
    """`a` as `how` stores it: its dtype, rounded to its significant bits."""
    a = a.astype(how.dtype, copy=False)
    return a if how.bits is None else round_significand(a, how.bits)


def _write_arrays(f, arrays: Mapping[str, np.ndarray]) -> None:
    """`arrays` as an LZMA-compressed `.npz` with fixed timestamps, so that equal arrays make equal bytes."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_LZMA) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue(),
                       compress_type=zipfile.ZIP_LZMA)


def _is_compact(path: Path, config: dict, arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether the `.npz` at `path` holding `arrays` is stored as `RunStore.save` stores it."""
    with zipfile.ZipFile(path) as z:
        lzma = all(i.compress_type == zipfile.ZIP_LZMA for i in z.infolist())
    kept = compact(config, arrays)
    return lzma and kept.keys() == arrays.keys() and all(
        kept[k].dtype == arrays[k].dtype and np.array_equal(kept[k], arrays[k], equal_nan=True) for k in kept)


class RunStore:
    """Records under `root/<budget>/<model>-<norm>-lr<lr>-seed<seed>-<key>.{json,npz}`."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_records_dir()

    def path(self, config: dict, suffix: str = ".json") -> Path:
        extra = (f"-c{config['dln_loss_scale']:g}" if "dln_loss_scale" in config else "") + \
            (f"-{config['dtype']}" if "dtype" in config else "") + \
            (f"-{config['precision']}" if "precision" in config else "")  # later fields, present when not default
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
        """Store `record` in the record format (`compact`); its path."""
        arrays = compact(record.config, record.arrays)
        _atomic_write(self.path(record.config, ".npz"), lambda f: _write_arrays(f, arrays))
        meta = {"config": record.config, "env": record.env, "status": record.status, "summary": record.summary}
        _atomic_write(self.path(record.config), lambda f: f.write(json.dumps(meta, indent=1).encode()))
        return self.path(record.config)

    def compact_all(self, budget: str | None = None) -> list[tuple[Path, int, int]]:
        """Rewrite every stored record (of one budget, if given) that is not in the record format, in place (its
        `.npz` only; the JSON is unchanged): (path, bytes before, bytes after) of each one rewritten. Idempotent."""
        done = []
        for meta_path in sorted(self.root.glob(f"{budget}/*.json" if budget else "*/*.json")):
            rec = self.load(json.loads(meta_path.read_text())["config"])
            path = self.path(rec.config, ".npz")
            if not _is_compact(path, rec.config, rec.arrays):
                before = path.stat().st_size
                arrays = compact(rec.config, rec.arrays)
                _atomic_write(path, lambda f: _write_arrays(f, arrays))
                done.append((path, before, path.stat().st_size))
        return done

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
