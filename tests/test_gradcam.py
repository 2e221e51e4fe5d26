"""Grad-CAM: map shapes, one target per image, the localisation measures, and proof that a
trained model's CAMs land on the phantom's drawn lesions more often than chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlib.gradcam import (
    box_mask,
    energy_fraction,
    gradcam_maps,
    line_mask,
    pointing_hit,
    thresholded_iou,
)
from cxrlib.models import create_model


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
    model = create_model(name, 4, size="micro", image_size=64)
    cams = gradcam_maps(model, torch.randn(3, 3, 64, 64), [0, 1, 2], branch)
    assert cams.shape == (3, 64, 64)
    assert np.isfinite(cams).all() and cams.min() >= 0


def test_each_image_gets_its_own_target():
    torch.manual_seed(0)
    model = create_model("resnet50", 4, size="micro", image_size=64)
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


@pytest.mark.slow
def test_trained_model_cams_hit_phantom_lesions_more_often_than_chance(
    smoke_cxr14_run, use_folders
):
    """Where the smoke model has learned a class with a localised lesion, its CNN-branch CAM
    points into the drawn box far more often than a uniform map would.

    Only such classes say anything about the CAMs: a class the model cannot detect (validation
    AUC near 50) has no evidence to localise, and for a box covering much of the image
    (Emphysema's lungs) chance is already high. With this environment's packages the smoke run
    learns Cardiomegaly and Emphysema well (validation AUC >= 90) and the lesions of most other
    classes barely (about 55), so the pooled rate over all classes is near chance.
    """
    from cxrlib.data.prepare import prepare_dataset
    from cxrlib.gradcam import localisation_table, significance_over_chance
    from cxrlib.runs import load_run_model

    use_folders(smoke_cxr14_run["folders"])
    run = smoke_cxr14_run["run"]
    model = load_run_model(run.folder)[0]
    data = prepare_dataset(smoke_cxr14_run["config"], "cxr14", progress=False)
    table = localisation_table(model, data, "cnn", max_per_class=20)
    val_auc = dict(zip(run.metrics["classes"], run.metrics["val"]["per_class_auc"], strict=True))
    learned = table[(table["class"].map(val_auc) >= 90) & (table["chance"] < 0.25)]
    assert len(learned), f"the smoke run learned no localised class: {val_auc}"
    hits = (learned["pointing hit rate"] * learned["images"]).sum() / learned["images"].sum()
    chance = (learned["chance"] * learned["images"]).sum() / learned["images"].sum()
    assert hits > 2 * chance
    assert significance_over_chance(learned) < 1e-3
