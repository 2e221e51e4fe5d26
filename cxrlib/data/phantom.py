"""Phantom datasets: synthetic chest-X-ray-like images whose labels have visible causes.

The real datasets (NIH ChestX-ray14, Wang et al. CVPR 2017; RANZCR CLiP, Kaggle 2021) cannot
be downloaded everywhere, so the kit ships a generator that writes look-alikes in their exact
Kaggle layouts. The same readers (:mod:`cxrlib.data.tables`) then load phantom and real data:
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from cxrlib.data.datasets import get_dataset
from cxrlib.data.labels import CXR11_CLASSES, CXR11_CSV_COLUMNS, CXR14_CLASSES
from cxrlib.data.splits import SPLIT_NAMES
from cxrlib.fileio import atomic_write_text

PHANTOM_VERSION = 1
#: Lesion and device contrast relative to the full-strength drawing, and the image noise:
#: tuned so that a small CNN learns every label but not trivially (no ceiling for ablations).
LESION_CONTRAST = 0.55
NOISE_STD = 0.045
NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate; the output folder is keyed by all of it."""

    dataset: str
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


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy / height, xx / width


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _blob(yy, xx, cy, cx, sy, sx) -> np.ndarray:
    return np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))


@dataclass
class Anatomy:
    """Relative geometry of one patient's chest (stable across that patient's images)."""

    lung_cy: float
    lung_ry: float
    lung_rx: float
    lung_cx: tuple[float, float]
    heart_cy: float
    heart_cx: float
    heart_rx: float
    heart_ry: float

    @property
    def diaphragm(self) -> float:
        return self.lung_cy + self.lung_ry

    @property
    def carina(self) -> tuple[float, float]:
        return self.lung_cy - 0.35 * self.lung_ry, 0.5


def _patient_anatomy(rng: np.random.Generator) -> Anatomy:
    return Anatomy(
        lung_cy=0.47 + rng.normal(0, 0.01),
        lung_ry=0.27 + rng.normal(0, 0.01),
        lung_rx=0.15 + rng.normal(0, 0.006),
        lung_cx=(0.32 + rng.normal(0, 0.006), 0.68 + rng.normal(0, 0.006)),
        heart_cy=0.62 + rng.normal(0, 0.01),
        heart_cx=0.55 + rng.normal(0, 0.008),
        heart_rx=0.12 + rng.normal(0, 0.006),
        heart_ry=0.11 + rng.normal(0, 0.005),
    )


def _finish(rng: np.random.Generator, img: np.ndarray, blur: float) -> tuple[np.ndarray, int, int]:
    """Exposure, positioning and blur of one acquisition: random contrast and brightness, a
    shift of the whole picture by (dx, dy) pixels (returned, to move boxes and lines too)."""
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-0.08, 0.08)
    height, width = img.shape
    dy, dx = (rng.normal(0, 0.015, 2) * (height, width)).round().astype(int)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    pil = pil.transform(pil.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=15)
    return np.asarray(pil.filter(ImageFilter.GaussianBlur(radius=blur))), int(dx), int(dy)


