"""Predictions of a finished run's best model for image files."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cxrlib.data.cache import load_image
from cxrlib.runs import load_run_model
from cxrlib.runtime import cpu_runtime, predict


def predict_files(folder: str | os.PathLike, paths: list[str]) -> pd.DataFrame:
    """Probabilities of a finished run's best model for image files (any format the cache
    reads), preprocessed exactly as in training (grey, bicubic resize, ImageNet norm)."""
    model, config, classes = load_run_model(folder)
    size = config.data.image_size
    images = np.stack([load_image(path, size) for path in paths])  # (N, S, S) uint8
    scores = predict(model, images, np.arange(len(paths)), cpu_runtime())
    table = pd.DataFrame(scores, columns=classes)
    table.insert(0, "image", [str(p) for p in paths])
    return table
