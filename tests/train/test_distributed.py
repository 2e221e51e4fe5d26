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


@pytest.mark.slow
def test_torchrun_from_imagenet_weights(isolated_outputs, tmp_path):
    """PRETRAINED=imagenet under DDP: rank 0 reads the weights, DDP gives them to rank 1."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or pytest.skip(
        "torchrun not found beside this Python"
    )
    import torch

    from tests.mmpretrain import mmpretrain_conformer_tiny

    checkpoint = mmpretrain_conformer_tiny()
    torch.save(checkpoint, tmp_path / "conformer.pth")
    settings = {
        "model_size": "paper",
        "pretrained": "imagenet",
        "phantom_images": 40,
        "epochs": 1,
        "batch_size": 8,
    }
    command = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "cxrlib", "train"]
    command += ["--dataset", "cxr11"]
    for name, value in settings.items():
        command += ["--set", f"{name}={value}"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CXRLIB_CONFORMER_IMAGENET": str(tmp_path / "conformer.pth"),
    }
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = isolated_outputs / "runs/smoke/cxr11/paper/ctranscnn_tiny+imagenet/seed0"
    assert (folder / "metrics.json").is_file()
    assert "initialised from imagenet" in (folder / "train.log").read_text()
    best = torch.load(folder / "best.pt", weights_only=True)["model"]
    stem = checkpoint["state_dict"]["backbone.conv1.weight"]
    assert (best["stem.0.weight"] - stem).abs().max() < 5e-2  # trained from the ImageNet stem
    history = pd.read_csv(folder / "epochs.csv")
    assert list(history["devices"]) == [2] and history["seconds"].iloc[0] > 0
