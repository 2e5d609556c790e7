"""The record format (bnrepro.records): what a stored record keeps of a run's arrays, that every reader reads the
same numbers from it as from the run itself, that records stored before it convert in place once, and that every
committed record is in it and within its budget's bound."""

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bnrepro import cli
from bnrepro.budgets import BUDGETS, RECORD_MB
from bnrepro.data import load_cifar10
from bnrepro.figures import activation, activation_arrays
from bnrepro.probes.landscape import DLN_GRID, VGG_GRID
from bnrepro.probes.weight_norms import gradient_growth, initial_grad_sq_norms, residuals
from bnrepro.records import FORMAT, RunRecord, RunStore, _is_compact, compact, round_significand
from bnrepro.sections import beyond_lr, beyond_more, sec4
from bnrepro.train import RunConfig, train

ROOT = Path(__file__).resolve().parents[1]
PROBES = dict(weight_norms=True, curvature_iters=2, random_dirs=1, budget="test")


@pytest.fixture(scope="module")
def runs() -> dict[str, RunRecord]:
    """Tiny runs with every probe, as `train` returns them: VGG-16 at width 1/16 and the DLN, standard and BN, at the
    learning rates whose activations and Section 4 probe the chapters read (0.1 and 1e-6), and VGG at 0.05."""
    data = load_cifar10("synthetic:256")
    vgg = dict(model="vgg16", steps=12, batch_size=32, width=1 / 16, data="synthetic:256", eval_every=6,
               probe_every=4, act_layers=(2, 11), ics_layers=(5,), landscape_grid=VGG_GRID, **PROBES)
    dln = dict(model="dln", steps=20, data="gaussian", eval_every=20, probe_every=5, act_layers=(1, 24),
               ics_layers=(9,), landscape_grid=DLN_GRID, dln_loss_scale=0.1, **PROBES)
    return {"vgg_std": train(RunConfig(norm="none", lr=0.1, **vgg), data),
            "vgg_bn": train(RunConfig(norm="batch", lr=0.1, bn_theory=True, **vgg), data),
            "vgg_bn_05": train(RunConfig(norm="batch", lr=0.05, **vgg), data),
            "dln_std": train(RunConfig(norm="none", lr=1e-6, **dln)),
            "dln_bn": train(RunConfig(norm="batch", lr=1e-6, bn_theory=True, **dln))}


@pytest.fixture(scope="module")
def stored(runs, tmp_path_factory) -> dict[str, RunRecord]:
    """The same runs saved and loaded back."""
    store = RunStore(tmp_path_factory.mktemp("records"))
    return {k: (store.save(r), store.load(r.config))[1] for k, r in runs.items()}


def test_the_format_names_every_array(runs, stored):
    for k, r in runs.items():
        assert set(r.arrays) <= set(FORMAT), k
        assert set(stored[k].arrays) <= {n for n, s in FORMAT.items() if s.dtype is not None}, k
        for name, a in stored[k].arrays.items():
            assert a.dtype == np.dtype(FORMAT[name].dtype), (k, name)


def test_a_record_keeps_what_its_readers_read(runs, stored):
    assert "train_loss" in stored["dln_std"].arrays and "train_loss" not in stored["vgg_std"].arrays
    assert {"weight_sq_norm", "weight_grad_sq_norm"} & set(stored["vgg_std"].arrays) == set()
    assert "weight_sq_norm" in stored["vgg_bn"].arrays  # the effective learning rate
    for k in ("vgg_std", "vgg_bn", "dln_std", "dln_bn"):
        steps, layers = runs[k]["weight_sq_norm"].shape
        assert stored[k]["weight_residual"].shape == (steps - 1, layers - 1), k
    assert not any(n.startswith("act_") for n in stored["vgg_bn_05"].arrays)  # no reader reads its activations
    assert not any(n.startswith("bn_theory") for n in stored["vgg_bn_05"].arrays)
    assert "bn_theory_unit" in stored["vgg_bn"].arrays and "bn_theory_unit" in stored["dln_bn"].arrays
    assert "act_pre_moments" not in stored["vgg_std"].arrays  # a standard network's "pre" is its "post"
    assert {"act_moments", "act_pre_moments"} & set(stored["dln_bn"].arrays) == set()  # Figure 9: quantiles
    assert {"act_quantiles", "act_pre_quantiles"} <= set(stored["dln_bn"].arrays)


def test_every_reader_reads_the_same_from_the_stored_record(runs, stored):
    """The float64 weight quantities come back at float32 precision, the residual at 8 significant bits (a relative
    error at most 2^-8); everything else is unchanged."""
    for k, r in runs.items():
        s = stored[k]
        for name in set(s.arrays) & set(r.arrays) - {"weight_sq_norm"}:
            assert np.array_equal(s[name], r[name], equal_nan=True), (k, name)
        for read, rtol in ((residuals, 2 ** -8 + 1e-6), (gradient_growth, 1e-6), (initial_grad_sq_norms, 1e-6)):
            np.testing.assert_allclose(read(s), read(r), rtol=rtol, err_msg=f"{k} {read.__name__}")
        assert beyond_lr.scale_residual(s) == pytest.approx(beyond_lr.scale_residual(r), rel=2 ** -8 + 1e-6)
        assert beyond_more.late_growth(s) == pytest.approx(beyond_more.late_growth(r), rel=1e-6)
        np.testing.assert_allclose(beyond_more.step0_gradients(s), beyond_more.step0_gradients(r), rtol=1e-6)
    for k in ("vgg_std", "vgg_bn", "dln_std", "dln_bn"):
        for point in ("post", "pre"):
            assert np.array_equal(activation(stored[k], point, "quantiles"), activation(runs[k], point, "quantiles"))
    for k in ("vgg_std", "vgg_bn"):
        for point in ("post", "pre"):
            for a, b in zip(activation_arrays(stored[k], point), activation_arrays(runs[k], point)):
                assert np.array_equal(a, b)
    assert np.array_equal(sec4.unit_std(stored["dln_std"]), sec4.unit_std(runs["dln_std"]))


