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

from cxrlib.data.tables import DatasetLayoutError

KAGGLE_INPUT = Path("/kaggle/input")
MARKERS = {"cxr14": "Data_Entry_2017.csv", "cxr11": "train.csv"}
KAGGLE_CANDIDATES = {
    "cxr14": ("nih-chest-xrays/data", "data", "nih-chest-xrays"),
    "cxr11": ("ranzcr-clip-catheter-line-classification", "ranzcr-clip"),
}


def _has_marker(root: Path, dataset: str) -> bool:
    marker = MARKERS[dataset]
    if (root / marker).is_file():
        return True
    # The NIH metadata also circulates as the v2020 file name.
    return dataset == "cxr14" and (root / "Data_Entry_2017_v2020.csv").is_file()


def find_data_root(dataset: str, explicit: str | None = None) -> Path | None:
    """The root of ``dataset`` (``"cxr14"`` or ``"cxr11"``), or None when none is found.

    An explicit root that does not hold the dataset's marker file is an error, not a fallback.
    """
    if dataset not in MARKERS:
        raise ValueError(f"unknown dataset {dataset!r}; allowed: {', '.join(MARKERS)}")
    if explicit:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise DatasetLayoutError(
                f"{dataset.upper()} root {root} does not exist; pass the folder that holds "
                f"{MARKERS[dataset]} (e.g. --{dataset}-root /path/to/data)"
            )
        if not _has_marker(root, dataset):
            raise DatasetLayoutError(
                f"{dataset.upper()} root {root} has no {MARKERS[dataset]}; pass the folder of "
                f"the Kaggle download that holds it"
            )
        return root
    if KAGGLE_INPUT.is_dir():
        for rel in KAGGLE_CANDIDATES[dataset]:
            if _has_marker(KAGGLE_INPUT / rel, dataset):
                return KAGGLE_INPUT / rel
        for marker in KAGGLE_INPUT.glob(f"*/**/{MARKERS[dataset]}"):
            return marker.parent
    return None
