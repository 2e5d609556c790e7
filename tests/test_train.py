"""bnrepro.train, records, specs, experiments, plan and budgets: learning, determinism, probe neutrality,
divergence, storage, resume, and loading stored runs instead of retraining. Tiny models on synthetic data, on the CPU."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import bnrepro.budgets as budgets
import bnrepro.experiments as experiments
import bnrepro.train as train_mod
from conftest import capture_models
from bnrepro import report
from bnrepro.budgets import get_budget
from bnrepro.data import load_cifar10
from bnrepro.experiments import get_or_train
from bnrepro.plan import resolve_budget
from bnrepro.records import RunRecord, RunStore, compact
from bnrepro.specs import Spec, data_root, make_config
from bnrepro.train import RunConfig, train

SYNTH = "synthetic:512"




@pytest.fixture(scope="module")
def data():
    return load_cifar10(SYNTH)


def tiny_vgg(norm="batch", **kw) -> RunConfig:
    """VGG-11 at width 1/16 (4..32 channels), batch 32, on the synthetic set."""
    base = dict(model="vgg11", norm=norm, lr=0.1, steps=10, batch_size=32, width=1 / 16, data=SYNTH,
                eval_every=1000, budget="test")
    return RunConfig(**{**base, **kw})


def probed(spec: Spec, **kw) -> RunConfig:
    """The book's config of `spec` at the smoke budget (every probe on), shortened by `kw`."""
    return dataclasses.replace(make_config(spec, "smoke", data=SYNTH), **kw)


def assert_same_arrays(a: RunRecord, b: RunRecord, stored: bool = False):
    """a and b hold the same arrays, bit for bit; `stored`: b is a loaded record, holding a's arrays as a record
    stores them (`records.compact`: each at the precision and on the runs its readers need)."""
    if stored:
        a = RunRecord(a.config, a.env, a.status, a.summary, compact(a.config, a.arrays))
    assert sorted(a.arrays) == sorted(b.arrays)
    for k in a.arrays:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True), k



# --- learning and determinism ---------------------------------------------------------------------------------------

def test_vgg_training_lowers_loss(data):
    rec = train(tiny_vgg("batch", steps=60), data)
    loss = rec["train_loss"]
    assert rec.status == "completed" and len(loss) == 60 and np.isfinite(loss).all()
    # BN VGG at LR 0.1 is inside its stable range: the ratio is 0.06-0.08 in float32 (AVX-512, AVX2 and portable
    # kernels) and float64, so rounding cannot move it near 0.6
    assert loss[-10:].mean() < 0.6 * loss[:10].mean(), (loss[:10].mean(), loss[-10:].mean())
    assert list(rec["test_step"]) == [0, 60] and rec.summary["final_test_acc"] == rec["test_acc"][-1]
    assert rec.summary["data_fingerprint"] == data.fingerprint


def dln_losses(norm: str, lr: float) -> np.ndarray:
    """The per-step losses of 200 steps of full-batch GD on the 25-layer linear net (seed 0), checked for shape."""
    rec = train(RunConfig(model="dln", norm=norm, lr=lr, steps=200, data="gaussian", budget="test"))
    loss = rec["train_loss"]
    assert rec.status == "completed" and len(loss) == 200 and "train_acc" not in rec.arrays
    assert 1e4 < loss[0] < 1e6  # the summed squared error over 1,000 samples
    return loss


def test_standard_dln_descends_at_every_step_inside_its_stable_range():
    """At the paper's LR 1e-7 the standard DLN's top Hessian eigenvalue stays at 0.5-2.3e6 over these steps (power
    iteration, float64), 9x below 2/LR = 2e7, so gradient descent lowers the loss at every step; the smallest step's
    drop (2.8e-4 of the loss) is far above float32 rounding, and float64 gives the same losses to 4 digits.
    Not LR 1e-6: there the eigenvalue reaches 2/LR within 25 steps, and whether the run then diverges depends on
    the CPU's float rounding (measured: it diverges at step 75 with AVX2 kernels, completes with the portable ones)."""
    loss = dln_losses("none", 1e-7)
    assert (np.diff(loss) < 0).all(), np.flatnonzero(np.diff(loss) >= 0)
    assert loss[-1] < 0.9 * loss[0]  # measured 0.84


