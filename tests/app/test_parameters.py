"""A notebook's parameters cell: every ALL-CAPS global validated, lower-case names from
papermill counted, extras checked, the profile chosen from the data when none is given."""

from __future__ import annotations

import pytest

from cxrlib.app import config_and_extras, config_from_notebook
from cxrlib.core.config import ConfigError
from tests.data.test_roots import kaggle_ranzcr, nih_folder


def test_notebook_namespace_validation():
    namespace = {"PROFILE": "smoke", "EPOCHS": 2, "In": [], "config_from_notebook": object()}
    assert config_from_notebook(namespace).train.epochs == 2
    with pytest.raises(ConfigError, match="unknown parameter 'EPOCS'"):
        config_from_notebook({"PROFILE": "smoke", "EPOCS": 2})
    with pytest.raises(ConfigError, match="must set PROFILE"):
        config_from_notebook({"EPOCHS": 2})
    with pytest.raises(ConfigError, match="allowed profiles"):
        config_from_notebook({"PROFILE": "bogus"})
    with pytest.raises(ConfigError, match="MODEL must be a registered model"):
        config_from_notebook({"PROFILE": "smoke", "MODEL": "resnet5"})


def test_extras_are_checked():
    config, extras = config_and_extras({"PROFILE": "smoke", "MODELS": ["a"]}, MODELS=list)
    assert extras == {"MODELS": ["a"]} and config.profile == "smoke"
    with pytest.raises(ConfigError, match="MODELS must be list"):
        config_and_extras({"PROFILE": "smoke", "MODELS": "a"}, MODELS=list)


def test_lower_case_notebook_parameters_count():
    """``papermill -p epochs 3`` injects a lower-case name after the parameters cell."""
    namespace = {"PROFILE": "smoke", "EPOCHS": 8, "epochs": 3, "MODELS": ["a"], "models": ["b"]}
    config, extras = config_and_extras(namespace, MODELS=list)
    assert config.train.epochs == 3 and extras["MODELS"] == ["b"]


def test_the_profile_follows_the_data_when_none_is_given(isolated_outputs, monkeypatch):
    from cxrlib.core.workspace import ENV

    monkeypatch.setenv(ENV["kaggle_input"], str(isolated_outputs / "kaggle"))
    nih = nih_folder(isolated_outputs / "nih")
    assert config_and_extras({"PROFILE": None})[0].profile == "smoke"
    # a root given in the notebook (not the environment) selects the paper profile
    roots = {"cxr14": str(nih)}
    assert config_and_extras({"PROFILE": None, "DATA_ROOTS": roots})[0].profile == "paper"
    # a notebook's ``DATA_ROOTS = None`` does not hide the environment's roots
    monkeypatch.setenv(ENV["data_roots"], f"cxr14={nih}")
    config, _ = config_and_extras({"PROFILE": "smoke", "DATA_ROOTS": None})
    assert config.workspace.root("cxr14") == nih
    monkeypatch.delenv(ENV["data_roots"])
    # a data root of no dataset, and the old per-dataset parameter, say what to write
    with pytest.raises(ConfigError, match="DATA_ROOTS names no dataset called 'cxr15'"):
        config_and_extras({"PROFILE": "smoke", "DATA_ROOTS": {"cxr15": str(nih)}})
    with pytest.raises(ConfigError, match=r"DATA_ROOTS = \{'cxr14': DIR\}"):
        config_and_extras({"PROFILE": "smoke", "CXR14_ROOT": str(nih)})
    kaggle_ranzcr(isolated_outputs / "kaggle" / "competitions" / "ranzcr-clip")
    assert config_and_extras({"PROFILE": None})[0].profile == "paper"


def test_preinstalled_pins_the_copy_python_imports_when_a_package_is_installed_twice(tmp_path):
    """Kaggle has packages in the user site and the system site: the constraint must be the
    version pip sees as installed (first on sys.path), or pip wants to 'install' the other one."""
    import subprocess
    import sys

    from cxrlib.core.workspace import project_root

    for folder, version in (("first", "1.0.0"), ("second", "2.0.0")):
        info = tmp_path / folder / f"somepkg-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: SomePkg\nVersion: {version}\n"
        )
    script = project_root() / "cxrlib" / "app" / "preinstalled.py"
    env = {"PYTHONPATH": f"{tmp_path / 'first'}:{tmp_path / 'second'}"}
    listed = subprocess.run(
        [sys.executable, "-S", str(script)], capture_output=True, text=True, check=True, env=env
    ).stdout.splitlines()
    assert listed == ["somepkg==1.0.0"]


def test_a_torch_older_than_pyprojects_floor_is_named_before_anything_is_installed(tmp_path):
    """The kit never replaces an installed torch, so ./run_all.sh asks preinstalled.py first:
    an old one gets a sentence naming it and pyproject.toml, the tested ones pass."""
    import subprocess
    import sys

    from cxrlib.app.preinstalled import too_old
    from cxrlib.core.workspace import project_root

    pyproject = project_root() / "pyproject.toml"
    text = pyproject.read_text()
    assert too_old(text, {"torch": "2.10.0+cu128", "torchvision": "0.25.0+cu128"}) == []
    assert too_old(text, {"torch": "2.11.0", "torchvision": "0.26.0"}) == []
    old = too_old(text, {"torch": "2.9.1", "torchvision": "0.26.0"})
    assert old == [
        "torch 2.9.1 is older than 2.10, the lowest version the kit is tested with (pyproject.toml)"
    ]

    info = tmp_path / "torch-2.4.0.dist-info"  # an environment whose torch is 2.4
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.4.0\n")
    script = project_root() / "cxrlib" / "app" / "preinstalled.py"
    checked = subprocess.run(
        [sys.executable, "-S", str(script), "--check-floors", str(pyproject)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert checked.returncode == 1
    assert "torch 2.4.0 is older than 2.10" in checked.stderr
    this = subprocess.run([sys.executable, str(script), "--check-floors", str(pyproject)])
    assert this.returncode == 0  # the torch this suite runs on


def test_the_report_takes_the_profile_of_the_results_it_is_pointed_at(tmp_path, monkeypatch):
    """A fresh Colab VM, no data on it, RESULTS_DIR and RUNS_DIR on Drive holding paper results:
    notebook 09 (PROFILE = None) reports the paper profile, not the smoke one; where both
    profiles' results are there it refuses, naming them."""
    from cxrlib.app.parameters import config_and_extras
    from cxrlib.core.config import ConfigError

    for env in ("CXRLIB_DATA_ROOTS", "CXRLIB_RUNS_DIR", "CXRLIB_RESULTS_DIR"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("CXRLIB_DATA_DIR", str(tmp_path / "open_data"))
    results, runs = tmp_path / "drive" / "results", tmp_path / "drive" / "runs"
    (results / "paper" / "tables").mkdir(parents=True)
    params = {"PROFILE": None, "RESULTS_DIR": str(results), "RUNS_DIR": str(runs)}
    assert config_and_extras(params)[0].profile == "smoke"  # a notebook that trains: no data
    assert config_and_extras(params, profile_from_results=True)[0].profile == "paper"
    (runs / "smoke").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"both profiles \(smoke, paper\)"):
        config_and_extras(params, profile_from_results=True)
    params["PROFILE"] = "smoke"  # said: no question
    assert config_and_extras(params, profile_from_results=True)[0].profile == "smoke"
