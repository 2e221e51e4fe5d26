"""Predictions of a trained model for X-ray files (PNG, JPEG, DICOM), for people.

``python -m cxrlib predict RUN_OR_MODEL IMAGES... [--cam DIR] [--json]``

Each image is read as training read it (8-bit grey, bicubic resize to the model's input size,
replicated to three channels, ImageNet normalisation: the model's ``pretrained_cfg``); DICOM
through pydicom with its rescale (modality LUT), its window (VOI LUT) and MONOCHROME1
inverted. The output names each class with its probability and the decision at the class's
operating point chosen on the validation split (stored in the model's card, method named).
Warnings say when the answer should not be trusted: a model trained on phantom images, an
image unlike the training data (size, bit depth, a lateral view), or an image that looks like
the other dataset's (an NIH PNG given to a RANZCR model, or the reverse).
"""

from __future__ import annotations

import itertools
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from cxrlib.core.errors import ModelFileError
from cxrlib.data.cache import ImageReadError, load_image, to_gray8
from cxrlib.data.datasets import REGISTRY
from cxrlib.data.loader import to_model_input
from cxrlib.evaluate.calibration import apply_temperature, apply_temperatures
from cxrlib.train.model import load_model_file
from cxrlib.train.runtime import Runtime, predict

LATERAL_VIEWS = {"LL", "RL", "LATERAL", "LAT"}


@dataclass
class XRay:
    """One X-ray: what its file says (size, bit depth, view) and its 8-bit grey pixels at the
    file's resolution -- decoded when first asked for: the model's input is made by the image
    cache's own path (:func:`model_input`), and only a CAM overlay needs the full image."""

    path: Path
    shape: tuple[int, int]  #: (H, W)
    bits: int  #: bits per pixel of the stored image
    _: KW_ONLY
    view: str | None = None  #: DICOM ViewPosition, when given
    notes: list[str] = field(default_factory=list)
    decoded: np.ndarray | None = None  #: (H, W) uint8 once decoded (a DICOM's at once)

    @property
    def pixels(self) -> np.ndarray:
        if self.decoded is None:
            with Image.open(self.path) as image:
                self.decoded = to_gray8(image)
        return self.decoded


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    with open(path, "rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def read_dicom(path: Path) -> XRay:
    """A DICOM X-ray as 8-bit grey: modality LUT (rescale slope/intercept), then the VOI LUT
    or window when the file has one (its range maps to 0..255), else the stored bit range;
    MONOCHROME1 (white = low values) inverted."""
    import pydicom  # here: only DICOM inputs need it (a GPU box may lack it)
    from pydicom.pixels import apply_modality_lut, apply_voi_lut  # here: likewise

    with warnings.catch_warnings():  # pydicom's notes on a file's encoding: not the user's
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    bits = int(getattr(ds, "BitsStored", 8))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    rescaled = (
        float(getattr(ds, "RescaleSlope", 1)) != 1 or float(getattr(ds, "RescaleIntercept", 0)) != 0
    )
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        values = apply_voi_lut(values, ds).astype(np.float64)  # into the stored bits' range
    elif rescaled:  # values in the modality's units and no window to show them: their range
        low, high = float(values.min()), float(values.max())
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1) * 255.0
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        scaled = 255.0 - scaled
    view = str(getattr(ds, "ViewPosition", "") or "") or None
    pixels = np.round(scaled).astype(np.uint8)
    return XRay(path, pixels.shape, bits, view=view, decoded=pixels)


