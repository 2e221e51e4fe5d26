"""What runs cost (cxrlib.paper.costs): every figure of the hours table says where it comes from,
a benchmark on one GPU is measured there and scaled to the others, and your own CSV dataset gets
an upper bound instead of an error."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cxrlib.core.config import load_config
from cxrlib.core.workspace import Workspace
from cxrlib.paper import costs


def _benchmark(folder, gpu: str, model: str, images_per_s: float) -> None:
    row = {"model": model, "mode": "bf16+channels_last", "images_per_s": images_per_s}
    record = {"environment": {"gpu": gpu}, "training": [row]}
    (folder / "gpu_first_test.json").write_text(json.dumps(record))


def test_without_a_benchmark_every_figure_is_a_flops_estimate_and_the_total_is_the_sum(monkeypatch):
    monkeypatch.setattr(costs, "measured_speeds", lambda: {})
    table = costs.hours_table(["resnet50"], ["cxr11"], {"resnet50": 3})
    row, total = table.iloc[0], table.iloc[-1]
    assert row["basis"] == f"FLOPs at {costs.ASSUMED_MFU:.0%} MFU" and row["runs"] == 3
    assert row["T4 h, all runs"] == pytest.approx(3 * row["T4 h/run"], abs=0.11)
    # the T4 trains in fp16 at 65 TFLOP/s, the A100 in bf16 at 312: ~4.8x slower
    t4, a100 = (costs.run_hours("resnet50", "cxr11", gpu, {})[0] for gpu in ("T4", "A100"))
    assert t4 / a100 == pytest.approx(312 / 65) and row["T4 h/run"] == round(t4, 1)
    assert (
        total["model"] == "(the whole table)" and total["T4 h, all runs"] == row["T4 h, all runs"]
    )


def test_a_benchmark_on_one_gpu_is_measured_there_and_scaled_to_the_others(tmp_path, monkeypatch):
    _benchmark(tmp_path, "NVIDIA A100-SXM4-80GB", "resnet50", 1000.0)
    speeds = costs.measured_speeds(tmp_path)
    assert speeds == {("A100", "resnet50"): 1000.0}
    monkeypatch.setattr(costs, "measured_speeds", lambda: speeds)
    row = costs.hours_table(["resnet50"], ["cxr11"]).iloc[0]
    assert row["basis"] == "T4: scaled from A100; L4: scaled from A100; A100: measured; " \
        "H100 SXM: scaled from A100"  # fmt: skip
    train, val, _ = costs.epoch_images("cxr11")
    expected = (train + val / 3) * costs.PAPER.train.epochs / 1000.0 / 3600
    assert row["A100 h/run"] == pytest.approx(expected, abs=0.06)


def test_expected_hours_of_your_own_csv_dataset_is_an_upper_bound_that_says_so(tmp_path):
    images = tmp_path / "labels.csv"
    pd.DataFrame({"path": [f"{i}.png" for i in range(50)], "Effusion": [0, 1] * 25}).to_csv(
        images, index=False
    )
    config = load_config("paper", seeds=2, seed_models="main")
    table = costs.expected_hours(config, ["ctranscnn_tiny", "resnet34"], [f"csv:{images}"])
    assert list(table["runs"][:2]) == [2, 1]
    assert table.iloc[0]["dataset"] == "your data (labels.csv)"
    assert "all 50 images as training images: an upper bound" in table.iloc[0]["basis"]


def test_a_model_named_twice_is_counted_once(monkeypatch):
    """Notebook 05 passes both ablation families' variants; a model in both trains once."""
    monkeypatch.setattr(costs, "measured_speeds", lambda: {})
    config = load_config("paper", seeds=1)
    once = costs.expected_hours(config, ["resnet50"], ["cxr11"])
    twice = costs.expected_hours(config, ["resnet50", "resnet50"], ["cxr11"])
    pd.testing.assert_frame_equal(once, twice)


def test_expected_hours_take_the_flops_of_notebook_02s_table_where_it_is_there(
    tmp_path, monkeypatch
):
    """Each notebook's hours cell reads the counts notebook 02 wrote for this profile instead
    of building every model at paper size again; without the table it counts them itself."""
    monkeypatch.setattr(costs, "measured_speeds", lambda: {})
    config = load_config("paper", seeds=1, workspace=Workspace.at(tmp_path))
    counted = costs.expected_hours(config, ["resnet34"], ["cxr11"]).iloc[0]["A100 h/run"]
    hours = costs.run_hours("resnet34", "cxr11", "A100", {})[0]  # counted, before rounding
    assert counted == round(hours, 1)
    tables = tmp_path / "results" / "paper" / "tables"
    tables.mkdir(parents=True)
    gflops = 10 * costs.executed_gflops("resnet34")  # a count no model has: read, not counted
    pd.DataFrame({"model": ["resnet34"], "GFLOPs @224 executed": [gflops]}).to_csv(
        tables / "model_summary.csv", index=False
    )
    read = costs.expected_hours(config, ["resnet34"], ["cxr11"]).iloc[0]["A100 h/run"]
    assert read == round(10 * hours, 1)