def _draw_chest(
    rng: np.random.Generator, anatomy: Anatomy, height: int, width: int, emphysema: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The normal chest (float image in [0, 1]) and the union mask of both lungs."""
    yy, xx = _grid(height, width)
    a = anatomy
    img = np.full((height, width), 0.06, dtype=np.float32)
    img[_ellipse(yy, xx, 0.52, 0.5, 0.47, 0.44)] = 0.45
    lung_ry = a.lung_ry * (1.12 if emphysema else 1.0)
    lungs = np.zeros_like(img, dtype=bool)
    for cx in a.lung_cx:
        lungs |= _ellipse(yy, xx, a.lung_cy + (0.03 if emphysema else 0), cx, lung_ry, a.lung_rx)
    img[lungs] = 0.10 if emphysema else 0.20
    # ribs: faint arcs over the lungs (absent where emphysema flattens everything darker)
    for k in range(7):
        arc = np.abs(yy - (0.24 + 0.075 * k) - 0.12 * (xx - 0.5) ** 2 * 4) < 0.008
        img[arc & lungs] += 0.07
    img[np.abs(xx - 0.5) < 0.035] = 0.62  # spine / mediastinum
    heart = _ellipse(yy, xx, a.heart_cy, a.heart_cx, a.heart_ry, a.heart_rx)
    img[heart] = 0.62
    img += rng.normal(0, NOISE_STD, img.shape).astype(np.float32)
    return img, lungs


def _box(yy_mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, w, h) in pixels of a boolean mask's bounding box."""
    rows, cols = np.flatnonzero(yy_mask.any(1)), np.flatnonzero(yy_mask.any(0))
    if not len(rows):
        return (0.0, 0.0, 0.0, 0.0)
    return (
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    )


def _draw_cxr14(
    rng: np.random.Generator, anatomy: Anatomy, labels: dict[str, int], size: int
) -> tuple[np.ndarray, list[tuple[str, tuple[float, float, float, float]]]]:
    """One CXR14 phantom (uint8) and its lesion boxes."""
    a = anatomy
    if labels.get("Cardiomegaly"):
        a = Anatomy(**{**a.__dict__, "heart_rx": a.heart_rx * 1.55, "heart_ry": a.heart_ry * 1.25})
    img, lungs = _draw_chest(rng, a, size, size, emphysema=bool(labels.get("Emphysema")))
    yy, xx = _grid(size, size)
    boxes: list[tuple[str, tuple[float, float, float, float]]] = []
    side = rng.integers(0, 2)
    lung_cx = a.lung_cx[side]
    base = a.lung_cy + 0.6 * a.lung_ry

    def add(name: str, field: np.ndarray, gain: float, threshold: float = 0.35) -> None:
        nonlocal img
        img = img + LESION_CONTRAST * gain * field
        boxes.append((name, _box(field > threshold)))

    if labels.get("Cardiomegaly"):
        boxes.append(
            ("Cardiomegaly", _box(_ellipse(yy, xx, a.heart_cy, a.heart_cx, a.heart_ry, a.heart_rx)))
        )
    if labels.get("Emphysema"):
        boxes.append(("Emphysema", _box(lungs)))
    if labels.get("Nodule"):
        cy, cx = a.lung_cy + rng.uniform(-0.15, 0.1), lung_cx + rng.uniform(-0.06, 0.06)
        add("Nodule", _ellipse(yy, xx, cy, cx, 0.035, 0.035).astype(np.float32), 0.55, 0.5)
    if labels.get("Mass"):
        cy, cx = (
            a.lung_cy + rng.uniform(-0.12, 0.08),
            a.lung_cx[1 - side] + rng.uniform(-0.04, 0.04),
        )
        add("Mass", np.clip(_blob(yy, xx, cy, cx, 0.055, 0.055) * 1.6, 0, 1), 0.5, 0.5)
    if labels.get("Effusion"):
        meniscus = base - 0.04 + 0.25 * (xx - lung_cx) ** 2
        fluid = (lungs & (yy > meniscus) & (np.abs(xx - lung_cx) < a.lung_rx * 1.05)).astype(
            np.float32
        )
        add("Effusion", fluid, 0.38, 0.5)
    if labels.get("Atelectasis"):
        cx = a.lung_cx[1 - side]
        wedge = (
            (yy > base - 0.09) & (yy < base + 0.02) & (np.abs(xx - cx) < (yy - base + 0.09) * 0.9)
        )
        add("Atelectasis", (wedge & lungs).astype(np.float32), 0.3, 0.5)
    if labels.get("Consolidation"):
        cy, cx = a.lung_cy + 0.05, lung_cx + rng.uniform(-0.04, 0.04)
        patch = _ellipse(yy, xx, cy, cx, 0.09, 0.07) & lungs
        add("Consolidation", patch.astype(np.float32), 0.36, 0.5)
    if labels.get("Edema"):
        haze = (
            sum(
                _blob(yy, xx, a.lung_cy - 0.02, cx + (0.06 if cx < 0.5 else -0.06), 0.11, 0.06)
                for cx in a.lung_cx
            )
            * lungs
        )
        add("Edema", haze.astype(np.float32), 0.28, 0.3)
    if labels.get("Fibrosis"):
        layer = Image.new("L", (size, size))
        draw = ImageDraw.Draw(layer)
        for _ in range(28):
            cx = a.lung_cx[rng.integers(0, 2)] + rng.uniform(-0.1, 0.1)
            cy = a.lung_cy - rng.uniform(0.05, 0.22)
            dx, dy = rng.uniform(-0.04, 0.04, 2)
            draw.line(
                [(cx * size, cy * size), ((cx + dx) * size, (cy + dy) * size)],
                fill=255,
                width=max(1, size // 128),
            )
        streaks = (np.asarray(layer, dtype=np.float32) / 255.0) * lungs
        add("Fibrosis", streaks, 0.35, 0.5)
    if labels.get("Hernia"):
        cy, cx = a.diaphragm - 0.06, 0.5 + rng.uniform(-0.03, 0.03)
        ring = _ellipse(yy, xx, cy, cx, 0.06, 0.07)
        inner = _ellipse(yy, xx, cy, cx, 0.045, 0.055)
        img[ring] += LESION_CONTRAST * 0.25
        img[inner] -= LESION_CONTRAST * 0.35
        boxes.append(("Hernia", _box(ring)))
    if labels.get("Infiltration"):
        field = np.zeros((size, size), dtype=np.float32)
        cx0 = a.lung_cx[rng.integers(0, 2)]
        for _ in range(9):
            cy, cx = a.lung_cy + rng.uniform(-0.15, 0.12), cx0 + rng.uniform(-0.09, 0.09)
            field += _blob(yy, xx, cy, cx, 0.014, 0.014)
        add("Infiltration", np.clip(field, 0, 1) * lungs, 0.45, 0.3)
    if labels.get("Pleural_Thickening"):
        edge = a.lung_cx[side] + (-1 if side == 0 else 1) * a.lung_rx
        band = (np.abs(xx - edge) < 0.028) & (np.abs(yy - a.lung_cy) < a.lung_ry * 0.75)
        add("Pleural_Thickening", band.astype(np.float32), 0.4, 0.5)
    if labels.get("Pneumonia"):
        cy, cx = a.lung_cy - 0.14, a.lung_cx[1 - side] + rng.uniform(-0.03, 0.03)
        add("Pneumonia", _blob(yy, xx, cy, cx, 0.06, 0.05) * lungs, 0.38, 0.35)
    if labels.get("Pneumothorax"):
        cx = a.lung_cx[side]
        apex = _ellipse(yy, xx, a.lung_cy - 0.17, cx, 0.11, a.lung_rx * 0.95) & lungs
        img[apex] = img[apex] * (1 - LESION_CONTRAST * 0.6)
        rim = _ellipse(yy, xx, a.lung_cy - 0.17, cx, 0.115, a.lung_rx) & ~apex & lungs
        img[rim] += LESION_CONTRAST * 0.4
        boxes.append(("Pneumothorax", _box(apex | rim)))
    pixels, dx, dy = _finish(rng, img, blur=size / 256)
    return pixels, [(name, (x + dx, y + dy, w, h)) for name, (x, y, w, h) in boxes]


# --------------------------------------------------------------------------------------------
# CXR11 devices
# --------------------------------------------------------------------------------------------
def _bezier(points: list[tuple[float, float]], steps: int = 24) -> list[tuple[float, float]]:
    """Points along a quadratic/cubic Bezier through relative control points."""
    t = np.linspace(0, 1, steps)[:, None, None]  # (steps, 1, 1)
    p = np.broadcast_to(np.asarray(points, dtype=np.float64), (steps, len(points), 2))
    while p.shape[1] > 1:  # de Casteljau: (steps, k, 2) -> (steps, k-1, 2)
        p = (1 - t) * p[:, :-1] + t * p[:, 1:]
    return [tuple(row) for row in p[:, 0]]


def _device_path(rng: np.random.Generator, label: str, a: Anatomy) -> list[tuple[float, float]]:
    """Relative (x, y) control points of the device that causes ``label``."""
    carina_y = a.carina[0]
    j = lambda s=0.01: rng.normal(0, s)  # noqa: E731 - tiny jitter helper
    if label.startswith("ETT"):
        tip = {
            "ETT-Normal": carina_y - 0.10 + j(),
            "ETT-Borderline": carina_y - 0.035 + j(0.005),
            "ETT-Abnormal": carina_y - 0.24 + j(),
        }[label]
        return [(0.5 + j(0.005), -0.02), (0.5 + j(0.004), tip / 2), (0.5 + j(0.004), tip)]
    if label.startswith("NGT"):
        start = [(0.47, -0.02), (0.48, 0.3)]
        gastric = (0.62, a.diaphragm + 0.10)
        if label == "NGT-Normal":
            return [*start, (0.49, a.diaphragm), gastric]
        if label == "NGT-Borderline":
            return [*start, (0.49, a.diaphragm - 0.12), (0.5, a.diaphragm - 0.05 + j(0.005))]
        if label == "NGT-Incompletely-Imaged":
            return [*start, (0.49, a.diaphragm), (0.55, 1.05)]
        return [*start, (0.40, a.lung_cy - 0.05), (0.30, a.lung_cy + 0.12 + j())]  # into the lung
    if label.startswith("CVC"):
        side = rng.integers(0, 2)
        sx = 0.06 if side == 0 else 0.94
        svc = (0.46 if side == 0 else 0.54, 0.26)
        end = {
            "CVC-Normal": (0.46 if side == 0 else 0.54, a.lung_cy - 0.02 + j(0.008)),
            "CVC-Borderline": (0.45 if side == 0 else 0.55, 0.22 + j(0.008)),
            "CVC-Abnormal": (0.42 if side == 0 else 0.58, 0.04 + j(0.008)),
        }[label]
        return [(sx, 0.2), ((sx + svc[0]) / 2, 0.17), svc, end]
    # Swan-Ganz: through the right heart into the right pulmonary artery
    return [
        (0.95, 0.2),
        (0.56, 0.2),
        (0.53, a.heart_cy),
        (0.62, a.heart_cy + 0.05),
        (0.45, a.lung_cy - 0.04),
        (0.36, a.lung_cy - 0.06 + j()),
    ]


def _draw_cxr11(
    rng: np.random.Generator, anatomy: Anatomy, labels: list[str], height: int, width: int
) -> tuple[np.ndarray, list[tuple[str, list[list[int]]]]]:
    img, _ = _draw_chest(rng, anatomy, height, width)
    layer = Image.new("L", (width, height))
    draw = ImageDraw.Draw(layer)
    lines = []
    widths = {"ETT": 5, "NGT": 2, "CVC": 3, "Swa": 3}
    for label in labels:
        control = _device_path(rng, label, anatomy)
        curve = _bezier(control, steps=32) if len(control) > 2 else control
        pixels = [(x * width, y * height) for x, y in curve]
        w = max(1, round(widths[label[:3]] * width / 256))
        draw.line(pixels, fill=255, width=w, joint="curve")
        if label.startswith("ETT"):  # a bright radiopaque tip marker
            x, y = pixels[-1]
            draw.ellipse([x - 2 * w, y - w, x + 2 * w, y + w], fill=255)
        lines.append((label, pixels))
    img = img + LESION_CONTRAST * 0.42 * np.asarray(layer, dtype=np.float32) / 255.0
    out, dx, dy = _finish(rng, img, blur=width / 320)
    shifted = [
        (
            label,
            [
                [round(x + dx), round(y + dy)]
                for x, y in points
                if 0 <= x + dx < width and 0 <= y + dy < height
            ],
        )
        for label, points in lines
    ]
    return out, shifted


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

    Idempotent: a finished folder (``phantom.json`` present) is reused unless ``force``.
    Written into a temporary folder and renamed, so an interrupted run leaves nothing behind.
    ``real_vectors`` (N×K 0/1), if given, supplies the label combinations.
    """
    dataset = spec.dataset
    if not get_dataset(dataset).phantom:
        raise ValueError(f"no phantom generator for {dataset}; phantoms exist of cxr14 and cxr11")
    if (spec.label_source == "authors") != (real_vectors is not None):
        raise ValueError("label_source='authors' needs real_vectors, and only it does")
    folder = Path(out_root) / spec.folder_name()
    if (folder / "phantom.json").is_file() and not force:
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


def _generate_cxr14(spec: PhantomSpec, out: Path, rng, real_vectors) -> None:
    n, size = spec.num_images, spec.image_size
    normal = rng.random(n) < 0.15  # "No Finding" images: in the metadata, not in the subset
    vectors = sample_label_vectors(rng, n, len(CXR14_CLASSES), real_vectors)
    vectors[normal] = 0
    patients = _patients(rng, n)
    anatomies = {p: _patient_anatomy(np.random.default_rng([spec.seed, p])) for p in set(patients)}
    follow = {}
    meta_rows, box_rows, names = [], [], []
    for i in range(n):
        pid = patients[i] + 1
        follow[pid] = follow.get(pid, -1) + 1
        name = f"{pid:08d}_{follow[pid]:03d}.png"
        names.append(name)
        labels = {c: int(v) for c, v in zip(CXR14_CLASSES, vectors[i], strict=True)}
        pixels, boxes = _draw_cxr14(rng, anatomies[patients[i]], labels, size)
        image = Image.fromarray(pixels)
        if rng.random() < 0.05:  # a few RGBA PNGs, as in the real dataset
            image = image.convert("RGBA")
        sub = out / f"images_{1 + i * 2 // n:03d}" / "images"  # two folders, like 001/002
        sub.mkdir(parents=True, exist_ok=True)
        image.save(sub / name)
        findings = "|".join(c for c in CXR14_CLASSES if labels[c]) or "No Finding"
        meta_rows.append(
            f"{name},{findings},{follow[pid]},{pid},{int(rng.integers(20, 90))},"
            f"{'MF'[int(rng.integers(0, 2))]},{'PA' if rng.random() < 0.6 else 'AP'},"
            f"{size},{size},0.143,0.143,"
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


def _generate_cxr11(spec: PhantomSpec, out: Path, rng, real_vectors) -> None:
    n = spec.num_images
    classes = CXR11_CLASSES
    vectors = sample_label_vectors(rng, n, len(classes), real_vectors)
    patients = _patients(rng, n)
    anatomies = {p: _patient_anatomy(np.random.default_rng([spec.seed, p])) for p in set(patients)}
    patient_codes = {p: f"{rng.integers(16**8, 16**9):09x}" for p in set(patients)}
    (out / "train").mkdir(parents=True)
    rows, annotation_rows, names = [], [], []
    for i in range(n):
        uid = "1.2.826.0.1.3680043.8.498." + "".join(str(d) for d in rng.integers(0, 10, 38))
        names.append(f"{uid}.jpg")
        height = int(spec.image_size * rng.uniform(1.0, 1.15))
        width = int(spec.image_size * rng.uniform(0.95, 1.1))
        positives = [c for c, v in zip(classes, vectors[i], strict=True) if v]
        pixels, lines = _draw_cxr11(rng, anatomies[patients[i]], positives, height, width)
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
