"""Grad-CAM for every model, and how well the maps localise what the labels are about.

Uses pytorch-grad-cam (J. Gildenblat et al.; Grad-CAM: Selvaraju et al., ICCV 2017) on the
model itself (its output is the fused logits, the papers' prediction rule), with one target
class per image of a batch, at the layers of the public helpers
:func:`~cxrlib.models.cam.cam_target_layers` and
:func:`~cxrlib.models.cam.cam_reshape_transform`.

Localisation, where ground truth exists: NIH ``BBox_List_2017.csv`` boxes and the phantom's
boxes (pointing game: the CAM maximum falls inside the box; IoU of the CAM thresholded at a
fraction of its maximum with the box), and RANZCR line annotations (share of CAM energy
within a radius of the annotated line).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from scipy.stats import binomtest
from torch import nn

from cxrlib.data.cache import original_size
from cxrlib.data.loader import to_model_input
from cxrlib.data.prepare import PreparedDataset
from cxrlib.models.cam import cam_reshape_transform, cam_target_layers


def gradcam_maps(
    model: nn.Module, images: torch.Tensor, classes: list[int], branch: str = "cnn"
) -> np.ndarray:
    """Grad-CAM of ``classes[i]`` for image ``i`` (B×3×S×S input) -> B×S×S maps in [0, 1]."""
    from pytorch_grad_cam import GradCAM  # optional: a training-only machine may lack it
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # likewise

    if len(classes) != len(images):
        raise ValueError(f"one target class per image: {len(classes)} for {len(images)} images")
    model.eval()
    layers, reshape = cam_target_layers(model, branch), cam_reshape_transform(model, branch)
    targets = [ClassifierOutputTarget(int(k)) for k in classes]
    with GradCAM(model=model, target_layers=layers, reshape_transform=reshape) as cam:
        return cam(input_tensor=images, targets=targets)


# --------------------------------------------------------------------------------------------
# Localisation
# --------------------------------------------------------------------------------------------
def box_mask(
    box: tuple[float, float, float, float], size: int, scale: tuple[float, float]
) -> np.ndarray:
    """Boolean S×S mask of an (x, y, w, h) box given in original pixels, scaled by (sx, sy)."""
    x, y, w, h = box
    sx, sy = scale
    mask = np.zeros((size, size), dtype=bool)
    x0, y0 = int(np.floor(x * sx)), int(np.floor(y * sy))
    x1, y1 = int(np.ceil((x + w) * sx)), int(np.ceil((y + h) * sy))
    mask[max(y0, 0) : max(y1, y0 + 1), max(x0, 0) : max(x1, x0 + 1)] = True
    return mask


def pointing_hit(cam: np.ndarray, mask: np.ndarray) -> bool:
    """The pointing game: does the CAM's maximum fall inside the ground-truth mask? An
    all-zero map has no maximum: a miss."""
    return not is_all_zero(cam) and bool(mask.flat[int(np.argmax(cam))])


def thresholded_iou(cam: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``cam >= threshold · max`` with the ground-truth mask."""
    active = cam >= threshold * cam.max() if cam.max() > 0 else np.zeros_like(mask)
    union = (active | mask).sum()
    return float((active & mask).sum() / union) if union else 0.0


def line_mask(points: list, size: int, scale: tuple[float, float], radius: int) -> np.ndarray:
    """Pixels within ``radius`` of a polyline given in original pixels."""
    layer = Image.new("L", (size, size))
    scaled = [(px * scale[0], py * scale[1]) for px, py in points]
    if len(scaled) >= 2:
        ImageDraw.Draw(layer).line(scaled, fill=255, width=2 * radius + 1, joint="curve")
    return np.asarray(layer) > 0


