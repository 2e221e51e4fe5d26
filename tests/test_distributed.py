"""DistributedDataParallel through torchrun: two CPU processes (gloo) train one run together,
and rank 0's evaluation covers the whole validation and test splits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest


@pytest.mark.slow
def test_torchrun_two_processes(isolated_outputs):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or pytest.skip(
        "torchrun not found beside this Python"
    )
    command = [
        torchrun,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "cxrlib",
        "train",
        "--dataset",
        "cxr11",
        "--set",
        "phantom_images=120",
        "--set",
        "epochs=2",
        "--set",
        "batch_size=8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = isolated_outputs / "runs/smoke/cxr11/paper/ctranscnn_tiny/seed0"
    metrics = json.loads((folder / "metrics.json").read_text())
    predictions = pd.read_csv(folder / "test_predictions.csv")
    assert len(predictions) == metrics["test"]["num_images"] == 24  # the whole test split
    history = pd.read_csv(folder / "epochs.csv")
    assert list(history["epoch"]) == [1, 2]
