"""The GPU window script (`python -m bnrepro window`) and its unpacking (`python -m bnrepro unpack`), on the CPU at
the smoke budget: the order of value, packing into volumes, never starting a run that cannot finish, and the
checks every unpacked record passes."""

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import bnrepro.budgets as budgets
import bnrepro.judge as judge
import bnrepro.window as window
from bnrepro.claims import claim_details
from bnrepro.cli import main
from bnrepro.plan import EVIDENCE_SECTIONS, book_configs, evidence_configs
from bnrepro.records import RunStore
from bnrepro.window import Costs, OutputFull, Packer, value_order

REPO = Path(__file__).resolve().parents[1]


def test_runs_come_in_order_of_value():
    """Sections 2.1 and 3.1 at the first seed, then the rest of that seed, then each other seed."""
    runs = value_order("paper", [0, 1, 2], "cifar10")
    assert set(runs) == set(book_configs("paper", [0, 1, 2], "cifar10")) and len(runs) == len(set(runs))
    first = book_configs("paper", [0], "cifar10", ["2.1", "3.1"])
    assert runs[:len(first)] == first
    seeds = [c.seed for c in runs]
    assert seeds == sorted(seeds)
    assert [(c.model, c.norm, c.lr) for c in runs[:5]] == [("vgg16", "none", 0.1), ("vgg16", "batch", 0.1),
                                                           ("vgg16", "none", 0.5), ("vgg16", "batch", 0.5),
                                                           ("vgg16", "noisy", 0.1)]
    assert [c for c in value_order("paper", [2], "cifar10", ["2.2"])] == book_configs("paper", [2], "cifar10", ["2.2"])


@pytest.fixture
def tiny_smoke(monkeypatch, tmp_path):
    """The smoke budget cut to a few steps (each run then takes about a second), the cache in tmp_path."""
    monkeypatch.setenv("BNREPRO_CACHE", str(tmp_path / "cache"))
    smoke = dataclasses.replace(budgets.get_budget("smoke"), vgg_steps=4, vgg_probe_every=2, eval_every=2,
                                train_limit=256, test_limit=64, dln_steps=6, dln_probe_every=3)
    monkeypatch.setitem(budgets.BUDGETS, "smoke", smoke)


def run_window(tmp_path, *extra: str, sections: str = "2.1") -> int:
    return main(["window", "--budget", "smoke", "--out", str(tmp_path / "out"), "--records",
                 str(tmp_path / "records"), "--seeds", "0", "--sections", sections, "--measure-s", "0.05", *extra])


def test_the_window_trains_packs_and_unpacks_at_the_smoke_budget(tiny_smoke, tmp_path, capsys):
    assert run_window(tmp_path, "--limit-s", "300", "--concurrent", "2") == 0
    out = capsys.readouterr().out
    assert "float32" in out and "ms/step" in out and "tf32     skipped: TF32 is a CUDA arithmetic" in out
    assert "summary: 5 runs done, 0 stopped at the limit, 0 failed, 0 not started" in out and "GPU memory" in out
    volumes = sorted((tmp_path / "out").iterdir())
    assert [v.name for v in volumes] == ["records-00.tar"] and volumes[0].stat().st_size <= window.VOLUME_BYTES
    trained = RunStore(tmp_path / "records").all("smoke")
    assert len(trained) == 5 and all(r.status == "completed" for r in trained)

    assert main(["unpack", str(tmp_path / "out"), "--records", str(tmp_path / "back")]) == 0
    assert "5 records stored" in capsys.readouterr().out
    back = RunStore(tmp_path / "back")
    for rec in trained:
        assert back.path(rec.config).read_bytes() == RunStore(tmp_path / "records").path(rec.config).read_bytes()
        assert back.load(rec.config).arrays.keys() == rec.arrays.keys()
    assert main(["unpack", str(tmp_path / "out"), "--records", str(tmp_path / "back")]) == 0
    assert "0 records stored under" in capsys.readouterr().out  # already there: kept

    (tmp_path / "out" / "records-00.tar").unlink()
    assert run_window(tmp_path, "--limit-s", "300", "--skip-precisions") == 0
    assert "5 stored under" in capsys.readouterr().out.splitlines()[1]  # a rerun skips every stored run


