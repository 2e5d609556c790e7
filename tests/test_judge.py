"""Judging reads the record store only: a section's runs loaded and judged at the seeds recorded, a missing run one
error naming it and the `book-runs` command that computes it, nothing trained or written; and the chapters' compute
path (`cli.compute_missing`, through `book-runs`), which computes exactly what a page lacks."""

import dataclasses

import numpy as np
import pytest

import bnrepro.budgets as budgets
from bnrepro import cli, judge, plan
from bnrepro.claims import Check, Rule, Section, grade
from bnrepro.judge import MissingRuns
from bnrepro.records import RunRecord, RunStore
from bnrepro.sections import SECTIONS
from bnrepro.specs import Spec, make_config, run_name

DLN = Spec("dln", "none", 5e-7, 0.1)  # a run no section of the book has
VGG = Spec("vgg", "batch", 0.1)


def section(number: str, specs=(DLN,), variants: bool = True) -> Section:
    """A section whose one rule reads the final training loss of its first run: reproduced below 10."""
    key = (specs[0].model, specs[0].norm, specs[0].lr)
    rule = Rule(f"t{number}", "paper", "rule", "why", specs[:1],
                lambda runs: {"loss": runs[key].summary["final_train_loss"]},
                lambda v: grade([Check("loss", v["loss"], "<", 10)]), lambda v: f"loss {v['loss']:g}")
    return Section(number, "test", f"chapters/{number}", tuple(specs), (rule,), variants=variants)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty record store (also the default one) and checkpoints under tmp_path; sections T and U registered."""
    monkeypatch.setenv("BNREPRO_RECORDS", str(tmp_path / "records"))
    monkeypatch.setenv("BNREPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BNREPRO_DATA", raising=False)
    monkeypatch.setitem(SECTIONS, "T", section("T"))
    monkeypatch.setitem(SECTIONS, "U", section("U", (VGG,)))
    return RunStore()


def record(store: RunStore, spec: Spec, budget: str, seed: int, loss: float, data: str = "cifar10") -> None:
    cfg = make_config(spec, budget, seed, data)
    store.save(RunRecord(cfg.to_dict(), {}, "completed", {"final_train_loss": loss}, {"train_loss": np.zeros(1)}))


def test_a_section_is_judged_from_its_records_at_each_recorded_seed(store):
    """The first seed is the figures'; seed 1 lacks its run and is left out; the other loss-scale reading's run at
    seed 0 gives another verdict, so the claim shows its variants."""
    for seed, loss in ((0, 1.0), (2, 20.0)):
        record(store, DLN, "cpu", seed, loss)
    record(store, dataclasses.replace(DLN, loss_scale=1.0), "cpu", 0, 30.0)
    judged = judge.load_section("T", "cpu", [0, 1, 2])
    assert judged.budget == "cpu" and judged.seeds == (0, 2)
    assert [c[0].verdict for c in judged.claims.values()] == ["reproduced", "not reproduced"]
    assert judged.variants["tT"].verdicts == {(0.1, "float32", 0): "reproduced", (0.1, "float32", 2): "not reproduced",
                                             (1.0, "float32", 0): "not reproduced"}
    best = judge.load_section("T", "best", [0, 1, 2])  # the most faithful budget recorded: these records
    assert best.budget != "smoke" and best.seeds == (0, 2)


def test_a_missing_run_is_one_error_naming_it_and_the_command_and_nothing_is_written(store, tmp_path):
    with pytest.raises(MissingRuns) as e:
        judge.load_section("T", "best", [0, 1])  # nothing recorded: best falls back to smoke
    assert str(e.value) == (
        f"1 run of section T at the smoke budget is not recorded: {run_name(make_config(DLN, 'smoke', 0))}. Compute "
        "it with `python -m bnrepro book-runs --budget smoke --seeds 0,1 --sections T` (in a chapter: set "
        "`compute = True` in its parameters cell)")
    assert not (tmp_path / "records").exists() and not (tmp_path / "cache").exists()
    with pytest.raises(MissingRuns, match="not recorded: vgg16 batch lr=0.1 seed=0 .cpu.. Compute it with `python -m "
                       "bnrepro book-runs --budget cpu --seeds 0 --sections U --data PATH/TO/CIFAR10`"):
        judge.load_section("U", "cpu", [0])
    with pytest.raises(MissingRuns, match="--sections U --data /my/cifar`"):
        judge.load_section("U", "cpu", [0], data="/my/cifar")


def test_the_data_location_names_the_runs_data_kind_and_the_command_s_data(store, monkeypatch):
    record(store, VGG, "smoke", 0, 1.0, data="synthetic")
    assert judge.load_section("U", "smoke", [0]).seeds == (0,)  # smoke's own data: synthetic
    monkeypatch.setenv("BNREPRO_DATA", "/env/cifar")
    with pytest.raises(MissingRuns, match="--budget smoke --seeds 0 --sections U`"):  # book-runs reads the variable
        judge.load_section("U", "smoke", [0])


def test_every_section_s_missing_runs_are_one_error(store):
    with pytest.raises(MissingRuns) as e:
        judge.claims_by_seed("cpu", [0])
    assert e.value.sections == list(SECTIONS) and e.value.budget == "cpu"
    assert "--budget cpu --seeds 0 --sections " + ",".join(SECTIONS) in e.value.command
    assert {run_name(c) for c in e.value.configs} >= {run_name(make_config(s, "cpu", 0)) for s in (DLN, VGG)}


def test_get_run_reads_the_store_only(store):
    with pytest.raises(MissingRuns, match="1 run of the book at the cpu budget .*--budget cpu --seeds 3`"):
        judge.get_run(DLN, "cpu", 3)
    record(store, DLN, "cpu", 3, 5.0)
    assert judge.get_run(DLN, "cpu", 3).summary == {"final_train_loss": 5.0}
    f64 = dataclasses.replace(DLN, loss_scale=1.0, dtype="float64")
    with pytest.raises(MissingRuns, match=r"not recorded: dln none lr=5e-07 c=1 float64 seed=0 \(cpu\)\."):
        judge.get_run(f64, "cpu")


def test_what_a_page_computes(store):
    """A named budget computes its sections there; "best" computes the smoke runs of the sections no budget has
    recorded at the first seed, and nothing once every one is."""
    assert plan.to_compute("cpu", [0, 1], ["T"]) == ("cpu", ["T"])
    assert plan.to_compute("paper", [0]) == ("paper", None)
    assert plan.to_compute("best", [0, 1], ["T", "U"]) == ("smoke", ["T", "U"])
    record(store, DLN, "cpu", 0, 1.0)
    assert plan.to_compute("best", [0, 1], ["T", "U"]) == ("smoke", ["U"])
    assert plan.to_compute("best", [0], ["T"]) is None
    assert plan.book_runs_argv("smoke", [0, 2], ["T", "U"], "synthetic") == [
        "book-runs", "--budget", "smoke", "--seeds", "0,2", "--sections", "T,U", "--data", "synthetic"]


def test_a_chapter_computes_what_it_lacks_through_book_runs_then_reads_it(store, monkeypatch, capsys):
    """`compute = True`: the missing runs are trained and stored as `book-runs` does; a second call computes
    nothing, and judging then reads the records."""
    smoke = dataclasses.replace(budgets.get_budget("smoke"), dln_steps=20, dln_probe_every=10)
    monkeypatch.setitem(budgets.BUDGETS, "smoke", smoke)
    monkeypatch.setitem(SECTIONS, "T", section("T", variants=False))
    with pytest.raises(MissingRuns):
        judge.load_section("T", "best", [0])
    cli.compute_missing("best", [0], ["T"], workers=1)
    assert "0 of 1 runs are stored" in capsys.readouterr().out
    assert store.load(make_config(DLN, "smoke", 0).to_dict()).config["steps"] == 20
    cli.compute_missing("smoke", [0], ["T"], workers=1)
    assert "1 of 1 runs are stored" in capsys.readouterr().out
    assert judge.load_section("T", "best", [0]).budget == "smoke"
    with pytest.raises(ValueError, match="no section X"):
        cli.compute_missing("smoke", [0], ["X"], workers=1)
