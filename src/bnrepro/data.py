"""CIFAR-10 on the training device: load once, standardise, and serve reproducible batches.

Sources (`load_cifar10(root)`): torchvision's `cifar-10-batches-py` folder (canonical pixels), an image-folder
directory or tar archive (`[<top>/]train|test/<class>/*.jpg|png`, such as a JPEG re-encoding of CIFAR-10), or
`"synthetic[:N]"`, CIFAR-shaped data with learnable class structure for tests and smoke runs. Decoded uint8 arrays are
cached as .npz keyed by the source's sha256, so the slow decode happens once per source.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

HOW = ("set BNREPRO_DATA or pass --data PATH; expected a cifar-10-batches-py folder, an image-folder dir or "
       ".tar.gz with train|test/<class>/*.jpg, or 'synthetic'")
BATCHES = "cifar-10-batches-py"
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
SYNTHETIC_TRAIN = 2048
PAD = 4  # augmentation: random crop from a 4-pixel reflect-padded image


class DataError(ValueError):
    """A data location is missing, malformed or unsafe; the message says where we looked and how to fix it."""


def _seed(*parts) -> int:
    """A 63-bit generator seed that is a pure function of `parts` (the same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


@dataclass(eq=False)
class Cifar10:
    """Standardised CIFAR-10 tensors on one device, with batches that are pure functions of (seed, step)."""

    train_x: torch.Tensor  # float32 [N,3,32,32], standardised per channel with the full train set's mean/std
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # human-readable origin: the kind and file name, not the machine's path (records are shared)
    fingerprint: str  # identity of the data (content, sizes), not of its path
    _perm: tuple = field(default=(None, None), init=False, repr=False)  # ((seed, epoch), permutation on device)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def batch(self, step: int, batch_size: int, seed: int, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of `step`: epochs of len(train)//batch_size steps (last partial batch dropped), each a
        fresh permutation seeded by (seed, epoch), so any step can be replayed without the ones before it.
        augment=True adds a random horizontal flip and a random 32x32 crop of the 4-pixel reflect-padded image, done on
        the device for the whole batch, with randomness seeded by (seed, step). Off by default, as in the paper."""
        steps_per_epoch = len(self.train_y) // batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(self.train_y)} training images")
        epoch, i = divmod(step, steps_per_epoch)
        if self._perm[0] != (seed, epoch):
            gen = torch.Generator().manual_seed(_seed(seed, "epoch", epoch))
            self._perm = ((seed, epoch), torch.randperm(len(self.train_y), generator=gen).to(self.device))
        idx = self._perm[1][i * batch_size:(i + 1) * batch_size]
        x, y = self.train_x[idx], self.train_y[idx]
        return (_flip_crop(x, _seed(seed, "augment", step)) if augment else x), y

    def test_batches(self, batch_size: int = 1000) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole test set in order, in batches of at most `batch_size`."""
        for i in range(0, len(self.test_y), batch_size):
            yield self.test_x[i:i + batch_size], self.test_y[i:i + batch_size]


def _flip_crop(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Random horizontal flip and random crop with reflect padding, as one batched gather on x's device."""
    n, _, h, w = x.shape
    gen = torch.Generator().manual_seed(seed)
    dy, dx = torch.randint(0, 2 * PAD + 1, (2, n, 1), generator=gen).to(x.device)
    flip = torch.randint(0, 2, (n, 1), generator=gen, dtype=torch.bool).to(x.device)
    cols = torch.arange(w, device=x.device)
    rows = dy + torch.arange(h, device=x.device)  # [n,h]
    cols = dx + torch.where(flip, w - 1 - cols, cols)  # [n,w]; flipping reverses the columns read
    padded = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
    b = torch.arange(n, device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def load_cifar10(root: str | os.PathLike | None = None, *, device: str | torch.device = "cpu", download: bool = False,
                 cache_dir: str | os.PathLike | None = None, train_limit: int | None = None,
                 test_limit: int | None = None) -> Cifar10:
    """Load CIFAR-10 from `root` (else env BNREPRO_DATA) onto `device`.

    Decoded uint8 arrays are cached in `cache_dir`, else env BNREPRO_CACHE, else `<repo>/cache/data` when running from a
    source checkout (git-ignored), else `~/.cache/bnrepro`. `download=True` fetches the canonical python batches through
    torchvision when `root` holds none. Errors name the command line's options (--data, --download, BNREPRO_DATA). `train_limit`/`test_limit` keep the first N images of the standard order
    (class-balanced: see `_read_image_folder`); normalisation statistics always come from the full training set.
    """
    origin = ""
    if root is None:
        root, origin = os.environ.get("BNREPRO_DATA"), " (from env BNREPRO_DATA)"
        if not root:
            raise DataError(f"no data location: no --data given and BNREPRO_DATA is unset; {HOW}")
    root = str(root)
    if _is_synthetic(root):
        arrays, kind, fp, source = _synthetic(root)
    else:
        path = Path(root).expanduser().resolve()
        arrays, kind, fp, source = _load_source(path, origin, download, _cache_dir(cache_dir))
    train_x, train_y, test_x, test_y = arrays
    mean, std = _channel_stats(train_x)
    n_train, n_test = len(train_y[:train_limit]), len(test_y[:test_limit])
    fingerprint = f"{kind}:{fp}"
    if n_train < len(train_y) or n_test < len(test_y):
        fingerprint += f":train{n_train}:test{n_test}"
        source += f"; first {n_train} train / {n_test} test images"
    dev = torch.device(device)
    return Cifar10(_to_tensor(train_x[:n_train], mean, std, dev), torch.from_numpy(train_y[:n_train]).long().to(dev),
                   _to_tensor(test_x[:n_test], mean, std, dev), torch.from_numpy(test_y[:n_test]).long().to(dev),
                   source, fingerprint)


def check_location(root: str | os.PathLike, origin: str = "") -> None:
    """Fail as `load_cifar10(root)` would on a location that is missing or holds no CIFAR-10 layout (or on a bad
    synthetic spec), without reading any image; `origin` (e.g. " (from --data)") follows the path in the error."""
    root = str(root)
    if _is_synthetic(root):
        _synthetic_size(root)
    else:
        _layout(Path(root).expanduser().resolve(), origin, download=False)


def _is_synthetic(root: str) -> bool:
    return root == "synthetic" or root.startswith("synthetic:")


def _cache_dir(cache_dir) -> Path:
    """Where decoded arrays are cached (see load_cifar10)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("BNREPRO_CACHE"):
        return Path(os.environ["BNREPRO_CACHE"])
    repo = Path(__file__).resolve().parents[2]
    return repo / "cache" / "data" if (repo / "pyproject.toml").exists() else Path.home() / ".cache" / "bnrepro"


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean/std of uint8 NCHW images, from value histograms (no float copy of the data)."""
    t = torch.from_numpy(x)
    hist = np.stack([torch.bincount(t[:, c].flatten(), minlength=256).numpy() for c in range(3)]) / t[:, 0].numel()
    v = np.arange(256, dtype=np.float64)
    mean = hist @ v
    return mean, np.sqrt((hist * (v - mean[:, None]) ** 2).sum(1))


def _to_tensor(x: np.ndarray, mean: np.ndarray, std: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NCHW → standardised float32 on `device` (moved as uint8, converted there)."""
    scale, shift = (torch.tensor(a, dtype=torch.float32, device=device).view(1, 3, 1, 1) for a in (1 / std, mean / std))
    return torch.from_numpy(x).to(device).float().mul_(scale).sub_(shift)


def _synthetic_size(spec: str) -> int:
    """The training images of a synthetic spec ("synthetic" or "synthetic:N")."""
    try:
        n = int(spec.split(":", 1)[1]) if ":" in spec else SYNTHETIC_TRAIN
    except ValueError:
        raise DataError(f"bad synthetic spec {spec!r}: use 'synthetic' or 'synthetic:N' (N training images)") from None
    if n < 10:
        raise DataError(f"synthetic:{n} is too small: need at least 10 training images (one per class)")
    return n


def _synthetic(spec: str):
    """CIFAR-shaped uint8 images: a fixed smooth random template per class plus smooth and pixel noise, from a seeded
    numpy generator (identical on every machine). Labels cycle 0..9 so every prefix is class-balanced."""
    n = _synthetic_size(spec)
    rng = np.random.default_rng(0)

    def smooth(a):  # [n,c,k,k] noise → [n,c,32,32], bilinearly upsampled
        k = a.shape[-1]
        up = np.stack([np.interp(np.linspace(0, k - 1, 32), np.arange(k), e) for e in np.eye(k)], 1)  # [32,k]
        return up @ a @ up.T

    templates = smooth(rng.standard_normal((10, 3, 4, 4)))

    def images(m):
        y = np.arange(m) % 10
        x = 128 + 24 * templates[y] + 40 * smooth(rng.standard_normal((m, 3, 8, 8))) + 24 * rng.standard_normal(
            (m, 3, 32, 32))
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), y.astype(np.uint8)

    arrays = (*images(n), *images(n // 4))
    source = f"synthetic CIFAR-shaped data (seed 0, {n} train + {n // 4} test)"
    return arrays, "synthetic", f"seed0:n{n}+{n // 4}", source


def _layout(path: Path, origin: str, download: bool) -> str:
    """What `path` holds, without reading its images: "archive", BATCHES, "imagefolder", or "download" (nothing there
    and `download` asked for it); a DataError naming what is wrong otherwise."""
    batches = path if path.name == BATCHES else path / BATCHES
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if batches.is_dir():
        missing = [f for f in BATCH_FILES if not (batches / f).is_file()]
        if missing:
            raise DataError(f"{batches} lacks {', '.join(missing)}; re-download it (--download) or {HOW}")
        return BATCHES
    if path.is_dir() and _image_folder_base(path):
        return "imagefolder"
    if download and not path.is_file():
        return "download"
    if not path.exists():
        raise DataError(f"data location {path}{origin} does not exist; {HOW} (`train --download` fetches "
                        f"canonical CIFAR-10 through torchvision)")
    found = sorted(p.name for p in path.iterdir())[:10] if path.is_dir() else "a file of unknown type"
    raise DataError(f"data location {path}{origin} has no train/ and test/ folders and no {BATCHES} "
                    f"(found: {found}); {HOW}")


def _load_source(path: Path, origin: str, download: bool, cache_dir: Path):
    """Find what `path` holds, then return (arrays, kind, content fingerprint, description), decoding via the cache."""
    layout = _layout(path, origin, download)
    if layout == "download":
        return _download(path.parent if path.name == BATCHES else path, origin, cache_dir)
    if layout == "archive":
        kind, source, sha = "imagefolder", f"image-folder archive {path.name}", _sha_file(path)
        read = lambda: _read_tar(path)
    elif layout == BATCHES:
        files = [(path if path.name == BATCHES else path / BATCHES) / f for f in BATCH_FILES]
        kind, source, read = BATCHES, f"{BATCHES} (canonical CIFAR-10)", lambda: _read_batches(files)
        sha = _sha_items((f.name, f.read_bytes()) for f in files)
    else:
        entries = _scan_dir(_image_folder_base(path))
        kind, source, sha = "imagefolder", f"image-folder directory {path.name}", _sha_items(entries)
        read = lambda: _read_image_folder(entries, str(path))
    cache = cache_dir / f"{kind}-{sha[:20]}.npz"
    arrays, fp, jpeg = _read_cache(cache) if cache.exists() else (None, None, None)
    if arrays is None:
        arrays, jpeg = read()
        fp = _sha_items((str(i), a.tobytes()) for i, a in enumerate(arrays))[:16]
        _write_cache(cache, arrays, fp, jpeg)
    return arrays, kind, fp, source + (" (JPEG re-encoding)" if jpeg else "")


def _download(path: Path, origin: str, cache_dir: Path):
    """Fetch the canonical python batches into `path` with torchvision (an optional dependency), then load them."""
    try:
        import torchvision
    except ImportError:
        raise DataError(f"--download needs torchvision to fetch CIFAR-10 into {path}: pip install torchvision "
                        f"(or pip install 'bnrepro[download]'); or {HOW}") from None
    torchvision.datasets.CIFAR10(str(path), train=True, download=True)
    if not (path / BATCHES).is_dir():
        raise DataError(f"torchvision's download did not produce {path / BATCHES}; {HOW}")
    return _load_source(path, origin, False, cache_dir)


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha_items(items) -> str:
    """sha256 over (name, bytes) pairs, each length-prefixed so that boundaries cannot shift."""
    h = hashlib.sha256()
    for name, data in items:
        for part in (name.encode(), data):
            h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def _read_cache(path: Path):
    """(arrays, fingerprint, jpeg) from a cache file, or (None, None, None) when it is unreadable or malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = tuple(z[k] for k in ("train_x", "train_y", "test_x", "test_y"))
            fp, jpeg = str(z["fingerprint"]), bool(z["jpeg"])
        for x, y in (arrays[:2], arrays[2:]):
            if x.dtype != np.uint8 or x.shape[1:] != (3, 32, 32) or y.shape != (len(x),):
                raise ValueError(f"malformed arrays {x.dtype}{list(x.shape)}, labels {list(y.shape)}")
        return arrays, fp, jpeg
    except Exception as e:  # any damage (truncation, bad zip, missing keys) just means: decode again
        warnings.warn(f"ignoring unreadable data cache {path} ({e}); rebuilding it")
        return None, None, None


def _write_cache(path: Path, arrays, fp: str, jpeg: bool) -> None:
    """Write atomically (temp file in the same folder, then rename) so readers never see a partial cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **dict(zip(("train_x", "train_y", "test_x", "test_y"), arrays)), fingerprint=fp, jpeg=jpeg)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is ordinary data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_batches(files: list[Path]):
    """The official pickled python batches → uint8 NCHW, each read by `_BatchUnpickler` (no other global allowed)."""
    xs, ys = [], []
    for f in files:
        d = _unpickle_batch(f)
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[b"labels"], dtype=np.uint8))
    return (np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]), False


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what a `cifar-10-batches-py` file holds and nothing else: dicts, lists, str, bytes and ints need no
    global, and numpy arrays need exactly the globals in ALLOWED (numpy 1 and 2 name `_reconstruct` differently).
    Any other global (a function a crafted pickle would call, such as os.system) is refused before it is looked up."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")  # the files were written by Python 2: its str are bytes
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"{self.path} is not a CIFAR-10 python batch: its pickle asks for the global "
                            f"{module}.{name}, which that format never holds, and was refused without running it; "
                            f"delete the folder and re-download it (--download), or {HOW}")
        return super().find_class(module, name)


def _unpickle_batch(path: Path) -> dict:
    """One batch file as a dict with b"data" and b"labels" (see `_BatchUnpickler`)."""
    try:
        with open(path, "rb") as fh:
            d = _BatchUnpickler(fh, path).load()
    except (pickle.UnpicklingError, EOFError) as e:
        raise DataError(f"{path} is not a readable pickle ({e}); re-download it (--download) or {HOW}") from None
    if not (isinstance(d, dict) and b"data" in d and b"labels" in d):
        raise DataError(f"{path} is not a CIFAR-10 python batch (no b'data' and b'labels' entries); re-download it "
                        f"(--download) or {HOW}")
    return d


def _image_folder_base(path: Path) -> Path | None:
    """`path` or its single subfolder, whichever holds train/ and test/."""
    subdirs = [p for p in path.iterdir() if p.is_dir()]
    for base in [path] + (subdirs if len(subdirs) == 1 else []):
        if (base / "train").is_dir() and (base / "test").is_dir():
            return base
    return None


def _scan_dir(base: Path) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of the image files under base/train and base/test, sorted by path; class folders
    without images are listed with empty bytes so the layout check can name them."""
    entries = []
    for split in ("train", "test"):
        for d in sorted(p for p in (base / split).iterdir() if p.is_dir()):
            files = sorted(p for p in d.iterdir() if _is_image(p.name) and p.is_file())
            entries += [(f"{split}/{d.name}/{f.name}", f.read_bytes()) for f in files] or [(f"{split}/{d.name}/", b"")]
    return entries


def _is_image(name: str) -> bool:
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _read_tar(path: Path):
    """Read image members straight from the tar stream (nothing is extracted); unsafe members are refused."""
    entries = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                    raise DataError(f"refusing archive {path}: unsafe member {m.name!r} (absolute path, '..' or link); "
                                    f"rebuild the archive with relative paths only, or {HOW}")
                if m.isfile() and _is_image(p.name):
                    entries.append((str(p), tar.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot read archive {path}: {e}; {HOW}") from None
    tops = {PurePosixPath(n).parts[0] for n, _ in entries}
    if not tops & {"train", "test"} and len(tops) == 1:  # strip a single top-level folder
        entries = [("/".join(PurePosixPath(n).parts[1:]), b) for n, b in entries]
    return _read_image_folder(entries, str(path))


def _read_image_folder(entries: list[tuple[str, bytes]], where: str):
    """Decode `split/class/file` entries (an empty class folder may appear as `split/class/`) into uint8 NCHW arrays.

    Labels are the indices of the sorted class names. The standard order interleaves the classes: the first file (by
    name) of every class, then the second, and so on, so that any prefix (train_limit/test_limit) is class-balanced."""
    files = {"train": {}, "test": {}}  # split → class → [(file name, bytes)]
    for name, data in entries:
        parts, is_dir = PurePosixPath(name).parts, name.endswith("/")
        if len(parts) == (2 if is_dir else 3) and parts[0] in files:
            group = files[parts[0]].setdefault(parts[1], [])
            group += [] if is_dir else [(parts[2], data)]
    names = sorted(files["train"])
    for split, classes in files.items():
        found = sorted(classes)
        if not found:
            raise DataError(f"{where}: no {split}/<class>/ folders (expected [<top>/]train|test/<class>/*.jpg); {HOW}")
        if len(found) != 10 or found != names:
            raise DataError(f"{where}: {split}/ has {len(found)} classes {found}, expected the same 10 CIFAR-10 "
                            f"classes in train/ and test/; {HOW}")
        empty = [c for c in found if not classes[c]]
        if empty:
            raise DataError(f"{where}: {split}/{empty[0]}/ has no .jpg/.png images; {HOW}")
    arrays, jpeg = [], False
    for split, classes in files.items():
        order = sorted((rank, label, fname, data) for label, c in enumerate(names)
                       for rank, (fname, data) in enumerate(sorted(classes[c])))
        x = np.empty((len(order), 3, 32, 32), np.uint8)
        for i, (_, label, fname, data) in enumerate(order):
            x[i] = _decode(data, f"{where}: {split}/{names[label]}/{fname}")
            jpeg |= data[:2] == b"\xff\xd8"
        arrays += [x, np.array([o[1] for o in order], dtype=np.uint8)]
    return tuple(arrays), jpeg


def _decode(data: bytes, name: str) -> np.ndarray:
    """One image file → uint8 [3,32,32] RGB."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (32, 32):
                raise DataError(f"{name} is {im.size[0]}x{im.size[1]}, expected a 32x32 CIFAR-10 image")
            return np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot decode {name}: {e}") from None
