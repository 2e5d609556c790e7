"""The README's results table: its rows from constructed claims, the --check/--write logic on a constructed README,
and the refusal to train when a run is not recorded."""

import pytest

from bnrepro import cli, results
from bnrepro.claims import NOT_REPRODUCED, PARTLY, REPRODUCED, Claim, Judged
from bnrepro.sections import SECTIONS

SEEDS = [0, 1, 2]


def _claim(paper: str, ours: str, verdict: str) -> Claim:
    return Claim("c", paper, ours, verdict, "rule")


def _by_seed() -> dict:
    """Two claims of Section 2.1 at three seeds: one agreed on, one mixed (with a | to escape)."""
    mixed = [PARTLY, PARTLY, NOT_REPRODUCED]
    claims = {seed: [_claim("BN trains faster", f"{seed}00 vs 900 steps", REPRODUCED),
                     _claim("|Δ mean| is small", f"ratio {seed}", v)] for seed, v in zip(SEEDS, mixed)}
    return {"2.1": Judged(SECTIONS["2.1"], "cpu", tuple(SEEDS), {}, claims)}


def test_results_markdown_rows():
    lines = results.results_markdown(_by_seed()).splitlines()
    assert lines[0].startswith("| Section | Rule | What is tested | We measured (seed 0) | Budget | Seeds |")
    assert lines[0].endswith("| Verdict across seeds | With scale |")
    link = f"[2.1](book/{SECTIONS['2.1'].doc}.md)"
    judged = _by_seed()["2.1"]
    key = judged.first[0].key
    assert lines[2] == (f"| {link} | `{key}` | BN trains faster | 000 vs 900 steps | `cpu` | 0, 1, 2 "
                        f"| **{judged.headline(0)}** | — |")
    assert lines[3] == (f"| {link} | `{key}` | \\|Δ mean\\| is small | ratio 0 | `cpu` | 0, 1, 2 "
                        f"| **{judged.headline(1)}** | — |")
    scaled = results.results_markdown(_by_seed(), {key: "**changes**: no at 1/8 | yes at 1/4"}).splitlines()
    assert scaled[2].endswith("| **changes**: no at 1/8 \\| yes at 1/4 |")
    assert judged.headline(0) != judged.headline(1)
    assert len(lines) == 4


def _readme_text(table: str) -> str:
    return f"# Title\n\nBefore.\n\n{results.BEGIN}\n{table}\n{results.END}\n\nAfter.\n"


def _readme(tmp_path, table: str):
    path = tmp_path / "README.md"
    path.write_text(_readme_text(table))
    return path


def test_check_passes_on_the_same_table_and_diffs_a_changed_one(tmp_path):
    table = results.results_markdown(_by_seed())
    assert results.check(_readme(tmp_path, table), table) == ""
    stale = table.replace("ratio 0", "ratio 7")
    diff = results.check(_readme(tmp_path, stale), table)
    assert "-| [2.1]" in diff and "ratio 7" in diff and "+| [2.1]" in diff and "ratio 0" in diff


def test_write_replaces_only_the_block(tmp_path):
    table = results.results_markdown(_by_seed())
    path = _readme(tmp_path, "old table")
    results.write(path, table)
    assert path.read_text() == _readme_text(table)
    assert results.check(path, table) == ""


def test_a_file_without_markers_is_a_clear_error(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# no block\n")
    with pytest.raises(ValueError, match="(?s)no results block.*--write"):
        results.check(path, "table")


def test_cli_check_exit_status(tmp_path, monkeypatch, capsys):
    """`results --check` exits 0 when the README matches, 1 with the fix when it does not; `results` prints."""
    monkeypatch.setattr(results, "recorded_claims", lambda seeds: _by_seed())
    table = results.results_markdown(_by_seed())
    assert cli.main(["results", "--check", str(_readme(tmp_path, table))]) == 0
    assert cli.main(["results", "--check", str(_readme(tmp_path, "stale"))]) == 1
    assert "--write" in capsys.readouterr().out
    assert cli.main(["results"]) == 0 and capsys.readouterr().out.strip() == table
    assert cli.main(["results", "--seeds", "0,x"]) == 2 and "comma-separated" in capsys.readouterr().err


def test_missing_records_are_an_error_not_a_training_run(tmp_path, monkeypatch):
    """With an empty record store nothing is trained (nothing is written): the error names the command."""
    monkeypatch.setenv("BNREPRO_RECORDS", str(tmp_path / "records"))
    monkeypatch.delenv("BNREPRO_DATA", raising=False)
    with pytest.raises(ValueError, match="book-runs --budget cpu"):
        results.recorded_claims(SEEDS)
    assert not (tmp_path / "records").exists()