def read_xray(path: str | os.PathLike) -> XRay:
    """PNG/JPEG (any mode: 16-bit min–max scaled, colour to luminance) or DICOM; a file that is
    none of these, or whose pixels cannot be decoded, is an :class:`ImageReadError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        if is_dicom(path):
            return read_dicom(path)
        with Image.open(path) as image:  # the header: size and mode (pixels when needed)
            bits = 16 if image.mode in ("I;16", "I;16B", "I;16L", "I") else 8
            image.verify()  # a truncated or garbled file fails here, not half-way later
            return XRay(path, (image.height, image.width), bits)
    except ImageReadError:
        raise
    except Exception as err:  # PIL's and pydicom's many ways of saying "not readable"
        fix = (
            "a compressed DICOM needs a pixel-data plugin: pip install pylibjpeg pylibjpeg-libjpeg"
            if path.suffix.lower() in (".dcm", ".dicom") or is_dicom(path)
            else "give a PNG, JPEG or DICOM file of the X-ray"
        )
        raise ImageReadError(
            f"{path} cannot be read as an X-ray ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:160]}); {fix}"
        ) from err


def model_input(xray: XRay, size: int) -> np.ndarray:
    """``size × size`` uint8, exactly as the image cache makes it (bicubic)."""
    if xray.path.suffix.lower() in (".png", ".jpg", ".jpeg") and not is_dicom(xray.path):
        return load_image(xray.path, size)  # the cache's own path (JPEG draft decoding)
    resized = Image.fromarray(xray.pixels).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def warnings_for(xray: XRay, card: dict, size: int) -> list[str]:
    """Why a prediction for ``xray`` by the model of ``card`` may not be trusted."""
    out = []
    data = card.get("data") or {}
    if data.get("source") == "phantom":
        out.append(
            "the model was trained on phantom (synthetic) images: its probabilities say "
            "nothing about a real X-ray"
        )
    height, width = xray.shape
    if min(height, width) < size:
        out.append(f"the image ({width}×{height}) is smaller than the model's input ({size} px)")
    if max(height, width) / min(height, width) > 1.5:
        out.append(f"the image ({width}×{height}) is far from square, unlike chest X-rays")
    if xray.bits > 8 and not is_dicom(xray.path):
        out.append(f"a {xray.bits}-bit image: the training images were 8-bit")
    if xray.view and xray.view.upper() in LATERAL_VIEWS:
        out.append(f"a lateral view ({xray.view}): the training images are frontal (PA/AP)")
    dataset = data.get("dataset")
    for other in REGISTRY.values():  # each dataset's definition knows its files' names
        if dataset and other.name != dataset and other.named_like_mine(xray.path.name):
            out.append(
                f"this looks like {other.file_look} but the model was trained on "
                f"{dataset.upper()}: its classes are {dataset.upper()}'s"
            )
    return out


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def temperatures_of(card: dict, source) -> dict[str, float | None]:
    """The per-class temperatures a model file's card carries (fitted on the validation split
    when the run finished), or a :class:`ModelFileError` saying the file has none."""
    found = (card.get("calibration") or {}).get("temperatures")
    if not found:
        raise ModelFileError(
            f"{source} carries no calibration (a run finished by an earlier version of the kit "
            f"did not fit one): predict without --calibrated, or train the run again"
        )
    return found


def predict_files(
    source: str | os.PathLike,
    paths: list[str],
    cam_dir: str | os.PathLike | None = None,
    calibrated: bool = False,
) -> dict:
    """Predictions of the model of ``source`` (a run folder or a model file) for ``paths``.

    Returns ``{"model", "trained_on", "operating_points", "calibrated", "images": [{"image",
    "warnings", "predictions": [{"class", "probability", "threshold", "positive"}]}]}``; with
    ``cam_dir``, a Grad-CAM overlay per image for its top classes, at the image's size. With
    ``calibrated``, probabilities and operating points pass through the card's temperatures
    (a monotone map per class: every decision stays the same)."""
    device = _device()
    model = load_model_file(source, device=device)
    cfg, card = model.pretrained_cfg, model.card
    size = cfg["input_size"][-1]
    classes = cfg["classes"]
    points = dict((card.get("operating_points") or {}).get("thresholds") or {})
    temperatures = temperatures_of(card, source) if calibrated else {}
    xrays = [read_xray(p) for p in paths]  # headers (a DICOM: decoded), every file checked
    pixels, scores = decode_and_predict(model, xrays, size, Runtime(device))
    if calibrated:
        scaled = [temperatures.get(name) for name in classes]
        scores = apply_temperatures(scores, scaled)
        points = {
            name: float(apply_temperature(np.array(t), temperatures.get(name)))
            for name, t in points.items()
            if t is not None
        }
    images = []
    for xray, row in zip(xrays, scores, strict=True):
        predictions = [
            {
                "class": name,
                "probability": float(p),
                "threshold": points.get(name),
                "positive": None if points.get(name) is None else bool(p >= points[name]),
            }
            for name, p in zip(classes, row, strict=True)
        ]
        images.append(
            {
                "image": str(xray.path),
                "warnings": warnings_for(xray, card, size),
                "predictions": predictions,
            }
        )
    if cam_dir is not None:
        write_cams(model, pixels, xrays, scores, classes, Path(cam_dir))
    return {
        "model": card.get("model"),
        "trained_on": card.get("data"),
        "operating_points": (card.get("operating_points") or {}).get("method"),
        "calibrated": (card.get("calibration") or {}).get("method") if calibrated else None,
        "images": images,
    }


def _checked_input(xray: XRay, size: int) -> np.ndarray:
    """:func:`model_input`, a file that fails to decode named in one line."""
    try:
        return model_input(xray, size)
    except Exception as err:
        raise ImageReadError(
            f"{xray.path} cannot be decoded ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:160]}); give the X-ray as a PNG, JPEG or DICOM file"
        ) from err


def decode_and_predict(
    model: torch.nn.Module, xrays: list[XRay], size: int, runtime: Runtime, batch: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Every X-ray's model input (N×S×S uint8) and probabilities (N×K): images decoded in a
    pool of threads (PIL lets go of the GIL while it decodes) while the model scores the
    batches already decoded, so that a folder of images goes at nearly the model's own pace."""
    workers = max(1, min(4, (os.cpu_count() or 1)))
    with ThreadPoolExecutor(workers) as pool:
        decoded = pool.map(lambda x: _checked_input(x, size), xrays)
        pixels, scores = [], []
        while True:
            chunk = list(itertools.islice(decoded, batch))
            if not chunk:
                break
            stacked = np.stack(chunk)  # (b, S, S) uint8
            pixels.append(stacked)
            scores.append(predict(model, stacked, np.arange(len(chunk)), runtime))
    if not pixels:
        return np.zeros((0, size, size), np.uint8), np.zeros((0, 0))
    return np.concatenate(pixels), np.concatenate(scores)


