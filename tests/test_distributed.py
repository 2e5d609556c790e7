"""Computing the book's runs at once: the run list, the scheduler (order, slots, record locks, skip-if-stored,
failures, Ctrl-C), the Ray path on a local Ray and on a real two-node cluster on localhost with a worker killed,
and the Ray benchmark at a tiny size."""

import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bnrepro import cli, distributed, plan
from bnrepro.budgets import BUDGETS
from bnrepro.distributed import compute
from bnrepro.experiments import RecordLock
from bnrepro.plan import book_configs, book_specs
from bnrepro.records import RunRecord, RunStore
from bnrepro.specs import Spec, make_config

REPO = Path(__file__).resolve().parents[1]
DLN_BN, DLN_STD, VGG_BN = Spec("dln", "batch", 1e-6), Spec("dln", "none", 1e-6), Spec("vgg", "batch", 0.1)
BROKEN = Spec("dln", "noisy", 1e-6)  # noisy BatchNorm is for VGG only: building the model raises


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Checkpoints and Ray's files in a temp cache; no data location or Ray cluster from the environment."""
    monkeypatch.setenv("BNREPRO_CACHE", str(tmp_path / "cache"))
    for var in ("BNREPRO_DATA", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def short_cache(monkeypatch):
    """A cache in a short temp folder, for a local Ray: its socket paths under cache/ray/ are limited in length."""
    with tempfile.TemporaryDirectory(prefix="bnr-", dir="/tmp") as cache:
        monkeypatch.setenv("BNREPRO_CACHE", cache)
        yield Path(cache)


def tiny(spec: Spec, seed: int = 0):
    """A smoke-budget book run cut to 4 steps (probes at steps 0 and 2) on synthetic data."""
    return dataclasses.replace(make_config(spec, "smoke", seed, "synthetic"), steps=4, probe_every=2, eval_every=2)


def fake_record(cfg) -> RunRecord:
    return RunRecord(cfg.to_dict(), {}, "completed", {"wall_time_s": 0.0}, {"train_loss": np.zeros(1)})


def stored_files(store: RunStore) -> list[str]:
    return sorted(p.name for p in store.root.rglob("*") if p.is_file())


def expected_files(store: RunStore, configs) -> list[str]:
    return sorted(store.path(c.to_dict(), sfx).name for c in configs for sfx in (".json", ".npz"))


def assert_same_runs(a: RunRecord, b: RunRecord) -> None:
    """Same config, status and summary (wall time aside), and bit-for-bit equal arrays."""
    assert a.config == b.config and a.status == b.status
    assert {k: v for k, v in a.summary.items() if k != "wall_time_s"} == \
        {k: v for k, v in b.summary.items() if k != "wall_time_s"}
    assert a.arrays.keys() == b.arrays.keys()
    for k in a.arrays:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True), k


# --- the run list ------------------------------------------------------------------------------------------------

def test_book_configs_every_spec_at_every_seed():
    """Every section's runs at every seed; each DLN run also under the other loss-scale readings, and in float64 at
    seed 0 only (what judge.variants judges); no run twice."""
    from bnrepro.readings import READINGS

    configs = book_configs("smoke", [0, 1], "synthetic")
    assert len(configs) == len(set(configs))
    for seed in (0, 1):
        for spec in book_specs("smoke"):
            assert make_config(spec, "smoke", seed, "synthetic") in configs
    dln = [c for c in configs if c.model == "dln"]
    assert {c.dln_loss_scale for c in dln} == set(READINGS)
    assert {c.seed for c in dln if c.dtype == "float64"} == {0}
    assert all(c.dtype == "float32" for c in configs if c.model != "dln")


def test_part_iv_runs_carry_its_probes_and_the_paper_runs_keep_their_configs():
    """The LR sweep's new learning rates and the ResNet carry PART4_PROBES; the paper's runs that Part IV reuses do
    not (their records stay valid); Part IV's DLN runs get no loss-scale or float64 variants."""
    from bnrepro.specs import PART4_PROBES, SWEEP_LRS

    configs = book_configs("smoke", [0], "synthetic")
    for c in configs:
        part4 = c.model.startswith("resnet") or c.lr in SWEEP_LRS["dln" if c.model == "dln" else "vgg"]
        if part4:
            assert all(getattr(c, k) == v for k, v in PART4_PROBES.items()), c
        else:  # the paper's runs: no Part IV probe beyond the curvature every DLN run has had
            assert (c.random_dirs, c.weight_norms, c.curvature_iters > 0) == (0, False, c.model == "dln"), c
    assert {c.width for c in configs if c.model == "resnet20"} == {1 / 4}
    assert not [c for c in configs if c.model == "dln" and c.lr in SWEEP_LRS["dln"] and c.dln_loss_scale != 0.1]


