"""bnrepro.data: every source kind on tiny data the tests build, batching, augmentation, caching and safety checks;
the real CIFAR-10 archive only when ../shared/data has it (slow the first time, then cached)."""

import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import bnrepro.data as data
from bnrepro.data import Cifar10, DataError, load_cifar10

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
REAL = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"


def png(value: int, size: int = 32) -> bytes:
    """A constant-colour PNG (lossless, so its pixels identify it)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def tree(n_train=3, n_test=2, classes=CLASSES):
    """{relative path: bytes} of an image folder; pixel value = 20 * label + file index + 1 (test: + 10)."""
    files = {}
    for split, n, off in (("train", n_train, 1), ("test", n_test, 11)):
        for label in reversed(range(len(classes))):  # written out of order: labels must come from sorting
            for i in range(n):
                files[f"{split}/{classes[label]}/{i:04d}.png"] = png(20 * label + i + off)
    return files


def write_dir(root: Path, files: dict) -> Path:
    for rel, b in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b)
    return root


def write_tar(path: Path, files: dict, top: str | None = "cifar-tiny") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for rel, b in files.items():
            info = tarfile.TarInfo(f"{top}/{rel}" if top else rel)
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    return path


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


# ---------------------------------------------------------------- synthetic

def test_synthetic_shapes_determinism_and_class_structure():
    a, b = load_cifar10("synthetic"), load_cifar10("synthetic")
    assert a.train_x.shape == (2048, 3, 32, 32) and a.test_x.shape == (512, 3, 32, 32)
    assert a.train_x.dtype == torch.float32 and a.train_y.dtype == torch.int64
    assert set(a.train_y.tolist()) == set(a.test_y.tolist()) == set(range(10))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.fingerprint == b.fingerprint == "synthetic:seed0:n2048+512"
    assert a.train_x.mean((0, 2, 3)).abs().max() < 1e-4 and (a.train_x.std((0, 2, 3)) - 1).abs().max() < 1e-3
    means = torch.stack([a.train_x[a.train_y == c].mean(0) for c in range(10)]).flatten(1)
    assert torch.cdist(means, means)[~torch.eye(10, dtype=torch.bool)].min() > 5  # distinct class templates


def test_synthetic_size_and_limits_keep_preprocessing():
    full, lim = load_cifar10("synthetic:400"), load_cifar10("synthetic:400", train_limit=50, test_limit=20)
    assert len(full.train_y) == 400 and len(full.test_y) == 100
    assert torch.equal(lim.train_x, full.train_x[:50]) and torch.equal(lim.test_x, full.test_x[:20])
    assert lim.fingerprint == "synthetic:seed0:n400+100:train50:test20" and "first 50 train" in lim.source
    assert torch.bincount(lim.train_y).tolist() == [5] * 10  # prefixes are class-balanced
    with pytest.raises(DataError, match="synthetic:N"):
        load_cifar10("synthetic:many")


# ---------------------------------------------------------------- batches and augmentation

def indexed(n=100) -> Cifar10:
    """A dataset whose image i is filled with i, so a batch reveals its indices."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    return Cifar10(x, torch.arange(n) % 10, x[:30], torch.arange(30) % 10, "indexed", "indexed")


def test_batch_is_a_pure_function_of_seed_and_step():
    d = indexed()
    x, y = d.batch(7, 16, seed=3)
    d.batch(0, 16, seed=3), d.batch(99, 16, seed=4)  # other calls in between change nothing
    x2, y2 = indexed().batch(7, 16, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and x.shape == (16, 3, 32, 32)
    assert not torch.equal(x, d.batch(8, 16, seed=3)[0]) and not torch.equal(x, d.batch(7, 16, seed=4)[0])
    assert torch.equal(y, x[:, 0, 0, 0].long() % 10)  # labels travel with their images


def test_one_epoch_covers_every_index_once_and_epochs_differ():
    d = indexed(100)

    def epoch(e):
        return torch.cat([d.batch(e * 6 + s, 16, seed=0)[0][:, 0, 0, 0] for s in range(6)]).long()
    first, second = epoch(0), epoch(1)
    assert len(first) == 96 and len(set(first.tolist())) == 96  # 100 // 16 = 6 steps; the last 4 are dropped
    assert not torch.equal(first, second)


def test_augment_flips_and_crops_deterministically():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32)
    d = Cifar10(x, torch.arange(64) % 10, x[:8], torch.arange(8) % 10, "random", "random")
    plain, _ = d.batch(5, 32, seed=1)
    aug, _ = d.batch(5, 32, seed=1, augment=True)
    assert aug.device == d.device and aug.shape == plain.shape
    assert torch.equal(aug, d.batch(5, 32, seed=1, augment=True)[0])
    assert not torch.equal(aug, d.batch(6, 32, seed=1, augment=True)[0][:32])
    padded = F.pad(plain, (4, 4, 4, 4), mode="reflect")
    found = set()
    for i in range(32):  # every augmented image is a flip/crop of its original
        hits = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                if torch.equal(aug[i], (lambda c: c.flip(2) if f else c)(padded[i, :, dy:dy + 32, dx:dx + 32]))]
        assert hits, f"image {i} is not a flip/crop of its original"
        found.update(h[2] for h in hits)
    assert found == {0, 1} and not torch.equal(aug, plain)
    # augment=False: rows of the training set, unchanged
    assert all(any(torch.equal(plain[i], x[j]) for j in range(64)) for i in range(32))


