"""The profiles are validated data: bad names, types and values fail, naming what is allowed."""

from __future__ import annotations

import pytest

from cxrlib.config import (
    PROFILES,
    ConfigError,
    auto_profile,
    config_and_extras,
    config_from_notebook,
    load_config,
    parse_override,
)


def test_profiles_load_and_differ():
    smoke, paper = load_config("smoke"), load_config("paper")
    assert smoke.is_phantom and not paper.is_phantom
    assert paper.data.image_size == 224 and paper.train.batch_size == 32
    assert paper.train.epochs == 300 and paper.train.lr == 1e-3
    assert smoke.data.image_size < paper.data.image_size


def test_unknown_profile_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed profiles: smoke, paper"):
        load_config("fast")


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"unknown parameter 'EPOCS'.*EPOCHS"):
        load_config("smoke", EPOCS=3)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("epochs", "3", "must be int"),
        ("epochs", 2.5, "must be int"),
        ("channels_last", 1, "must be bool"),
        ("split", "random", "must be one of 'paper', 'patient'"),
        ("precision", "fp8", "must be one of"),
        ("image_size", 100, "multiple of 32"),
        ("epochs", 0, "must be > 0"),
        ("warmup_ratio", 1.5, r"WARMUP_RATIO must be in \[0, 1\]"),
        ("warmup_ratio", -0.1, r"WARMUP_RATIO must be in \[0, 1\]"),
        ("min_lr_ratio", 2.0, r"MIN_LR_RATIO must be in \[0, 1\]"),
        ("checkpoint_minutes", 0, "CHECKPOINT_MINUTES must be > 0"),
        ("adam_eps", 0.0, "ADAM_EPS must be > 0"),
        ("seed", -1, "SEED must be >= 0"),
        ("split_seed", -1, "SPLIT_SEED must be >= 0"),
        ("lr", float("nan"), "LR must be"),
        ("beta1", 1.0, r"BETA1 must be in \[0, 1\)"),
        ("model", "ctranscnn", "MODEL must be a registered model.*ctranscnn_tiny"),
        ("grad_accum", 3, "divisible by GRAD_ACCUM"),
    ],
)
def test_bad_values_are_rejected(name, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", **{name: value})


def test_overrides_are_case_insensitive_and_int_widens_to_float():
    cfg = load_config("paper", EPOCHS=5, lr=1)
    assert cfg.train.epochs == 5 and isinstance(cfg.train.lr, float)


def test_roots_come_from_environment(monkeypatch):
    monkeypatch.setenv("CXR14_ROOT", "/data/nih")
    assert load_config("paper").data.cxr14_root == "/data/nih"
    assert load_config("paper", cxr14_root="/elsewhere").data.cxr14_root == "/elsewhere"


def test_notebook_namespace_validation():
    namespace = {"PROFILE": "smoke", "EPOCHS": 2, "In": [], "config_from_notebook": object()}
    assert config_from_notebook(namespace).train.epochs == 2
    with pytest.raises(ConfigError, match="unknown parameter 'EPOCS'"):
        config_from_notebook({"PROFILE": "smoke", "EPOCS": 2})
    with pytest.raises(ConfigError, match="must set PROFILE"):
        config_from_notebook({"EPOCHS": 2})
    with pytest.raises(ConfigError, match="allowed profiles"):
        config_from_notebook({"PROFILE": "bogus"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=3", ("epochs", 3)),
        ("lr=5e-4", ("lr", 5e-4)),
        ("channels_last=false", ("channels_last", False)),
        ("cxr14_root=/data/x", ("cxr14_root", "/data/x")),
        ("cxr14_root=None", ("cxr14_root", None)),
        ("model=ctranscnn_tiny", ("model", "ctranscnn_tiny")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected
    name, value = expected
    load_config("smoke", **{name: value})  # and the parsed value validates


def test_parse_override_rejects_garbage():
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_override("epochs")
    with pytest.raises(ConfigError, match="unknown parameter"):
        parse_override("nope=1")


def test_config_round_trips_to_json():
    import json

    cfg = load_config("smoke")
    data = json.loads(cfg.to_json())
    assert data["profile"] == "smoke" and data["train"]["epochs"] == cfg.train.epochs
    assert set(PROFILES) == {"smoke", "paper"}


def test_override_revalidates_and_extras_are_checked():
    from cxrlib.config import config_and_extras

    cfg = load_config("smoke").override(model="chexnet_tiny", epochs=4)
    assert cfg.model.model == "chexnet_tiny" and cfg.train.epochs == 4
    assert cfg.data.image_size == load_config("smoke").data.image_size
    with pytest.raises(ConfigError, match="must be > 0"):
        cfg.override(epochs=0)
    config, extras = config_and_extras({"PROFILE": "smoke", "MODELS": ["a"]}, MODELS=list)
    assert extras == {"MODELS": ["a"]} and config.profile == "smoke"
    with pytest.raises(ConfigError, match="MODELS must be list"):
        config_and_extras({"PROFILE": "smoke", "MODELS": "a"}, MODELS=list)


def test_the_recipe_is_the_authors_for_both_datasets():
    """Every value of the authors' released configs, pinned with its line (commit 0448b22)."""
    from cxrlib.recipe import RECIPE

    expected = {
        "drop_path": (0.1, 8, 8),
        "image_size": (224, 34, 34),
        "batch_size": (32, 58, 58),
        "lr": (1e-3, 89, 93),
        "weight_decay": (0.05, 90, 94),
        "adam_eps": (1e-8, 91, 95),
        "beta1": (0.5, 92, 96),
        "beta2": (0.999, 92, 96),
        "min_lr_ratio": (1e-2, 100, 105),
        "warmup_ratio": (1e-3, 102, 107),
        "warmup_iters": (6260, 103, 108),
        "epochs": (300, 106, 111),
    }
    assert {k: (v.value, v.lines["cxr14"], v.lines["cxr11"]) for k, v in RECIPE.items()} == expected
    assert RECIPE["beta1"].source("cxr11") == "configs/ChestX-ray11_CTransCNN.py:96"
    flat = load_config("paper").flat()
    assert {k: flat[k] for k in RECIPE} == {k: v[0] for k, v in expected.items()}


def test_split_seed_is_separate_from_seed():
    cfg = load_config("smoke", seed=3)
    assert cfg.data.split_seed == 0 and cfg.train.seed == 3


def _sources(config) -> dict[str, str]:
    from cxrlib.data.datasets import get_dataset
    from cxrlib.data.prepare import data_source

    return {name: data_source(config, get_dataset(name)) for name in ("cxr14", "cxr11")}


def test_real_data_is_used_wherever_it_is_found(monkeypatch, tmp_path):
    """Smoke profile, DATA_SOURCE auto: each dataset is real where its data is found (root,
    environment, Kaggle input, download), phantom otherwise; DATA_SOURCE=phantom keeps it."""
    from cxrlib.data.roots import KAGGLE_INPUT_ENV, record_download

    monkeypatch.setenv("CXRLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tmp_path / "kaggle"))
    nih = tmp_path / "nih"
    nih.mkdir()
    (nih / "Data_Entry_2017.csv").write_text("x")
    assert _sources(load_config("smoke")) == {"cxr14": "phantom", "cxr11": "phantom"}
    assert auto_profile() == "smoke"
    monkeypatch.setenv("CXR14_ROOT", str(nih))
    assert _sources(load_config("smoke")) == {"cxr14": "real", "cxr11": "phantom"}
    assert auto_profile() == "paper"
    assert _sources(load_config("smoke", data_source="phantom")) == {
        "cxr14": "phantom",
        "cxr11": "phantom",
    }
    # a notebook's ``CXR14_ROOT = None`` does not hide the environment variable
    config, _ = config_and_extras({"PROFILE": "smoke", "CXR14_ROOT": None})
    assert config.data.cxr14_root == str(nih)
    monkeypatch.delenv("CXR14_ROOT")
    # a root given in the notebook (not the environment) also selects the paper profile
    assert load_config(None).profile == "smoke"
    assert load_config(None, CXR14_ROOT=str(nih)).profile == "paper"
    assert not load_config("smoke", cxr14_root=str(nih)).is_phantom
    # a Kaggle mount, found at any of the first three levels of /kaggle/input
    ranzcr = tmp_path / "kaggle" / "competitions" / "ranzcr-clip"
    ranzcr.mkdir(parents=True)
    (ranzcr / "train.csv").write_text("x")
    assert _sources(load_config("smoke")) == {"cxr14": "phantom", "cxr11": "real"}
    # a finished download
    record_download("cxr14", nih)
    assert _sources(load_config("smoke")) == {"cxr14": "real", "cxr11": "real"}
    config, _ = config_and_extras({"PROFILE": None})
    assert config.profile == "paper"


def test_lower_case_notebook_parameters_count():
    """``papermill -p epochs 3`` injects a lower-case name after the parameters cell."""
    namespace = {"PROFILE": "smoke", "EPOCHS": 8, "epochs": 3, "MODELS": ["a"], "models": ["b"]}
    config, extras = config_and_extras(namespace, MODELS=list)
    assert config.train.epochs == 3 and extras["MODELS"] == ["b"]
