"""What machine and software a result was produced with (notebook 00)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import pandas as pd
import torch

from cxrlib.core.config import Config
from cxrlib.data.roots import data_plan
from cxrlib.train.runtime import native_bf16

PACKAGES = (
    "cxrlib",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "seaborn",
    "grad-cam",
    "papermill",
    "jupyterlab",
    "tqdm",
    "pillow",
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_report(config: Config) -> pd.DataFrame:
    """A two-column table (item, value): Python, torch, GPU, CPUs, packages, profile, data."""
    rows: list[tuple[str, str]] = [
        ("profile", config.profile),
        ("data source", config.data.data_source),
        ("python", sys.version.split()[0]),
        ("platform", platform.platform()),
        ("cpu count", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("cuda available", str(torch.cuda.is_available())),
        ("cuda version", str(torch.version.cuda)),
    ]
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        rows.append((f"gpu {index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB"))
    if torch.cuda.is_available():
        rows.append(("native bf16", str(native_bf16(torch.device("cuda")))))
    rows += [(f"version {p}", _version(p)) for p in PACKAGES]
    for line in data_plan(config):
        name, _, status = line.partition(": ")
        rows.append((f"{name.upper()} data", status))
    return pd.DataFrame(rows, columns=["item", "value"])
