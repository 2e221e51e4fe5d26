"""Finding the real data once: given roots, Kaggle inputs recognised by their whole layout (a
foreign train.csv is not RANZCR's), finished downloads; DATA_SOURCE auto/phantom/real."""

from __future__ import annotations

from pathlib import Path

from cxrlib.core.config import load_config
from cxrlib.core.workspace import ENV, Workspace
from cxrlib.data.roots import (
    auto_profile,
    data_source,
    is_phantom,
    locate,
    record_download,
)
from cxrlib.data.sets.cxr11 import CSV_COLUMNS as CXR11_CSV_COLUMNS

KAGGLE_INPUT_ENV = ENV["kaggle_input"]


def nih_folder(root: Path) -> Path:
    """A folder in NIH's Kaggle layout (metadata and an image folder; no images needed)."""
    (root / "images_001" / "images").mkdir(parents=True)
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\n")
    return root


def kaggle_ranzcr(root: Path) -> Path:
    """A folder in RANZCR's layout: train.csv with its columns, train/ with a .jpg."""
    (root / "train").mkdir(parents=True)
    (root / "train" / "1.2.826.0.1.jpg").write_bytes(b"")
    header = ",".join(
        ["StudyInstanceUID", *(f'"{c}"' if "," in c else c for c in CXR11_CSV_COLUMNS), "PatientID"]
    )
    (root / "train.csv").write_text(header + "\n")
    return root


def _sources(config) -> dict[str, str]:
    return {name: data_source(config, name) for name in ("cxr14", "cxr11")}


def test_real_data_is_used_wherever_it_is_found(isolated_outputs, monkeypatch):
    """Smoke profile, DATA_SOURCE auto: each dataset is real where its data is found (root,
    environment, Kaggle input, download), phantom otherwise; DATA_SOURCE=phantom keeps it."""
    tmp_path = isolated_outputs
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tmp_path / "kaggle"))
    nih = nih_folder(tmp_path / "nih")
    assert _sources(load_config("smoke")) == {"cxr14": "phantom", "cxr11": "phantom"}
    assert auto_profile(Workspace.from_env()) == "smoke" and is_phantom(load_config("smoke"))
    monkeypatch.setenv(ENV["data_roots"], f"cxr14={nih}")
    assert _sources(load_config("smoke")) == {"cxr14": "real", "cxr11": "phantom"}
    assert locate(load_config("smoke"), "cxr14").how == "DATA_ROOTS"
    assert auto_profile(Workspace.from_env()) == "paper"
    phantom = load_config("smoke", data_source="phantom")
    assert _sources(phantom) == {"cxr14": "phantom", "cxr11": "phantom"}
    monkeypatch.delenv(ENV["data_roots"])
    given = Workspace.from_env().replace(data_roots={"cxr14": str(nih)})
    assert auto_profile(given) == "paper"  # a root given counts as found
    assert not is_phantom(load_config("smoke", workspace=given))
    # a Kaggle mount, found at any of the first three levels of /kaggle/input
    kaggle_ranzcr(tmp_path / "kaggle" / "competitions" / "ranzcr-clip")
    assert _sources(load_config("smoke")) == {"cxr14": "phantom", "cxr11": "real"}
    # a finished download
    record_download(Workspace.from_env(), "cxr14", nih)
    assert _sources(load_config("smoke")) == {"cxr14": "real", "cxr11": "real"}


def test_a_foreign_train_csv_is_not_ranzcr(isolated_outputs, monkeypatch):
    """Titanic's train.csv attached on Kaggle must not become 'cxr11: real data'."""
    base = isolated_outputs / "kaggle"
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(base))
    titanic = base / "competitions" / "titanic"
    titanic.mkdir(parents=True)
    (titanic / "train.csv").write_text("PassengerId,Survived,Pclass,Name\n1,0,3,Braund\n")
    (titanic / "test.csv").write_text("PassengerId,Pclass\n")
    assert _sources(load_config("smoke")) == {"cxr14": "phantom", "cxr11": "phantom"}
    assert auto_profile(Workspace.from_env()) == "smoke"
    # RANZCR's columns without its train/ folder of JPEGs: not RANZCR either
    half = base / "datasets" / "someone" / "ranzcr-csv-only"
    half.mkdir(parents=True)
    kaggle_ranzcr(isolated_outputs / "full")
    (half / "train.csv").write_text((isolated_outputs / "full" / "train.csv").read_text())
    assert data_source(load_config("smoke"), "cxr11") == "phantom"
    # and the real layout is found beside both
    kaggle_ranzcr(base / "competitions" / "ranzcr-clip-catheter-line-classification")
    where = locate(load_config("smoke"), "cxr11")
    assert where.source == "real" and where.root.name == "ranzcr-clip-catheter-line-classification"
    # an NIH metadata file without its image folders is not the dataset either
    lone = base / "datasets" / "nih" / "data"
    lone.mkdir(parents=True)
    (lone / "Data_Entry_2017.csv").write_text("Image Index\n")
    assert data_source(load_config("smoke"), "cxr14") == "phantom"
