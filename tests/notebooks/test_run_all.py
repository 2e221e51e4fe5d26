"""./run_all.sh: usage, argument validation, and a failing notebook stops the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import PROJECT_ROOT

RUN_ALL = PROJECT_ROOT / "run_all.sh"


def run(script: Path, *args: str, env_extra: dict | None = None, timeout: int = 300):
    env = {**os.environ, "CXRLIB_PYTHON": sys.executable, **(env_extra or {})}
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_help_documents_every_option():
    result = run(RUN_ALL, "--help")
    assert result.returncode == 0
    for option in (
        "--profile smoke|paper",
        "--only",
        "--data-root NAME=DIR",
        "CXRLIB_DATA_ROOTS",
        "--results-dir",
        "--runs-dir",
        "--data-dir",
        "--download",
        "--time-limit-minutes",
        "exit status",
        "--test",
        "results/<profile>/executed",
    ):
        assert option in result.stdout, option


def test_unknown_profile_and_option_are_refused():
    result = run(RUN_ALL, "--profile", "bogus")
    assert result.returncode != 0 and "allowed profiles: smoke, paper" in result.stderr
    result = run(RUN_ALL, "--frobnicate")
    assert result.returncode != 0 and "unknown option '--frobnicate'" in result.stderr


def _notebook(path: Path, code: str, parameters: str = 'PROFILE = "smoke"') -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failing_notebook_stops_the_run_and_names_the_executed_copy(tmp_path):
    """A copy of run_all.sh over three notebooks: the second fails, the third never runs."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(RUN_ALL, project / "run_all.sh")
    _notebook(project / "notebooks" / "01_ok.ipynb", "print('fine')")
    _notebook(project / "notebooks" / "02_broken.ipynb", "raise RuntimeError('deliberate')")
    _notebook(project / "notebooks" / "03_after.ipynb", "print('never')")
    result = run(project / "run_all.sh", "--results-dir", str(tmp_path / "out"))
    executed = tmp_path / "out" / "smoke" / "executed"
    assert result.returncode != 0
    assert f"the executed notebook with the error is: {executed / '02_broken.ipynb'}" in (
        result.stderr
    )
    assert "deliberate" in (executed / "02_broken.ipynb").read_text()
    assert (executed / "01_ok.ipynb").exists() and not (executed / "03_after.ipynb").exists()

    # --only selects by number: the broken notebook is skipped and the run succeeds.
    result = run(project / "run_all.sh", "--only", "01,03", "--results-dir", str(tmp_path / "o2"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o2" / "smoke" / "executed").iterdir()) == [
        "01_ok.ipynb",
        "03_after.ipynb",
    ]


@pytest.mark.slow
def test_parameters_reach_the_notebooks_and_are_validated(tmp_path):
    """--set and --yaml arrive in the notebook; an unknown name fails the configuration step."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(RUN_ALL, project / "run_all.sh")
    code = (
        "from cxrlib.app import config_and_extras\n"
        "config, extras = config_and_extras(globals(), MODELS=list)\n"
        "assert config.train.epochs == 5 and extras['MODELS'] == ['resnet50', 'densenet121']\n"
        "assert config.train.lr == 0.004\n"
        "print('progress-line-from-the-notebook')\n"
    )
    _notebook(
        project / "notebooks" / "01_params.ipynb",
        code,
        parameters='PROFILE = "smoke"\nMODELS = ["ctranscnn_tiny"]',
    )
    out = str(tmp_path / "out")
    ok = run(
        project / "run_all.sh",
        "--results-dir",
        out,
        "--set",
        "EPOCHS=5",
        "--set",
        "lr=0.004",  # names are case-insensitive
        "--yaml",
        "MODELS: [resnet50, densenet121]",
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    # what the notebook prints reaches the terminal while it runs (papermill --log-output)
    assert "progress-line-from-the-notebook" in ok.stdout + ok.stderr
    bad = run(project / "run_all.sh", "--results-dir", out, "--set", "EPOCS=5")
    assert bad.returncode != 0
    executed = (tmp_path / "out" / "smoke" / "executed" / "01_params.ipynb").read_text()
    assert "unknown parameter" in executed and "EPOCHS" in executed
