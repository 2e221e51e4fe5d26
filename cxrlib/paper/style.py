"""One figure style for every figure of the kit.

A colour-blind-safe palette of 16 colours -- Okabe & Ito's eight (Wong, Nature Methods 8:441,
2011), then eight of Paul Tol's "muted" scheme -- each with its own line style and marker
(:func:`series_style`), so 13 or more series (CXR14's classes, the baselines) stay apart in
colour, in grey print and for colour-blind readers; legends sit outside the data
(:func:`legend_outside`); CAMs use a perceptually uniform map, never "jet"; ground truth (NIH
boxes, RANZCR lines) is drawn the same way on every image (:func:`overlay_annotations`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from cxrlib.data.cache import original_size
from cxrlib.data.prepare import PreparedDataset

#: Okabe-Ito (without its yellow, faint on white) + black, then Paul Tol's muted scheme.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#999933",  # olive (Tol)
    "#332288",  # indigo (Tol)
    "#882255",  # wine (Tol)
    "#44AA99",  # teal (Tol)
    "#CC6677",  # rose (Tol)
    "#117733",  # green (Tol)
    "#AA4499",  # purple (Tol)
    "#DDCC77",  # sand (Tol)
    "#888888",  # grey
)
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def series_style(i: int) -> dict:
    """Colour, line style and marker of the ``i``-th series of a figure: a distinct colour
    for the first 16, and line style and marker that also differ between neighbours."""
    return {
        "color": PALETTE[i % len(PALETTE)],
        "linestyle": _LINESTYLES[(i // 2 + i // len(PALETTE)) % len(_LINESTYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "markevery": 0.1,
        "markersize": 4,
    }


def legend_outside(ax, anchor: tuple[float, float] = (1.02, 1.0), title: str | None = None) -> None:
    """The axes' legend to the right of the data (nothing hidden under it), with ``title``
    saying what its entries are (which seed, or the mean over seeds), and a layout that
    leaves room for it."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=anchor, borderaxespad=0,
              frameon=False, title=title, title_fontsize=7, alignment="left")  # fmt: skip
    if ax.figure.get_layout_engine() is None:  # a constrained layout makes room by itself
        ax.figure.tight_layout()


#: The CAM colour map (perceptually uniform, readable by colour-blind readers and in grey;
#: not "jet") and the colour of the ground truth drawn over it.
CAM_CMAP, TRUTH_COLOUR = "inferno", "#56B4E9"


def overlay_annotations(
    ax, data: PreparedDataset, row: pd.Series, size: int, colour: str = "#D55E00"
) -> int:
    """Draw the image's NIH boxes or RANZCR lines, rescaled from the original to the cache
    size (the sample grid, the Grad-CAM grid); returns how many were drawn."""
    drawn, table = 0, data.annotations
    mine = table[table["image_id"] == row["image_id"]] if len(table) else table
    if len(mine):
        width, height = original_size(row["path"])
        sx, sy = size / width, size / height
        for _, item in mine.iterrows():
            if "points" not in item:
                corner, w, h = (item.x * sx, item.y * sy), item.w * sx, item.h * sy
                ax.add_patch(Rectangle(corner, w, h, fill=False, edgecolor=colour, linewidth=1))
            else:
                points = np.asarray(item.points, dtype=float).reshape(-1, 2)
                ax.plot(points[:, 0] * sx, points[:, 1] * sy, lw=0.9, color=colour)
            drawn += 1
    return drawn
