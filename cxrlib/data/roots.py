"""Finding the real datasets on disk.

* CXR14: NIH ChestX-ray14 (Wang et al., CVPR 2017), Kaggle dataset ``nih-chest-xrays/data``:
  ``Data_Entry_2017.csv`` beside ``images_001/images/*.png`` ... ``images_012/``.
* CXR11: RANZCR CLiP (Kaggle competition ``ranzcr-clip-catheter-line-classification``):
  ``train.csv`` beside ``train/<StudyInstanceUID>.jpg``.

A root given explicitly (parameter, ``--cxr14-root``, ``$CXR14_ROOT``) wins; otherwise the
usual Kaggle mount points are searched, because their exact path varies between notebooks.
"""

from __future__ import annotations

from pathlib import Path

from cxrlib.data.datasets import DatasetDef, get_dataset
from cxrlib.data.tables import DatasetLayoutError

KAGGLE_INPUT = Path("/kaggle/input")


def find_data_root(dataset: str | DatasetDef, explicit: str | None = None) -> Path | None:
    """The root of ``dataset`` (a name or definition), or None when none is found.

    An explicit root that does not hold the dataset's marker file is an error, not a fallback.
    """
    definition = get_dataset(dataset)
    name, markers = definition.name, " or ".join(definition.markers)
    if explicit:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise DatasetLayoutError(
                f"{name.upper()} root {root} does not exist; pass the folder that holds "
                f"{markers} (e.g. --{name}-root /path/to/data)"
            )
        if not definition.has_marker(root):
            raise DatasetLayoutError(
                f"{name.upper()} root {root} has no {markers}; pass the folder of the Kaggle "
                f"download that holds it"
            )
        return root
    if KAGGLE_INPUT.is_dir():
        for rel in definition.kaggle:
            if definition.has_marker(KAGGLE_INPUT / rel):
                return KAGGLE_INPUT / rel
        for marker in definition.markers:
            for found in KAGGLE_INPUT.glob(f"*/**/{marker}"):
                return found.parent
    return None