#: A CAM grid coarser than this (per side) can only point at a region, not an outline.
COARSE_GRID = 8


def cam_grid(model: torch.nn.Module, x: torch.Tensor, branch: str = "cnn") -> tuple[int, int]:
    """The resolution of the map Grad-CAM reads for ``branch`` at input ``x`` (its target
    layer's output, h × w)."""
    from cxrlib.models.cam import cam_reshape_transform, cam_target_layers  # with --cam only

    seen = []
    layer = cam_target_layers(model, branch)[0]
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    out = seen[0][0] if isinstance(seen[0], tuple) else seen[0]
    reshape = cam_reshape_transform(model, branch)
    out = reshape(out) if reshape is not None else out
    return int(out.shape[-2]), int(out.shape[-1])


def captioned(overlay: np.ndarray, title: str, note: str | None) -> Image.Image:
    """``overlay`` (H×W×3) above a band with ``title`` (class and probability), an optional
    ``note`` and the colour bar of the map (inferno, 0 to 1)."""
    import matplotlib  # here: with --cam only (the figures' colour map and font)
    from matplotlib import font_manager  # here: with --cam only
    from PIL import ImageDraw, ImageFont  # here: with --cam only

    height, width = overlay.shape[:2]
    band = max(48, width // 10)
    canvas = Image.new("RGB", (width, height + band), "white")
    canvas.paste(Image.fromarray(overlay), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font_path = font_manager.findfont("DejaVu Sans")
    big = ImageFont.truetype(font_path, max(12, band // 3))
    small = ImageFont.truetype(font_path, max(10, band // 5))
    margin = band // 8
    draw.text((margin, height + margin), title, fill="black", font=big)
    if note:
        draw.text((margin, height + band // 2 + margin), note, fill="firebrick", font=small)
    bar_w, bar_h = width // 4, band // 4  # the colour bar, right: 0 (left) to 1 (right)
    x0, y0 = width - bar_w - margin, height + margin
    ramp = matplotlib.colormaps["inferno"](np.linspace(0, 1, bar_w))[:, :3]
    bar = np.repeat((ramp[None] * 255).astype(np.uint8), bar_h, axis=0)
    canvas.paste(Image.fromarray(bar), (x0, y0))
    draw.rectangle((x0, y0, x0 + bar_w - 1, y0 + bar_h - 1), outline="black")
    labels = y0 + bar_h + 2
    draw.text((x0, labels), "0", fill="black", font=small)
    draw.text((x0 + bar_w, labels), "1", fill="black", font=small, anchor="ra")
    draw.text((x0 + bar_w // 2, labels), "Grad-CAM", fill="black", font=small, anchor="ma")
    return canvas


def write_cams(model, pixels, xrays, scores, classes, folder: Path, top: int = 3) -> list[Path]:
    """Per image and each of its ``top`` most probable classes, ``<stem>_cam_<class>.png``:
    the Grad-CAM (CNN branch) over the X-ray at the X-ray's own width, above a band naming the
    class and its probability, with the map's colour bar and, for a CAM grid coarser than
    8 × 8, a note saying so. ``pixels``: the model's uint8 inputs (N×S×S)."""
    import cv2  # here: installed with pytorch-grad-cam, needed only for --cam
    from pytorch_grad_cam.utils.image import show_cam_on_image  # here: likewise

    from cxrlib.evaluate.gradcam import gradcam_maps  # here: likewise (pytorch-grad-cam)

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    device = next(model.parameters()).device
    for i, xray in enumerate(xrays):
        x = to_model_input(torch.from_numpy(pixels[i : i + 1])[:, None], device)  # (1, 3, S, S)
        grid = cam_grid(model, x)
        note = None
        if min(grid) < COARSE_GRID:
            note = f"coarse map: Grad-CAM grid {grid[0]}×{grid[1]} (< {COARSE_GRID}×{COARSE_GRID})"
        for k in np.argsort(-scores[i])[:top]:
            cam = gradcam_maps(model, x, [int(k)], "cnn")[0]  # (S, S) in [0, 1]
            height, width = xray.shape
            cam_full = np.asarray(
                Image.fromarray(cam.astype(np.float32)).resize((width, height), Image.BILINEAR)
            )
            grey = np.repeat(xray.pixels[..., None] / 255.0, 3, axis=2).astype(np.float32)
            # the figures' colour map (inferno: colour-blind safe), not pytorch-grad-cam's jet
            overlay = show_cam_on_image(
                grey, np.clip(cam_full, 0, 1), use_rgb=True, colormap=cv2.COLORMAP_INFERNO
            )
            title = f"{classes[k]}: probability {scores[i][k]:.3f}"
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", classes[k])
            path = folder / f"{xray.path.stem}_cam_{name}.png"
            captioned(overlay, title, note).save(path)
            written.append(path)
    return written


def predictions_table(result: dict) -> pd.DataFrame:
    """One row per image, one probability column per class (``predict --csv``)."""
    rows = [
        {"image": image["image"], **{p["class"]: p["probability"] for p in image["predictions"]}}
        for image in result["images"]
    ]
    return pd.DataFrame(rows)


def decisions_text(result: dict) -> str:
    """What ``predict`` prints by default: per image, each class's probability (3 decimals),
    its operating point and the decision there, the likeliest first."""
    blocks = []
    for image in result["images"]:
        rows = sorted(image["predictions"], key=lambda p: -p["probability"])
        table = pd.DataFrame(
            {
                "class": [p["class"] for p in rows],
                "probability": [f"{p['probability']:.3f}" for p in rows],
                "operating point": ["–" if p["threshold"] is None else f"{p['threshold']:.3f}"
                                    for p in rows],
                "decision": ["–" if p["positive"] is None else
                             ("positive" if p["positive"] else "negative") for p in rows],
            }
        )  # fmt: skip
        blocks.append(f"{image['image']}\n{table.to_string(index=False)}")
    method = result.get("operating_points")
    note = (
        f"operating points: {method} on the validation split of the run"
        if method
        else "no operating points in this model file: probabilities only"
    )
    if result.get("calibrated"):
        note += f"\ncalibrated: {result['calibrated']}"
    return "\n\n".join(blocks) + f"\n\n{note}\n"
