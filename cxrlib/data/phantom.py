"""Phantom datasets: synthetic chest-X-ray-like images whose labels have visible causes.

The real datasets (NIH ChestX-ray14, Wang et al. CVPR 2017; RANZCR CLiP, Kaggle 2021) cannot
be downloaded everywhere, so the kit ships a generator that writes look-alikes in their exact
Kaggle layouts. The same readers (:mod:`cxrlib.data.sets`) then load phantom and real data:
after generation there is no phantom-only code path.

Every label has a cause drawn into the image, so a model can learn it and Grad-CAM can be
checked against where it was drawn:

* CXR14 (NIH layout: ``images_00X/images/*.png``, ``Data_Entry_2017.csv`` with the 2017 header,
  ``BBox_List_2017.csv`` with a box per drawn lesion, split files in the authors' format):
  an enlarged heart (Cardiomegaly), a small or a large bright disc (Nodule, Mass), fluid with a
  meniscus at a lung base (Effusion), a basal wedge (Atelectasis), a dense basal patch
  (Consolidation), bilateral perihilar haze (Edema), dark over-inflated lungs with a flat
  diaphragm (Emphysema), reticular streaks (Fibrosis), a retrocardiac gas bubble (Hernia),
  scattered small opacities (Infiltration), a band along the chest wall (Pleural_Thickening),
  a fuzzy upper-zone patch (Pneumonia), a dark apical region without lung markings behind a
  pleural line (Pneumothorax). ``No Finding`` images are written too (the loader drops them).
  Patients have a sex (57 % M, as NIH's abnormal images) and an age (normal, mean 47, sd 17,
  1-95 years), each film a view (45 % AP). **A planted, documented dependence** for the subgroup
  analysis: on an AP film each finding is, with probability :data:`AP_HIDDEN_SHARE`, labelled
  but not drawn (as a portable supine film can hide what the report found), so that even a
  perfect reader's AUC is lower on AP films than on PA films; sex and age change nothing in
  the images, so a model has no gap by sex or age but for chance.
* CXR11 (RANZCR layout: ``train/<uid>.jpg``, ``train.csv``, ``train_annotations.csv`` with the
  drawn lines' points): tubes and lines whose *tip position* decides the label -- an
  endotracheal tube ending well above / just above / below the carina (ETT Normal / Borderline
  / Abnormal), a nasogastric tube ending in the stomach / at the diaphragm / in the lung or
  coiled / off the image (NGT Normal / Borderline / Abnormal / Incompletely Imaged), a central
  venous catheter ending in the SVC / too high / in the neck (CVC ...), and a Swan-Ganz
  catheter looping through the heart into the pulmonary artery.

Label combinations are drawn from the real label vectors of the authors' split files when
they are available (weighted towards rare classes so that every class has positives), else
from random one-to-three-class combinations. Output is deterministic for a seed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cxrlib.core.fileio import atomic_write_text
from cxrlib.data.datasets import get_dataset
from cxrlib.data.phantom_draw import draw_cxr11, draw_cxr14, patient_anatomy
from cxrlib.data.sets.cxr11 import CLASSES as CXR11_CLASSES
from cxrlib.data.sets.cxr11 import CSV_COLUMNS as CXR11_CSV_COLUMNS
from cxrlib.data.sets.cxr14 import CLASSES as CXR14_CLASSES
from cxrlib.data.splits import SPLIT_NAMES, patient_split

#: 2: patients' sex and age and the films' view drawn on their own generator, findings hidden
#: on AP films (:data:`AP_HIDDEN_SHARE`).
PHANTOM_VERSION = 2
#: CXR14 phantom: the share of AP films' findings that are labelled but not drawn.
AP_HIDDEN_SHARE = 0.2
#: CXR14 phantom: the share of male patients and of AP films, and the age distribution (years).
MALE_SHARE, AP_SHARE, AGE_MEAN, AGE_SD = 0.57, 0.45, 47.0, 17.0
NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate; the output folder is keyed by all of it."""

    dataset: str
    _: KW_ONLY
    num_images: int = 600
    image_size: int = 256
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    label_source: str = "random"  # "authors": combinations from the authors' split files

    def folder_name(self) -> str:
        return (
            f"{self.dataset}-n{self.num_images}-px{self.image_size}-seed{self.seed}"
            f"-{self.label_source}"
        )


# --------------------------------------------------------------------------------------------
# Label vectors
# --------------------------------------------------------------------------------------------
def sample_label_vectors(
    rng: np.random.Generator, count: int, num_classes: int, real_vectors: np.ndarray | None
) -> np.ndarray:
    """``count`` label vectors: real combinations weighted towards rare classes, or random."""
    if real_vectors is not None and len(real_vectors):
        prevalence = real_vectors.mean(axis=0).clip(1e-4, None)
        inverse = np.where(real_vectors > 0, 1.0 / prevalence, 0.0).max(axis=1)
        weights = np.where(inverse > 0, inverse, 1.0 / max(prevalence.max(), 1e-4))
        pick = rng.choice(len(real_vectors), size=count, p=weights / weights.sum())
        return real_vectors[pick].astype(np.uint8)
    out = np.zeros((count, num_classes), dtype=np.uint8)
    for row in out:
        row[rng.choice(num_classes, size=rng.integers(1, 4), replace=False)] = 1
    return out


