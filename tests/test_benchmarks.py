"""The training benchmarks run, at their tiny size, on the CPU (their ratios are measured on a GPU, not tested)."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench(name: str, tmp_path) -> str:
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), "--tiny", "--device", "cpu"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "BNREPRO_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_bench_train_compares_the_trainer_with_a_dataloader_loop_and_times_each_precision(tmp_path):
    out = bench("bench_train.py", tmp_path)
    assert re.search(r"ratio bnrepro / conventional: \d+\.\d\d", out)
    assert re.search(r"float32 +\d+\.\d\d ms/step \(eager\)", out) and re.search(r"bf16 +\d+\.\d\d ms/step", out)
    assert "tf32     skipped: TF32 is a CUDA arithmetic" in out


def test_bench_many_compares_runs_at_once_with_runs_one_after_another(tmp_path):
    out = bench("bench_many.py", tmp_path)
    assert "2 runs of vgg16 x0.0625 + BatchNorm, batch 32, 4 steps each (no probes" in out
    assert re.search(r"ratio one after another / at once: \d+\.\d\d", out)