def test_bn_dln_training_lowers_loss():
    """With BN the DLN trains at the edge of stability at any LR (at the paper's 1e-6 its top Hessian eigenvalue sits
    at 2.0-2.2e6 = 2/LR from step 25 on; the loss rises on about a quarter of the steps), so its trajectory depends
    on rounding; but it cannot diverge (layers 1-24 are scale-invariant: an overshoot grows their weights and so
    shrinks the effective step). What holds for any rounding is the outcome: the mean loss of the last 10 steps is
    0.18-0.28 of the first 10's at seeds 0-5, in float32 and float64 alike; the test asks for below 0.5."""
    loss = dln_losses("batch", 1e-6)
    assert loss[-10:].mean() < 0.5 * loss[:10].mean()


def test_same_seed_same_numbers_other_seed_differs(data):
    """Init, batch order and noisy-BN noise all come from the seed: equal seeds give identical arrays."""
    a, b = train(tiny_vgg("noisy"), data), train(tiny_vgg("noisy"), data)
    assert_same_arrays(a, b)
    c = train(tiny_vgg("noisy", seed=1), data)
    assert not np.array_equal(a["train_loss"], c["train_loss"])
    d1, d2 = (train(RunConfig(model="dln", norm="batch", lr=1e-6, steps=20, data="gaussian", seed=s)) for s in (0, 1))
    assert not np.array_equal(d1["train_loss"], d2["train_loss"])


PROBE_CASES = [
    (Spec("vgg", "none", 0.1), dict(steps=12, probe_every=5, eval_every=6)),
    (Spec("vgg", "batch", 0.1), dict(steps=12, probe_every=5, eval_every=6)),
    (Spec("vgg", "noisy", 0.1), dict(steps=12, probe_every=5, eval_every=6)),
    (Spec("dln", "batch", 1e-6), dict(steps=40, probe_every=15)),
]


@pytest.mark.parametrize("spec,short", PROBE_CASES, ids=["vgg-none", "vgg-batch", "vgg-noisy", "dln-batch"])
def test_probes_never_change_the_trajectory(spec, short, data, monkeypatch):
    """With every probe (activations, ICS, landscape) on, the run ends bit-for-bit where the probe-free run does:
    the same final parameters and buffers (BN running statistics) and the same per-step numbers."""
    built = capture_models(monkeypatch)
    cfg = probed(spec, **short)
    plain = dataclasses.replace(cfg, act_layers=(), ics_layers=(), landscape_grid=(), curvature_iters=0,
                                bn_theory=False)
    with_probes, without = train(cfg, data), train(plain, data)
    assert {"ics_l2", "landscape_loss", "act_moments", "act_quantiles"} <= set(with_probes.arrays)
    assert np.isfinite(with_probes["ics_l2"]).all() and len(with_probes["probe_step"]) == len(cfg.probe_steps())
    for k in without.arrays:
        assert np.array_equal(with_probes[k], without[k]), k
    (m1, m2) = built
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert list(s1) == list(s2)
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k
    if spec.norm != "none":
        assert any("running_mean" in k for k in s1)  # the buffers were compared too


# --- divergence -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [
    RunConfig(model="dln", norm="none", lr=1.0, steps=100, data="gaussian", budget="test"),
    tiny_vgg("none", lr=50.0, steps=100),
], ids=["dln-lr1", "vgg-lr50"])
def test_divergence_is_recorded_not_raised(cfg, data, tmp_path):
    """LRs far past any stability edge (10^6 x the DLN's, 500 x VGG's): the loss is non-finite from step 1 (DLN) or
    3 (VGG) on every CPU kernel set and in float64, so where the run stops does not depend on rounding."""
    rec = train(cfg, data)
    n = rec.summary["diverged_at"]
    assert rec.status == "diverged" and n is not None and 0 < n < cfg.steps
    assert len(rec["train_loss"]) == n == rec.summary["steps_done"]
    assert np.isfinite(rec["train_loss"]).all()
    if not cfg.is_dln:
        assert len(rec["train_acc"]) == n and (rec["test_step"] <= n).all()
    store = RunStore(tmp_path)
    store.save(rec)
    back = store.load(rec.config)
    assert back.status == "diverged" and back.summary["diverged_at"] == n
    assert_same_arrays(rec, back, stored=True)


