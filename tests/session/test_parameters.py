"""A notebook's parameters cell: every ALL-CAPS global validated, lower-case names from
papermill counted, extras checked, the profile chosen from the data when none is given."""

from __future__ import annotations

import pytest

from cxrlib.core.config import ConfigError
from cxrlib.session import config_and_extras, config_from_notebook
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
    from cxrlib.data.roots import KAGGLE_INPUT_ENV

    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(isolated_outputs / "kaggle"))
    nih = nih_folder(isolated_outputs / "nih")
    assert config_and_extras({"PROFILE": None})[0].profile == "smoke"
    # a root given in the notebook (not the environment) selects the paper profile
    assert config_and_extras({"PROFILE": None, "CXR14_ROOT": str(nih)})[0].profile == "paper"
    # a notebook's ``CXR14_ROOT = None`` does not hide the environment variable
    monkeypatch.setenv("CXR14_ROOT", str(nih))
    config, _ = config_and_extras({"PROFILE": "smoke", "CXR14_ROOT": None})
    assert config.data.cxr14_root == str(nih)
    monkeypatch.delenv("CXR14_ROOT")
    kaggle_ranzcr(isolated_outputs / "kaggle" / "competitions" / "ranzcr-clip")
    assert config_and_extras({"PROFILE": None})[0].profile == "paper"
