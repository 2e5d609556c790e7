"""The command line: help text, a smoke training run that writes a record, and clean errors for bad input."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_cpu_budget_without_data_exits_2_without_traceback(tmp_path):
    """--budget cpu with neither --data nor BNREPRO_DATA nor a stored record: exit 2, a message naming
    BNREPRO_DATA, no traceback."""
    r = run_module("train", "--budget", "cpu", "--records", str(tmp_path))
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


# Words of the Python API or of CI's machines, which a command-line user cannot act on.
NOT_COMMAND_LINE = ("data=", "download=True", "argument root", "shared/data", "Traceback")


def assert_speaks_command_line(err: str, *words: str) -> None:
    """One `error:` line naming `words`, in the command line's terms."""
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    for w in NOT_COMMAND_LINE:
        assert w not in err, (w, err)


def stored_vgg(records: Path, budget: str = "cpu"):
    """A stored (fake) record of the run `train --budget BUDGET` means: the budget's BN VGG at LR 0.1, seed 0."""
    from bnrepro.specs import Spec, make_config
    from bnrepro.records import RunRecord, RunStore

    cfg = make_config(Spec("vgg", "batch", 0.1), budget, 0, "cifar10")
    store = RunStore(records)
    store.save(RunRecord(cfg.to_dict(), {}, "completed", {"steps_done": cfg.steps, "wall_time_s": 1.0},
                         {"train_loss": np.zeros(1)}))
    return store.path(cfg.to_dict())


def test_train_says_whether_it_trained_or_loaded_and_how_to_retrain(tmp_path, capsys):
    argv = ["train", "--budget", "smoke", "--model", "dln", "--steps", "5", "--records", str(tmp_path)]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    path = json.loads(out)["record"]
    assert err.startswith("trained the run (completed,") and err.strip().endswith(f"stored {path}")
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["record"] == path
    assert err.strip() == f"loaded the stored record {path} (nothing trained; --force retrains it)"
    assert cli.main([*argv, "--force"]) == 0 and capsys.readouterr().err.startswith("trained the run")


def test_train_loads_a_stored_cifar_run_without_data_but_checks_data_it_is_given(tmp_path, capsys, monkeypatch):
    """A stored record needs no data; a --data (or BNREPRO_DATA) given is checked all the same, and an error names
    where the location came from, in command-line words."""
    path = stored_vgg(tmp_path)
    assert cli.main(["train", "--budget", "cpu", "--records", str(tmp_path)]) == 0
    assert f"loaded the stored record {path}" in capsys.readouterr().err
    missing, empty = tmp_path / "no" / "cifar10", tmp_path / "empty"
    empty.mkdir()
    for extra in ([], ["--force"]):
        assert cli.main(["train", "--budget", "cpu", "--records", str(tmp_path), "--data", str(missing), *extra]) == 2
        assert_speaks_command_line(capsys.readouterr().err, str(missing), "(from --data) does not exist", "--download")
    assert cli.main(["train", "--budget", "cpu", "--records", str(tmp_path), "--data", str(empty)]) == 2
    assert_speaks_command_line(capsys.readouterr().err, str(empty), "no train/ and test/ folders")
    monkeypatch.setenv("BNREPRO_DATA", str(missing))
    assert cli.main(["train", "--budget", "cpu", "--records", str(tmp_path)]) == 2
    assert_speaks_command_line(capsys.readouterr().err, "(from BNREPRO_DATA) does not exist")


def test_data_errors_speak_the_command_line(tmp_path, capsys):
    """No data for a run that must train, a bad synthetic spec, --download without --data, bad --steps or --lr."""
    for argv, words in ((["--budget", "cpu"], ("--data PATH", "BNREPRO_DATA", "not stored")),
                        (["--budget", "cpu", "--data", "synthetic:5"], ("synthetic:5",)),
                        (["--budget", "cpu", "--download"], ("--download needs --data",)),
                        (["--budget", "smoke", "--steps", "0"], ("--steps must be at least 1, got 0",)),
                        (["--budget", "smoke", "--lr", "-1"], ("--lr must be a positive number, got -1",))):
        assert cli.main(["train", "--records", str(tmp_path), *argv]) == 2, argv
        assert_speaks_command_line(capsys.readouterr().err, *words)
    assert cli.main(["book-runs", "--budget", "cpu", "--records", str(tmp_path)]) == 2
    assert_speaks_command_line(capsys.readouterr().err, "--data PATH", "BNREPRO_DATA")
    assert not list(tmp_path.rglob("*.json"))


def test_device_mistakes_get_one_line_with_the_choices(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for command in (["train"], ["book-runs", "--workers", "1"]):
        argv = [*command, "--budget", "smoke", "--records", str(tmp_path), "--device"]
        assert cli.main([*argv, "gpu"]) == 2
        assert_speaks_command_line(capsys.readouterr().err, "--device 'gpu'", "cpu, cuda, cuda:N or auto")
        assert cli.main([*argv, "cuda"]) == 2
        assert_speaks_command_line(capsys.readouterr().err, "no CUDA device here", "--device cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert cli.main(["train", "--budget", "smoke", "--records", str(tmp_path), "--device", "cuda:2"]) == 2
    assert_speaks_command_line(capsys.readouterr().err, "--device cuda:2", "2 CUDA devices (cuda:0 to cuda:1)")
    assert not list(tmp_path.rglob("*.json"))


def test_a_modified_source_tree_trains_no_committed_budget_unless_allowed(tmp_path, capsys, monkeypatch):
    """With src/ modified, train and book-runs refuse every budget but smoke (whose records are not committed)
    and name --allow-modified; with it the record says so; the library's get_or_train never refuses."""
    import bnrepro.records
    from bnrepro.experiments import get_or_train
    from bnrepro.records import RunStore
    from bnrepro.specs import Spec, make_config

    monkeypatch.setattr(bnrepro.records, "git_state", lambda: ("0123456789", True))
    argv = ["train", "--budget", "cpu", "--model", "dln", "--steps", "3", "--records", str(tmp_path)]
    assert cli.main(argv) == 2
    assert_speaks_command_line(capsys.readouterr().err, "src/ has uncommitted changes", "--allow-modified")
    assert cli.main(["book-runs", "--budget", "cpu", "--data", "synthetic", "--records", str(tmp_path)]) == 2
    assert_speaks_command_line(capsys.readouterr().err, "src/ has uncommitted changes", "--allow-modified")
    assert not list(tmp_path.rglob("*.json"))
    assert cli.main([*argv, "--allow-modified"]) == 0
    assert json.loads(Path(json.loads(capsys.readouterr().out)["record"]).read_text())["env"]["git_dirty_src"]
    assert cli.main(["train", "--budget", "smoke", "--model", "dln", "--steps", "3", "--records", str(tmp_path)]) == 0
    cfg = dataclasses.replace(make_config(Spec("dln", "none", 1e-6), "cpu"), steps=3)
    assert get_or_train(cfg, None, store=RunStore(tmp_path / "lib")).env["git_dirty_src"]

