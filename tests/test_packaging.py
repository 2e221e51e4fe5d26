"""environment.yml and pyproject.toml declare the same dependencies (conda is not available on
the development machine, so this consistency check is what guards the conda route)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

#: conda-forge names of PyPI distributions where they differ.
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {
        _name(r) for r in project["dependencies"] + extras["dev"] + extras["lab"] + extras["docs"]
    }
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    available = conda | {_name(p) for p in pip if not p.startswith("-e")}
    missing = {w for w in wanted if CONDA_NAMES.get(w, w) not in available}
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert "-e .[dev,lab,docs]" in pip, "environment.yml must install the project itself"


def test_the_front_end_is_an_extra_not_a_core_dependency():
    """Installing ipywidgets 8 / ipykernel / JupyterLab into Colab replaces its own Jupyter
    stack (Colab's progress bars need its ipywidgets 7): the setup cell installs only core."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    front_end = {"jupyterlab", "ipywidgets", "ipykernel", "notebook"}
    assert not core & front_end
    assert front_end - {"notebook"} <= {_name(r) for r in project["optional-dependencies"]["lab"]}


def test_a_dev_install_can_run_its_own_suite():
    """The suite runs notebooks through papermill, which needs a Jupyter kernel: core brings
    papermill, the dev extra the kernel (a dev-only install once failed 6 tests)."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert "papermill" in {_name(r) for r in project["dependencies"]}
    assert {"pytest", "ipykernel"} <= {_name(r) for r in project["optional-dependencies"]["dev"]}


@pytest.mark.slow  # pip builds the wheel in an isolated environment (the newest setuptools)
def test_building_the_kit_prints_no_deprecation(tmp_path):
    """Every Colab/Kaggle install builds the kit with the newest setuptools (pip's build
    isolation): the project's metadata must not make it print its dated deprecations (the
    table form of project.license did, 46 lines in the first cell)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path),
         str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout + done.stderr
    assert "SetuptoolsDeprecationWarning" not in said and "project.license" not in said
    wheel = next(tmp_path.glob("cxrlib-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith("METADATA"))
        assert "License-Expression: MIT" in archive.read(meta).decode()
