"""The phantom labels are learnable: a small CNN trained ~30 s per dataset on this CPU reaches
a mean test AUC well above chance. (Proof that the phantom is a meaningful smoke test.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cxrlib.config import load_config
from cxrlib.data.loader import CachedImageDataset, make_loader, set_loader_epoch, to_model_input
from cxrlib.data.prepare import prepare_dataset


def _train_and_score(data, epochs: int = 10) -> float:
    import timm

    torch.manual_seed(0)
    train = make_loader(
        CachedImageDataset(
            data.cache.images,
            data.cache_rows("train"),
            data.labels("train"),
            flip=data.dataset == "cxr14",
        ),
        batch_size=32,
        shuffle=True,
    )
    model = timm.create_model("resnet18", num_classes=len(data.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * len(train))
    for epoch in range(epochs):
        set_loader_epoch(train, epoch)
        model.train()
        for x, y in train:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(to_model_input(x)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    rows, labels = data.cache_rows("test"), data.labels("test")
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(data.cache.images[rows])).unsqueeze(1)
        scores = torch.sigmoid(model(to_model_input(x))).numpy()
    aucs = [
        roc_auc_score(labels[:, k], scores[:, k])
        for k in range(labels.shape[1])
        if 0 < labels[:, k].sum() < len(labels)
    ]
    return float(np.mean(aucs))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cxr14", "cxr11"])
def test_phantom_is_learnable(isolated_outputs, dataset):
    warnings.simplefilter("ignore", UserWarning)
    config = load_config("smoke", phantom_images=800)
    data = prepare_dataset(config, dataset, progress=False)
    assert _train_and_score(data) >= 0.75