def test_test_batches_cover_the_test_set_in_order():
    d = load_cifar10("synthetic:400")
    parts = list(d.test_batches(batch_size=30))
    assert [len(y) for _, y in parts] == [30, 30, 30, 10]
    assert torch.equal(torch.cat([x for x, _ in parts]), d.test_x) and d.device == torch.device("cpu")


# ---------------------------------------------------------------- image folders

def check_tiny(d: Cifar10, n_train=3, n_test=2):
    assert d.train_x.shape == (10 * n_train, 3, 32, 32) and d.test_x.shape == (10 * n_test, 3, 32, 32)
    assert d.train_y.tolist() == list(range(10)) * n_train  # sorted class names → 0..9, classes interleaved
    # pixels encode (label, file); standardisation is affine, so they correlate perfectly with the expected order
    expected = [20 * (k % 10) + k // 10 + 1 for k in range(10 * n_train)]
    assert np.corrcoef(d.train_x[:, 0, 0, 0].numpy(), expected)[0, 1] > 0.9999
    assert d.fingerprint.startswith("imagefolder:")


def test_image_folder_archive_reads_labels_and_caches(tmp_path, cache, monkeypatch):
    archive = write_tar(tmp_path / "tiny.tar.gz", tree())
    first = load_cifar10(archive, cache_dir=cache)
    check_tiny(first)
    assert first.source == f"image-folder archive {archive.name}"  # PNG: no JPEG note; no machine path
    assert len(list(cache.glob("*.npz"))) == 1

    def no_decode(*a):
        raise AssertionError("decoded again although the cache holds this archive")
    monkeypatch.setattr(data, "_decode", no_decode)
    second = load_cifar10(archive, cache_dir=cache)
    assert torch.equal(first.train_x, second.train_x) and first.fingerprint == second.fingerprint

    files = tree()
    files["train/cat/0000.png"] = png(250)
    write_tar(archive, files)  # new content → new checksum → a new cache entry, decoded afresh
    with pytest.raises(AssertionError, match="decoded again"):
        load_cifar10(archive, cache_dir=cache)


def test_image_folder_directory_and_jpeg(tmp_path, cache):
    d = load_cifar10(write_dir(tmp_path / "tiny", tree()), cache_dir=cache)
    check_tiny(d)
    assert d.fingerprint == load_cifar10(write_tar(tmp_path / "t.tar", tree(), top=None), cache_dir=cache).fingerprint
    files = tree(n_train=1, n_test=1)
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(buf, format="JPEG")
    files["train/dog/0000.png"] = buf.getvalue()  # decoded by content, whatever the suffix
    j = load_cifar10(write_dir(tmp_path / "jpeg" / "top", files), cache_dir=cache)  # a folder holding <top>/
    assert j.source.endswith("(JPEG re-encoding)") and len(j.train_y) == 10


@pytest.mark.parametrize("name", ["../evil.png", "{tmp}/evil.png"])
def test_archive_members_outside_the_target_are_refused(tmp_path, cache, name):
    files = tree(n_train=1, n_test=1)
    files[name.format(tmp=tmp_path)] = png(1)
    archive = write_tar(tmp_path / "bad.tar.gz", files, top=None)
    with tarfile.open(archive) as tar:
        assert name.format(tmp=tmp_path) in tar.getnames()  # the archive really holds the hostile name
    with pytest.raises(DataError, match="unsafe member"):
        load_cifar10(archive, cache_dir=cache)
    assert not (tmp_path.parent / "evil.png").exists() and not (tmp_path / "evil.png").exists()
    assert not cache.exists()


def test_wrong_layouts_name_the_problem(tmp_path, cache):
    with pytest.raises(DataError, match=r"has 9 classes"):
        load_cifar10(write_dir(tmp_path / "nine", tree(classes=CLASSES[:9])), cache_dir=cache)
    empty = write_dir(tmp_path / "empty", tree())
    for f in (empty / "test" / "frog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"test/frog/ has no"):
        load_cifar10(empty, cache_dir=cache)
    with pytest.raises(DataError, match=r"no train/ and test/"):
        load_cifar10(write_dir(tmp_path / "flat", {"a.png": png(1)}), cache_dir=cache)
    with pytest.raises(DataError, match=r"no train/<class>/"):
        load_cifar10(write_tar(tmp_path / "x.tar.gz", {"test/cat/0.png": png(1)}), cache_dir=cache)
    small = tree(n_train=1, n_test=1)
    small["train/cat/0000.png"] = png(1, size=16)
    with pytest.raises(DataError, match=r"train/cat/0000.png is 16x16"):
        load_cifar10(write_tar(tmp_path / "s.tar.gz", small), cache_dir=cache)


# ---------------------------------------------------------------- locating the data

def test_missing_root_and_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("BNREPRO_DATA", raising=False)
    with pytest.raises(DataError, match="BNREPRO_DATA is unset"):
        load_cifar10()
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="BNREPRO_DATA") as e:
        load_cifar10(missing)
    assert str(missing) in str(e.value) and "does not exist" in str(e.value)
    monkeypatch.setenv("BNREPRO_DATA", "synthetic:40")
    assert load_cifar10().fingerprint == "synthetic:seed0:n40+10"
    monkeypatch.setenv("BNREPRO_DATA", str(missing))
    with pytest.raises(DataError, match="from env BNREPRO_DATA"):
        load_cifar10()


def test_check_location_fails_as_loading_would_without_reading_images(tmp_path):
    """A missing path, a folder of neither layout, batches lacking files and a bad synthetic spec fail with the
    loader's messages (naming the origin it is given); a location of a known layout passes unread."""
    from bnrepro.data import check_location

    with pytest.raises(DataError, match=r"nowhere \(from --data\) does not exist.*--download"):
        check_location(tmp_path / "nowhere", " (from --data)")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train/ and test/ folders"):
        check_location(tmp_path / "empty")
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="lacks data_batch_1"):
        check_location(tmp_path)
    with pytest.raises(DataError, match="synthetic:3 is too small"):
        check_location("synthetic:3")
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")  # the layout is all it checks
    check_location(tmp_path / "broken.tar.gz")
    check_location("synthetic:40")
    for split in ("train", "test"):
        (tmp_path / "folder" / split).mkdir(parents=True)
    check_location(tmp_path / "folder")


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the official batches (protocol 2): str and bytes alike as Python 2's str
    opcodes (SHORT_)BINSTRING, which Python 3 reads back as bytes under encoding="bytes". (Python 3 itself pickles bytes
    at protocol 2 through the global _codecs.encode, which the real files never hold.)"""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + raw)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_py2_str


def py2_pickle(obj, numpy_module: str = "numpy.core.multiarray") -> bytes:
    """`obj` pickled as the official batch files are, naming numpy's array reconstructor under `numpy_module`
    (numpy 1, which wrote the real files, calls it numpy.core.multiarray; numpy 2 numpy._core.multiarray)."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", f"c{numpy_module}\n".encode())


