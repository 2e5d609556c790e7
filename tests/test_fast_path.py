"""The training precision as a recorded choice, the fast CUDA path's CPU-observable logic (its decisions, messages
and a CUDA graph emulated on the CPU), several runs in one process (`train_many`), time limits (`deadline`,
`step_time`) and one record per DLN run across budgets. Tiny models on synthetic data, on the CPU."""

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

import bnrepro.train as train_mod
from bnrepro import report
from bnrepro.budgets import BUDGETS, LADDER, dln_home, get_budget
from bnrepro.data import load_cifar10
from bnrepro.specs import Spec, make_config
from bnrepro.records import RunStore, config_key
from bnrepro.train import PRECISIONS, RunConfig, graph_obstacle, step_time, train, train_many

SYNTH = "synthetic:512"
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def data():
    return load_cifar10(SYNTH)


def probed(spec: Spec, **kw) -> RunConfig:
    """The book's config of `spec` at the smoke budget (every probe on), shortened by `kw`."""
    return dataclasses.replace(make_config(spec, "smoke", data=SYNTH), **kw)


VGG = dict(steps=12, probe_every=5, eval_every=6)
CASES = {"vgg-batch": (Spec("vgg", "batch", 0.1), VGG), "vgg-noisy": (Spec("vgg", "noisy", 0.1), VGG),
         "vgg-l2": (Spec("vgg", "l2", 0.1), VGG), "dln-batch": (Spec("dln", "batch", 1e-6), dict(steps=30, probe_every=15))}


def assert_same_record(a, b):
    """The same status, arrays (bit for bit) and summary but for the wall time."""
    assert a.status == b.status and sorted(a.arrays) == sorted(b.arrays)
    for k in a.arrays:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True), k
    assert {k: v for k, v in a.summary.items() if k != "wall_time_s"} == \
        {k: v for k, v in b.summary.items() if k != "wall_time_s"}


# --- the training precision -------------------------------------------------------------------------------------

def test_precision_is_a_later_field_so_every_stored_record_keeps_its_identity():
    """At its default the field is left out of the config, so the hashes (file names) of the records do not change."""
    assert "precision" in train_mod._LATER_DEFAULTS and RunConfig().precision == "float32"
    store = RunStore()
    paths = sorted(store.root.glob("cpu/*.json"))
    assert paths, "no committed cpu records to check"
    for path in paths:
        config = json.loads(path.read_text())["config"]
        assert store.path(RunConfig.from_dict(config).to_dict()) == path
    bf16 = RunConfig(precision="bf16")
    assert bf16.to_dict()["precision"] == "bf16" and config_key(bf16.to_dict()) != config_key(RunConfig().to_dict())


def test_precision_is_validated():
    with pytest.raises(ValueError, match="unknown precision 'fp8'.*float32, tf32, bf16"):
        RunConfig(precision="fp8")
    with pytest.raises(ValueError, match="float32 weights.*dtype='float32'|precision='float32' with dtype='float64'"):
        RunConfig(precision="bf16", dtype="float64")


def test_every_budget_names_a_precision_that_its_vgg_and_resnet_runs_carry():
    for name, b in BUDGETS.items():
        assert b.precision in PRECISIONS, name
        for spec in (Spec("vgg", "batch", 0.1), Spec("resnet20", "batch", 0.1)):
            assert make_config(spec, name).precision == b.precision
    assert "precision" not in make_config(Spec("vgg", "batch", 0.1), "paper").to_dict()  # strict float32 until measured
    bf16 = dataclasses.replace(get_budget("smoke"), precision="bf16")
    assert make_config(Spec("vgg", "batch", 0.1), bf16).precision == "bf16"
    assert make_config(Spec("dln", "batch", 1e-6), bf16).precision == "float32"  # the DLN trains in its dtype


def test_tf32_is_refused_on_a_cpu_with_the_fix(data):
    with pytest.raises(ValueError, match="TF32 arithmetic of NVIDIA GPUs.*'float32' or 'bf16' on a CPU"):
        train(probed(Spec("vgg", "batch", 0.1), steps=2, precision="tf32"), data)


