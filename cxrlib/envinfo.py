"""What machine and software a result was produced with (notebook 00)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import pandas as pd

from cxrlib.config import Config
from cxrlib.data.datasets import PAPER_DATASETS, get_dataset
from cxrlib.data.roots import find_data_root
from cxrlib.errors import UserError

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


def _root_status(dataset: str, explicit: str | None) -> str:
    try:
        root = find_data_root(dataset, explicit)
    except UserError as err:
        return f"invalid: {err}"
    return str(root) if root else "not found (phantom data only)"


def environment_report(config: Config) -> pd.DataFrame:
    """A two-column table (item, value): Python, torch, GPU, CPUs, packages, profile, data."""
    import torch

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
        from cxrlib.runtime import native_bf16

        rows.append(("native bf16", str(native_bf16(torch.device("cuda")))))
    rows += [(f"version {p}", _version(p)) for p in PACKAGES]
    for name in PAPER_DATASETS:
        definition = get_dataset(name)
        rows.append(
            (f"{name.upper()} root", _root_status(name, definition.configured_root(config)))
        )
    return pd.DataFrame(rows, columns=["item", "value"])