# --- records --------------------------------------------------------------------------------------------------------

def _plain_json(v) -> bool:
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain_json(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_plain_json(x) for x in v)
    return v is None or isinstance(v, (bool, int, float, str))


def test_record_round_trip(data, tmp_path):
    """Save then load gives identical config, summary and arrays; plain JSON; npz without pickles; no temp files."""
    rec = train(probed(Spec("vgg", "batch", 0.1), steps=6, probe_every=3, eval_every=3), data)
    store = RunStore(tmp_path)
    path = store.save(rec)
    back = store.load(RunConfig.from_dict(rec.config).to_dict())
    assert back.config == rec.config and back.summary == rec.summary and back.env == rec.env
    assert back.status == rec.status == "completed"
    assert_same_arrays(rec, back, stored=True)
    meta = json.loads(path.read_text())
    assert _plain_json(meta) and meta["config"] == rec.config
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        assert sorted(z.files) == sorted(compact(rec.config, rec.arrays))
        assert all(z[k].dtype != object for k in z.files)
    store.save(rec)  # overwriting is fine
    assert not list(tmp_path.rglob("*.tmp"))
    assert [r.key for r in store.all()] == [rec.key] and store.all("other") == []
    assert store.load(dataclasses.replace(RunConfig.from_dict(rec.config), seed=9).to_dict()) is None


def test_records_of_configs_differing_only_in_lr_do_not_collide(tmp_path):
    """lr 0.1 and 0.5 give dotted file names ('...lr0.1-...'): each config keeps its own record."""
    store = RunStore(tmp_path)
    recs = [_fake(Spec("vgg", "none", lr), "cpu", 0) for lr in (0.1, 0.5)]
    for i, r in enumerate(recs):
        r.arrays["train_acc"] = np.full(1, float(i))
        store.save(r)
    for i, r in enumerate(recs):
        back = store.load(r.config)
        assert back.config == r.config and back["train_acc"][0] == i
    assert len(store.all("cpu")) == 2


# --- resume ---------------------------------------------------------------------------------------------------------

def test_resume_gives_the_uninterrupted_record(data, tmp_path):
    """stop_after leaves a checkpoint and returns None; resuming finishes bit-for-bit like an uninterrupted run
    (probes and noisy-BN noise included) and removes the checkpoint; another config's checkpoint is refused."""
    cfg = probed(Spec("vgg", "noisy", 0.1), steps=14, probe_every=5, eval_every=6)
    full = train(cfg, data)
    ckpt = tmp_path / "ck" / "run.pt"
    assert train(cfg, data, checkpoint=ckpt, checkpoint_every=4, stop_after=7) is None
    assert ckpt.exists() and not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ValueError, match="another config"):
        train(dataclasses.replace(cfg, lr=0.2), data, checkpoint=ckpt)
    resumed = train(cfg, data, checkpoint=ckpt)
    assert resumed is not None and not ckpt.exists()
    assert_same_arrays(full, resumed)


def test_environment_names_code_libraries_device_and_cuda_float_settings(monkeypatch):
    """environment() says what produced a run; on CUDA also whether float32 convolutions and matmuls ran in TF32."""
    from bnrepro.records import environment

    env = environment("cpu")
    assert env["git_commit"] and isinstance(env["torch"], str) and env["device_name"].startswith("CPU")
    assert json.loads(json.dumps(env)) == env and "cudnn_tf32" not in env
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev: "Fake GPU")
    cuda = environment("cuda")
    assert cuda["device_name"] == "Fake GPU" and cuda["cudnn_tf32"] is torch.backends.cudnn.allow_tf32
    assert cuda["matmul_precision"] == torch.get_float32_matmul_precision()


