"""Grad-CAM: map shapes, one target per image, the localisation measures, and proof that a
trained model's CAMs land on the phantom's drawn lesions more often than chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlib.evaluate.gradcam import (
    box_mask,
    energy_fraction,
    gradcam_maps,
    line_mask,
    pointing_hit,
    thresholded_iou,
)
from cxrlib.models import create_model
from cxrlib.models.dual_branch import forward_heads


@pytest.mark.parametrize(
    ("name", "branch"),
    [
        ("ctranscnn_tiny", "cnn"),
        ("ctranscnn_tiny", "tokens"),
        ("chexnet_tiny", "tokens"),
        ("resnet50", "cnn"),
        ("vit_base_patch16_224", "tokens"),
        ("densenet121", "cnn"),
    ],
)
def test_map_shape_equals_input(name, branch):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, size="micro", image_size=64)
    cams = gradcam_maps(model, torch.randn(3, 3, 64, 64), [0, 1, 2], branch)
    assert cams.shape == (3, 64, 64)
    assert np.isfinite(cams).all() and cams.min() >= 0


def test_each_image_gets_its_own_target():
    torch.manual_seed(0)
    model = create_model("resnet50", num_classes=4, size="micro", image_size=64)
    x = torch.randn(2, 3, 64, 64)
    batch = gradcam_maps(model, x, [0, 3], "cnn")
    alone = [gradcam_maps(model, x[i : i + 1], [k], "cnn")[0] for i, k in ((0, 0), (1, 3))]
    assert np.allclose(batch[0], alone[0], atol=1e-5)
    assert np.allclose(batch[1], alone[1], atol=1e-5)
    swapped = gradcam_maps(model, x, [3, 0], "cnn")
    assert not np.allclose(batch, swapped, atol=1e-3)
    with pytest.raises(ValueError, match="one target class per image"):
        gradcam_maps(model, x, [0], "cnn")


def test_localisation_measures_on_hand_made_maps():
    cam = np.zeros((8, 8))
    cam[2:4, 2:4] = 1.0
    inside = box_mask((4, 4, 4, 4), 8, (0.5, 0.5))  # a 16 px box at half scale: rows/cols 2-3
    assert inside.sum() == 4 and pointing_hit(cam, inside)
    assert thresholded_iou(cam, inside) == 1.0 and energy_fraction(cam, inside) == 1.0
    elsewhere = box_mask((10, 10, 4, 4), 8, (0.5, 0.5))
    assert not pointing_hit(cam, elsewhere) and energy_fraction(cam, elsewhere) == 0.0
    line = line_mask([[0, 0], [14, 0]], 8, (0.5, 0.5), radius=0)
    assert line[0, :7].all() and not line[2:].any()


def _cue_images(rng, n: int, size: int = 64):
    """Grey noise; half the images carry a bright disc (radius 12; the CNN-branch map a micro
    CTransCNN's CAM reads is 4×4 at 64 px, so a CAM cannot resolve much less) at a random
    place, the class's only evidence. Returns images (n×3×S×S), labels (n×2), masks."""
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.0, 0.5, (n, 1, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    present = np.arange(n) % 2 == 0
    for i in np.flatnonzero(present):
        cy, cx = rng.integers(12, size - 12, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= 144
        images[i, 0][masks[i]] += 2.0
    labels = np.stack([present, ~present], axis=1).astype(np.float32)
    return torch.from_numpy(images).expand(-1, 3, -1, -1).contiguous(), labels, masks


@pytest.mark.slow
def test_cams_of_a_model_trained_on_a_localised_cue_point_at_it():
    """A model that learned a class whose only evidence is a small disc points its Grad-CAM
    into the disc far more often than a uniform map would (chance: the disc's 11 % of the
    image; binomial test over the images). The cue is learned in every run, so this does not
    depend on a training trajectory (which phantom classes an 8-epoch smoke run learns does)."""
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    from cxrlib.train.losses import multi_head_loss

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    x, y, _ = _cue_images(rng, 256)
    model = create_model("ctranscnn_tiny", num_classes=2, size="micro", image_size=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _epoch in range(10):
        for batch in torch.randperm(len(x)).split(32):
            loss = multi_head_loss(
                forward_heads(model, x[batch]).heads(), torch.from_numpy(y[batch])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test_x, test_y, masks = _cue_images(np.random.default_rng(1), 40)
    with torch.no_grad():
        scores = torch.sigmoid(model.eval()(test_x))[:, 0].numpy()
    assert roc_auc_score(test_y[:, 0], scores) >= 0.9, "the cue was not learned"
    disc = np.flatnonzero(test_y[:, 0] == 1)
    cams = gradcam_maps(model, test_x[disc], [0] * len(disc), "cnn")
    hits = np.mean([pointing_hit(cam, masks[i]) for cam, i in zip(cams, disc, strict=True)])
    chance = masks[disc].mean()
    assert chance < 0.15 and hits > 3 * chance, (hits, chance)
    assert binomtest(round(hits * len(disc)), len(disc), chance, "greater").pvalue < 1e-3


@pytest.mark.slow
def test_localisation_table_of_the_smoke_run(smoke_cxr14_run, use_folders):
    """The table notebook 07 builds, on the smoke run: one row per class, chance from the
    drawn boxes, rates in [0, 1], and a significance that is a probability."""
    from cxrlib.data.prepare import prepare_dataset
    from cxrlib.evaluate.gradcam import localisation_table, significance_over_chance
    from cxrlib.train.model import load_run_model

    use_folders(smoke_cxr14_run["folders"])
    run = smoke_cxr14_run["run"]
    model = load_run_model(run.folder)[0]
    data = prepare_dataset(smoke_cxr14_run["config"], "cxr14", progress=False)
    table = localisation_table(model, data, "cnn", max_per_class=20)
    assert list(table["class"]) == run.metrics["classes"]
    assert table["images"].between(1, 20).all()
    assert table["chance"].between(0.001, 0.6).all()  # boxes: neither empty nor the image
    rates = ["CAM energy inside", "pointing hit rate", "IoU@0.5"]
    assert table[rates].apply(lambda c: c.between(0, 1)).all().all()
    assert 0 <= significance_over_chance(table) <= 1


@pytest.mark.slow
def test_cam_grid_draws_the_truth_a_colour_bar_and_marks_all_zero_maps(
    smoke_cxr14_run, use_folders, monkeypatch
):
    """The figure's panels show the NIH-style boxes, one colour bar gives the CAM scale, and a
    map that is zero everywhere is written "all-zero map" (and counted in the table)."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    from cxrlib.data.prepare import prepare_dataset
    from cxrlib.evaluate import gradcam
    from cxrlib.paper import figures
    from cxrlib.paper.style import TRUTH_COLOUR
    from cxrlib.train.model import load_run_model

    use_folders(smoke_cxr14_run["folders"])
    model = load_run_model(smoke_cxr14_run["run"].folder)[0]
    data = prepare_dataset(smoke_cxr14_run["config"], "cxr14", progress=False)
    test_ids = set(data.part("test")["image_id"])
    boxed = data.annotations[data.annotations["image_id"].isin(test_ids)].iloc[0]
    real = gradcam.gradcam_maps

    def blank_tokens(model, x, targets, branch):  # the token branch "loses" all activation
        maps = real(model, x, targets, branch)
        return np.zeros_like(maps) if branch == "tokens" else maps

    monkeypatch.setattr(gradcam, "gradcam_maps", blank_tokens)
    monkeypatch.setattr(figures, "gradcam_maps", blank_tokens)
    models = {"cnn": (model, "cnn"), "tokens": (model, "tokens")}
    figure = figures.plot_cam_grid(models, data, [boxed["image_id"]], [boxed["label"]], "t")
    panels = figure.axes[:3]
    truth = to_rgba(TRUTH_COLOUR)
    for ax in panels:  # the image and both CAMs carry the box
        boxes = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_edgecolor() == truth]
        assert boxes
    assert len(figure.axes) == 4, "one colour bar beside the grid"
    assert [t.get_text() for t in panels[2].texts] == ["all-zero map"]
    assert not panels[1].texts
    table = gradcam.localisation_table(model, data, "tokens", max_per_class=5)
    assert (table["all-zero maps"] == table["images"]).all()
    assert (table["pointing hit rate"] == 0).all()  # no maximum: never a hit
