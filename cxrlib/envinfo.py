"""What machine and software a result was produced with (notebook 00)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import pandas as pd

from cxrlib.config import Config
from cxrlib.data.roots import find_data_root

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
    except FileNotFoundError as err:
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
    rows.append(
        ("bf16 supported", str(torch.cuda.is_available() and torch.cuda.is_bf16_supported()))
    )
    rows += [(f"version {p}", _version(p)) for p in PACKAGES]
    rows.append(("CXR14 root", _root_status("cxr14", config.data.cxr14_root)))
    rows.append(("CXR11 root", _root_status("cxr11", config.data.cxr11_root)))
    return pd.DataFrame(rows, columns=["item", "value"])
