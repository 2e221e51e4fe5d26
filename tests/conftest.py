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


@pytest.fixture
def isolated_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point results/, runs/ and open_data/ at a temporary folder for one test."""
    for env, name in (
        ("CXRLIB_RESULTS_DIR", "results"),
        ("CXRLIB_RUNS_DIR", "runs"),
        ("CXRLIB_DATA_DIR", "open_data"),
    ):
        monkeypatch.setenv(env, str(tmp_path / name))
    monkeypatch.delenv("CXR14_ROOT", raising=False)
    monkeypatch.delenv("CXR11_ROOT", raising=False)
    return tmp_path
