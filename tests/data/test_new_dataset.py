"""The dataset contract: a dataset with its own layout is one new file in cxrlib/data/sets/ and
nothing else -- the command line, DATA_ROOTS and the run folders know it by its name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cxrlib.data.datasets import REGISTRY
from tests.conftest import PROJECT_ROOT

#: The whole definition of a toy dataset in a layout of its own: ``labels.json`` (one entry per
#: image: its file, patient, split and labels) beside a folder ``pictures/`` of PNGs.
TOY = '''"""A toy dataset (a test's): discs and squares on grey, in a layout of its own."""

import json
from pathlib import Path

import pandas as pd

from cxrlib.data.definition import DatasetDef, index_files

CLASSES = ("Disc", "Square")


def read(root):
    entries = json.loads((Path(root) / "labels.json").read_text())
    files = index_files([Path(root) / "pictures"], ".png")
    table = pd.DataFrame(
        {
            "image_id": [e["file"] for e in entries],
            "path": [files.get(e["file"], "") for e in entries],
            "patient_id": [e["patient"] for e in entries],
            "split": [e["split"] for e in entries],
        }
    )
    for k, name in enumerate(CLASSES):
        table[name] = [int(e["labels"][k]) for e in entries]
    return table


DATASET = DatasetDef(
    name="toy",
    title="discs and squares",
    classes=CLASSES,
    read=read,
    markers=("labels.json",),
)
'''


def _toy_images(root: Path, count: int = 48) -> Path:
    """Images whose labels can be seen: a disc on the left, a square on the right."""
    rng = np.random.default_rng(0)
    (root / "pictures").mkdir(parents=True)
    entries = []
    for i in range(count):
        labels = [int(rng.random() < 0.5), int(rng.random() < 0.5)]
        image = Image.new("L", (96, 96), 60)
        draw = ImageDraw.Draw(image)
        if labels[0]:
            draw.ellipse((10, 30, 40, 60), fill=230)
        if labels[1]:
            draw.rectangle((56, 30, 86, 60), fill=230)
        name = f"toy_{i:03d}.png"
        image.save(root / "pictures" / name)
        split = "train" if i < 32 else ("val" if i < 40 else "test")
        entries.append({"file": name, "patient": f"p{i}", "split": split, "labels": labels})
    (root / "labels.json").write_text(json.dumps(entries))
    return root


@pytest.mark.slow  # a subprocess that trains
def test_a_new_dataset_is_one_new_file_and_trains_through_the_command_line(tmp_path):
    assert "toy" not in REGISTRY
    package = tmp_path / "kit" / "cxrlib"
    shutil.copytree(PROJECT_ROOT / "cxrlib", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "data" / "sets" / "toy.py").write_text(TOY)  # the one new file
    data = _toy_images(tmp_path / "toy-data")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "kit"), "OMP_NUM_THREADS": "1"}
    folders = ["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "open_data")]
    overrides = ["--set", "epochs=1", "--set", "image_size=64"]
    command = [sys.executable, "-m", "cxrlib", "train", "--profile", "smoke", "--dataset", "toy"]
    done = subprocess.run(
        [*command, "--model", "resnet34", "--data-root", f"toy={data}", *folders, *overrides],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished" in done.stdout and "test mean AUC" in done.stdout
    metrics = json.loads(
        (tmp_path / "runs/smoke/toy/paper/resnet34/seed0/metrics.json").read_text()
    )
    assert metrics["classes"] == ["Disc", "Square"] and metrics["data_source"] == "real"
    assert metrics["data"]["images"] == 48