def test_tf32_is_on_in_training_steps_only_and_settings_are_restored():
    before = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    with train_mod.device_settings(False, CUDA):  # the flags are plain settings: no GPU needed to read them
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
        with train_mod.step_arithmetic("tf32", CUDA):
            assert torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "high"
        assert not torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
    assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision(),
            torch.backends.cudnn.benchmark) == before


def test_a_bf16_run_probes_and_evaluates_in_strict_float32(data):
    """Step 0's probes and evaluation come before the first update, on the same weights and batch: in a bf16 run
    they are bit for bit the float32 run's, while its training loss (a bf16 forward pass) is not."""
    cfg = probed(Spec("vgg", "batch", 0.1), steps=3, probe_every=5, eval_every=6)
    strict, bf16 = train(cfg, data), train(dataclasses.replace(cfg, precision="bf16"), data)
    assert bf16.config["precision"] == "bf16" and bf16.env["train_precision"] == "bf16"
    assert strict.env["train_precision"] == "float32" and "precision" not in strict.config
    probes = [k for k in strict.arrays if k.split("_")[0] in ("ics", "landscape", "bn")]
    assert {"ics_l2", "landscape_loss", "bn_theory_unit"} <= set(probes)
    for k in probes + ["test_loss"]:
        assert np.array_equal(strict[k][0], bf16[k][0]), k
    assert strict["train_loss"][0] != bf16["train_loss"][0]
    assert np.isfinite(bf16["train_loss"]).all()


@pytest.mark.parametrize("norm", ["l1", "linf", "noisy"])
def test_every_normalisation_trains_under_bf16_autocast(norm, data):
    rec = train(probed(Spec("vgg", norm, 0.1), steps=3, probe_every=5, precision="bf16"), data)
    assert rec.status == "completed" and np.isfinite(rec["train_loss"]).all()


def test_provenance_shows_the_training_precision_and_the_gpu_step():
    from test_report import record

    bf16 = record({"cpu_capability": "AVX2", "threads": 1}, model="vgg16", width=1.0, precision="bf16")
    gpu = record({"device": "cuda", "device_name": "NVIDIA H200", "cudnn_tf32": False, "train_step": "CUDA graph",
                  "cpu_capability": "AVX2", "threads": 1})
    lines = report.provenance_markdown([bf16, gpu]).splitlines()
    assert "| float32 with bf16 autocast in training (probes strict float32), AVX2, 1 thread |" in lines[2]
    assert "| NVIDIA H200 | float32 (TF32 off), CUDA graph steps |" in lines[3]  # no CPU arithmetic for a GPU run


# --- the fast CUDA path ---------------------------------------------------------------------------------------------

def test_where_cuda_graphs_cannot_work_says_why():
    assert "CUDA device" in graph_obstacle(RunConfig(), CPU)
    assert graph_obstacle(RunConfig(norm="batch"), CUDA) is None
    assert graph_obstacle(RunConfig(model="dln", norm="l2"), CUDA) is None
    assert "noise" in graph_obstacle(RunConfig(norm="noisy"), CUDA)


def emulated_capture(step, device):
    """A CUDA graph's contract on the CPU: capture yields static outputs, and each replay recomputes the step from
    the static inputs into them. (This capture also runs the step once; `_GraphStep` undoes it, as it undoes the
    warm-up steps.)"""
    outputs = step()

    def replay():
        for static, new in zip(outputs, step()):
            if static is not None:
                static.copy_(new)
    return replay, outputs


@pytest.mark.parametrize("case", ["vgg-batch", "vgg-l2", "dln-batch"])
def test_graph_steps_record_what_eager_steps_record(case, data, monkeypatch):
    """With the graph path on (capture emulated): static inputs, copied-out losses, activation moments and weight
    norms, eager steps where quantiles are kept, warm-up undone; the record is bit for bit the eager one."""
    spec, short = CASES[case]
    cfg = probed(spec, weight_norms=True, **short)
    eager = train(cfg, data)
    monkeypatch.setattr(train_mod, "graph_obstacle", lambda cfg, device: None)
    monkeypatch.setattr(train_mod, "_cuda_graph", emulated_capture)
    graphed = train(cfg, data)
    assert eager.env["train_step"] == "eager" and graphed.env["train_step"] == "CUDA graph"
    assert {"act_moments", "weight_sq_norm", "ics_l2"} <= set(graphed.arrays)
    assert_same_record(eager, graphed)


