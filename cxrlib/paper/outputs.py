"""Writing the tables and figures that the notebooks promise, in one layout, under the names
:data:`cxrlib.paper.items.OUTPUTS` gives them (:func:`save`).

Tables go to ``results/<profile>/tables/<name>.csv`` (machine-readable, every value as computed)
and ``<name>.md`` (for reading on GitHub and for the report: one number format per quantity, no
wider than a page, :mod:`cxrlib.paper.markdown`); figures to
``results/<profile>/figures/<name>.png`` (300 dpi) and ``<name>.pdf`` (vector, for papers).
Every output made from phantom data says so, so that no one mistakes it for a paper result.

Figures share one style (:mod:`cxrlib.paper.style`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlib.core.config import Config
from cxrlib.core.fileio import atomic_write, atomic_write_text
from cxrlib.data.datasets import PAPER_DATASETS, get_dataset
from cxrlib.data.roots import data_source
from cxrlib.paper.items import FIGURE, OUTPUTS, TABLE
from cxrlib.paper.markdown import markdown_table

PHANTOM_NOTE = "phantom data, not comparable with the paper"


def data_label(config: Config, dataset: str | None = None) -> str:
    """A short label of where the numbers come from, for titles and captions.

    With ``dataset`` a dataset without a phantom (your CSV) is labelled as your data; without
    one, the label covers both paper datasets and names each when one is real and the other a
    phantom (``DATA_SOURCE=auto`` with only one dataset found).
    """
    names = [dataset] if dataset else list(PAPER_DATASETS)
    definitions = [get_dataset(name) for name in names]
    sources = {d.name: data_source(config, d) for d in definitions}
    if dataset and not definitions[0].phantom:
        label = f"{definitions[0].title}, {config.data.split} split"
    elif set(sources.values()) == {"phantom"}:
        label = PHANTOM_NOTE
    elif set(sources.values()) == {"real"}:
        label = f"real data, {config.data.split} split"
    else:
        label = (
            "; ".join(
                f"{name.upper()}: {PHANTOM_NOTE if source == 'phantom' else 'real data'}"
                for name, source in sources.items()
            )
            + f"; {config.data.split} split"
        )
    if config.data.allow_missing_images:
        label += "; images missing on disk were dropped (ALLOW_MISSING_IMAGES), see split_sizes"
    return label


def save_table(
    df: pd.DataFrame, name: str, config: Config, caption: str = "", label: str | None = None
) -> Path:
    """Write ``df`` as ``<name>.csv`` and ``<name>.md`` under the profile's tables folder.

    ``label`` says where the numbers come from (default :func:`data_label` of ``config``;
    pass ``data_label(config, dataset)`` for a table of one dataset, e.g. your CSV).
    """
    folder = config.workspace.profile_results(config.profile) / "tables"
    csv_path = folder / f"{name}.csv"
    with atomic_write(csv_path, "w", encoding="utf-8", newline="") as handle:
        df.to_csv(handle, index=False)
    lines = [f"# {name}", ""]
    if caption:
        lines += [caption, ""]
    lines += [f"_Profile `{config.profile}`; {label or data_label(config)}._", ""]
    if df.attrs.get("note"):  # e.g. the classes with few test positives (comparison)
        lines += [df.attrs["note"], ""]
    text = "\n".join(lines) + "\n" + markdown_table(df) + "\n"  # a blank line before the table
    atomic_write_text(folder / f"{name}.md", text)
    return csv_path


def save_figure(fig, name: str, config: Config, dpi: int = 300) -> Path:
    """Save a matplotlib figure as ``<name>.png`` (``dpi``, default 300) and ``<name>.pdf``
    (vector) under the profile's figures folder; returns the PNG's path."""
    folder = config.workspace.profile_results(config.profile) / "figures"
    for kind in ("png", "pdf"):
        with atomic_write(folder / f"{name}.{kind}", "wb") as handle:
            fig.savefig(handle, format=kind, dpi=dpi, bbox_inches="tight")
    return folder / f"{name}.png"


def save(key: str, content, config: Config, *, label: str | None = None, **coordinates) -> Path:
    """Write the output ``key`` of :data:`~cxrlib.paper.items.OUTPUTS` (a table as a DataFrame,
    a figure as a matplotlib figure) under its name at ``coordinates`` (``dataset``, ``split``,
    ``model``, ``study`` as its name needs; ``split`` defaults to the configuration's) with its
    caption. Returns the path of its first file."""
    output = OUTPUTS[key]
    coordinates.setdefault("split", config.data.split)
    name = output.name(**coordinates)
    if output.kind == TABLE:
        label = label or data_label(config)
        caption = output.caption_for(label=label, **coordinates)
        return save_table(content, name, config, caption=caption, label=label)
    if output.kind == FIGURE:
        return save_figure(content, name, config)
    raise ValueError(f"output {key!r} is a {output.kind}: its writer names its own file")
