"""Grad-CAM for every model, and how well the maps localise what the labels are about.

Uses pytorch-grad-cam (J. Gildenblat et al.; Grad-CAM: Selvaraju et al., ICCV 2017) on the
fused logits (the papers' prediction rule), with one target class per image of a batch.
Target layers:

* dual-branch models (CTransCNN, CheXNet, Conformer): ``cnn`` -- the last CNN stage at its
  full resolution (the last block's conv block, 14×14 at 224 px, before the final stride-2
  fusion block); ``tokens`` -- the patch tokens entering the last token layer (its first norm),
  reshaped to their grid, because the last layer's own patch outputs reach the heads only
  through the cls token or the label decoder;
* timm CNNs: the last stage (``layer4``/``features``/``stages``); timm ViT/DeiT: the first
  norm of the last block, patch tokens reshaped to the grid.

Localisation, where ground truth exists: NIH ``BBox_List_2017.csv`` boxes and the phantom's
boxes (pointing game: the CAM maximum falls inside the box; IoU of the CAM thresholded at a
fraction of its maximum with the box), and RANZCR line annotations (share of CAM energy
within a radius of the annotated line).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import nn

from cxrlib.data.cache import original_size
from cxrlib.data.loader import to_model_input
from cxrlib.data.prepare import PreparedDataset
from cxrlib.models.dual_branch import DualBranchNet
from cxrlib.models.registry import TimmClassifier
from cxrlib.runs import load_run_model

BRANCHES = ("cnn", "tokens")


class FusedLogits(nn.Module):
    """A model seen as ``x -> fused logits`` (what pytorch-grad-cam expects)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def _tokens_to_map(grid: tuple[int, int], has_cls: bool = True):
    def reshape(tensor: torch.Tensor) -> torch.Tensor:
        tokens = tensor[:, 1:] if has_cls else tensor
        b, _, d = tokens.shape
        return tokens.reshape(b, *grid, d).permute(0, 3, 1, 2)  # (B, N, D) -> (B, D, h, w)

    return reshape


def target_layers(model: nn.Module, branch: str, image_size: int):
    """(layers, reshape_transform) for ``branch`` of ``model``."""
    if branch not in BRANCHES:
        raise ValueError(f"branch must be one of {', '.join(BRANCHES)}; got {branch!r}")
    if isinstance(model, DualBranchNet):
        if branch == "cnn":  # the last stage's map before the final stride-2 fusion block
            return [model.blocks[-1].cnn_block.output], None
        side = image_size // model.arch.patch_size
        return [model.blocks[-1].token_layer.norm1], _tokens_to_map((side, side))
    if isinstance(model, TimmClassifier):
        net = model.net
        if hasattr(net, "blocks") and hasattr(net, "patch_embed"):  # ViT / DeiT
            side = image_size // net.patch_embed.patch_size[0]
            return [net.blocks[-1].norm1], _tokens_to_map(
                (side, side), has_cls=not net.no_embed_class
            )
        for name in ("layer4", "stages", "features"):
            if hasattr(net, name):
                return [getattr(net, name)[-1]], None
    raise ValueError(f"no Grad-CAM target layer known for {type(model).__name__}")