def test_a_failed_capture_falls_back_to_eager_steps_and_says_so(data, monkeypatch, capsys):
    cfg = probed(Spec("vgg", "batch", 0.1), **VGG)
    eager = train(cfg, data)

    def fails(step, device):
        step()  # a capture that breaks half-way, after changing the weights
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(train_mod, "graph_obstacle", lambda cfg, device: None)
    monkeypatch.setattr(train_mod, "_cuda_graph", fails)
    fallen = train(cfg, data)
    assert "training steps run eagerly: CUDA graph capture failed (operation not permitted" in capsys.readouterr().err
    assert fallen.env["train_step"] == "eager"
    assert_same_record(eager, fallen)


# --- several runs in one process ------------------------------------------------------------------------------------

def test_runs_trained_together_equal_runs_trained_one_after_another(data):
    configs = [probed(spec, **short) for spec, short in CASES.values()]
    sequential = [train(cfg, data) for cfg in configs]
    together = dict(train_many(configs, data, concurrent=3))
    assert set(together) == set(configs)
    for cfg, rec in zip(configs, sequential):
        assert_same_record(rec, together[cfg])


def test_train_many_takes_the_next_config_when_a_slot_frees_and_reports_failures(data):
    a = probed(Spec("vgg", "batch", 0.1), steps=3, probe_every=5)
    b = probed(Spec("vgg", "none", 0.1), steps=2, probe_every=5, precision="tf32")  # refused on a CPU
    c = probed(Spec("dln", "none", 1e-7), steps=4, probe_every=5)
    d = probed(Spec("dln", "batch", 1e-6), steps=2, probe_every=5)
    pulled = []

    def configs():
        for cfg in (a, None, b, c, d):  # None: nothing to start now (a trains)
            pulled.append(cfg)
            yield cfg

    outcomes = {}
    for cfg, outcome in train_many(configs(), data, concurrent=2):
        outcomes[cfg] = outcome
        assert len([p for p in pulled if p is not None]) - len(outcomes) <= 1  # at most 2 at once
    assert set(outcomes) == {a, b, c, d}
    assert isinstance(outcomes[b], ValueError) and "TF32" in str(outcomes[b])
    assert all(outcomes[cfg].status == "completed" for cfg in (a, c, d))
    assert list(train_many([None, a], data)) == []  # None while no run trains: the end


def test_a_run_stops_at_its_deadline_and_resumes_from_its_checkpoint(data, tmp_path):
    cfg = probed(Spec("vgg", "batch", 0.1), **VGG)
    ckpt = tmp_path / "run.pt"
    assert train(cfg, data, checkpoint=ckpt, deadline=time.monotonic()) is None
    assert ckpt.exists()
    assert_same_record(train(cfg, data), train(cfg, data, checkpoint=ckpt))
    (outcome,) = train_many([cfg], data, deadline=time.monotonic() - 1)
    assert outcome == (cfg, None)


def test_step_time_measures_the_training_step_as_train_takes_it(data):
    seconds, steps, mode = step_time(probed(Spec("vgg", "batch", 0.1)), data, seconds=0.0, min_steps=3, warmup=1)
    assert 0 < seconds < 60 and steps == 3 and mode == "eager"


# --- a run is computed once -----------------------------------------------------------------------------------------

def test_a_dln_run_is_one_record_at_every_budget_with_the_same_dln():
    """The DLN is the same network at cpu, cpu15k, the width ladder and paper: one config, stored under records/cpu."""
    same = ["cpu", "cpu15k", *LADDER]
    for spec in (Spec("dln", "batch", 1e-6, 0.1), Spec("dln", "none", 1e-7, 1.0, "float64")):
        configs = {make_config(spec, b, 1).to_dict()["budget"] for b in same}
        assert configs == {"cpu"} and len({json.dumps(make_config(spec, b, 1).to_dict()) for b in same}) == 1
    assert dln_home(get_budget("smoke")) == "smoke"  # 200 steps: its own record