def test_rounding_to_significant_bits_is_to_nearest_ties_to_even():
    one_ulp = 2.0 ** -7  # of 1.0 at 8 significant bits
    a = np.array([1 + one_ulp / 2, 1 + 3 * one_ulp / 2, 1 + one_ulp / 2 + 2 ** -20, 1 + one_ulp / 2 - 2 ** -20,
                  -(1 + 3 * one_ulp / 2), 3e-12, np.nan, np.inf, -np.inf, 0.0], dtype=np.float32)
    r = round_significand(a, 8)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r[:5], np.float32([1, 1 + 2 * one_ulp, 1 + one_ulp, 1, -(1 + 2 * one_ulp)]))
    assert abs(r[5] / 3e-12 - 1) <= 2 ** -8 and np.isnan(r[6]) and list(r[7:]) == [np.inf, -np.inf, 0.0]
    np.testing.assert_array_equal(round_significand(r, 8), r)  # idempotent: compact-records converts once
    x = np.random.default_rng(0).lognormal(-10, 3, 1001).astype(np.float32)
    assert np.median(round_significand(x, 8)) == round_significand(np.median(x)[None], 8)[0]  # monotonic


def test_an_activation_no_record_keeps_names_the_fix(stored):
    for rec, point, kind in ((stored["vgg_bn_05"], "post", "quantiles"), (stored["dln_bn"], "pre", "moments")):
        with pytest.raises(ValueError, match="ACTIVATIONS.*retrain"):
            activation(rec, point, kind)


def test_compacting_is_idempotent_and_its_bytes_reproducible(runs, tmp_path):
    store = RunStore(tmp_path)
    for r in runs.values():
        once = compact(r.config, r.arrays)
        twice = compact(r.config, once)
        assert once.keys() == twice.keys() and all(np.array_equal(once[k], twice[k], equal_nan=True) for k in once)
        path = store.path(r.config, ".npz")
        store.save(r)
        first = path.read_bytes()
        store.save(store.load(r.config))
        assert path.read_bytes() == first
        assert _is_compact(path, r.config, store.load(r.config).arrays)


def test_old_records_convert_in_place_once(runs, stored, tmp_path, capsys):
    """A record stored as before the format (np.savez_compressed of `train`'s arrays) is rewritten by
    `compact-records` to exactly what `save` stores; its JSON is untouched; a second run changes nothing."""
    store = RunStore(tmp_path)
    for r in runs.values():
        store.save(r)
    old = runs["dln_bn"]
    np.savez_compressed(store.path(old.config, ".npz"), **old.arrays)
    meta = store.path(old.config).read_bytes()
    assert cli.main(["compact-records", "--records", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("compacted 1 record")
    new = store.load(old.config)
    assert new.arrays.keys() == stored["dln_bn"].arrays.keys()
    assert all(np.array_equal(new[k], stored["dln_bn"][k], equal_nan=True) for k in new.arrays)
    assert store.path(old.config).read_bytes() == meta
    assert cli.main(["compact-records", "--records", str(tmp_path)]) == 0
    assert "compact already" in capsys.readouterr().out
    assert store.compact_all() == []


@pytest.fixture(scope="module")
def committed() -> list[Path]:
    """The checkout's tracked records (their JSON files)."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "records/*/*.json"], capture_output=True, text=True)
    if out.returncode != 0 or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no committed records to check")
    return [ROOT / p for p in out.stdout.split() if (ROOT / p).is_file()]


def test_every_budget_states_its_record_bound():
    assert RECORD_MB.keys() == BUDGETS.keys() and all(v > 0 for v in RECORD_MB.values())


def test_committed_records_are_within_their_budgets_bound(committed):
    size = {p: (p.stat().st_size + p.with_suffix(".npz").stat().st_size) / 1e6 for p in committed}
    big = {p: mb for p, mb in size.items() if mb > RECORD_MB[p.parent.name]}
    assert not big, (f"{len(big)} records over their budget's bound (bnrepro.budgets.RECORD_MB), e.g. " +
                     "; ".join(f"{p.parent.name}/{p.stem}: {mb:.2f} MB" for p, mb in list(big.items())[:5]))


def test_committed_records_are_in_the_record_format(committed):
    stale = []
    for p in committed:
        config = json.loads(p.read_text())["config"]
        with np.load(p.with_suffix(".npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if not _is_compact(p.with_suffix(".npz"), config, arrays):
            stale.append(p.stem)
    assert not stale, (f"{len(stale)} records not in the record format (convert them with `python -m bnrepro "
                       f"compact-records`), e.g. {stale[:5]}")


def test_a_stored_record_is_an_npz_numpy_reads(runs, tmp_path):
    path = RunStore(tmp_path).save(runs["vgg_bn"]).with_suffix(".npz")
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_LZMA}
    with np.load(path, allow_pickle=False) as z:
        assert "weight_residual" in z.files
