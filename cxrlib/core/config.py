"""Profiles: the validated configuration that every notebook and command starts from.

A profile is plain data (frozen dataclasses). Two profiles exist:

* ``smoke`` -- phantom data, a tiny model at a small image size, a couple of epochs: the whole
  pipeline runs in minutes on a 2-core CPU. Its numbers are *phantom results*.
* ``paper`` -- the papers' recipe on the real datasets (Wu et al., KBS 2023, CTransCNN;
  Wu et al., PRCV 2023, CheXNet): 224 px, batch 32, AdamW, 300 epochs.

No profile given (``PROFILE = None`` in a notebook, ``./run_all.sh`` without ``--profile``):
``paper`` when real data is found, otherwise ``smoke`` -- finding data is the data layer's job
(:func:`cxrlib.data.roots.auto_profile`), so this module takes a profile by name.

Every leaf field has a unique name, so one flat namespace of overrides serves everywhere:
``load_config("smoke", epochs=3)``, ``python -m cxrlib ... --set epochs=3`` and a notebook's
``EPOCHS = 3`` in its ``parameters`` cell all mean the same. Unknown names, wrong types and
values outside the allowed set are errors that list what is allowed -- never a silent
papermill warning. That ``MODEL`` names a registered model is checked by the model registry
(:func:`cxrlib.models.registry.check_model`) wherever a configuration enters: a notebook, a
command, the start of a run -- before any data work.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from cxrlib.core.errors import UserError
from cxrlib.core.recipe import RECIPE
from cxrlib.core.recipe import recipe_value as _r
from cxrlib.core.workspace import Workspace

PROFILES = ("smoke", "paper")
DataSource = Literal["auto", "phantom", "real"]
SplitName = Literal["paper", "patient", "official"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ModelSize = Literal["paper", "micro"]
LossHeads = Literal["each", "fused", "each+fused"]
Pretrained = Literal["none", "imagenet"]
SeedModels = Literal["main", "main+strongest"]
TestCheckpoint = Literal["best", "last"]


class ConfigError(UserError, ValueError):
    """A profile, parameter name or value that is not allowed; the message says what is."""


def _param(default: Any, help: str) -> Any:
    """A field with its description: the one text of the configuration reference
    (:func:`reference`: the docs' configuration page, ``python -m cxrlib config --reference``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the images come from and how they are split and cached."""

    data_source: DataSource = _param(
        "auto",
        "real (the Kaggle data; an error where it is absent), phantom (synthetic), or auto: per "
        "dataset the real data where it is found (DATA_ROOTS, a Kaggle input, a finished "
        "download), else the phantom",
    )
    split: SplitName = _param(
        "paper",
        "paper: the authors' split files; patient: ours, patient-disjoint (drawn with "
        "SPLIT_SEED); official: the publisher's lists where it has them (NIH's "
        "train_val_list/test_list for CXR14)",
    )
    split_seed: int = _param(
        0, "draws the patient-disjoint split; fixed, so that every seed shares one test set"
    )
    image_size: int = _param(_r("image_size"), "pixels per side of the square input")
    phantom_images: int = _param(600, "images per phantom dataset")
    allow_missing_images: bool = _param(
        False, "train on the images present when some are missing; every table says so"
    )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Which registered model to build (see ``cxrlib.models``)."""

    model: str = _param("ctranscnn_tiny", "a registered model (cxrlib.list_models())")
    model_size: ModelSize = _param(
        "paper", "paper: the papers' width and depth (Conformer-tiny); micro: the smoke tests'"
    )
    drop_path: float = _param(_r("drop_path"), "stochastic depth rate")
    pretrained: Pretrained = _param(
        "none",
        "initial weights: none (from scratch, as both papers) or imagenet (ours: timm's "
        "ImageNet weights, the public Conformer-Ti for the dual-branch models); an ImageNet run "
        "has its own run folder (<model>+imagenet) and never stands beside a published number",
    )


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The optimisation recipe (the authors' released configs, :mod:`cxrlib.core.recipe`)."""

    epochs: int = _param(_r("epochs"), "training epochs")
    batch_size: int = _param(
        _r("batch_size"),
        "the GLOBAL batch of one optimiser step, split over GPUs and GRAD_ACCUM micro-batches",
    )
    lr: float = _param(_r("lr"), "AdamW's peak learning rate")
    weight_decay: float = _param(
        _r("weight_decay"),
        "AdamW weight decay (none on norms, biases, the cls token and the label embeddings)",
    )
    beta1: float = _param(_r("beta1"), "AdamW beta1 (0.5 on both datasets in the authors' configs)")
    beta2: float = _param(_r("beta2"), "AdamW beta2")
    adam_eps: float = _param(_r("adam_eps"), "AdamW epsilon")
    loss_heads: LossHeads = _param(
        "each", "the loss on each head (CTransCNN's recipe), on the fused logits, or both"
    )
    warmup_iters: int = _param(_r("warmup_iters"), "linear warm-up length in optimiser steps")
    warmup_ratio: float = _param(_r("warmup_ratio"), "the warm-up starts at this fraction of LR")
    min_lr_ratio: float = _param(
        _r("min_lr_ratio"), "the cosine schedule ends at this fraction of LR"
    )
    num_workers: int | None = _param(
        None,
        "DataLoader worker processes; None: chosen for the machine (0 on a CPU, up to 4 on a GPU)",
    )
    precision: Precision = _param(
        "auto",
        "auto: bf16 where native (GPUs from Ampere on, CPUs with AVX-512 BF16 or AMX), fp16 "
        "with a scaler on other GPUs, fp32 on other CPUs",
    )
    channels_last: bool = _param(
        True, "NHWC memory format on a GPU (ours: faster convolutions; a CPU runs NCHW)"
    )
    compile: bool = _param(False, "torch.compile the model (ours; pays only on long runs on a CPU)")
    grad_accum: int | None = _param(
        None,
        "micro-batches per optimiser step (the global batch stays BATCH_SIZE); None: 1 on a CPU, "
        "on a GPU the fewest with which a micro-batch fits its memory (measured before training)",
    )
    checkpoint_minutes: float = _param(
        10.0, "also checkpoint mid-epoch this often, in minutes (sessions die)"
    )
    seed: int = _param(0, "initialisation, data order, flips and stochastic depth")
    seeds: int = _param(
        3,
        "seeds per model (SEED, SEED+1, ...) for the models SEED_MODELS names, the others train "
        "once; tables give mean ± sd over seeds",
    )
    seed_models: SeedModels = _param(
        "main+strongest",
        "main: CTransCNN and CheXNet; main+strongest: also the two baselines with the best "
        "published mean AUC",
    )
    test_checkpoint: TestCheckpoint = _param(
        "best",
        "the weights the test split scores: the epoch with the best validation mean AUC (best) or "
        "the final epoch (last); both are scored and recorded, this one is the run's result",
    )


@dataclass(frozen=True)
class Config:
    """A resolved, validated profile and the workspace it reads and writes. Build it with
    :func:`load_config`.

    ``workspace`` (:class:`~cxrlib.core.workspace.Workspace`) says where the files are; it is
    not part of what a run records (:meth:`flat`), so a run resumes wherever it is moved."""

    profile: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    workspace: Workspace = field(default_factory=Workspace.at, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-serialisable nested dict (the workspace's folders too)."""
        out = {"profile": self.profile}
        out |= {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}
        return out | {"workspace": self.workspace.describe()}

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
        return load_config(self.profile, workspace=self.workspace, **values)

    def in_workspace(self, workspace: Workspace) -> Config:
        """The same configuration reading and writing ``workspace``."""
        return dataclasses.replace(self, workspace=workspace)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}

#: Per-profile departures from the dataclass defaults (which are the paper recipe).
PROFILE_OVERRIDES: dict[str, dict[str, Any]] = {
    "paper": {"data_source": "real"},
    "smoke": {
        "data_source": "auto",
        "model_size": "micro",
        "image_size": 64,
        # 800 phantom images and 5 epochs at 4e-3: the least with which the micro hybrids
        # learn clearly (test mean AUC 62-70 on both phantoms, as 8 epochs at 2e-3 gave;
        # ~15-25 s per run here)
        "phantom_images": 800,
        "epochs": 5,
        "lr": 4e-3,
        "batch_size": 16,
        "warmup_iters": 10,
        "num_workers": 0,
        "precision": "fp32",
        "channels_last": False,
        "checkpoint_minutes": 1.0,
        "seeds": 2,  # two seeds of CTransCNN and CheXNet: mean ± sd on phantoms in minutes
        "seed_models": "main",
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


#: The range of every numeric parameter: a test of the value and the words that say what is
#: allowed (the error message and the configuration reference both read them).
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "image_size": (lambda v: v >= 64 and v % 32 == 0, "a multiple of 32 and at least 64"),
    "phantom_images": (lambda v: v >= 30, ">= 30"),
    "split_seed": (lambda v: v >= 0, ">= 0"),
    "drop_path": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "epochs": (lambda v: v > 0, "> 0"),
    "batch_size": (lambda v: v > 0, "> 0"),
    "grad_accum": (lambda v: v is None or v > 0, "> 0 or None"),
    "lr": (lambda v: v > 0, "> 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_eps": (lambda v: v > 0, "> 0"),
    "warmup_iters": (lambda v: v >= 0, ">= 0"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "min_lr_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "num_workers": (lambda v: v is None or v >= 0, ">= 0 or None"),
    "checkpoint_minutes": (lambda v: v > 0, "> 0"),
    "seed": (lambda v: v >= 0, ">= 0"),
    "seeds": (lambda v: 1 <= v <= 20, "in [1, 20]"),
}


def _check_ranges(cfg: Config) -> None:
    """Cross-field and range checks that types alone cannot express (every numeric field)."""
    flat = cfg.flat()
    for name, (ok, allowed) in RANGES.items():
        value = flat[name]
        if not ok(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise ConfigError(f"parameter {name.upper()} must be {allowed}; got {value!r}")
    t, m = cfg.train, cfg.model
    if t.grad_accum is not None and t.batch_size % t.grad_accum:
        raise ConfigError(
            f"BATCH_SIZE {t.batch_size} (the global batch) must be divisible by GRAD_ACCUM "
            f"{t.grad_accum}; each optimiser step sums GRAD_ACCUM micro-batches"
        )
    if m.pretrained == "imagenet" and m.model_size != "paper":
        raise ConfigError(
            f"PRETRAINED 'imagenet' needs MODEL_SIZE 'paper'; got {m.model_size!r}: ImageNet "
            "weights exist for the paper-size networks only (the smoke profile's micro models "
            "have none). Set MODEL_SIZE='paper' too, or PRETRAINED='none'."
        )


def _unknown(name: str, allowed: tuple[str, ...]) -> str:
    """The message for an unknown parameter name (a data root says where roots go now)."""
    hint = ""
    if name.lower().endswith("_root"):
        dataset = name.lower()[: -len("_root")]
        hint = (
            f" (a dataset's folder is part of the workspace: DATA_ROOTS = {{'{dataset}': DIR}} in "
            f"a notebook, --data-root {dataset}=DIR on the command line)"
        )
    if name.lower() in ("runs_dir", "results_dir", "data_dir", "data_roots"):
        option = name.lower().replace("_", "-").replace("roots", "root NAME=DIR")
        hint = (
            f" (a folder is part of the workspace, not of the configuration: {name.upper()} in a "
            f"notebook's parameters cell, --{option} on the command line and in ./run_all.sh)"
        )
    listed = ", ".join(n.upper() for n in allowed)
    return f"unknown parameter {name!r}{hint}; allowed parameters: {listed}"


def load_config(
    profile: str = "smoke", /, *, workspace: Workspace | None = None, **overrides: Any
) -> Config:
    """Build the validated configuration of ``profile`` with flat ``overrides``.

    Override names are the leaf field names, case-insensitive (``epochs`` or ``EPOCHS``).
    ``workspace``: where the files are; None reads it from the environment
    (:meth:`~cxrlib.core.workspace.Workspace.from_env`, the defaults where nothing is set) --
    the entry points pass the one their session set. ``profile`` None is resolved by the data
    layer (:func:`cxrlib.data.roots.auto_profile`). Raises :class:`ConfigError` naming the
    allowed values on any bad input.
    """
    if profile is None:
        raise ConfigError(
            "load_config needs a profile (smoke or paper); for 'paper where real data is found, "
            "else smoke' use load_config(cxrlib.data.roots.auto_profile(), ...)"
        )
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; allowed profiles: {', '.join(PROFILES)}")
    values: dict[str, Any] = dict(PROFILE_OVERRIDES[profile])
    given = set()
    for raw_name, value in overrides.items():
        name = raw_name.lower()
        if name not in LEAVES:
            raise ConfigError(_unknown(raw_name, PARAMETER_NAMES))
        if name in given:
            raise ConfigError(f"parameter {name.upper()} is given twice")
        given.add(name)
        values[name] = value
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for name, value in values.items():
        section, f = LEAVES[name]
        sections[section][name] = _check_value(name, f.type, value)
    cfg = Config(
        profile=profile,
        **{s: SECTIONS[s](**kw) for s, kw in sections.items()},
        workspace=workspace if workspace is not None else Workspace.from_env(),
    )
    _check_ranges(cfg)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a command-line ``name=value`` into a typed override for :func:`load_config`."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like NAME=VALUE (e.g. epochs=3)")
    name, raw = (s.strip() for s in text.split("=", 1))
    if name.lower() not in LEAVES:
        raise ConfigError(_unknown(name, tuple(LEAVES)))
    tp = LEAVES[name.lower()][1].type
    if get_origin(tp) is Literal and raw in get_args(tp):
        return name, raw  # a choice, even one spelled "none" (PRETRAINED=none)
    if raw in ("None", "none", "null"):
        return name, None
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


def reference() -> list[dict[str, str]]:
    """Every parameter as the configuration reference shows it: its name, section, what it
    takes (type, choices, range), its value in each profile, where the papers' value comes
    from, and its description -- all read from the definitions above, never retyped."""
    profiles = {p: load_config(p, workspace=Workspace.at()).flat() for p in PROFILES}
    rows = []
    for name, (section, f) in LEAVES.items():
        takes = _type_name(f.type)
        if name in RANGES:
            takes += f", {RANGES[name][1]}"
        rows.append(
            {
                "name": name.upper(),
                "section": section,
                "takes": takes,
                **{p: repr(profiles[p][name]) for p in PROFILES},
                "source": RECIPE[name].source("cxr14") if name in RECIPE else "",
                "help": f.metadata.get("help", ""),
            }
        )
    return rows
