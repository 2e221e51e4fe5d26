"""Tables people can read: one number format per quantity, and pages no wider than a screen.

Every Markdown table the kit writes (``results/<profile>/tables/<name>.md``, the report) goes
through :func:`markdown_table`. It formats each cell by the quantity its column holds
(:func:`format_cell`: AUCs and their differences and spreads with two decimals, p-values with three
or "< 0.001", device hours with three, counts as integers, a missing value as "–", never "nan"),
and splits a table wider than ``max_width`` characters into parts that each repeat the columns
that name a row (the class, the model) and keep a model's columns together. The CSV beside each
table keeps every value as computed.
"""

from __future__ import annotations

import math
import re

import pandas as pd

#: The widest table a page shows: a laptop screen or a printed page in a monospaced font.
MAX_WIDTH = 160
#: Columns that name a row: repeated in every part of a split table.
ROW_NAMES = ("class", "test positives", "small class", "dataset", "split", "model", "init", "seed")
MISSING = "–"
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("nan", "none")


def _quantity(column: str) -> str:
    """What a column holds, by its name: ``p`` (p-values), ``hours``, ``count`` or ``value``."""
    name = column.lower()
    if re.match(r"^p\b|\bp-value|\bp \(|^p$", name) or name.startswith("p "):
        return "p"
    if "hours" in name:
        return "hours"
    counts = ("positives", "images", "seed", "epochs", "patients", "batch", "processes", "boxes")
    if any(word in name for word in counts):
        return "count"
    return "value"


def format_cell(column: str, value) -> str:
    """``value`` as the report shows a number of ``column``'s quantity; text stays as it is."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else ""
    quantity = _quantity(column)
    number = value
    if isinstance(value, str):
        if not NUMBER.match(value.strip()):
            return value  # text: a name, an interval, "< 0.001", "–"
        number = float(value)
    if not isinstance(number, (int, float)):
        return str(value)
    if quantity == "p":
        return "< 0.001" if number < 0.001 else f"{number:.3f}"
    if quantity == "hours":
        return f"{number:.3f}"
    if isinstance(number, int) or (quantity == "count" and float(number).is_integer()):
        return f"{int(number):,}" if abs(number) >= 10_000 else str(int(number))
    return f"{number:.2f}"


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every cell as text in its quantity's format."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        out[column] = [format_cell(str(column), v) for v in frame[column]]
    return out


def _render(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _groups(columns: list[str]) -> list[list[str]]:
    """Columns that belong together: those that start with the same model or dataset name
    (``ctranscnn_tiny``, ``ctranscnn_tiny sd (2 seeds)``, ``ctranscnn_tiny published``)."""
    groups: list[list[str]] = []
    for column in columns:
        head = str(column).split(" ")[0]
        if groups and str(groups[-1][0]).split(" ")[0] == head and " " in str(column):
            groups[-1].append(column)
        else:
            groups.append([column])
    return groups


def split_columns(frame: pd.DataFrame, max_width: int = MAX_WIDTH) -> list[pd.DataFrame]:
    """``frame`` (cells already text) as parts no wider than ``max_width`` when rendered, each
    with the row-naming columns first; a single group wider than the page stands alone."""
    keys = []
    for column in frame.columns:  # the leading columns that name a row (the first one always)
        if not keys or str(column) in ROW_NAMES:
            keys.append(column)
        else:
            break
    rest = [c for c in frame.columns if c not in keys]
    if not rest or _width(_render(frame)) <= max_width:
        return [frame]
    parts: list[list[str]] = []
    current: list[str] = []
    for group in _groups(rest):
        trial = current + group
        if current and _width(_render(frame[keys + trial])) > max_width:
            parts.append(current)
            current = list(group)
        else:
            current = trial
    if current:
        parts.append(current)
    return [frame[keys + part] for part in parts]


def markdown_table(frame: pd.DataFrame, max_width: int = MAX_WIDTH) -> str:
    """``frame`` as Markdown: cells formatted by quantity, split into parts that fit
    ``max_width`` (each part after the first says which columns it continues with)."""
    if frame is None or not len(frame.columns):
        return "_(none)_"
    if not len(frame):
        return "_(none)_"
    parts = split_columns(formatted(frame.reset_index(drop=True)), max_width)
    if len(parts) == 1:
        return _render(parts[0])
    texts = []
    for number, part in enumerate(parts):
        part, name = _one_group_named(part, frame.columns)
        title = f"part {number + 1} of {len(parts)}" + (f": {name}" if name else "")
        texts += [f"_({title})_", _render(part)]
    return "\n\n".join(texts)


def _one_group_named(part: pd.DataFrame, all_columns) -> tuple[pd.DataFrame, str | None]:
    """A part that holds one model's columns (``m``, ``m sd``, ``m published``) names the
    model once, in its title, and its columns by what they hold (``ours``, ``sd``, ...)."""
    keys = [c for c in part.columns if c == all_columns[0] or str(c) in ROW_NAMES]
    rest = [str(c) for c in part.columns if c not in keys]
    head = rest[0].split(" ")[0] if rest else ""
    if len(rest) < 2 or rest[0] != head or not all(c.startswith(head + " ") for c in rest[1:]):
        return part, None
    renamed = {head: "ours", **{c: c[len(head) + 1 :] for c in rest[1:]}}
    return part.rename(columns=renamed), head