def batch(rng, n: int, name: str) -> dict:
    """One batch in the official layout: n images as uint8 rows of 3072 (R, G, B planes), labels a list of ints."""
    return {b"batch_label": f"{name} of 6".encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def fake_batches(folder: Path, n=20) -> np.ndarray:
    """A tiny cifar-10-batches-py in the official file format: 5 train batches of n and a test batch of n; returns
    the train pixels NCHW."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    xs = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        b = batch(rng, n, name)
        (folder / name).write_bytes(py2_pickle(b))
        xs.append(b[b"data"])
    return np.concatenate(xs[:5]).reshape(-1, 3, 32, 32)


def test_cifar10_batches_py(tmp_path, cache):
    pixels = torch.from_numpy(fake_batches(tmp_path / "cifar-10-batches-py")).double()
    d = load_cifar10(tmp_path, cache_dir=cache)
    assert d.train_x.shape == (100, 3, 32, 32) and d.test_x.shape == (20, 3, 32, 32)
    mean, std = pixels.mean((0, 2, 3), keepdim=True), pixels.std((0, 2, 3), keepdim=True, unbiased=False)
    assert torch.allclose(d.train_x.double(), (pixels - mean) / std, atol=1e-5)  # CHW order, train-set statistics
    assert d.fingerprint.startswith("cifar-10-batches-py:") and "canonical" in d.source
    assert load_cifar10(tmp_path / "cifar-10-batches-py", cache_dir=cache).fingerprint == d.fingerprint


def test_batch_files_hold_only_numpy_globals():
    """The test's batch files have the official format: protocol 2, Python 2 strings, numpy's three globals only."""
    raw = py2_pickle(batch(np.random.default_rng(0), 3, "data_batch_1"))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops[0] == ("PROTO", 2) and ("SHORT_BINSTRING", "data") in ops
    globals_ = {a for o, a in ops if o == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_batch_unpickler_reads_numpy_1_and_2_arrays(tmp_path, numpy_module):
    b = batch(np.random.default_rng(0), 4, "test_batch")
    path = tmp_path / "test_batch"
    path.write_bytes(py2_pickle(b, numpy_module))
    back = data._unpickle_batch(path)
    assert back.keys() == b.keys() and back[b"labels"] == b[b"labels"] and back[b"filenames"] == b[b"filenames"]
    assert back[b"data"].dtype == np.uint8 and np.array_equal(back[b"data"], b[b"data"])


class Hostile:
    """Unpickles by calling `call(*args)`, as a crafted pickle would."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("make,refused", [
    (lambda marker: Hostile(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
    (lambda marker: Hostile(exec, f"open({str(marker)!r}, 'w').close()"), "exec"),
], ids=["os.system", "exec"])
def test_crafted_batch_file_is_refused_without_running_it(tmp_path, cache, make, refused):
    """A batch whose pickle would call a function (here: create a marker file) is refused, naming the file and the
    global, and the function never runs; a plain pickle.load of the same bytes would run it."""
    fake_batches(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    hostile = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    hostile.write_bytes(py2_pickle({b"labels": [0], b"data": make(marker)}))
    with pytest.raises(DataError, match=refused) as e:
        load_cifar10(tmp_path, cache_dir=cache)
    assert str(hostile) in str(e.value) and "re-download" in str(e.value)
    assert not marker.exists() and not cache.exists()
    pickle.loads(hostile.read_bytes(), encoding="bytes")  # the file is live: unrestricted, it runs its call
    assert marker.exists()


@pytest.mark.parametrize("content,match", [
    (b"not a pickle", "not a readable pickle"),
    (py2_pickle([1, 2, 3]), "no b'data' and b'labels'"),
], ids=["garbage", "wrong-object"])
def test_malformed_batch_file_names_the_problem(tmp_path, cache, content, match):
    fake_batches(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_cifar10(tmp_path, cache_dir=cache)


def test_corrupt_cache_is_rebuilt(tmp_path, cache):
    fake_batches(tmp_path / "cifar-10-batches-py")
    good = load_cifar10(tmp_path, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="rebuilding"):
        again = load_cifar10(tmp_path, cache_dir=cache)
    assert torch.equal(again.train_x, good.train_x) and entry.stat().st_size > 100
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temp files left behind


def test_download_goes_through_torchvision_only_when_asked(tmp_path, cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    with pytest.raises(DataError, match="pip install torchvision"):
        load_cifar10(tmp_path / "dl", download=True, cache_dir=cache)
    calls = []

    def cifar10(root, train, download):
        calls.append(root)
        fake_batches(Path(root) / "cifar-10-batches-py")
    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(CIFAR10=cifar10))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    d = load_cifar10(tmp_path / "dl", download=True, cache_dir=cache)
    assert calls == [str(tmp_path / "dl")] and len(d.train_y) == 100
    load_cifar10(tmp_path / "dl", download=True, cache_dir=cache)
    assert len(calls) == 1  # already there: no second download


def test_import_does_not_need_torchvision():
    code = "import sys; sys.modules['torchvision'] = None; import bnrepro.data"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the real archive (when ../shared/data has it)

@pytest.fixture(scope="session")
def real():
    if not REAL.exists():
        pytest.skip(f"real CIFAR-10 archive not found at {REAL} (CI keeps it in ../shared/data next to the repo)")
    return load_cifar10(REAL)  # default cache: decodes once (~15-30 s), later runs load it in about a second


@pytest.mark.slow
def test_real_archive(real):
    assert real.train_x.shape == (50_000, 3, 32, 32) and real.test_x.shape == (10_000, 3, 32, 32)
    assert torch.bincount(real.train_y).tolist() == [5000] * 10 and torch.bincount(real.test_y).tolist() == [1000] * 10
    assert "JPEG" in real.source and real.fingerprint.startswith("imagefolder:")
    # CIFAR-10's channel means are about (125, 123, 114) and stds about (63, 62, 67) on 0..255: black and white
    # pixels therefore standardise to about -2 and +2, and the test set has nearly zero mean under train statistics
    lo, hi = real.train_x.amin((0, 2, 3)), real.train_x.amax((0, 2, 3))
    assert ((-2.2 < lo) & (lo < -1.5)).all() and ((1.8 < hi) & (hi < 2.4)).all(), (lo, hi)
    assert real.test_x.mean((0, 2, 3)).abs().max() < 0.05
