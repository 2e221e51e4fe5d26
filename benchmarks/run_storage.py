"""How much disk a run takes: does a full set of paper runs fit on Google Drive's free 15 GB
or in Kaggle's 20 GB working folder?

Measured, on this machine, on phantom data (the sizes depend on the model, not on the images):

1. one paper-size ``ctranscnn_tiny`` run at 224 px, paused mid-run (what a session leaves while
   training: ``last.pt``, ``last.prev.pt``, ``best.pt``) and finished (only what the later
   notebooks read is kept: ``best.pt``, predictions, metrics, history, log, TensorBoard);
2. the bytes each further epoch adds (``epochs.csv``, ``train.log``, TensorBoard events);
3. the ``best.pt`` of every model the papers' tables need, at paper size (its state dict, as
   written by :meth:`cxrlib.train.checkpoints.CheckpointSaver.save_best`).

The finished size of a 300-epoch run on the real test parts is then computed from these
(predictions scaled by rows: CXR14 1,572 test images, CXR11 3,008) -- printed as an estimate.

    OMP_NUM_THREADS=2 python benchmarks/run_storage.py [--out benchmarks/results/run_storage.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

GB = 1e9  # Drive's and Kaggle's gigabytes are decimal


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/run_storage.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cxr-storage-"))
    for env, name in (("CXRLIB_RUNS_DIR", "runs"), ("CXRLIB_DATA_DIR", "data")):
        os.environ[env] = str(scratch / name)

    from cxrlib.core.config import load_config
    from cxrlib.models import create_model
    from cxrlib.paper.items import expected_models
    from cxrlib.train.run import train_run

    settings = {"model_size": "paper", "image_size": 224, "phantom_images": 60, "batch_size": 8}
    config = load_config("smoke", model="ctranscnn_tiny", epochs=2, **settings)
    start = time.time()
    paused = train_run(config, "cxr11", max_steps=2, progress=False)
    while_training = folder_bytes(paused.folder)
    checkpoints = {p.name: p.stat().st_size for p in paused.folder.glob("*.pt")}
    one_epoch = train_run(config.override(epochs=1, seed=1), "cxr11", progress=False)
    finished = train_run(config, "cxr11", progress=False)
    after_one = folder_bytes(one_epoch.folder) - (one_epoch.folder / "best.pt").stat().st_size
    after_two = folder_bytes(finished.folder) - (finished.folder / "best.pt").stat().st_size
    per_epoch = after_two - after_one
    predictions = finished.folder / "test_predictions.csv"
    rows = len(predictions.read_text().splitlines()) - 1
    per_row = predictions.stat().st_size / rows
    fixed = after_two - 2 * per_epoch - predictions.stat().st_size

    models = {}
    for name in expected_models():
        for dataset, classes in (("cxr14", 14), ("cxr11", 11)):
            buffer = io.BytesIO()
            torch.save(
                {"model": create_model(name, num_classes=classes, size="paper").state_dict()},
                buffer,
            )
            models[f"{name}/{dataset}"] = buffer.tell()
    test_rows = {"cxr14": 1572, "cxr11": 3008}
    estimate = {
        key: size + fixed + 300 * per_epoch + test_rows[key.split("/")[1]] * per_row
        for key, size in models.items()
    }
    report = {
        "device": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.time() - start),
        "ctranscnn_tiny_paused_run_bytes": while_training,
        "ctranscnn_tiny_checkpoints_bytes": checkpoints,
        "ctranscnn_tiny_finished_run_bytes": folder_bytes(finished.folder),
        "finished_run_files": sorted(p.name for p in finished.folder.iterdir()),
        "bytes_per_epoch": per_epoch,
        "bytes_per_prediction_row": round(per_row, 1),
        "best_pt_bytes": models,
        "estimated_finished_300_epoch_run_bytes": {k: round(v) for k, v in estimate.items()},
        "estimated_full_set_bytes": round(sum(estimate.values())),
        "runs_in_full_set": len(estimate),
    }
    print(json.dumps(report, indent=2))
    print(
        f"\nctranscnn_tiny: {while_training / GB:.2f} GB while training, "
        f"{folder_bytes(finished.folder) / GB:.3f} GB finished (measured); "
        f"{len(estimate)} runs of the papers' tables (both datasets): "
        f"{sum(estimate.values()) / GB:.1f} GB finished (estimated from the sizes above), "
        f"against Drive's 15 GB and Kaggle's 20 GB"
    )
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
