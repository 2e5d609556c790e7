"""The command line: help text, a smoke training run that writes a record, and clean errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bnrepro import cli

OPTIONS = ["--budget", "--model", "--norm", "--lr", "--steps", "--seed", "--data", "--download", "--device", "--force",
           "--records"]


@pytest.fixture(autouse=True)
def quiet_env(tmp_path, monkeypatch):
    """Checkpoints into a temp cache, no data location from the environment, one intra-op thread."""
    monkeypatch.setenv("BNREPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BNREPRO_DATA", raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_module(*args: str) -> subprocess.CompletedProcess:
    """`python -m bnrepro ARGS` in a fresh process (no BNREPRO_DATA, one thread)."""
    env = {k: v for k, v in os.environ.items() if k != "BNREPRO_DATA"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "bnrepro", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_module_help():
    """`python -m bnrepro --help` exits 0 and names both commands."""
    r = run_module("--help")
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "book-runs" in r.stdout


def test_train_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in OPTIONS:
        assert opt in out, opt
    for choice in ("smoke", "cpu", "paper", "vgg16", "dln", "noisy", "linf", "BNREPRO_DATA"):
        assert choice in out, choice


def test_smoke_train_writes_a_record_without_progress_bar(tmp_path, capsys):
    """A DLN smoke run succeeds, prints its summary as JSON and stores the record; no tqdm bar when not a terminal."""
    records = tmp_path / "records"
    argv = ["train", "--budget", "smoke", "--model", "dln", "--steps", "20", "--records", str(records)]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["status"] == "completed" and summary["steps_done"] == 20
    path = Path(summary["record"])
    assert path.is_file() and path.with_suffix(".npz").is_file() and path.is_relative_to(records / "smoke")
    meta = json.loads(path.read_text())
    assert meta["config"]["model"] == "dln" and meta["config"]["steps"] == 20 and meta["config"]["lr"] == 1e-6
    assert "it/s" not in err and "%|" not in err and "\r" not in err
    assert cli.main(argv) == 0  # the second time the stored record is loaded
    assert json.loads(capsys.readouterr().out)["record"] == summary["record"]


def test_unknown_budget_exits_2_listing_valid_ones(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--budget", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and all(b in err for b in ("smoke", "cpu", "paper"))


def test_cpu_budget_without_data_exits_2_without_traceback():
    """--budget cpu with neither --data nor BNREPRO_DATA: exit 2, a message naming BNREPRO_DATA, no traceback."""
    r = run_module("train", "--budget", "cpu")
    assert r.returncode == 2
    assert "BNREPRO_DATA" in r.stderr and "Traceback" not in r.stderr and r.stderr.startswith("error:")


def test_bad_norm_for_dln_exits_2(capsys, tmp_path):
    """An input error raised inside training (noisy BN is VGG-only) is reported, not raised."""
    argv = ["train", "--budget", "smoke", "--model", "dln", "--norm", "noisy", "--records", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "noisy" in capsys.readouterr().err


def test_book_runs_bad_options_exit_2(tmp_path, capsys):
    for argv, words in ((["--workers", "0"], "--workers"), (["--gpus-per-run", "2"], "--gpus-per-run"),
                        (["--workers", "2", "--address", "127.0.0.1:1"], "--address"), (["--seeds", "a"], "--seeds"),
                        (["--budget", "cpu"], "BNREPRO_DATA")):
        assert cli.main(["book-runs", "--budget", "smoke", "--records", str(tmp_path), *argv]) == 2, argv
        assert words in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


def test_book_runs_help_names_the_ray_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["book-runs", "--help"])
    out = capsys.readouterr().out
    for opt in ("--workers", "--address", "--gpus-per-run", "--force", "RAY_ADDRESS", "--device"):
        assert opt in out, opt


def test_missing_data_path_exits_2(capsys, tmp_path):
    argv = ["train", "--budget", "smoke", "--data", str(tmp_path / "missing"), "--records", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