def energy_fraction(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the CAM's total activation inside ``mask``."""
    total = cam.sum()
    return float(cam[mask].sum() / total) if total > 0 else 0.0


def _ground_truth_scores(
    cams: np.ndarray, chunk: pd.DataFrame, test: pd.DataFrame, size: int, radius: int, threshold
) -> list[dict]:
    """Per image of ``chunk``: its chance, CAM energy inside and, for boxes, pointing hit and
    IoU (an all-zero map scores 0 on each: no energy, no IoU, a miss)."""
    scores = []
    for cam, (_, item) in zip(cams, chunk.iterrows(), strict=True):
        width, height = original_size(test.loc[item["image_id"], "path"])
        scale = (size / width, size / height)
        score = {"zero": is_all_zero(cam)}
        if "points" in item:
            mask = line_mask(item["points"], size, scale, radius)
        else:
            mask = box_mask((item.x, item.y, item.w, item.h), size, scale)
            score |= {"hit": pointing_hit(cam, mask), "iou": thresholded_iou(cam, mask, threshold)}
        scores.append(score | {"share": energy_fraction(cam, mask), "chance": mask.mean()})
    return scores


def localisation_table(
    model: nn.Module,
    data: PreparedDataset,
    branch: str = "cnn",
    max_per_class: int = 20,
    batch_size: int = 16,
    radius: int = 2,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Per class: how well CAMs on test images with ground truth land on it.

    ``chance`` is the ground truth's mean share of the image: what a uniform map would score
    on both the pointing game and the CAM energy share. ``CAM energy inside`` is the share of
    CAM activation inside the box (or near the line); for boxes also the pointing-game hit rate
    and the IoU of the thresholded CAM. ``all-zero maps`` counts the images whose CAM is zero
    everywhere (they score 0: no energy, no IoU, a miss in the pointing game).
    """
    test = data.part("test").set_index("image_id")
    truth = data.annotations
    rows = []
    for cls, group in truth.groupby("label") if not truth.empty else []:
        if cls not in data.classes:  # ground truth of a label the dataset does not train
            continue
        group = group[group["image_id"].isin(test.index)]
        group = group[[bool(test.loc[i, cls]) for i in group["image_id"]]].head(max_per_class)
        if group.empty:
            continue
        k = data.classes.index(cls)
        scores = []
        for start in range(0, len(group), batch_size):
            chunk = group.iloc[start : start + batch_size]
            cams = gradcam_maps(
                model, cache_batch(data, chunk["image_id"]), [k] * len(chunk), branch
            )
            scores += _ground_truth_scores(cams, chunk, test, data.cache.size, radius, threshold)
        frame = pd.DataFrame(scores)
        row = {
            "class": cls,
            "images": len(group),
            "chance": round(float(frame["chance"].mean()), 3),
            "CAM energy inside": round(float(frame["share"].mean()), 3),
            "all-zero maps": int(frame["zero"].sum()),
        }
        if "hit" in frame:
            row["pointing hit rate"] = round(float(frame["hit"].mean()), 3)
            row[f"IoU@{threshold}"] = round(float(frame["iou"].mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def is_all_zero(cam: np.ndarray) -> bool:
    """A map with no activation anywhere (Grad-CAM's ReLU removed all of it): it shows
    nothing, and is marked as such instead of being drawn as a flat wash."""
    return not np.any(cam > 0)


def cache_batch(data: PreparedDataset, image_ids) -> torch.Tensor:
    """The model input of some test images, straight from the cache (B×3×S×S)."""
    rows = data.part("test").set_index("image_id").loc[list(image_ids), "cache_row"].to_numpy()
    return to_model_input(torch.from_numpy(np.asarray(data.cache.pixels[rows])).unsqueeze(1))


def pick_examples(data: PreparedDataset, classes: list[str]) -> tuple[list[str], list[str]]:
    """The first test image positive for each of ``classes`` (the figure's rows)."""
    test = data.part("test")
    ids, targets = [], []
    for cls in classes:
        if cls not in data.classes:
            raise ValueError(f"unknown class {cls!r} for {data.dataset}; one of {data.classes}")
        positive = test.loc[test[cls] == 1, "image_id"]
        if len(positive):
            ids.append(positive.iloc[0])
            targets.append(cls)
    return ids, targets


def localisation_summary(
    models: dict[str, tuple[nn.Module, str]], data: PreparedDataset, max_per_class: int = 10
) -> pd.DataFrame:
    """:func:`localisation_table` of several (model, branch) pairs, stacked."""
    frames = []
    for name, (model, branch) in models.items():
        table = localisation_table(model, data, branch, max_per_class=max_per_class)
        frames.append(table.assign(model=name, branch=branch))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def significance_over_chance(table: pd.DataFrame) -> float:
    """One-sided binomial p-value that the pooled pointing-game hits beat the pooled chance."""
    images = int(table["images"].sum())
    hits = round((table["pointing hit rate"] * table["images"]).sum())
    chance = float((table["chance"] * table["images"]).sum() / images)
    return binomtest(hits, images, chance, alternative="greater").pvalue