# --------------------------------------------------------------------------------------------
# Writers in the real layouts
# --------------------------------------------------------------------------------------------
def _patients(rng: np.random.Generator, count: int) -> list[int]:
    """Patient index per image: 1–4 images per patient (so patient splits matter)."""
    out: list[int] = []
    patient = 0
    while len(out) < count:
        out += [patient] * int(rng.integers(1, 5))
        patient += 1
    return out[:count]


def _random_split(rng: np.random.Generator, count: int, fractions) -> np.ndarray:
    """Image-level random split like the authors' (which is why their split leaks patients)."""
    order = rng.permutation(count)
    bounds = (np.cumsum(fractions)[:2] * count).round().astype(int)
    parts = np.empty(count, dtype=object)
    for name, rows in zip(SPLIT_NAMES, np.split(order, bounds), strict=True):
        parts[rows] = name
    return parts


def _write_split_files(
    folder: Path, dataset: str, names: list[str], labels: np.ndarray, parts: np.ndarray
) -> None:
    definition = get_dataset(dataset)
    spec, classes = definition.split_files, definition.classes
    atomic_write_text(folder / spec.classes, "\n".join(classes))
    for part, file_name in spec.parts.items():
        lines = []
        for name, vector, p in zip(names, labels, parts, strict=True):
            if p != part:
                continue
            positives = np.flatnonzero(vector)
            folder_name = classes[positives[0]] if spec.class_folders and len(positives) else ""
            rel = "/".join(x for x in (spec.path_prefix, folder_name, name) if x)
            lines.append(f"{rel}\t{','.join(str(int(v)) for v in vector)}")
        atomic_write_text(folder / file_name, "\n".join(lines))  # no trailing newline, as theirs


def generate_phantom(
    spec: PhantomSpec, out_root: Path, real_vectors: np.ndarray | None = None, force: bool = False
) -> Path:
    """Write the phantom ``spec.dataset`` under ``out_root``; return its folder.

    Idempotent: a finished folder (``phantom.json`` present) is reused unless ``force`` or
    it was written by another :data:`PHANTOM_VERSION`.
    Written into a temporary folder and renamed, so an interrupted run leaves nothing behind.
    ``real_vectors`` (N×K 0/1), if given, supplies the label combinations.
    """
    dataset = spec.dataset
    if not get_dataset(dataset).phantom:
        raise ValueError(f"no phantom generator for {dataset}; phantoms exist of cxr14 and cxr11")
    if (spec.label_source == "authors") != (real_vectors is not None):
        raise ValueError("label_source='authors' needs real_vectors, and only it does")
    folder = Path(out_root) / spec.folder_name()
    if (folder / "phantom.json").is_file() and _version(folder) != PHANTOM_VERSION:
        force = True  # written by another version of the generator: written again
    if (folder / "phantom.json").is_file() and not force:
        if dataset == "cxr14" and not (folder / "test_list.txt").is_file():  # made before them
            meta = pd.read_csv(folder / "Data_Entry_2017.csv", dtype={"Patient ID": str})
            _write_official_lists(folder, spec, list(meta["Image Index"]), list(meta["Patient ID"]))
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rng = np.random.default_rng([spec.seed, PHANTOM_VERSION, 14 if dataset == "cxr14" else 11])
    if dataset == "cxr14":
        _generate_cxr14(spec, tmp, rng, real_vectors)
    else:
        _generate_cxr11(spec, tmp, rng, real_vectors)
    manifest = {
        "version": PHANTOM_VERSION,
        "spec": spec.__dict__,
        "note": "synthetic phantom data, not comparable with the papers",
    }
    atomic_write_text(tmp / "phantom.json", json.dumps(manifest, indent=2, default=list))
    if force:
        shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _version(folder: Path) -> int | None:
    try:
        return json.loads((folder / "phantom.json").read_text()).get("version")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None  # damaged: written again


