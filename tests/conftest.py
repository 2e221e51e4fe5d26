"""Shared fixtures: the project root, the ../shared reference folder, isolated output roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CXRLIB_SHARED", PROJECT_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (design specs, fixtures, real metadata); skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"reference folder {SHARED} is absent (set CXRLIB_SHARED to its path)")
    return SHARED


def isolate_outputs(patch: pytest.MonkeyPatch, root: Path) -> Path:
    """Point results/, runs/ and open_data/ at folders under ``root``, and forget any real
    data root of the environment (tests train on the phantom)."""
    for env, name in (
        ("CXRLIB_RESULTS_DIR", "results"),
        ("CXRLIB_RUNS_DIR", "runs"),
        ("CXRLIB_DATA_DIR", "open_data"),
    ):
        patch.setenv(env, str(root / name))
    patch.delenv("CXRLIB_DATA_ROOTS", raising=False)
    patch.setenv("CXRLIB_KAGGLE_INPUT", str(root / "no-kaggle-input"))
    return root


@pytest.fixture
def isolated_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point results/, runs/ and open_data/ at a temporary folder for one test."""
    return isolate_outputs(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def smoke_cxr14_run(tmp_path_factory):
    """The smoke profile's own training run (micro CTransCNN, phantom CXR14), trained once per
    session in its own folders. Returns the folders; use ``use_folders`` to point at them."""
    import warnings

    from cxrlib.core.config import load_config
    from cxrlib.train.run import train_run

    root = tmp_path_factory.mktemp("smoke_cxr14")
    folders = {
        "CXRLIB_DATA_DIR": str(root / "open_data"),
        "CXRLIB_RUNS_DIR": str(root / "runs"),
        "CXRLIB_RESULTS_DIR": str(root / "results"),
    }
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for key, value in folders.items():
            patch.setenv(key, value)
        config = load_config("smoke")
        run = train_run(config, "cxr14", progress=False)
    return {"config": config, "run": run, "folders": folders}


@pytest.fixture
def use_folders(monkeypatch):
    """Point the data/runs/results roots at a fixture's folders for one test."""

    def apply(folders: dict) -> None:
        for key, value in folders.items():
            monkeypatch.setenv(key, value)

    return apply