def test_book_configs_of_a_budget_restricted_to_sections():
    """cpu15k records the VGG runs of its sections at the paper's 15,000 steps; their DLN runs are the cpu budget's
    records (one DLN run at every budget with its settings); --sections narrows them further."""
    from bnrepro.sections import SECTIONS

    configs = book_configs("cpu15k", [0], "cifar10")
    vgg = [c for c in configs if c.model != "dln"]
    wanted = {(s.norm, s.lr) for n in ("2.1", "2.2", "3.1", "3.3", "IV.1") for s in SECTIONS[n].specs if s.model == "vgg"}
    assert {(c.norm, c.lr) for c in vgg} == wanted and len(vgg) == len(wanted)
    assert {(c.steps, c.budget, c.data) for c in vgg} == {(15_000, "cpu15k", "cifar10")}
    assert {c.budget for c in configs if c.model == "dln"} == {"cpu"}
    only = book_configs("cpu15k", [0], "cifar10", ["2.1"])
    assert [(c.model, c.norm, c.lr) for c in only] == [("vgg16", s.norm, s.lr) for s in SECTIONS["2.1"].specs]
    with pytest.raises(ValueError, match="has no section 4"):
        book_configs("cpu15k", [0], "cifar10", ["4"])


def test_budget_sections_exist():
    from bnrepro.sections import SECTIONS

    for budget in BUDGETS.values():
        assert set(budget.sections or ()) <= set(SECTIONS), budget.name


def test_import_bnrepro_does_not_import_ray():
    code = ("import sys, bnrepro, bnrepro.cli, bnrepro.experiments, bnrepro.distributed; "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# --- the scheduler, one run after another (no Ray) ----------------------------------------------------------------

def test_stored_runs_are_skipped_unless_forced(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path / "records")
    configs = [tiny(DLN_BN), tiny(DLN_STD), tiny(VGG_BN)]
    trained = []
    real = distributed.train_run
    monkeypatch.setattr(distributed, "train_run", lambda cfg, *a, **kw: trained.append(cfg) or real(cfg, *a, **kw))
    assert compute(configs, "synthetic", store=store, workers=1) == []
    assert sorted(trained, key=str) == sorted(configs, key=str)
    assert stored_files(store) == expected_files(store, configs)  # every record once; no lock or temporary file
    out = capsys.readouterr().out
    assert "0 of 3 runs are stored" in out
    for c in configs:  # one line per run: its config, status and wall time
        line, = (ln for ln in out.splitlines() if store.path(c.to_dict(), "").name in ln)
        assert f"{c.norm}" in line and f"lr={c.lr:g}" in line and "completed" in line and "s  " in line
    first = {c: store.load(c.to_dict()) for c in configs}

    trained.clear()
    store.path(configs[0].to_dict()).unlink()
    assert compute(configs, "synthetic", store=store, workers=1) == []
    assert trained == [configs[0]] and "2 of 3 runs are stored" in capsys.readouterr().out

    trained.clear()
    assert compute(configs, "synthetic", store=store, workers=1, force=True) == []
    assert len(trained) == 3
    for c in configs:
        assert_same_runs(first[c], store.load(c.to_dict()))


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, capsys):
    store = RunStore(tmp_path / "records")
    good, bad = [tiny(DLN_BN), tiny(DLN_STD)], tiny(BROKEN)
    failures = compute([good[0], bad, good[1]], "synthetic", store=store, workers=1)
    assert [f.config for f in failures] == [bad]
    assert "Traceback" in failures[0].error and "noisy" in failures[0].error
    assert stored_files(store) == expected_files(store, good)
    out, err = capsys.readouterr()
    assert "FAILED" in out and f"FAILED: {distributed.run_name(bad)}" in err
    assert json.dumps(bad.to_dict()) in err and "Traceback" in err