def test_environment_is_read_when_the_run_starts_and_kept_across_a_resume(data, tmp_path, monkeypatch):
    """The record names the code a run started under (read before the first step, so later edits to the checkout
    do not mark it modified), and a run resumed under other code says so."""
    commits = iter(["start", "later"])
    monkeypatch.setattr(train_mod, "environment",
                        lambda device: {"git_commit": next(commits), "git_dirty_src": False, "device": str(device)})
    cfg = tiny_vgg("batch", steps=6)
    ckpt = tmp_path / "run.pt"
    assert train(cfg, data, checkpoint=ckpt, stop_after=3) is None
    rec = train(cfg, data, checkpoint=ckpt)
    assert rec.env["git_commit"] == "start"
    assert rec.env["resumed_under"] == {"git_commit": "later", "git_dirty_src": False}


def test_a_run_resumed_on_another_machine_names_both(data, tmp_path, monkeypatch):
    """A run started on a GPU and finished on a CPU (from its checkpoint) keeps the GPU as its device and names the
    CPU it finished on; the provenance table shows both."""
    envs = iter([{"git_commit": "c", "git_dirty_src": False, "device": "cuda", "device_name": "GPU A"},
                 {"git_commit": "c", "git_dirty_src": False, "device": "cpu", "device_name": "CPU B",
                  "cpu_capability": "AVX2", "threads": 1}])
    monkeypatch.setattr(train_mod, "environment", lambda device: next(envs))
    cfg = tiny_vgg("batch", steps=6)
    ckpt = tmp_path / "run.pt"
    assert train(cfg, data, checkpoint=ckpt, stop_after=3) is None
    rec = train(cfg, data, checkpoint=ckpt)
    assert rec.env["device_name"] == "GPU A"
    assert rec.env["resumed_under"]["device_name"] == "CPU B" and rec.env["resumed_under"]["threads"] == 1
    rec.env |= {"bnrepro": "x", "torch": "t", "python": "p"}
    assert "GPU A, finished on CPU B" in report.provenance_markdown([rec])


class CrashingData:
    """The data set, except that asking for the batch of step `crash_at` raises (a killed process)."""

    def __init__(self, data, crash_at):
        self.data, self.crash_at = data, crash_at

    def __getattr__(self, name):
        return getattr(self.data, name)

    def batch(self, step, *a, **kw):
        if step == self.crash_at:
            raise KeyboardInterrupt("killed")
        return self.data.batch(step, *a, **kw)


def test_resume_after_a_crash(data, tmp_path):
    """A run killed mid-way resumes from its last periodic checkpoint to the uninterrupted record."""
    cfg = tiny_vgg("batch", steps=16)
    full = train(cfg, data)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, CrashingData(data, 11), checkpoint=ckpt, checkpoint_every=5)
    assert ckpt.exists()
    resumed = train(cfg, data, checkpoint=ckpt)
    assert_same_arrays(full, resumed)


# --- computing runs and budgets -------------------------------------------------------------------------------------

def test_get_or_train_loads_instead_of_retraining(tmp_path, monkeypatch):
    """A stored record is loaded (train is not called); force=True retrains."""
    monkeypatch.setenv("BNREPRO_CACHE", str(tmp_path / "cache"))
    smoke = dataclasses.replace(get_budget("smoke"), dln_steps=20, dln_probe_every=10)
    monkeypatch.setitem(budgets.BUDGETS, "smoke", smoke)
    calls = []

    def counting_train(*a, **kw):
        calls.append(a[0])
        return train(*a, **kw)

    monkeypatch.setattr(experiments, "train", counting_train)
    store = RunStore(tmp_path / "records")
    cfg = make_config(Spec("dln", "batch", 1e-6), "smoke")
    first = get_or_train(cfg, None, store=store)
    assert len(calls) == 1 and calls[0].steps == 20 and first.status == "completed"
    assert store.path(first.config).with_suffix(".json").exists()
    assert not list((tmp_path / "cache").rglob("*.pt"))  # the checkpoint is gone

    def no_train(*a, **kw):
        raise AssertionError("retrained although a record exists")

    monkeypatch.setattr(experiments, "train", no_train)
    again = get_or_train(cfg, None, store=store)
    assert again.config == first.config and np.array_equal(again["train_loss"], first["train_loss"])
    monkeypatch.setattr(experiments, "train", counting_train)
    forced = get_or_train(cfg, None, store=store, force=True)
    assert len(calls) == 2 and np.array_equal(forced["train_loss"], first["train_loss"])


