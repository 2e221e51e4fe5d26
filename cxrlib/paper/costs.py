"""What runs cost: GPU hours per run and per table on the GPUs people have (T4, L4, A100,
H100), and what a missing run of the report would cost.

Each figure says where it comes from:

* **measured** -- a benchmark of this kit on that GPU (``benchmarks/gpu_first.py``: training
  images/s of the model at 224 px, global batch 32, the loop's own step), or a run's own
  device hours per epoch;
* **scaled** -- a measurement on another GPU, scaled by the ratio of the two GPUs' dense peak
  FLOP/s for the precision each would train in;
* **FLOPs estimate** -- no measurement of the model: training FLOPs (3 × the forward FLOPs this
  kit executes per 224 px image, × training images, + one forward pass per validation image,
  per epoch) ÷ (dense peak × :data:`ASSUMED_MFU`).

Peaks are the vendors' dense (no sparsity) tensor-core figures for the precision a run uses
there (``PRECISION=auto``: bf16 from Ampere on, fp16 on a T4; fp32 runs use TF32 where the GPU
has it), matched from the exact device name (:func:`device_peaks`).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pandas as pd

from cxrlib.core.config import Config, load_config
from cxrlib.core.workspace import project_root
from cxrlib.data.datasets import get_dataset
from cxrlib.models.factory import create_model
from cxrlib.models.summary import forward_gflops
from cxrlib.paper.items import seeded_models

#: Dense peak TFLOP/s by GPU (vendor datasheets, sparsity not counted): bf16 and fp16 on the
#: tensor cores, and "fp32" as fp32 runs there (TF32 where the GPU has it; this kit enables it).
DEVICE_PEAKS: dict[str, dict[str, float]] = {
    "H200 NVL": {"bf16": 835.0, "fp16": 835.0, "fp32": 417.5},
    "H200": {"bf16": 989.4, "fp16": 989.4, "fp32": 494.7},  # SXM
    "H100 NVL": {"bf16": 835.0, "fp16": 835.0, "fp32": 417.5},
    "H100 PCIe": {"bf16": 756.5, "fp16": 756.5, "fp32": 378.0},
    "H100 SXM": {"bf16": 989.4, "fp16": 989.4, "fp32": 494.7},
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0},  # 40 and 80 GB, SXM and PCIe
    "L40S": {"bf16": 362.1, "fp16": 362.1, "fp32": 183.0},
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 60.0},
    "A10G": {"bf16": 70.0, "fp16": 70.0, "fp32": 35.0},
    "T4": {"fp16": 65.0, "fp32": 8.1},  # no native bf16, no TF32
    "P100": {"fp16": 18.7, "fp32": 9.3},
}
#: How a device name (``torch.cuda.get_device_name``) maps to :data:`DEVICE_PEAKS`, first
#: match first (word boundaries: "L4" is not "L40S"; an H100 that says neither PCIe nor NVL is
#: the SXM part, whose name reads e.g. "NVIDIA H100 80GB HBM3").
_NAME_PATTERNS = (
    (r"\bH200\b.*\bNVL\b", "H200 NVL"),
    (r"\bH200\b", "H200"),
    (r"\bH100\b.*\bNVL\b", "H100 NVL"),
    (r"\bH100\b.*\bPCIE\b", "H100 PCIe"),
    (r"\bH100\b", "H100 SXM"),
    (r"\bA100\b", "A100"),
    (r"\bL40S\b", "L40S"),
    (r"\bL4\b", "L4"),
    (r"\bA10G\b", "A10G"),
    (r"\bT4\b", "T4"),
    (r"\bP100\b", "P100"),
)
#: The GPUs of the hours table: Colab/Kaggle's free T4, Colab's L4 and A100, an H100.
HOURS_DEVICES = ("T4", "L4", "A100", "H100 SXM")
#: The utilisation assumed where nothing was measured (stated beside every such figure).
ASSUMED_MFU = 0.20
PAPER = load_config("paper")


def device_peaks(name: str) -> tuple[str, dict[str, float]]:
    """The :data:`DEVICE_PEAKS` entry of a device name, e.g. ``"NVIDIA H100 PCIe"`` ->
    ``("H100 PCIe", {...})``; ``("unknown", {})`` for a device not listed."""
    upper = re.sub(r"[-_]", " ", name.upper())
    for pattern, key in _NAME_PATTERNS:
        if re.search(pattern, upper):
            return key, DEVICE_PEAKS[key]
    return "unknown", {}


def training_precision(device: str) -> str:
    """The precision ``PRECISION=auto`` trains in on ``device`` (a key of DEVICE_PEAKS)."""
    return "bf16" if "bf16" in DEVICE_PEAKS[device] else "fp16"


def executed_gflops(model: str, tables: Path | None = None) -> float:
    """Forward GFLOP per 224 px image that this kit executes for ``model``: from notebook 02's
    ``model_summary`` table when ``tables`` holds it, else counted now (once per process)."""
    summary = tables / "model_summary.csv" if tables else None
    if summary is not None and summary.is_file():
        counts = _summary_gflops(summary, summary.stat().st_mtime_ns)
        if model in counts:
            return counts[model]
    return _counted_gflops(model)


@functools.lru_cache(maxsize=8)
def _summary_gflops(summary: Path, mtime_ns: int) -> dict[str, float]:
    """``{model: GFLOPs}`` of a ``model_summary.csv`` as it was at ``mtime_ns`` (read again
    when notebook 02 writes it anew)."""
    frame = pd.read_csv(summary).set_index("model")
    column = "GFLOPs @224 executed" if "GFLOPs @224 executed" in frame else "GFLOPs @224"
    return {name: float(value) for name, value in frame[column].items()}


@functools.lru_cache(maxsize=64)
def _counted_gflops(model: str) -> float:
    return forward_gflops(create_model(model, num_classes=14, size="paper", image_size=224), 224)


def epoch_images(dataset: str) -> tuple[int, int, str]:
    """Training and validation images of one epoch of ``dataset`` and a note: the papers' split
    sizes for CXR11/CXR14; for your own CSV dataset every image it lists counted as a training
    image (its split is drawn at training time), which bounds the cost from above."""
    definition = get_dataset(dataset)
    if definition.paper_split_sizes is not None:
        train, val, _ = definition.paper_split_sizes
        return train, val, ""
    images = len(definition.read(definition.fixed_root))
    return images, 0, f"all {images:,} images as training images: an upper bound"


def run_tflop(model: str, dataset: str, epochs: int | None = None, tables=None) -> float:
    """TFLOP of one paper-recipe run: per epoch, 3 × forward FLOPs per training image and one
    forward pass per validation image (:func:`epoch_images`)."""
    train, val, _ = epoch_images(dataset)
    epochs = epochs or PAPER.train.epochs
    return executed_gflops(model, tables) * (3 * train + val) * epochs / 1000


def measured_speeds(folder: Path | None = None) -> dict[tuple[str, str], float]:
    """``(device, model) -> training images/s`` measured by ``benchmarks/gpu_first.py`` (its
    JSON files in ``benchmarks/results/``; none in an installed kit)."""
    folder = folder or project_root() / "benchmarks" / "results"
    speeds = {}
    for path in sorted(folder.glob("gpu_first_*.json")) if folder.is_dir() else []:
        result = json.loads(path.read_text())
        device = device_peaks(result.get("environment", {}).get("gpu", ""))[0]
        for row in result.get("training", []):
            if row.get("images_per_s") and row.get("mode") == "bf16+channels_last":
                speeds[(device, row["model"])] = float(row["images_per_s"])
    return speeds


def run_hours(model: str, dataset: str, device: str, speeds=None, tables=None) -> tuple[float, str]:
    """Hours of one paper-recipe run of ``model`` on ``dataset`` on ``device``, and the basis
    of the figure (measured, scaled from a measurement, or a FLOPs estimate)."""
    train, val, _ = epoch_images(dataset)
    images = (train + val / 3) * PAPER.train.epochs  # validation: one forward pass (1/3)
    precision = training_precision(device)
    speeds = measured_speeds() if speeds is None else speeds
    if (device, model) in speeds:
        return images / speeds[(device, model)] / 3600, "measured"
    for (other, name), ips in speeds.items():
        if name == model and other in DEVICE_PEAKS:
            ratio = DEVICE_PEAKS[device][precision] / DEVICE_PEAKS[other][training_precision(other)]
            return images / (ips * ratio) / 3600, f"scaled from {other}"
    peak = DEVICE_PEAKS[device][precision] * ASSUMED_MFU
    hours = run_tflop(model, dataset, tables=tables) / peak / 3600
    return hours, f"FLOPs at {ASSUMED_MFU:.0%} MFU"


def hours_table(
    models: list[str], datasets: list[str], seeds: dict[str, int] | None = None, tables=None
) -> pd.DataFrame:
    """Expected GPU hours on :data:`HOURS_DEVICES`: one row per model and dataset (one run,
    and all its seeds' runs), then the whole table; every figure with its basis. ``datasets``:
    names :func:`~cxrlib.data.datasets.get_dataset` knows (``csv:/path`` included)."""
    speeds, rows = measured_speeds(), []
    for dataset in datasets:
        definition = get_dataset(dataset)
        label = definition.name.upper() if definition.paper_split_sizes else definition.title
        note = epoch_images(dataset)[2]
        for model in models:
            count = (seeds or {}).get(model, 1)
            row, bases = {"dataset": label, "model": model, "runs": count}, {}
            for device in HOURS_DEVICES:
                hours, bases[device] = run_hours(model, dataset, device, speeds, tables)
                row[f"{device} h/run"] = round(hours, 1)
                row[f"{device} h, all runs"] = round(hours * count, 1)
            same = len(set(bases.values())) == 1
            row["basis"] = (
                next(iter(bases.values()))
                if same
                else "; ".join(f"{device}: {basis}" for device, basis in bases.items())
            ) + (f" ({note})" if note else "")
            rows.append(row)
    table = pd.DataFrame(rows)
    total = {"dataset": "all", "model": "(the whole table)", "runs": int(table["runs"].sum())}
    for device in HOURS_DEVICES:
        total[f"{device} h/run"] = "–"
        total[f"{device} h, all runs"] = round(float(table[f"{device} h, all runs"].sum()), 1)
    total["basis"] = "sum of the rows"
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def expected_hours(config: Config, models: list[str], datasets: list[str]) -> pd.DataFrame:
    """:func:`hours_table` of what a notebook trains under ``config``: each model on each
    dataset, ``SEEDS`` times for the models of ``SEED_MODELS``, at the paper recipe (the hours
    a paper-profile run of the notebook costs; the smoke profile takes minutes on a CPU). A model
    named twice (e.g. in two ablation families) is trained, and counted, once. FLOPs come from
    notebook 02's ``model_summary`` table of this profile where it is there (the same count,
    without building every model at paper size again in each notebook)."""
    models = list(dict.fromkeys(models))
    seeded = set(seeded_models(config.train.seed_models))
    seeds = {m: config.train.seeds if m in seeded else 1 for m in models}
    tables = config.workspace.profile_results(config.profile) / "tables"
    return hours_table(models, list(datasets), seeds, tables=tables)