def _generate_cxr14(spec: PhantomSpec, out: Path, rng, real_vectors) -> None:
    n, size = spec.num_images, spec.image_size
    normal = rng.random(n) < 0.15  # "No Finding" images: in the metadata, not in the subset
    vectors = sample_label_vectors(rng, n, len(CXR14_CLASSES), real_vectors)
    vectors[normal] = 0
    patients = _patients(rng, n)
    anatomies = {p: patient_anatomy(np.random.default_rng([spec.seed, p])) for p in set(patients)}
    # patient facts on a generator of their own (the subgroup analysis' planted dependence)
    facts = np.random.default_rng([spec.seed, PHANTOM_VERSION, 14, 1])
    sexes = {p: "M" if facts.random() < MALE_SHARE else "F" for p in sorted(set(patients))}
    ages = {p: int(np.clip(facts.normal(AGE_MEAN, AGE_SD), 1, 95)) for p in sorted(set(patients))}
    follow = {}
    meta_rows, box_rows, names = [], [], []
    for i in range(n):
        pid = patients[i] + 1
        follow[pid] = follow.get(pid, -1) + 1
        name = f"{pid:08d}_{follow[pid]:03d}.png"
        names.append(name)
        labels = {c: int(v) for c, v in zip(CXR14_CLASSES, vectors[i], strict=True)}
        view = "AP" if facts.random() < AP_SHARE else "PA"
        hidden = facts.random(len(CXR14_CLASSES)) < (AP_HIDDEN_SHARE if view == "AP" else 0.0)
        drawn = {c: v * int(not h) for (c, v), h in zip(labels.items(), hidden, strict=True)}
        pixels, boxes = draw_cxr14(rng, anatomies[patients[i]], drawn, size)
        image = Image.fromarray(pixels)
        if rng.random() < 0.05:  # a few RGBA PNGs, as in the real dataset
            image = image.convert("RGBA")
        sub = out / f"images_{1 + i * 2 // n:03d}" / "images"  # two folders, like 001/002
        sub.mkdir(parents=True, exist_ok=True)
        # zlib level 1: the same pixels as PIL's default level 6 in a fifth of the time (about
        # 1.5 ms instead of 7 ms for a 256-px phantom; files 15% larger)
        image.save(sub / name, compress_level=1)
        findings = "|".join(c for c in CXR14_CLASSES if labels[c]) or "No Finding"
        meta_rows.append(
            f"{name},{findings},{follow[pid]},{pid},{ages[patients[i]]},{sexes[patients[i]]},"
            f"{view},{size},{size},0.143,0.143,"
        )
        for label, (x, y, w, h) in boxes:
            if w > 0 and h > 0:
                spelled = "Infiltrate" if label == "Infiltration" else label
                box_rows.append(f"{name},{spelled},{x},{y},{w},{h}")
    atomic_write_text(out / "Data_Entry_2017.csv", "\n".join([NIH_HEADER, *meta_rows]) + "\n")
    atomic_write_text(out / "BBox_List_2017.csv", "\n".join([BBOX_HEADER, *box_rows]) + "\n")
    subset = [i for i in range(n) if not normal[i]]
    parts = _random_split(rng, len(subset), spec.split_fractions)
    _write_split_files(out / "splits", "cxr14", [names[i] for i in subset], vectors[subset], parts)
    _write_official_lists(out, spec, names, patients)


def _write_official_lists(out: Path, spec: PhantomSpec, names: list[str], patients: list[int]):
    """NIH's ``train_val_list.txt`` and ``test_list.txt`` in their format (one image name per
    line, every image, whole patients per list), drawn with a generator of their own so the
    rest of the phantom is unchanged."""
    definition = get_dataset("cxr14").official_split
    test_share = spec.split_fractions[2]
    parts = patient_split(
        pd.Series(patients), (1 - test_share, 0.0, test_share), seed=spec.seed + 1
    )
    for file_name, wanted in ((definition.train_val, "train"), (definition.test, "test")):
        chosen = [name for name, part in zip(names, parts, strict=True) if part == wanted]
        atomic_write_text(out / file_name, "\n".join(chosen) + "\n")


def _generate_cxr11(spec: PhantomSpec, out: Path, rng, real_vectors) -> None:
    n = spec.num_images
    classes = CXR11_CLASSES
    vectors = sample_label_vectors(rng, n, len(classes), real_vectors)
    patients = _patients(rng, n)
    anatomies = {p: patient_anatomy(np.random.default_rng([spec.seed, p])) for p in set(patients)}
    patient_codes = {p: f"{rng.integers(16**8, 16**9):09x}" for p in set(patients)}
    (out / "train").mkdir(parents=True)
    rows, annotation_rows, names = [], [], []
    for i in range(n):
        uid = "1.2.826.0.1.3680043.8.498." + "".join(str(d) for d in rng.integers(0, 10, 38))
        names.append(f"{uid}.jpg")
        height = int(spec.image_size * rng.uniform(1.0, 1.15))
        width = int(spec.image_size * rng.uniform(0.95, 1.1))
        positives = [c for c, v in zip(classes, vectors[i], strict=True) if v]
        pixels, lines = draw_cxr11(rng, anatomies[patients[i]], positives, height, width)
        Image.fromarray(pixels).save(out / "train" / f"{uid}.jpg", quality=92)
        rows.append([uid, *vectors[i].tolist(), patient_codes[patients[i]]])
        for label, points in lines:
            column = CXR11_CSV_COLUMNS[classes.index(label)]
            annotation_rows.append([uid, column, json.dumps(points)])
    table = pd.DataFrame(rows, columns=["StudyInstanceUID", *CXR11_CSV_COLUMNS, "PatientID"])
    table.to_csv(out / "train.csv", index=False)
    pd.DataFrame(annotation_rows, columns=["StudyInstanceUID", "label", "data"]).to_csv(
        out / "train_annotations.csv", index=False
    )
    parts = _random_split(rng, n, spec.split_fractions)
    _write_split_files(out / "splits", "cxr11", names, vectors, parts)
