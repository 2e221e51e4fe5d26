"""Bring your own dataset: a CSV of image paths and 0/1 labels trains through the same API and
CLI as the papers' datasets (written here from phantom images)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from cxrlib.core.config import load_config
from cxrlib.data.phantom import PhantomSpec, generate_phantom

TINY = {"phantom_images": 120, "epochs": 2, "batch_size": 16}
LABELS = ["ETT - Normal", "NGT - Normal", "CVC - Normal"]


@pytest.fixture
def labels_csv(isolated_outputs):
    """labels.csv beside a folder of phantom RANZCR images: path, 3 labels, patient_id."""
    warnings.simplefilter("ignore", UserWarning)
    root = generate_phantom(PhantomSpec("cxr11", num_images=120), isolated_outputs / "ph")
    source = pd.read_csv(root / "train.csv")
    table = pd.DataFrame({"path": "train/" + source["StudyInstanceUID"] + ".jpg"})
    for column in LABELS:
        table[column.replace(" - ", "_")] = source[column]
    table["patient_id"] = source["PatientID"]
    path = root / "labels.csv"
    table.to_csv(path, index=False)
    return path


def test_a_csv_dataset_trains_with_a_patient_disjoint_split(labels_csv):
    from cxrlib.data.prepare import prepare_dataset
    from cxrlib.data.splits import leakage_report
    from cxrlib.train.run import train_run

    config = load_config("smoke", split="patient", **TINY)
    data = prepare_dataset(config, f"csv:{labels_csv}", progress=False)
    assert data.classes == ("ETT_Normal", "NGT_Normal", "CVC_Normal")
    assert data.source == "real" and len(data.table) == 120
    assert (leakage_report(data.table, "part")["shared_patients"] == 0).all()
    result = train_run(config, f"csv:{labels_csv}", progress=False)
    assert result.finished and result.metrics["classes"] == list(data.classes)
    assert result.folder.parts[-4].startswith("csv-labels-")
    assert len(result.predictions().image_ids) == (data.table["part"] == "test").sum()


def test_a_csv_dataset_through_the_cli(labels_csv, capsys):
    from cxrlib.app.main import main

    sets = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]
    # no split column: the paper split does not exist, and the error says what to do
    assert main(["train", "--dataset", f"csv:{labels_csv}", *sets]) == 2
    assert "SPLIT=patient" in capsys.readouterr().err
    # with a split column, SPLIT=paper uses it as given
    table = pd.read_csv(labels_csv)
    table["split"] = (["train"] * 6 + ["val", "test"] * 2)[:10] * 12
    table.to_csv(labels_csv, index=False)
    assert main(["train", "--dataset", f"csv:{labels_csv}", *sets, "--set", "epochs=1"]) == 0
    assert "test mean AUC" in capsys.readouterr().out


def test_bad_csv_files_say_what_is_wrong(tmp_path):
    from cxrlib.data.datasets import get_dataset
    from cxrlib.data.definition import DatasetLayoutError

    bad = tmp_path / "labels.csv"
    bad.write_text("image,finding\nx.png,2\n")
    with pytest.raises(DatasetLayoutError, match="0/1 only"):
        get_dataset(f"csv:{bad}").read(tmp_path)
    bad.write_text("name,finding\nx.png,1\n")
    with pytest.raises(DatasetLayoutError, match="no image column"):
        get_dataset(f"csv:{bad}")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        get_dataset(f"csv:{tmp_path / 'missing.csv'}")


@pytest.mark.slow
def test_notebook_03_trains_on_a_csv_dataset(labels_csv, isolated_outputs):
    """The training notebook with ``DATASET = "csv:..."``, run by papermill as run_all does."""
    import papermill

    from tests.conftest import PROJECT_ROOT

    out = isolated_outputs / "03_csv.ipynb"
    papermill.execute_notebook(
        str(PROJECT_ROOT / "notebooks" / "03_train_cxr11.ipynb"),
        str(out),
        parameters={
            "DATASET": f"csv:{labels_csv}",
            "SPLIT": "patient",
            "MODELS": ["ctranscnn_tiny"],
            **{k.upper(): v for k, v in {**TINY, "epochs": 1}.items()},
        },
        cwd=str(PROJECT_ROOT / "notebooks"),
        progress_bar=False,
    )
    tables = isolated_outputs / "results" / "smoke" / "tables"
    (auc,) = tables.glob("auc_csv-labels-*_patient.md")
    text = auc.read_text()
    assert "your data (labels.csv), patient split" in text and "ETT_Normal" in text
    assert "phantom" not in text


def test_a_new_dataset_is_one_definition(labels_csv, monkeypatch):
    """Registering one DatasetDef makes a dataset known to the kit by its name."""
    from dataclasses import replace

    from cxrlib.data import datasets

    mine = replace(datasets.csv_dataset(labels_csv), name="mine")
    monkeypatch.setitem(datasets.REGISTRY, "mine", mine)
    assert datasets.get_dataset("mine").classes == ("ETT_Normal", "NGT_Normal", "CVC_Normal")
    with pytest.raises(ValueError, match="registered already"):
        datasets.register(mine)
