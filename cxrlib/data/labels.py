"""The two label sets, in the papers' order (the order of the authors' split files).

* CXR14 -- NIH ChestX-ray14 (Wang et al., CVPR 2017): 14 findings, alphabetical.
* CXR11 -- RANZCR CLiP (Kaggle 2021): 11 catheter/line position labels. The split files spell
  them ``ETT-Abnormal``; RANZCR's ``train.csv`` spells them ``ETT - Abnormal``.
"""

from __future__ import annotations

CXR14_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)

#: RANZCR ``train.csv`` column names, in the papers' order.
CXR11_CSV_COLUMNS: tuple[str, ...] = (
    "ETT - Abnormal",
    "ETT - Borderline",
    "ETT - Normal",
    "NGT - Abnormal",
    "NGT - Borderline",
    "NGT - Incompletely Imaged",
    "NGT - Normal",
    "CVC - Abnormal",
    "CVC - Borderline",
    "CVC - Normal",
    "Swan Ganz Catheter Present",
)


def ranzcr_to_split_name(column: str) -> str:
    """``'NGT - Incompletely Imaged'`` -> ``'NGT-Incompletely-Imaged'`` (the split files' name)."""
    return column.replace(" - ", "-").replace(" ", "-")


CXR11_CLASSES: tuple[str, ...] = tuple(ranzcr_to_split_name(c) for c in CXR11_CSV_COLUMNS)

#: BBox_List_2017.csv spells Infiltration as "Infiltrate".
NIH_BBOX_SPELLING = {"Infiltrate": "Infiltration"}
