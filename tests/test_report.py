"""Book-wide tables: verdicts across seeds, the replication status and the budgets, on hand-made claims (no
training)."""

from bnrepro import report
from bnrepro.claims import NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, Claim, Judged, Section


def claim(key: str, verdict: str, ours: str, near: tuple[str, ...] = ()) -> Claim:
    return Claim(key, f"the paper's {key} | with a bar", ours, verdict, "rule", near=near)


def by_section() -> dict[str, Judged]:
    """Section 2.1 with two claims at seeds 0-2 (the first agrees everywhere, the second does not) and Section 2.2
    with one claim judged at seed 0 only."""
    per_seed = {0: [claim("a", REPRODUCED, "a0"), claim("b", REPRODUCED, "b0")],
                1: [claim("a", REPRODUCED, "a1"), claim("b", PARTLY, "b1", ("x 0.98 against 1",))],
                2: [claim("a", REPRODUCED, "a2"), claim("b", NOT_REPRODUCED, "b2")]}
    two = Section("2.1", "t", "chapters/sec21_performance", (), ())
    one = Section("2.2", "t", "chapters/sec22_ics", (), ())
    return {"2.1": Judged(two, "cpu", (0, 1, 2), {}, per_seed),
            "2.2": Judged(one, "paper", (0,), {}, {0: [claim("c", PARTLY, "c0")]})}


def test_every_verdict_word_is_marked_with_its_own_class():
    marked = report.mark_verdicts(f"{REPRODUCED} at 1, {PARTLY} at 1, {NOT_REPRODUCED} at 1, {NOT_TESTABLE} at 1")
    assert marked == ('<span class="verdict verdict-reproduced">reproduced</span> at 1, '
                      '<span class="verdict verdict-partly-reproduced">partly reproduced</span> at 1, '
                      '<span class="verdict verdict-not-reproduced">not reproduced</span> at 1, '
                      '<span class="verdict verdict-not-testable">not testable</span> at 1')
    assert report.mark_verdicts("yes, partly, no") == "yes, partly, no"


def test_summary_box_lists_each_claim_with_its_verdict_and_the_details_behind_a_toggle():
    box = report.summary_box(by_section()["2.1"]).splitlines()
    assert box[0].startswith("::::{admonition}") and box[1] == ":class: tip" and box[-2:] == [":::", "::::"]
    assert "**cpu** budget, seeds 0, 1 and 2" in box[2]
    toggle = box.index(":::{dropdown} What we measured, and the verdict at each seed")
    claims, details = box[4:toggle - 1], box[toggle + 1:-2]
    assert len(claims) == len(details) == 2 and claims[0].startswith("1. the paper's a | with a bar **")
    assert '<span class="verdict verdict-not-reproduced">not reproduced</span> at 1 of 3 seeds' in claims[1]
    assert details[1].startswith("2. We measured (seed 0): b0<br>Seed 0: ")
    assert ('<br>Seed 1: <span class="verdict verdict-partly-reproduced">partly reproduced</span>; near its threshold: '
            'x 0.98 against 1<br>') in details[1]


def test_seed_agreement_counts_claims_with_one_verdict_at_every_seed():
    assert report.seed_agreement(by_section()) == (2, 3)


def test_seeds_markdown_has_a_column_per_seed_and_every_seed_s_numbers():
    text = report.seeds_markdown(by_section())
    lines = text.splitlines()
    assert lines[0].count("| Seed ") == 3 and lines[1].count("|---") == 6
    row_a, row_b, row_c = lines[2:5]
    assert row_a.endswith("| yes | yes | yes | **reproduced at 3 of 3 seeds** |") and "\\| with a bar" in row_a
    assert row_b.startswith("| [2.1](/chapters/sec21_performance.ipynb) `cpu` |")
    assert ("| yes | partly (near) | no | **reproduced at 1, partly reproduced at 1, not reproduced at 1 of 3 seeds "
            "(near a threshold at seed 1)** |") in row_b
    assert row_c.endswith("| partly | — | — | **partly reproduced at 1 of 1 seed** |")  # seeds 1, 2 not judged
    for s in range(3):
        assert f"  - seed {s}: b{s} (" in text
    assert "  - seed 1: b1 (partly reproduced; near its threshold: x 0.98 against 1)" in text
    assert "### Section 2.1 at the `cpu` budget" in text and "### Section 2.2 at the `paper` budget" in text


