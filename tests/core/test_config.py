"""The profiles are validated data: bad names, types and values fail, naming what is allowed."""

from __future__ import annotations

import pytest

from cxrlib.core.config import PROFILES, ConfigError, load_config, parse_override


def test_profiles_load_and_differ():
    smoke, paper = load_config("smoke"), load_config("paper")
    assert smoke.data.data_source == "auto" and paper.data.data_source == "real"
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
        ("grad_accum", 3, "divisible by GRAD_ACCUM"),
    ],
)
def test_bad_values_are_rejected(name, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", **{name: value})


def test_overrides_are_case_insensitive_and_int_widens_to_float():
    cfg = load_config("paper", EPOCHS=5, lr=1)
    assert cfg.train.epochs == 5 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=3", ("epochs", 3)),
        ("lr=5e-4", ("lr", 5e-4)),
        ("channels_last=false", ("channels_last", False)),
        ("grad_accum=None", ("grad_accum", None)),
        ("pretrained=none", ("pretrained", "none")),
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


def test_override_revalidates():
    cfg = load_config("smoke").override(model="chexnet_tiny", epochs=4)
    assert cfg.model.model == "chexnet_tiny" and cfg.train.epochs == 4
    assert cfg.data.image_size == load_config("smoke").data.image_size
    with pytest.raises(ConfigError, match="must be > 0"):
        cfg.override(epochs=0)


def test_the_recipe_is_the_authors_for_both_datasets():
    """Every value of the authors' released configs, pinned with its line (commit 0448b22)."""
    from cxrlib.core.recipe import RECIPE

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