def test_the_precision_evidence_trains_after_the_first_seed_and_is_judged_beside_float32(tiny_smoke, tmp_path,
                                                                                         monkeypatch, capsys):
    """The VGG runs of Sections 2.1 and 3.1 in bf16 (the CPU has bf16 autocast) come after seed 0's runs and before
    seed 1's; their claims then carry both precisions' verdicts, and a page whose budget trains in bf16 says
    whether bf16 changes any of them. The verdicts themselves are the tiny runs' and are not pinned."""
    assert run_window(tmp_path, "--limit-s", "300", "--skip-precisions", "--seeds", "0,1", "--evidence-precision",
                      "bf16", "--evidence-budget", "smoke", sections="2.1,3.1") == 0
    started = [line for line in capsys.readouterr().out.splitlines() if line.startswith("start: ")]
    evidence = [i for i, line in enumerate(started) if "(bf16, smoke)" in line]
    seed1 = [i for i, line in enumerate(started) if "seed=1" in line]
    assert len(evidence) == len(evidence_configs("bf16", [0], "synthetic", "smoke")) == 5
    assert max(i for i, line in enumerate(started) if "seed=0" in line and i not in evidence) < min(evidence)
    assert max(evidence) < min(seed1)
    store = RunStore(tmp_path / "records")
    assert all("-bf16-seed0-" in store.path(c.to_dict()).name for c in evidence_configs("bf16", [0], "synthetic",
                                                                                         "smoke"))
    for number in EVIDENCE_SECTIONS:
        judged = judge.load_section(number, "smoke", [0, 1], store=store)
        assert judged.precision and not judged.notice  # smoke trains in float32: nothing to say on its pages
        for i, c in enumerate(judged.first):
            assert set(judged.precision[c.key]) == {("float32", 0), ("bf16", 0)}  # evidence at seed 0 only
            assert judged.precision[c.key]["float32", 0] == judged.claims[0][i].verdict
            assert claim_details(judged, i)[-1].startswith("Training precision: with the VGG trained in bf16: ")

    monkeypatch.setattr(judge, "EVIDENCE_BUDGET", "smoke")
    monkeypatch.setitem(budgets.BUDGETS, "cpu15k", dataclasses.replace(budgets.get_budget("cpu15k"),
                                                                       precision="bf16"))
    notice = judge.precision_notice("cpu15k", [0], store=store)
    assert notice.startswith("This page's runs train in bf16 autocast (probes in strict float32). Trained so at the "
                             "smoke budget, Sections 2.1 and 3.1 give ")
    assert "the strict float32 verdict for all" in notice or "another verdict than in strict float32 for " in notice
    empty = judge.precision_notice("cpu15k", [0], store=RunStore(tmp_path / "none"))
    assert "not measured yet: `python -m bnrepro window --evidence-precision bf16`" in empty


def test_the_precision_evidence_refuses_what_it_cannot_compare(tiny_smoke, tmp_path, capsys):
    assert run_window(tmp_path, "--limit-s", "60", "--evidence-precision", "float32") == 2
    assert "already have: name another (tf32, bf16) or none" in capsys.readouterr().err
    assert run_window(tmp_path, "--limit-s", "60", "--evidence-precision", "bf16") == 2  # cpu: all of CIFAR-10
    assert "another share of CIFAR-10 than the smoke budget's: choose an --evidence-budget" in capsys.readouterr().err
    assert run_window(tmp_path, "--limit-s", "60", "--evidence-precision", "tf32", "--evidence-budget", "smoke",
                      "--device", "cpu") == 2
    assert "TF32 arithmetic of NVIDIA GPUs" in capsys.readouterr().err


def test_a_run_its_measured_speed_says_cannot_finish_is_not_started(tiny_smoke, tmp_path, monkeypatch, capsys):
    """Measured at 10 s a step, the first 4-step VGG run (44 s with the margin) fits in the 50 s a 60 s limit
    leaves, a 6-step DLN run (66 s) never does."""
    monkeypatch.setattr(window, "measure_costs", lambda cfg, data, device, seconds: Costs(10.0, 0.0, 0.0, "eager"))
    assert run_window(tmp_path, "--limit-s", "60", "--skip-precisions", sections="3.1") == 0
    out = capsys.readouterr().out
    assert "start: vgg16 none lr=0.1 seed=0 (smoke, 4 steps, ~44 s)" in out
    assert "not started: dln none lr=1e-06 seed=0: needs ~66 s" in out
    assert "start: dln" not in out and ", 0 stopped at the limit" in out


