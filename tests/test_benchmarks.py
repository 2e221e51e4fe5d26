"""The GPU benchmark's plumbing, on the CPU (its figures mean nothing here): it must work the
first time it meets a GPU, in a short lent session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_speed.py"


@pytest.mark.slow
def test_gpu_benchmark_runs_end_to_end_in_quick_mode(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "eager", "--quick", "--models", "ctranscnn_tiny",
         "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(next(tmp_path.glob("gpu_speed_eager_*.json")).read_text())
    assert {"device", "torch", "date", "rows"} <= set(record)
    (row,) = record["rows"]
    assert row["model"] == "ctranscnn_tiny" and row["train_images_per_s"] > 0
    assert row["forward_gflop_executed"] < row["forward_gflop_published"]
    epoch = record["end_to_end_epoch"]
    assert epoch["epoch_images_per_s"] > 0 and epoch["runtime"]["precision"] == "fp32"
    agreement = record["bf16_vs_fp32_smoke"]
    assert {"fp32", "bf16", "bf16_within_fp32_ci"} <= set(agreement)


def test_mfu_and_time_to_result_table_from_a_record(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_speed
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert gpu_speed.device_peaks("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert gpu_speed.device_peaks("NVIDIA H100 80GB HBM3")[0] == "H100"
    assert gpu_speed.device_peaks("Tesla T4")[1] == gpu_speed.PEAKS["T4"]
    record = {
        "device": "NVIDIA H100 80GB HBM3",
        "rows": [
            {"model": "ctranscnn_tiny", "mode": "bf16", "batch": 32, "train_images_per_s": 1000},
            {"model": "ctranscnn_tiny", "mode": "bf16+compile", "batch": 32,
             "train_images_per_s": 2000},
            {"model": "ctranscnn_tiny", "mode": "bf16", "batch": 256, "train_images_per_s": 9e9},
        ],
    }  # fmt: skip
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    table = gpu_speed.time_to_result([str(path)], full_set=False)
    # the best mode at the paper batch: 300 × 46,563 / 2000 img/s = 1.94 h on the H100
    assert "| ctranscnn_tiny | bf16+compile | H100 | 2,000 | 1.94 | 0.88 | measured |" in table
    # a T4 scaled by its fp16 peak: 2000 × 65 / 989 img/s
    assert "| T4 | 131 | 29.52 |" in table and "scaled from H100" in table