def gradcam_maps(
    model: nn.Module, images: torch.Tensor, classes: list[int], branch: str = "cnn"
) -> np.ndarray:
    """Grad-CAM of ``classes[i]`` for image ``i`` (B×3×S×S input) -> B×S×S maps in [0, 1]."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if len(classes) != len(images):
        raise ValueError(f"one target class per image: {len(classes)} for {len(images)} images")
    model.eval()
    layers, reshape = target_layers(model, branch, images.shape[-1])
    targets = [ClassifierOutputTarget(int(k)) for k in classes]
    with GradCAM(model=FusedLogits(model), target_layers=layers, reshape_transform=reshape) as cam:
        return cam(input_tensor=images, targets=targets)


def cam_models(runs: dict, branches: dict[str, list[str]]) -> dict[str, tuple[nn.Module, str]]:
    """``{"<model> (<branch>)": (model, branch)}`` for each finished run and requested branch."""
    out = {}
    for name, run in runs.items():
        model = load_run_model(run.folder)[0]
        for branch in branches[name]:
            out[f"{name} ({branch})"] = (model, branch)
    return out


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
    size = data.cache.size
    rows = []
    truth = data.labelled.boxes if len(data.labelled.boxes) else data.labelled.lines
    if truth.empty:
        return pd.DataFrame()
    for label, group in truth.groupby("label"):
        cls = label if label in data.classes else _ranzcr_class(label, data.classes)
        group = group[group["image_id"].isin(test.index)]
        group = group[[bool(test.loc[i, cls]) for i in group["image_id"]]].head(max_per_class)
        if group.empty:
            continue
        k = data.classes.index(cls)
        hits, ious, shares, chance, zero = [], [], [], [], 0
        for start in range(0, len(group), batch_size):
            chunk = group.iloc[start : start + batch_size]
            rows_idx = test.loc[chunk["image_id"], "cache_row"].to_numpy()
            x = to_model_input(
                torch.from_numpy(np.asarray(data.cache.pixels[rows_idx])).unsqueeze(1)
            )
            cams = gradcam_maps(model, x, [k] * len(chunk), branch)
            for cam, (_, item) in zip(cams, chunk.iterrows(), strict=True):
                zero += is_all_zero(cam)  # scores 0 below: counted, so a reader can tell
                width, height = original_size(test.loc[item["image_id"], "path"])
                scale = (size / width, size / height)
                if "points" in item:
                    mask = line_mask(item["points"], size, scale, radius)
                    shares.append(energy_fraction(cam, mask))
                else:
                    mask = box_mask((item.x, item.y, item.w, item.h), size, scale)
                    hits.append(pointing_hit(cam, mask))
                    ious.append(thresholded_iou(cam, mask, threshold))
                    shares.append(energy_fraction(cam, mask))
                chance.append(mask.mean())
        row = {
            "class": cls,
            "images": len(group),
            "chance": round(float(np.mean(chance)), 3),
            "CAM energy inside": round(float(np.mean(shares)), 3),
            "all-zero maps": zero,
        }
        if hits:
            row["pointing hit rate"] = round(float(np.mean(hits)), 3)
            row[f"IoU@{threshold}"] = round(float(np.mean(ious)), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _ranzcr_class(label: str, classes: tuple[str, ...]) -> str:
    """``'CVC - Normal'`` (train_annotations.csv) -> ``'CVC-Normal'`` (split-file name)."""
    name = label.replace(" - ", "-").replace(" ", "-")
    if name not in classes:
        raise KeyError(f"annotation label {label!r} matches no class")
    return name


#: The CAM colour map (perceptually uniform, readable by colour-blind readers and in grey;
#: not "jet") and the colour of the ground truth drawn over it.
CAM_CMAP, TRUTH_COLOUR = "inferno", "#56B4E9"


def is_all_zero(cam: np.ndarray) -> bool:
    """A map with no activation anywhere (Grad-CAM's ReLU removed all of it): it shows
    nothing, and is marked as such instead of being drawn as a flat wash."""
    return not np.any(cam > 0)


def plot_cam_grid(
    models: dict[str, tuple[nn.Module, str]],
    data: PreparedDataset,
    image_ids: list[str],
    classes: list[str],
    title: str,
) -> plt.Figure:
    """Rows = images (with their target class), columns = the image then each model's CAM;
    the ground truth (NIH boxes, RANZCR lines) drawn on every panel, one colour bar for the
    CAM scale, and all-zero maps marked "all-zero map"."""
    from cxrlib.data.summary import overlay_annotations

    test = data.part("test").set_index("image_id")
    x = to_model_input(
        torch.from_numpy(
            np.asarray(data.cache.pixels[test.loc[image_ids, "cache_row"].to_numpy()])
        ).unsqueeze(1)
    )
    targets = [data.classes.index(c) for c in classes]
    cams = {
        name: gradcam_maps(model, x, targets, branch) for name, (model, branch) in models.items()
    }
    fig, axes = plt.subplots(
        len(image_ids),
        len(models) + 1,
        figsize=(2.4 * (len(models) + 1) + 0.8, 2.4 * len(image_ids) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    size = data.cache.size
    shown = None
    for i, (image_id, cls) in enumerate(zip(image_ids, classes, strict=True)):
        image = data.cache.pixels[test.loc[image_id, "cache_row"]]
        row = test.loc[image_id].copy()
        row["image_id"] = image_id
        axes[i, 0].imshow(image, cmap="gray")
        axes[i, 0].set_title(cls, fontsize=8)
        overlay_annotations(axes[i, 0], data, row, size, TRUTH_COLOUR)
        for j, name in enumerate(models, start=1):
            ax, cam = axes[i, j], cams[name][i]
            ax.imshow(image, cmap="gray")
            if is_all_zero(cam):
                ax.text(
                    0.5, 0.5, "all-zero map", transform=ax.transAxes, ha="center",
                    va="center", fontsize=8, color="white",
                    bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
                )  # fmt: skip
            else:
                shown = ax.imshow(cam, cmap=CAM_CMAP, alpha=0.5, vmin=0, vmax=1)
            overlay_annotations(ax, data, row, size, TRUTH_COLOUR)
            if i == 0:
                ax.set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    if shown is not None:
        colour_bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        colour_bar.set_label("Grad-CAM (normalised per map)", fontsize=8)
    fig.suptitle(f"{title}\n(ground truth drawn in blue where annotated)", fontsize=9)
    return fig


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
    from scipy.stats import binomtest

    images = int(table["images"].sum())
    hits = round((table["pointing hit rate"] * table["images"]).sum())
    chance = float((table["chance"] * table["images"]).sum() / images)
    return binomtest(hits, images, chance, alternative="greater").pvalue
