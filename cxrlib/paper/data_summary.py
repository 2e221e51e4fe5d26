"""Tables and figures that describe the prepared datasets (notebook 01): split sizes beside
the papers', positives per class, leakage between parts, co-occurrence and sample images."""

from __future__ import annotations

from typing import get_args

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cxrlib.core.config import SplitName
from cxrlib.data.datasets import get_dataset
from cxrlib.data.prepare import PreparedDataset
from cxrlib.data.splits import SPLIT_NAMES, leakage_report
from cxrlib.paper.style import PALETTE, overlay_annotations


def _splits(data: PreparedDataset) -> list[str]:
    """The splits this dataset has (SPLIT's values with a column: paper, patient, official
    where the publisher's lists are there)."""
    table = data.table
    return [
        s
        for s in get_args(SplitName)
        if f"{s}_split" in table and (table[f"{s}_split"] != "").any()
    ]


def split_sizes_table(prepared: dict[str, PreparedDataset]) -> pd.DataFrame:
    """Images per part of both splits, beside the papers' sizes."""
    rows = []
    for name, data in prepared.items():
        for split in _splits(data):
            counts = data.table[f"{split}_split"].value_counts()
            rows.append(
                {
                    "dataset": name.upper(),
                    "split": split + (" (selected)" if split == data.split_name else ""),
                    **{part: int(counts.get(part, 0)) for part in SPLIT_NAMES},
                    "total": len(data.table),
                }
            )
        published = get_dataset(name).paper_split_sizes
        if published is not None:
            rows.append(
                {
                    "dataset": name.upper(),
                    "split": "published (papers)",
                    **dict(zip(SPLIT_NAMES, published, strict=True)),
                    "total": sum(published),
                }
            )
    return pd.DataFrame(rows)


def class_positives_table(data: PreparedDataset) -> pd.DataFrame:
    """Positive images per class and part of the selected split."""
    classes = list(data.classes)
    frame = data.table.groupby("part")[classes].sum().T.reindex(columns=list(SPLIT_NAMES))
    frame = frame.fillna(0).astype(int).rename_axis("class").reset_index()
    frame.insert(0, "dataset", data.dataset.upper())
    return frame


def leakage_table(prepared: dict[str, PreparedDataset]) -> pd.DataFrame:
    """Patients shared between parts, for both splits of every dataset."""
    frames = []
    for name, data in prepared.items():
        for split in _splits(data):
            report = leakage_report(data.table, split_column=f"{split}_split")
            report.insert(0, "split", split)
            report.insert(0, "dataset", name.upper())
            frames.append(report)
    return pd.concat(frames, ignore_index=True)


def plot_class_positives(tables: list[pd.DataFrame], title: str) -> plt.Figure:
    """One horizontal bar chart per dataset: positives per class, stacked by part."""
    fig, axes = plt.subplots(
        1, len(tables), figsize=(6 * len(tables), 5), squeeze=False, layout="constrained"
    )
    for ax, table in zip(axes[0], tables, strict=True):
        table.set_index("class")[list(SPLIT_NAMES)].plot.barh(
            stacked=True, ax=ax, color=list(PALETTE[: len(SPLIT_NAMES)])
        )
        ax.set_title(f"{table['dataset'].iloc[0]}: positives per class")
        ax.set_xlabel("images")
        ax.invert_yaxis()
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title)
    return fig


def plot_cooccurrence(data: PreparedDataset, title: str) -> plt.Figure:
    """Label co-occurrence: P(column label | row label) over the whole dataset."""
    labels = data.table[list(data.classes)].to_numpy(dtype=np.float64)
    joint = labels.T @ labels
    conditional = joint / np.maximum(np.diag(joint)[:, None], 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    sns.heatmap(
        conditional,
        xticklabels=data.classes,
        yticklabels=data.classes,
        cmap="viridis",
        vmin=0,
        vmax=1,
        ax=ax,
        cbar_kws={"label": "P(column | row)"},
    )
    ax.set_title(f"{data.dataset.upper()} label co-occurrence — {title}")
    fig.tight_layout()
    return fig


def plot_samples(data: PreparedDataset, count: int, title: str, seed: int = 0) -> plt.Figure:
    """A grid of cached images with their labels, and the boxes or lines drawn where known."""
    rng = np.random.default_rng(seed)
    rows = data.table.iloc[
        rng.choice(len(data.table), size=min(count, len(data.table)), replace=False)
    ]
    columns = 4
    fig, axes = plt.subplots(
        -(-len(rows) // columns),
        columns,
        figsize=(3.2 * columns, 3.6 * -(-len(rows) // columns)),
        layout="constrained",  # the title above the images, never over them
    )
    size = data.cache.size
    for ax, (_, row) in zip(np.ravel(axes), rows.iterrows(), strict=False):
        ax.imshow(data.cache.pixels[row["cache_row"]], cmap="gray", vmin=0, vmax=255)
        positives = [c for c in data.classes if row[c]]
        ax.set_title("\n".join(positives) or "(no label)", fontsize=7)
        overlay_annotations(ax, data, row, size)
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.suptitle(title)
    return fig
