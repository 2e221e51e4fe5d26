"""Drawing the phantoms: a chest, and the visible cause of every label.

CXR14 (NIH ChestX-ray14, Wang et al., CVPR 2017): one drawing per finding (:data:`LESIONS`),
each leaving a box where it drew. CXR11 (RANZCR CLiP, Kaggle 2021): tubes and lines whose tip
position decides the label, each leaving its line's points. :mod:`cxrlib.data.phantom` writes
the drawings in the datasets' Kaggle layouts; see its docstring for what each label looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: Lesion and device contrast relative to the full-strength drawing, and the image noise:
#: tuned so that a small CNN learns every label but not trivially (no ceiling for ablations).
LESION_CONTRAST = 0.55
NOISE_STD = 0.045


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy / height, xx / width


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _blob(yy, xx, cy, cx, sy, sx) -> np.ndarray:
    return np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))


@dataclass(kw_only=True)
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


def patient_anatomy(rng: np.random.Generator) -> Anatomy:
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


Box = tuple[float, float, float, float]  #: x, y, w, h in pixels


@dataclass(kw_only=True)
class _Film:
    """One CXR14 phantom being drawn: the image, its lesion boxes and the patient's geometry."""

    rng: np.random.Generator
    a: Anatomy
    img: np.ndarray
    lungs: np.ndarray
    yy: np.ndarray
    xx: np.ndarray
    size: int
    side: int  #: the lung that most lesions go to
    boxes: list[tuple[str, Box]] = field(default_factory=list)

    @property
    def base(self) -> float:
        """Height of the lung bases (where fluid and collapse sit)."""
        return self.a.lung_cy + 0.6 * self.a.lung_ry

    def add(self, name: str, shape: np.ndarray, gain: float, threshold: float = 0.35) -> None:
        """Brighten the film by ``shape`` (a 0..1 field) and box where it exceeds ``threshold``."""
        self.img = self.img + LESION_CONTRAST * gain * shape
        self.boxes.append((name, _box(shape > threshold)))


def _cardiomegaly(f: _Film) -> None:  # the heart itself was drawn enlarged
    a = f.a
    f.boxes.append(
        ("Cardiomegaly", _box(_ellipse(f.yy, f.xx, a.heart_cy, a.heart_cx, a.heart_ry, a.heart_rx)))
    )


def _emphysema(f: _Film) -> None:  # the lungs were drawn dark and over-inflated
    f.boxes.append(("Emphysema", _box(f.lungs)))


def _nodule(f: _Film) -> None:
    cy = f.a.lung_cy + f.rng.uniform(-0.15, 0.1)
    cx = f.a.lung_cx[f.side] + f.rng.uniform(-0.06, 0.06)
    f.add("Nodule", _ellipse(f.yy, f.xx, cy, cx, 0.035, 0.035).astype(np.float32), 0.55, 0.5)


def _mass(f: _Film) -> None:
    cy = f.a.lung_cy + f.rng.uniform(-0.12, 0.08)
    cx = f.a.lung_cx[1 - f.side] + f.rng.uniform(-0.04, 0.04)
    f.add("Mass", np.clip(_blob(f.yy, f.xx, cy, cx, 0.055, 0.055) * 1.6, 0, 1), 0.5, 0.5)


def _effusion(f: _Film) -> None:
    cx, yy, xx = f.a.lung_cx[f.side], f.yy, f.xx
    meniscus = f.base - 0.04 + 0.25 * (xx - cx) ** 2
    fluid = f.lungs & (yy > meniscus) & (np.abs(xx - cx) < f.a.lung_rx * 1.05)
    f.add("Effusion", fluid.astype(np.float32), 0.38, 0.5)


def _atelectasis(f: _Film) -> None:
    cx, base, yy = f.a.lung_cx[1 - f.side], f.base, f.yy
    wedge = (yy > base - 0.09) & (yy < base + 0.02) & (np.abs(f.xx - cx) < (yy - base + 0.09) * 0.9)
    f.add("Atelectasis", (wedge & f.lungs).astype(np.float32), 0.3, 0.5)


def _consolidation(f: _Film) -> None:
    cy, cx = f.a.lung_cy + 0.05, f.a.lung_cx[f.side] + f.rng.uniform(-0.04, 0.04)
    patch = _ellipse(f.yy, f.xx, cy, cx, 0.09, 0.07) & f.lungs
    f.add("Consolidation", patch.astype(np.float32), 0.36, 0.5)


def _edema(f: _Film) -> None:
    a = f.a
    haze = sum(
        _blob(f.yy, f.xx, a.lung_cy - 0.02, cx + (0.06 if cx < 0.5 else -0.06), 0.11, 0.06)
        for cx in a.lung_cx
    )
    f.add("Edema", (haze * f.lungs).astype(np.float32), 0.28, 0.3)


