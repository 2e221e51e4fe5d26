"""``python -m cxrlib download``: kagglehub replaced by a fake module (no network)."""

from __future__ import annotations

import os
import shutil
import sys
import types
from collections import namedtuple

import pytest

from cxrlib.app.main import main
from cxrlib.core.config import load_config
from cxrlib.core.errors import DiskSpaceError
from cxrlib.core.workspace import Workspace
from cxrlib.data.datasets import get_dataset
from cxrlib.data.download import DownloadError, download
from cxrlib.data.roots import auto_profile, data_source
from cxrlib.data.sets.cxr11 import CSV_COLUMNS as CXR11_CSV_COLUMNS

USAGE = namedtuple("usage", "total used free")


class UnauthenticatedError(Exception):
    """Named as kagglehub's own."""


class HTTPError(Exception):
    def __init__(self, status: int):
        super().__init__(f"{status} Client Error")
        self.response = types.SimpleNamespace(status_code=status)


@pytest.fixture
def fake_kagglehub(monkeypatch, isolated_outputs):
    """A kagglehub whose downloads write a tiny dataset in the real layout into the cache."""
    monkeypatch.delenv("KAGGLEHUB_CACHE", raising=False)
    module = types.ModuleType("kagglehub")
    module.calls, module.fail = [], None

    def fetch(handle: str, layout: dict[str, str]) -> str:
        module.calls.append((handle, os.environ["KAGGLEHUB_CACHE"]))
        if module.fail is not None:
            raise module.fail
        root = isolated_outputs / "open_data" / "kagglehub" / handle / "versions" / "3"
        for rel, text in layout.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        return str(root)

    ranzcr_header = ",".join(["StudyInstanceUID", *CXR11_CSV_COLUMNS, "PatientID"]) + "\n"
    nih = {"Data_Entry_2017.csv": "x", "images_001/images/00000001_000.png": ""}
    ranzcr = {"train.csv": ranzcr_header, "train/1.2.826.0.1.jpg": ""}
    module.dataset_download = lambda handle: fetch(handle, nih)
    module.competition_download = lambda handle: fetch(handle, ranzcr)
    monkeypatch.setitem(sys.modules, "kagglehub", module)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: USAGE(2**40, 0, 2**40))  # 1 TB free
    return module


def test_a_download_selects_the_real_data_and_is_not_repeated(fake_kagglehub, isolated_outputs):
    definition = get_dataset("cxr14")
    assert data_source(load_config("smoke"), definition) == "phantom"
    root = download("cxr14", Workspace.from_env())
    assert (root / "Data_Entry_2017.csv").is_file()
    # into DATA_DIR, where a dead session's partial archive is found again (kagglehub resumes)
    assert fake_kagglehub.calls == [
        ("nih-chest-xrays/data", str(isolated_outputs / "open_data" / "kagglehub"))
    ]
    assert data_source(load_config("smoke"), definition) == "real"
    assert auto_profile(Workspace.from_env()) == "paper"
    assert download("cxr14", Workspace.from_env()) == root and len(fake_kagglehub.calls) == 1


def test_missing_credentials_say_where_to_get_them(fake_kagglehub, capsys):
    fake_kagglehub.fail = UnauthenticatedError()
    with pytest.raises(DownloadError, match=r"kaggle.com/settings.*KAGGLE_USERNAME"):
        download("cxr14", Workspace.from_env())
    assert main(["download", "cxr14"]) == 2
    assert "credentials are missing" in capsys.readouterr().err


def test_competition_rules_not_accepted_names_the_rules_page(fake_kagglehub):
    fake_kagglehub.fail = HTTPError(403)
    with pytest.raises(
        DownloadError,
        match=r"ranzcr-clip-catheter-line-classification/rules",
    ):
        download("cxr11", Workspace.from_env())


def test_free_space_is_checked_before_anything_is_fetched(fake_kagglehub, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda _: USAGE(100 * 2**30, 90 * 2**30, 10 * 2**30))
    with pytest.raises(DiskSpaceError, match=r"needs 24\.00 GiB .* only 10\.00 GiB are free"):
        download("cxr11", Workspace.from_env())
    assert fake_kagglehub.calls == []


def test_a_download_that_does_not_fit_names_the_route_that_works(fake_kagglehub, monkeypatch):
    """CXR14 needs 90 GiB while it unpacks: more than a free Colab VM has."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _: USAGE(78 * 2**30, 8 * 2**30, 70 * 2**30))
    with pytest.raises(DiskSpaceError, match=r"does not fit a free Colab VM.*Kaggle"):
        download("cxr14", Workspace.from_env())
    assert fake_kagglehub.calls == []