def test_status_markdown_shows_each_claim_s_budget_and_verdict_across_seeds():
    lines = report.status_markdown(by_section()).splitlines()
    assert len(lines) == 2 + 3
    assert lines[2] == ("| [2.1](/chapters/sec21_performance.ipynb) | the paper's a \\| with a bar | cpu "
                        '| **<span class="verdict verdict-reproduced">reproduced</span> at 3 of 3 seeds** |')
    assert lines[4].endswith('| paper | **<span class="verdict verdict-partly-reproduced">partly reproduced</span> at 1 '
                             'of 1 seed** |')


def test_budgets_markdown_has_a_column_per_budget_and_a_row_per_setting():
    from bnrepro.budgets import BUDGET_ORDER, BUDGETS

    lines = report.budgets_markdown().splitlines()
    assert lines[0] == "| setting | " + " | ".join(f"`{b}`" for b in BUDGET_ORDER) + " |"
    row = next(line for line in lines if line.startswith("| `vgg_steps` |"))
    assert row == "| `vgg_steps` | " + " | ".join(str(BUDGETS[b].vgg_steps) for b in BUDGET_ORDER) + " |"
    for b in BUDGET_ORDER:
        assert any(line.startswith(f"- `{b}`: {BUDGETS[b].description}. Its ") for line in lines), b


def test_recorded_cost_adds_up_the_book_s_records_at_each_seed(tmp_path):
    """Every book run at the budget and a seed that has records, the wall times added up per seed and in all, and
    the devices counted; a budget with no records says so."""
    import numpy as np

    from bnrepro.plan import book_configs
    from bnrepro.records import RunRecord, RunStore

    store = RunStore(tmp_path)
    cpu = {"device": "cpu", "device_name": "CPU", "threads": 1}
    gpu = {"device": "cuda:0", "device_name": "NVIDIA H200"}
    seed0, seed1 = book_configs("cpu", [0], "cifar10"), book_configs("cpu", [1], "cifar10")
    recorded = [(c, cpu, 60.0) for c in seed0] + [(seed1[0], gpu, 30.0), (seed1[1], cpu, 30.0)]
    for cfg, env, wall in recorded:
        store.save(RunRecord(cfg.to_dict(), env, "completed", {"wall_time_s": wall}, {"x": np.zeros(1)}))
    n = len(seed0)
    assert report.recorded_cost("cpu", store) == (
        f"Its recorded runs took, in training wall time: seed 0: {n} of {n} runs, {report.duration(60 * n)}; "
        f"seed 1: 2 of {len(seed1)} runs, 60 s; {report.duration(60 * n + 60)} in all ({n + 1} runs on one CPU "
        f"thread and 1 run on NVIDIA H200).")
    assert report.recorded_cost("paper", store) == "Its runs are not recorded here."
    assert [report.duration(s) for s in (59, 5399, 5400)] == ["59 s", "90 min", "1.5 h"]


def record(env: dict, **config):
    from bnrepro.records import RunRecord

    base = {"bnrepro": "0.1.0", "git_commit": "0123456789abcdef", "git_dirty_src": False, "torch": "2.14.1",
            "python": "3.11.7", "device": "cpu", "device_name": "CPU (x86_64, 1 threads)"}
    cfg = {"model": "dln", "norm": "batch", "lr": 1e-6, "steps": 100, "seed": 0, "budget": "cpu", **config}
    return RunRecord(cfg, base | env, "completed", {"steps_done": 100, "wall_time_s": 12.0, "data_source": "d"})


def test_provenance_names_the_arithmetic_and_what_older_records_lack():
    new = record({"cpu_model": "AMD EPYC 7B13", "cpu_capability": "AVX2", "threads": 2}, dtype="float64")
    old = record({})
    lines = report.provenance_markdown([new, old]).splitlines()
    assert "| Arithmetic |" in lines[0]
    assert "| CPU (x86_64) | float64, AVX2, 2 threads |" in lines[2]  # the threads once, in plain words
    assert "| float32, capability not recorded, threads not recorded |" in lines[3]
    assert "- CPU: AMD EPYC 7B13, not recorded" in lines


def test_device_names_read_in_plain_words():
    assert report.device_name({"device_name": "CPU (x86_64, 1 threads)"}) == "CPU (x86_64)"
    assert report.device_name({"device_name": "CPU (x86_64, 1 threads)"}, threads=True) == "CPU (x86_64, 1 thread)"
    assert report.device_name({"device_name": "CPU (x86_64, 2 threads)"}, threads=True) == "CPU (x86_64, 2 threads)"
    assert report.device_name({"device_name": "NVIDIA H200"}) == "NVIDIA H200"
