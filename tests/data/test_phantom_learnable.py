"""The phantom labels are learnable: the smoke recipe's micro ResNet-34 (about half a minute of
training per dataset on this CPU) reaches a test mean AUC well above chance. This is the proof
that the phantom is a meaningful smoke test. On CXR14 the phantom labels AP_HIDDEN_SHARE of the
AP films' findings without drawing them (the subgroup analysis' planted gap): about one finding
in eleven cannot be seen, so even a perfect reader scores about 95 and the bar is lower there."""

from __future__ import annotations

import pytest

from cxrlib.core.config import load_config
from cxrlib.train.run import train_run


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "bar"), [("cxr14", 70.0), ("cxr11", 75.0)])
def test_phantom_is_learnable(isolated_outputs, dataset, bar):
    result = train_run(load_config("smoke", model="resnet34"), dataset, progress=False)
    assert result.metrics["test"]["mean_auc"] >= bar