def test_the_window_refuses_bad_input_with_the_fix(tmp_path, capsys):
    assert main(["window", "--limit-s", "5", "--out", str(tmp_path)]) == 2
    assert "--limit-s must exceed" in capsys.readouterr().err
    (tmp_path / "records-00.tar").write_bytes(b"")
    assert main(["window", "--budget", "smoke", "--limit-s", "60", "--out", str(tmp_path)]) == 2
    assert "already holds packed records" in capsys.readouterr().err
    assert main(["window", "--limit-s", "60", "--out", str(tmp_path / "o"), "--seeds", "0,x"]) == 2


def test_packer_fills_volumes_in_turn_and_says_when_full(tmp_path):
    files = []
    for i in range(7):
        f = tmp_path / f"f{i}"
        f.write_bytes(bytes(10_000))
        files.append([(f, f"smoke/f{i}")])
    packer = Packer(tmp_path / "out", volumes=3, volume_bytes=40_000)  # a tar pads to 10 KiB
    names = [packer.add(f).name for f in files[:6]]
    assert names == ["records-00.tar"] * 2 + ["records-01.tar"] * 2 + ["records-02.tar"] * 2
    assert all(p.stat().st_size <= 40_000 for p in (tmp_path / "out").iterdir())
    assert not packer.has_room(10_000)
    with pytest.raises(OutputFull, match="all 3 volumes"):
        packer.add(files[6])
    with tarfile.open(tmp_path / "out" / "records-01.tar") as tar:
        assert tar.getnames() == ["smoke/f2", "smoke/f3"]


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpack_checks_every_record(tiny_smoke, tmp_path, capsys):
    from bnrepro.specs import Spec, make_config
    from bnrepro.train import train

    rec = train(make_config(Spec("dln", "none", 1e-7), "smoke"))
    store = RunStore(tmp_path / "records")
    meta = store.save(rec)
    name = f"smoke/{meta.name}"
    good = {name: meta.read_bytes(), name[:-5] + ".npz": meta.with_suffix(".npz").read_bytes()}
    wrong_name = {"smoke/dln-none-lr1e-07-seed0-000000000000.json": good[name],
                  "smoke/dln-none-lr1e-07-seed0-000000000000.npz": good[name[:-5] + ".npz"]}
    d = json.loads(good[name])
    d["summary"]["steps_done"] = 5
    short = {name: json.dumps(d).encode(), name[:-5] + ".npz": good[name[:-5] + ".npz"]}
    broken = {name: good[name], name[:-5] + ".npz": b"not a zip"}
    for members, problem in ((wrong_name, "its config's hash gives the name " + name),
                             (short, "steps_done 5 but 6 values of train_loss"), (broken, "its arrays do not load"),
                             ({name: good[name]}, "its arrays (.npz) are missing")):
        bad = tar_of(tmp_path / "bad.tar", members)
        assert main(["unpack", str(bad), "--records", str(tmp_path / "back")]) == 1
        assert problem in capsys.readouterr().err
        assert not (tmp_path / "back").exists()
    assert main(["unpack", str(tar_of(tmp_path / "good.tar", good)), "--records", str(tmp_path / "back")]) == 0
    assert RunStore(tmp_path / "back").load(rec.config) is not None
    assert main(["unpack", str(tmp_path / "nothing"), "--records", str(tmp_path / "back")]) == 1
    assert "nothing does not exist" in capsys.readouterr().err
    assert main(["unpack", str(tmp_path / "back"), "--records", str(tmp_path / "back")]) == 1
    assert "no .tar files" in capsys.readouterr().err


def test_the_window_command_runs_at_the_real_smoke_budget(tmp_path):
    """The command as a user types it, on the CPU with a short limit: whatever it had time for is packed and
    unpacks; it ends within its limit (plus what one kind's measurement may overrun)."""
    env = {**os.environ, "BNREPRO_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "bnrepro", "window", "--budget", "smoke", "--limit-s", "25",
                        "--out", str(tmp_path / "out"), "--records", str(tmp_path / "records"), "--seeds", "0",
                        "--measure-s", "0.1"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "step time of vgg16 x0.0625 + BatchNorm, batch 32" in r.stdout and "summary:" in r.stdout
    if (tmp_path / "out" / "records-00.tar").exists():
        assert main(["unpack", str(tmp_path / "out"), "--records", str(tmp_path / "back")]) == 0