def _fibrosis(f: _Film) -> None:
    layer = Image.new("L", (f.size, f.size))
    draw = ImageDraw.Draw(layer)
    for _ in range(28):
        cx = f.a.lung_cx[f.rng.integers(0, 2)] + f.rng.uniform(-0.1, 0.1)
        cy = f.a.lung_cy - f.rng.uniform(0.05, 0.22)
        dx, dy = f.rng.uniform(-0.04, 0.04, 2)
        ends = [(cx * f.size, cy * f.size), ((cx + dx) * f.size, (cy + dy) * f.size)]
        draw.line(ends, fill=255, width=max(1, f.size // 128))
    streaks = (np.asarray(layer, dtype=np.float32) / 255.0) * f.lungs
    f.add("Fibrosis", streaks, 0.35, 0.5)


def _hernia(f: _Film) -> None:
    cy, cx = f.a.diaphragm - 0.06, 0.5 + f.rng.uniform(-0.03, 0.03)
    ring = _ellipse(f.yy, f.xx, cy, cx, 0.06, 0.07)
    inner = _ellipse(f.yy, f.xx, cy, cx, 0.045, 0.055)
    f.img[ring] += LESION_CONTRAST * 0.25
    f.img[inner] -= LESION_CONTRAST * 0.35  # the gas bubble
    f.boxes.append(("Hernia", _box(ring)))


def _infiltration(f: _Film) -> None:
    shape = np.zeros((f.size, f.size), dtype=np.float32)
    cx0 = f.a.lung_cx[f.rng.integers(0, 2)]
    for _ in range(9):
        cy, cx = f.a.lung_cy + f.rng.uniform(-0.15, 0.12), cx0 + f.rng.uniform(-0.09, 0.09)
        shape += _blob(f.yy, f.xx, cy, cx, 0.014, 0.014)
    f.add("Infiltration", np.clip(shape, 0, 1) * f.lungs, 0.45, 0.3)


def _pleural_thickening(f: _Film) -> None:
    a = f.a
    edge = a.lung_cx[f.side] + (-1 if f.side == 0 else 1) * a.lung_rx
    band = (np.abs(f.xx - edge) < 0.028) & (np.abs(f.yy - a.lung_cy) < a.lung_ry * 0.75)
    f.add("Pleural_Thickening", band.astype(np.float32), 0.4, 0.5)


def _pneumonia(f: _Film) -> None:
    cy, cx = f.a.lung_cy - 0.14, f.a.lung_cx[1 - f.side] + f.rng.uniform(-0.03, 0.03)
    f.add("Pneumonia", _blob(f.yy, f.xx, cy, cx, 0.06, 0.05) * f.lungs, 0.38, 0.35)


def _pneumothorax(f: _Film) -> None:
    a, cx = f.a, f.a.lung_cx[f.side]
    apex = _ellipse(f.yy, f.xx, a.lung_cy - 0.17, cx, 0.11, a.lung_rx * 0.95) & f.lungs
    f.img[apex] = f.img[apex] * (1 - LESION_CONTRAST * 0.6)  # dark, without lung markings
    rim = _ellipse(f.yy, f.xx, a.lung_cy - 0.17, cx, 0.115, a.lung_rx) & ~apex & f.lungs
    f.img[rim] += LESION_CONTRAST * 0.4  # the pleural line
    f.boxes.append(("Pneumothorax", _box(apex | rim)))


#: Each CXR14 finding's drawing, in the order they are drawn (the order fixes the random draws).
LESIONS = {
    "Cardiomegaly": _cardiomegaly,
    "Emphysema": _emphysema,
    "Nodule": _nodule,
    "Mass": _mass,
    "Effusion": _effusion,
    "Atelectasis": _atelectasis,
    "Consolidation": _consolidation,
    "Edema": _edema,
    "Fibrosis": _fibrosis,
    "Hernia": _hernia,
    "Infiltration": _infiltration,
    "Pleural_Thickening": _pleural_thickening,
    "Pneumonia": _pneumonia,
    "Pneumothorax": _pneumothorax,
}


def draw_cxr14(
    rng: np.random.Generator, anatomy: Anatomy, labels: dict[str, int], size: int
) -> tuple[np.ndarray, list[tuple[str, Box]]]:
    """One CXR14 phantom (uint8, ``size × size``) showing ``labels``, and its lesion boxes."""
    a = anatomy
    if labels.get("Cardiomegaly"):
        a = Anatomy(**{**a.__dict__, "heart_rx": a.heart_rx * 1.55, "heart_ry": a.heart_ry * 1.25})
    img, lungs = _draw_chest(rng, a, size, size, emphysema=bool(labels.get("Emphysema")))
    yy, xx = _grid(size, size)
    film = _Film(
        rng=rng, a=a, img=img, lungs=lungs, yy=yy, xx=xx, size=size, side=int(rng.integers(0, 2))
    )
    for name, draw in LESIONS.items():
        if labels.get(name):
            draw(film)
    pixels, dx, dy = _finish(rng, film.img, blur=size / 256)
    return pixels, [(name, (x + dx, y + dy, w, h)) for name, (x, y, w, h) in film.boxes]


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


def draw_cxr11(
    rng: np.random.Generator, anatomy: Anatomy, labels: list[str], height: int, width: int
) -> tuple[np.ndarray, list[tuple[str, list[list[int]]]]]:
    """One CXR11 phantom (uint8) with the devices that cause ``labels``, and each device's line
    (its pixel points), shifted with the picture."""
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
