"""The repository holds code, the book and the run records, and no data: no tracked file is a data set (CIFAR-10 in
any form, an archive, a decoded cache), a checkpoint or a wheel, none is over 2 MB, and the tracked tree stays small
enough that a GPU job's copy of it fits beside the CIFAR-10 archive (the copy is refused above 64 MiB; the archive
is 19.4 MB). Skipped outside a git checkout, where nothing is tracked."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
LARGEST_FILE_MB = 2
TREE_MB = 40
#: Endings of archives, arrays, pickles, checkpoints and wheels: data or build products, never source.
DATA_ENDINGS = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".zip", ".gz", ".xz", ".bz2", ".7z", ".npy", ".npz",
                ".pt", ".pth", ".ckpt", ".safetensors", ".pkl", ".pickle", ".h5", ".hdf5", ".parquet", ".arrow",
                ".whl", ".egg")
#: The first bytes of gzip, zip, xz, bzip2, 7z, NumPy and pickle (protocols 2-5) files.
DATA_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"\xfd7zXZ\x00", b"BZh", b"7z\xbc\xaf\x27\x1c", b"\x93NUMPY",
              b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
#: CIFAR-10 by name: the python batches, or an image folder laid out as train|test/<class>/.
CIFAR = re.compile(r"(^|/)(cifar-10-batches-py|data_batch_\d|test_batch|batches\.meta)(/|$)|(^|/)(train|test)/"
                   r"(airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck)/")
#: Folders that hold data, caches, checkpoints and device outputs (all git-ignored).
DATA_FOLDERS = (".data", "data", "cache", "wheels", "device_out", "dev")
#: A run record's arrays: records/<budget>/<run>.npz beside its <run>.json.
RECORD = re.compile(r"records/[\w.-]+/[\w.+-]+\.npz")


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    """The tracked files present in the working tree, as paths relative to the checkout."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    except OSError:
        pytest.skip("git is not installed: nothing to check")
    if out.returncode != 0 or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    return [p for p in out.stdout.decode().split("\0") if p and (ROOT / p).is_file()]


def data_reason(path: str, root: Path = ROOT) -> str | None:
    """Why the tracked file at `path` (relative to `root`) is data; None if it is not."""
    if CIFAR.search(path):
        return "a copy of CIFAR-10"
    if path.split("/")[0] in DATA_FOLDERS:
        return f"under {path.split('/')[0]}/, a data or cache folder"
    if RECORD.fullmatch(path):
        return None if (root / path).with_suffix(".json").is_file() else "a record's arrays without their .json"
    if path.lower().endswith(DATA_ENDINGS):
        return "an archive, array, pickle, checkpoint or wheel"
    with open(root / path, "rb") as f:
        head = f.read(8)
    return "an archive, array or pickle (by its first bytes)" if head.startswith(DATA_MAGIC) else None


def test_no_tracked_file_is_data(tracked):
    found = {p: why for p in tracked if (why := data_reason(p))}
    assert not found, ("tracked data (remove it with `git rm --cached`, keep it outside the repository and ignore its "
                       "folder in .gitignore): " + "; ".join(f"{p}: {why}" for p, why in found.items()))


def test_no_tracked_file_is_over_2_mb(tracked):
    big = {p: (ROOT / p).stat().st_size / MB for p in tracked}
    big = {p: s for p, s in big.items() if s > LARGEST_FILE_MB}
    assert not big, (f"tracked files over {LARGEST_FILE_MB} MB (a record: convert it with `python -m bnrepro "
                     "compact-records`): " + "; ".join(f"{p}: {s:.1f} MB" for p, s in big.items()))


def test_the_tracked_tree_fits_beside_the_data_on_a_gpu_job(tracked):
    total = sum((ROOT / p).stat().st_size for p in tracked) / MB
    assert total <= TREE_MB, (f"the tracked files weigh {total:.1f} MB, over {TREE_MB} MB: a GPU job receives them "
                              "with the CIFAR-10 archive (19.4 MB) and is refused above 64 MiB; records/ is most of "
                              "it (`python -m bnrepro compact-records`, and the per-record bounds in "
                              "bnrepro.budgets.RECORD_MB)")


@pytest.mark.parametrize("path,why", [
    (".data/cifar10-jpeg.tar.gz", "folder"), ("cifar10-jpeg.tar.gz", "archive"),
    ("shared/cifar-10-batches-py/data_batch_1", "CIFAR"),
    ("x/train/cat/00001.jpg", "CIFAR"), ("cache/data/cifar10-0123.npz", "cache"), ("wheel/torch-2.whl", "wheel"),
    ("model.pt", "checkpoint"), ("src/arrays.npz", "array"), ("records/cpu/orphan.npz", "without"),
])
def test_data_is_recognised(path, why, tmp_path):
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_bytes(b"")
    assert why in data_reason(path, tmp_path)


def test_source_and_records_are_not_data(tmp_path):
    for path, content in (("src/a.py", b"import os\n"), ("records/cpu/run-1.npz", b"PK\x03\x04"),
                          ("records/cpu/run-1.json", b"{}"), ("book/_static/site.css", b"body {}\n")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    assert [data_reason(p, tmp_path) for p in ("src/a.py", "records/cpu/run-1.npz", "book/_static/site.css")] == [None] * 3
    (tmp_path / "src/b.py").write_bytes(b"\x1f\x8b\x08")
    assert "first bytes" in data_reason("src/b.py", tmp_path)
