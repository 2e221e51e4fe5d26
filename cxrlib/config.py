"""Profiles: the validated configuration that every notebook and command starts from.

A profile is plain data (frozen dataclasses). Two profiles exist:

* ``smoke`` -- phantom data, a tiny model at a small image size, a couple of epochs: the whole
  pipeline runs in minutes on a 2-core CPU. Its numbers are *phantom results*.
* ``paper`` -- the papers' recipe on the real datasets (Wu et al., KBS 2023, CTransCNN;
  Wu et al., PRCV 2023, CheXNet): 224 px, batch 32, AdamW, 300 epochs.

Every leaf field has a unique name, so one flat namespace of overrides serves everywhere:
``load_config("smoke", epochs=3)``, ``python -m cxrlib ... --set epochs=3`` and a notebook's
``EPOCHS = 3`` in its ``parameters`` cell all mean the same. Unknown names, wrong types and
values outside the allowed set are errors that list what is allowed -- never a silent
papermill warning.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

PROFILES = ("smoke", "paper")
DataSource = Literal["phantom", "real"]
SplitName = Literal["paper", "patient"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ModelSize = Literal["paper", "micro"]
LossHeads = Literal["each", "fused", "each+fused"]

#: Environment variables that name the real data roots when no parameter does.
ROOT_ENV_VARS = {"cxr14_root": "CXR14_ROOT", "cxr11_root": "CXR11_ROOT"}


class ConfigError(ValueError):
    """A profile, parameter name or value that is not allowed; the message says what is."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and cached."""

    data_source: DataSource = "phantom"
    cxr14_root: str | None = None
    cxr11_root: str | None = None
    split: SplitName = "paper"
    image_size: int = 224
    phantom_images: int = 600
    allow_missing_images: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model to build (see ``cxrlib.models``)."""

    model: str = "ctranscnn_tiny"
    model_size: ModelSize = "paper"
    drop_path: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe (models.md section 2.4, from the authors' released configs)."""

    epochs: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    #: AdamW beta1; None = the authors' released config per dataset (CXR14 0.5, CXR11 0.9)
    beta1: float | None = None
    beta2: float = 0.999
    adam_eps: float = 1e-8
    #: where the loss goes: on each head (the CTransCNN recipe), on the fused logits, or both
    loss_heads: LossHeads = "each"
    warmup_iters: int = 6260
    warmup_ratio: float = 1e-3
    min_lr_ratio: float = 1e-2
    num_workers: int = 2
    precision: Precision = "auto"
    channels_last: bool = True
    compile: bool = False
    grad_accum: int = 1
    checkpoint_minutes: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """A resolved, validated profile. Build it with :func:`load_config`."""

    profile: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def is_phantom(self) -> bool:
        """True when results come from the synthetic phantom data (never paper-comparable)."""
        return self.data.data_source == "phantom"

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-serialisable nested dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def flat(self) -> dict[str, Any]:
        """Every leaf value by its parameter name (lower case)."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            out |= dataclasses.asdict(getattr(self, section))
        return out

    def override(self, **overrides: Any) -> Config:
        """A validated copy with some values changed (names as in :func:`load_config`)."""
        values = self.flat() | {k.lower(): v for k, v in overrides.items()}
        return load_config(self.profile, **values)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}

#: Per-profile departures from the dataclass defaults (which are the paper recipe).
PROFILE_OVERRIDES: dict[str, dict[str, Any]] = {
    "paper": {"data_source": "real"},
    "smoke": {
        "data_source": "phantom",
        "model_size": "micro",
        "image_size": 64,
        # 800 phantom images and 8 epochs at 2e-3: the least with which the micro hybrids
        # learn clearly (val mean AUC ~50 -> ~65 on phantom CXR14, ~40 s per run here)
        "phantom_images": 800,
        "epochs": 8,
        "lr": 2e-3,
        "batch_size": 16,
        "warmup_iters": 10,
        "num_workers": 0,
        "precision": "fp32",
        "channels_last": False,
        "checkpoint_minutes": 1.0,
    },
}


def _leaf_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Map each unique leaf name to (section, field)."""
    leaves: dict[str, tuple[str, dataclasses.Field]] = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.name not in leaves, f"duplicate config field {f.name}"
            f.type = hints[f.name]  # resolve postponed annotations once
            leaves[f.name] = (section, f)
    return leaves