def _fake(spec, budget, seed) -> RunRecord:
    return RunRecord(make_config(spec, budget, seed).to_dict(), {}, "completed", {}, {"train_loss": np.zeros(1)})


def test_resolve_budget_best(tmp_path):
    """'best' is the most faithful budget with every requested run recorded, else 'smoke'."""
    store = RunStore(tmp_path)
    specs, seeds = [Spec("vgg", "none", 0.1), Spec("vgg", "batch", 0.1), Spec("dln", "none", 1e-6)], [0, 1]
    assert resolve_budget("best", specs, seeds, store) == "smoke"
    for s in specs:
        for seed in seeds:
            store.save(_fake(s, "cpu", seed))
    assert resolve_budget("best", specs, seeds, store) == "cpu"
    for s in specs[1:]:
        for seed in seeds:
            store.save(_fake(s, "paper", seed))
    assert resolve_budget("best", specs, seeds, store) == "cpu"  # paper lacks one run
    store.save(_fake(specs[0], "paper", 0))
    store.save(_fake(specs[0], "paper", 1))
    assert resolve_budget("best", specs, seeds, store) == "paper"
    assert resolve_budget("cpu", specs, seeds, store) == "cpu"
    with pytest.raises(ValueError):
        resolve_budget("nope", specs, seeds, store)


def test_resolve_budget_best_skips_a_budget_that_does_not_record_the_section(tmp_path):
    """cpu15k records some sections only: Section 4's page never shows it, even where its runs happen to exist."""
    store = RunStore(tmp_path)
    specs = [Spec("vgg", "batch", 0.1), Spec("dln", "batch", 1e-6, 0.1)]
    for budget in ("cpu", "cpu15k"):
        for s in specs:
            store.save(_fake(s, budget, 0))
    assert resolve_budget("best", specs, [0], store, "2.2") == "cpu15k"
    assert resolve_budget("best", specs, [0], store, "4") == "cpu"
    assert resolve_budget("best", specs, [0], store) == "cpu15k"


def test_a_dln_run_is_one_record_at_every_budget_with_its_settings():
    spec = Spec("dln", "batch", 1e-6, 0.1)
    configs = {b: make_config(spec, b, 0) for b in ("cpu", "cpu15k", "cpu_w16", "cpu_w4", "paper")}
    assert {c.budget for c in configs.values()} == {"cpu"} and len(set(configs.values())) == 1
    assert make_config(spec, "smoke", 0).budget == "smoke"  # 200 steps: a run of its own
    assert make_config(Spec("vgg", "batch", 0.1), "paper", 0).budget == "paper"


def test_unknown_budget_lists_valid_ones():
    with pytest.raises(ValueError, match=", ".join(budgets.BUDGETS)):
        get_budget("nope")
    assert [get_budget(n).name for n in budgets.BUDGET_ORDER] == ["smoke", "cpu", "cpu15k", "paper"]


def test_data_root(monkeypatch):
    """The argument, else BNREPRO_DATA, else the budget's default; at the cpu budget with none, a clear error."""
    monkeypatch.delenv("BNREPRO_DATA", raising=False)
    with pytest.raises(ValueError, match="BNREPRO_DATA"):
        data_root(None, get_budget("cpu"))
    assert data_root(None, get_budget("smoke")) == "synthetic"
    assert data_root("/some/where", get_budget("cpu")) == "/some/where"
    monkeypatch.setenv("BNREPRO_DATA", "/env/data")
    assert data_root(None, get_budget("paper")) == "/env/data"


def test_run_config_validation_and_dict_round_trip():
    cfg = make_config(Spec("vgg", "noisy", 0.1), "cpu")
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (dict(norm="group"), dict(lr=0.0), dict(lr=float("nan")), dict(steps=0)):
        with pytest.raises(ValueError):
            RunConfig(**bad)
    with pytest.raises(ValueError, match="needs data"):
        train(tiny_vgg())