def test_book_runs_exits_1_naming_every_failed_run(tmp_path, monkeypatch, capsys):
    configs = [tiny(DLN_BN), tiny(BROKEN), tiny(BROKEN, seed=1)]
    monkeypatch.setattr(plan, "book_configs", lambda *a: configs)
    assert cli.main(["book-runs", "--budget", "smoke", "--workers", "1", "--records", str(tmp_path)]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "2 of 3 runs failed" in last
    assert distributed.run_name(configs[1]) in last and distributed.run_name(configs[2]) in last


class FakeRunner:
    """Stands in for Ray: `slots` runs at once; `wait` ends the oldest one, with a fake record, or raises
    KeyboardInterrupt at call number `interrupt_at`. Checks that every running run holds its record's lock."""

    def __init__(self, store: RunStore, slots: int, interrupt_at: int | None = None):
        self.store, self.n, self.interrupt_at = store, slots, interrupt_at
        self.submitted, self.running, self.max_running, self.waits, self.cancelled = [], [], 0, 0, False

    def slots(self):
        return self.n

    def submit(self, cfg, root, restart):
        assert RecordLock(self.store, cfg).path.exists() and not RecordLock(self.store, cfg).acquire(wait=False)
        self.submitted.append(cfg)
        self.running.append(cfg)
        self.max_running = max(self.max_running, len(self.running))

    def wait(self, timeout):
        self.waits += 1
        if self.waits == self.interrupt_at:
            raise KeyboardInterrupt
        cfg = self.running.pop(0)
        return [(cfg, fake_record(cfg))]

    def cancel(self):
        self.cancelled = True

    def close(self):
        pass


def use_runner(monkeypatch, runner: FakeRunner) -> None:
    monkeypatch.setattr(distributed, "_Ray", lambda *a: runner)


def test_longest_runs_first_at_most_slots_at_once(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    configs = book_configs("smoke", [0], "synthetic")
    runner = FakeRunner(store, slots=2)
    use_runner(monkeypatch, runner)
    assert compute(configs, store=store, workers=2) == []
    assert runner.max_running == 2 and sorted(runner.submitted, key=str) == sorted(configs, key=str)
    work = [distributed._work(c) for c in runner.submitted]
    assert work == sorted(work, reverse=True)  # the largest estimated work first, every DLN run last
    vgg = [c.norm for c in runner.submitted if c.model == "vgg16"]
    assert vgg[0] == "noisy" and {c.model for c in runner.submitted[-4:]} == {"dln"}
    dln = [c.norm for c in runner.submitted if c.is_dln]  # the slowest normalizations first, no normalization last
    assert dln.index("l1") < dln.index("batch") < dln.index("none") and dln[-1] == "none"
    assert stored_files(store) == expected_files(store, configs)


def test_a_run_another_process_computes_is_waited_for_not_recomputed(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path)
    mine, theirs = tiny(DLN_STD), tiny(VGG_BN)
    other = RecordLock(store, theirs)
    assert other.acquire(wait=False)

    def other_process_finishes():
        time.sleep(0.5)
        store.save(fake_record(theirs))
        other.release()

    runner = FakeRunner(store, slots=2)
    use_runner(monkeypatch, runner)
    thread = threading.Thread(target=other_process_finishes)
    thread.start()
    try:
        assert compute([theirs, mine], store=store, workers=2) == []
    finally:
        thread.join()
    assert runner.submitted == [mine]
    assert "stored by another process" in capsys.readouterr().out
    assert stored_files(store) == expected_files(store, [mine, theirs])


def test_ctrl_c_cancels_and_leaves_no_partial_record(tmp_path, monkeypatch, capsys):
    """Interrupted while two runs are going: the finished run is stored, nothing else, no lock is left; the
    command says so and exits 130."""
    configs = [tiny(VGG_BN), tiny(DLN_BN), tiny(DLN_STD)]
    store = RunStore(tmp_path)
    runner = FakeRunner(store, slots=2, interrupt_at=2)
    use_runner(monkeypatch, runner)
    monkeypatch.setattr(plan, "book_configs", lambda *a: configs)
    assert cli.main(["book-runs", "--budget", "smoke", "--workers", "2", "--records", str(tmp_path)]) == 130
    assert runner.cancelled and "interrupted" in capsys.readouterr().err
    assert stored_files(store) == expected_files(store, configs[:1])


def test_a_killed_process_leaves_no_lock_that_blocks_or_stays(tmp_path):
    """SIGKILL a process holding a record's lock: the lock dies with it (the next process takes it at once and
    removes the file on release), and the next compute() removes such files of its budgets; a live lock stays."""
    store = RunStore(tmp_path)
    cfg, live = tiny(DLN_BN), tiny(DLN_STD)
    lock = RecordLock(store, cfg)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from bnrepro.experiments import RecordLock; "
         "RecordLock(path=Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(600)", str(lock.path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert not lock.acquire(wait=False)
    finally:
        holder.kill()
        holder.wait()
    assert lock.path.exists() and lock.acquire(wait=False)
    lock.release()
    assert not lock.path.exists()

    held = RecordLock(store, live)
    assert held.acquire(wait=False)
    stale = RecordLock(store, cfg).path
    stale.touch()  # as a killed process leaves it
    assert compute([cfg], "synthetic", store=store, workers=1) == []
    assert not stale.exists() and held.path.exists()
    held.release()
    assert stored_files(store) == expected_files(store, [cfg])


def test_old_ray_sessions_are_pruned(tmp_path):
    for i in range(5):
        d = tmp_path / f"session_{i}"
        d.mkdir()
        os.utime(d, (i, i))
    (tmp_path / "session_latest").symlink_to(tmp_path / "session_4")
    distributed._prune_sessions(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session_3", "session_4", "session_latest"]


# --- the Ray path ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ray_runs_equal_sequential_runs(tmp_path, short_cache):
    """On a local Ray (2 CPUs): the data travels through the object store, each record equals the sequential
    run's bit for bit, a raising run is reported with its traceback, and Ray's files are under cache/ray/."""
    configs = [tiny(VGG_BN), tiny(DLN_BN), tiny(BROKEN)]
    seq, ray = RunStore(tmp_path / "seq"), RunStore(tmp_path / "ray")
    assert [f.config for f in compute(configs, "synthetic", store=seq, workers=1, device="cpu")] == [configs[2]]
    failures = compute(configs, "synthetic", store=ray, workers=2, device="cpu")
    assert [f.config for f in failures] == [configs[2]] and "noisy" in failures[0].error
    assert stored_files(ray) == expected_files(ray, configs[:2])
    for c in configs[:2]:
        assert_same_runs(seq.load(c.to_dict()), ray.load(c.to_dict()))
        assert ray.load(c.to_dict()).env["threads"] == 1
    assert list((short_cache / "ray").glob("session_*/logs"))


# --- a real two-node cluster on localhost ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_processes(groups: set[int]) -> dict[int, str]:
    """pid -> command line of the live (not zombie) processes in the process groups `groups` and of their
    descendants (Ray's workers run in process groups of their own, as children of a raylet); Linux /proc."""
    procs = {}  # pid -> (ppid, pgid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                procs[int(stat.parent.name)] = (int(fields[1]), int(fields[2]))
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    mine = {pid for pid, (_, pgid) in procs.items() if pgid in groups}
    while more := {pid for pid, (ppid, _) in procs.items() if ppid in mine} - mine:
        mine |= more
    out = {}
    for pid in mine:
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return out


def stop_cluster(groups: set[int]) -> dict[int, str]:
    """SIGTERM the process groups and their descendants, then SIGKILL what is left after 3 s (Ray's GCS and raylet
    may take longer); returns what survived (nothing)."""
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        for pid in cluster_processes(groups):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while cluster_processes(groups) and time.monotonic() < deadline:
            time.sleep(0.2)
    return cluster_processes(groups)


@pytest.fixture
def two_node_cluster(monkeypatch):
    """A Ray cluster on localhost: a head node and a second node (`ray start --address`) with one CPU each and a
    resource of its own, in a temp folder and on free ports. Yields (address, process groups). Torn down however
    the test ends, by stopping exactly its own processes (`ray stop` would stop every Ray of the machine's user)."""
    temp = tempfile.mkdtemp(prefix="bnr-ray-", dir="/tmp")  # short: Ray's socket paths are limited to 107 bytes
    # Ray's token authentication with a token of the test's own, given to the nodes and (through os.environ) the
    # driver: a joining node does not read ~/.ray/auth_token unless told to use tokens.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(Path(sys.executable).with_name("ray"))
    groups: set[int] = set()
    port = free_port()

    def ray_start(*args: str) -> None:
        """`ray start ARGS` in a session of its own (its daemons stay in that process group); tried again as the
        embedded Ray is (distributed.RAY_START_ATTEMPTS), since a busy machine can make Ray miss its deadlines."""
        for _ in range(distributed.RAY_START_ATTEMPTS):
            p = subprocess.Popen([ray, "start", *args, "--num-cpus=1", "--disable-usage-stats"], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            groups.add(p.pid)
            out, _ = p.communicate(timeout=300)
            if p.returncode == 0:
                return
            stop_cluster({p.pid})
        pytest.fail(f"ray start {' '.join(args)} failed:\n{out}")

    try:
        ray_start("--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
                  f"--dashboard-port={free_port()}")
        ray_start(f"--address=127.0.0.1:{port}", '--resources={"second_node": 1}')
        yield f"127.0.0.1:{port}", groups
    finally:
        leftover = stop_cluster(groups)
        shutil.rmtree(temp, ignore_errors=True)
        assert not leftover, f"Ray processes survived the teardown: {leftover}"


def kill_a_running_task(groups: set[int], proc: subprocess.Popen, after: float = 0.7) -> str | None:
    """SIGKILL the first cluster worker found running a run (`ray::_train_task`) once it has run `after` seconds;
    returns its command line (None if every run ended first)."""
    while proc.poll() is None:
        for pid, cmd in cluster_processes(groups).items():
            if cmd.startswith("ray::_train_task"):
                time.sleep(after)
                if cluster_processes(groups).get(pid, "").startswith("ray::_train_task"):
                    os.kill(pid, signal.SIGKILL)
                    return cmd
        time.sleep(0.1)
    return None


@pytest.mark.slow
@pytest.mark.cluster
def test_two_node_cluster_survives_a_killed_worker(two_node_cluster, tmp_path):
    """`book-runs --address` on two nodes computes Section 2.1's smoke runs (five VGG runs) although one worker is
    killed mid-run: every record exists once and equals the sequential run's bit for bit."""
    address, groups = two_node_cluster
    store = RunStore(tmp_path / "records")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bnrepro", "book-runs", "--budget", "smoke", "--seeds", "0",
                             "--sections", "2.1", "--address", address, "--records", str(store.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # with the cluster's token
    try:
        killed = kill_a_running_task(groups, proc)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    t_cluster = time.perf_counter() - t0
    assert proc.returncode == 0, err
    assert killed, "no run was going when the test looked for one to kill"
    configs = book_configs("smoke", [0], "synthetic", ["2.1"])
    assert len(configs) == 5 and stored_files(store) == expected_files(store, configs)
    for c in configs:
        assert out.count(store.path(c.to_dict(), "").name) == 1, out
    t0 = time.perf_counter()
    reference = RunStore(tmp_path / "sequential")
    assert compute(configs, "synthetic", store=reference, workers=1) == []
    print(f"\ncluster: book-runs {t_cluster:.1f} s with a worker killed; sequential {time.perf_counter() - t0:.1f} s")
    for c in configs:
        assert_same_runs(reference.load(c.to_dict()), store.load(c.to_dict()))


# --- the benchmark --------------------------------------------------------------------------------------------------

def bench_ray(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_ray.py"), *argv], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO / "src")})


@pytest.mark.slow
def test_bench_ray_runs_at_a_tiny_size(short_cache):
    r = bench_ray("--budget", "smoke", "--fraction", "0.07", "--workers", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    *_, legs, ceiling, last = r.stdout.strip().splitlines()
    assert last.startswith("sequential ") and " ray " in last and "ratio " in last
    assert "4 vgg16 (2 steps), 2 dln (14 steps)" in r.stdout  # the subset, at 7% of the smoke budget's steps
    assert legs.startswith("sequential: ") and "over 2 workers" in legs
    # two workers run at most twice the work of one wall second, so the ratio never exceeds its ceiling
    ratio, bound = float(last.rsplit(" ", 1)[1]), float(ceiling.split()[1])
    assert ceiling.startswith("ceiling ") and 0 < ratio <= bound + 0.01


def test_bench_ray_rejects_a_fraction_outside_zero_to_one():
    r = bench_ray("--fraction", "1.5")
    assert r.returncode != 0 and "--fraction must be in (0, 1], got 1.5" in r.stderr