LEAVES = _leaf_fields()
PARAMETER_NAMES = ("profile", *LEAVES)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check_value(name: str, tp: Any, value: Any) -> Any:
    """Return ``value`` checked (and int→float widened) against the annotation ``tp``."""
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
        allowed = ", ".join(repr(a) for a in get_args(tp))
        raise ConfigError(f"parameter {name.upper()} must be one of {allowed}; got {value!r}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for option in get_args(tp):
            if option is type(None):
                continue
            try:
                return _check_value(name, option, value)
            except ConfigError:
                continue
        raise ConfigError(f"parameter {name.upper()} must be {_type_name(tp)}; got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - guarded by the field definitions above
        raise TypeError(f"unsupported config annotation {tp!r}")
    raise ConfigError(
        f"parameter {name.upper()} must be {_type_name(tp)}; got {type(value).__name__} {value!r}"
    )


def _check_ranges(cfg: Config) -> None:
    """Cross-field and range checks that types alone cannot express."""
    d, t = cfg.data, cfg.train
    positive = {
        "image_size": d.image_size,
        "phantom_images": d.phantom_images,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "grad_accum": t.grad_accum,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"parameter {name.upper()} must be > 0; got {value}")
    if d.image_size < 64 or d.image_size % 32:
        raise ConfigError(
            f"parameter IMAGE_SIZE must be a multiple of 32 and at least 64; got {d.image_size}"
        )
    if t.lr <= 0 or t.weight_decay < 0 or t.num_workers < 0 or t.warmup_iters < 0:
        raise ConfigError("LR must be > 0; WEIGHT_DECAY, NUM_WORKERS, WARMUP_ITERS must be >= 0")
    if (t.beta1 is not None and not 0 <= t.beta1 < 1) or not 0 <= t.beta2 < 1:
        raise ConfigError("BETA1 and BETA2 must be in [0, 1)")
    if not 0 <= cfg.model.drop_path < 1:
        raise ConfigError(f"parameter DROP_PATH must be in [0, 1); got {cfg.model.drop_path}")


def load_config(profile: str = "smoke", /, **overrides: Any) -> Config:
    """Build the validated configuration of ``profile`` with flat ``overrides``.

    Override names are the leaf field names, case-insensitive (``epochs`` or ``EPOCHS``).
    ``cxr14_root``/``cxr11_root`` fall back to the ``CXR14_ROOT``/``CXR11_ROOT`` environment
    variables. Raises :class:`ConfigError` naming the allowed values on any bad input.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; allowed profiles: {', '.join(PROFILES)}")
    values: dict[str, Any] = dict(PROFILE_OVERRIDES[profile])
    for key, env in ROOT_ENV_VARS.items():
        if os.environ.get(env):
            values[key] = os.environ[env]
    for raw_name, value in overrides.items():
        name = raw_name.lower()
        if name not in LEAVES:
            allowed = ", ".join(n.upper() for n in PARAMETER_NAMES)
            raise ConfigError(f"unknown parameter {raw_name!r}; allowed parameters: {allowed}")
        values[name] = value
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for name, value in values.items():
        section, f = LEAVES[name]
        sections[section][name] = _check_value(name, f.type, value)
    cfg = Config(profile=profile, **{s: SECTIONS[s](**kw) for s, kw in sections.items()})
    _check_ranges(cfg)
    return cfg


_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def config_from_notebook(namespace: Mapping[str, Any]) -> Config:
    """Validate a notebook's parameters: every ALL-CAPS global is a parameter.

    Call it as ``config = config_from_notebook(globals())`` in the cell after the one tagged
    ``parameters``. A name papermill injected that is not a known parameter is an error
    (papermill itself would only warn and run on with the default).
    """
    return config_and_extras(namespace)[0]


def config_and_extras(namespace: Mapping[str, Any], **extra_types: type) -> tuple[Config, dict]:
    """Like :func:`config_from_notebook`, for notebooks with their own parameters too.

    ``extra_types`` names them and their type, e.g. ``MODELS=list``; their values are checked
    and returned in a dict (``{"MODELS": [...]}``); every other ALL-CAPS name is a config value.
    """
    params = {k: v for k, v in namespace.items() if _PARAM_NAME.match(k)}
    if "PROFILE" not in params:
        raise ConfigError("the notebook's parameters cell must set PROFILE (smoke or paper)")
    profile = params.pop("PROFILE")
    extras = {}
    for name, kind in extra_types.items():
        if name not in params:
            raise ConfigError(f"the notebook's parameters cell must set {name}")
        value = params.pop(name)
        if not isinstance(value, kind):
            raise ConfigError(f"parameter {name} must be {kind.__name__}; got {value!r}")
        extras[name] = value
    return load_config(profile, **params), extras


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a command-line ``name=value`` into a typed override for :func:`load_config`."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like NAME=VALUE (e.g. epochs=3)")
    name, raw = (s.strip() for s in text.split("=", 1))
    if name.lower() not in LEAVES:
        allowed = ", ".join(n.upper() for n in LEAVES)
        raise ConfigError(f"unknown parameter {name!r}; allowed parameters: {allowed}")
    if raw in ("None", "none", "null"):
        return name, None
    tp = LEAVES[name.lower()][1].type
    if tp is bool or (get_origin(tp) is not Literal and bool in get_args(tp)):
        if raw.lower() in ("true", "1", "yes"):
            return name, True
        if raw.lower() in ("false", "0", "no"):
            return name, False
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare string such as a path or a model name
    if isinstance(value, (int, float)) and _accepts(tp, str) and not _accepts(tp, type(value)):
        value = raw
    return name, value


def _accepts(tp: Any, kind: type) -> bool:
    if tp is kind:
        return True
    if get_origin(tp) is Literal:
        return any(isinstance(a, kind) for a in get_args(tp))
    return any(_accepts(a, kind) for a in get_args(tp))
