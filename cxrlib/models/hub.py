"""Weights people can share: a model folder in the Hugging Face Hub layout.

``save_pretrained(model, folder)`` writes

* ``model.safetensors`` -- the weights (safetensors: loading never unpickles anything);
* ``config.json`` -- timm's keys (``architecture``, ``num_classes``, ``num_features``,
  ``pretrained_cfg``, ``label_names``, ``model_args``), so that ``timm.create_model(
  "local-dir:FOLDER")`` or ``"hf-hub:USER/REPO"`` rebuilds it, beside the kit's card under
  ``"cxrlib"`` (what it was trained on, the recipe, metrics, per-class operating points);
* ``README.md`` -- the model card a Hub page shows.

``from_pretrained(folder or Hub id)`` loads such a folder (downloading ``config.json`` and
``model.safetensors`` through ``huggingface_hub`` for an id); ``push_to_hub(model, repo_id)``
uploads one (needs the network and a token). Both files are what ``timm`` loads too:
``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrlib.core.errors import ModelFileError
from cxrlib.core.fileio import atomic_write, atomic_write_text
from cxrlib.models.files import load_model, model_from_card
from cxrlib.models.registry import get_spec

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it (tuples as lists, tensors and numbers as floats)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return value.item()
    return value


def hub_config(model: nn.Module) -> dict[str, Any]:
    """``config.json`` of ``model``: timm's keys and the kit's card."""
    card = model.card
    cfg = dict(model.pretrained_cfg)
    cfg.pop("source", None)
    spec = get_spec(card["model"])
    if spec.arch is not None:  # the kit's entry point rebuilds it from these
        model_args = {"size": card["size"], "image_size": card["image_size"]}
        model_args |= {**card.get("switches", {}), **card["overrides"]}
    else:  # timm's own entry point: its constructor's arguments
        model_args = dict(card["overrides"])
        if card["size"] == "micro":
            model_args |= {k: v for k, v in spec.micro_kwargs.items() if not k.startswith("byob")}
        if spec.takes_image_size:
            model_args["img_size"] = card["image_size"]
    return _plain(
        {
            "architecture": card["model"],
            "num_classes": cfg["num_classes"],
            "num_features": getattr(model, "num_features", None),
            "label_names": cfg.get("label_names"),
            "pretrained_cfg": cfg,
            "model_args": model_args,
            "cxrlib": {"card": card},
        }
    )


def model_card_text(config: dict[str, Any]) -> str:
    """The README.md of a model folder: what the model is and what it was trained on."""
    card = config["cxrlib"]["card"]
    data = card.get("data") or {}
    phantom = data.get("phantom")
    lines = [
        "---",
        "library_name: timm",
        "license: mit",
        "tags: [image-classification, chest-x-ray, multi-label, cxrlib]",
        "---",
        f"# {card['model']}",
        "",
        f"A `{card['model']}` ({card['size']} size, {card['image_size']} px input) made with "
        "cxrlib, the replication kit of CTransCNN (Wu et al., Knowledge-Based Systems "
        "281:111030, 2023) and the hybrid CheXNet (Wu et al., PRCV 2023).",
        "",
    ]
    if phantom:
        lines += ["**Trained on phantom data: its numbers mean nothing about X-rays.**", ""]
    if data:
        lines += [f"Trained on: {data.get('dataset')} ({data.get('split')} split).", ""]
    test = (card.get("metrics") or {}).get("test_mean_auc")
    if test is not None:
        lines += [f"Test mean AUC: {test}.", ""]
    lines += [
        f"Classes: {', '.join(config['label_names'] or []) or 'not named'}.",
        "",
        "```python",
        "import cxrlib",
        "model = cxrlib.from_pretrained(FOLDER_OR_HUB_ID)  # or timm.create_model('hf-hub:...')",
        "```",
        "",
    ]
    return "\n".join(lines)


def save_pretrained(model: nn.Module, folder: str | os.PathLike) -> Path:
    """Write ``model`` (one of :func:`cxrlib.create_model` or :func:`cxrlib.load_model`) to
    ``folder`` in the Hub layout; returns the folder. Each file is written whole or not at
    all (a temporary file, then renamed)."""
    from safetensors.torch import save  # here: only saving and loading need it

    if not hasattr(model, "card"):
        raise ModelFileError(
            "save_pretrained takes a model of cxrlib.create_model or cxrlib.load_model (it "
            "needs the card they attach)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(folder / WEIGHTS_NAME, "wb") as handle:
        handle.write(save(state, metadata={"format": "pt"}))
    config = hub_config(model)
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    atomic_write_text(folder / CARD_NAME, model_card_text(config))
    return folder


def _hub_files(repo_id: str, revision: str | None, cache_dir) -> tuple[Path, Path]:
    """``config.json`` and ``model.safetensors`` of a Hub repository (downloaded, cached)."""
    try:
        from huggingface_hub import hf_hub_download  # here: only a Hub id needs it
    except ImportError as error:  # preinstalled on Colab and Kaggle; a core dependency here
        raise ModelFileError(
            "loading from the Hub needs huggingface_hub: pip install huggingface_hub"
        ) from error
    options = {"revision": revision, "cache_dir": cache_dir}
    config = hf_hub_download(repo_id, CONFIG_NAME, **options)
    return Path(config), Path(hf_hub_download(repo_id, WEIGHTS_NAME, **options))


def read_folder_config(config_path: Path) -> dict[str, Any]:
    """The kit's card in a ``config.json``, or a ModelFileError naming what is wrong."""
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{config_path}: not a readable config.json ({error})") from error
    card = (config.get("cxrlib") or {}).get("card")
    if card is None:
        raise ModelFileError(
            f"{config_path} has no cxrlib card: it was not written by cxrlib's "
            f"save_pretrained (a timm model folder loads with timm.create_model('local-dir:...'))"
        )
    return card


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no unpickling)."""
    from safetensors.torch import load_file  # here: only loading needs it

    if not path.is_file():
        raise ModelFileError(f"{path}: no such weights file")
    return load_file(str(path), device="cpu")


def from_pretrained(
    source: str | os.PathLike,
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """The model of a :func:`save_pretrained` folder, its ``model.safetensors`` file, or a Hub
    repository id (``user/name``), in eval mode; ``num_classes``/``kwargs`` as in
    :func:`cxrlib.create_model`."""
    path = Path(source)
    if path.is_dir():
        config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
    elif path.suffix == ".safetensors":
        config_path, weights_path = path.with_name(CONFIG_NAME), path
    elif path.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        raise ModelFileError(
            f"{source}: give a folder written by save_pretrained, its model.safetensors, or a "
            f"Hub id such as user/model"
        )
    else:
        config_path, weights_path = _hub_files(str(source), revision, cache_dir)
    if not config_path.is_file():
        raise ModelFileError(
            f"{config_path} is missing: the weights need the config.json written beside them "
            f"by save_pretrained"
        )
    card = read_folder_config(config_path)
    model = model_from_card(
        card, load_safetensors(weights_path), weights_path, num_classes, **kwargs
    )
    return model.to(device)


def load_weights_source(
    source: str, num_classes: int | None = None, *, cache_dir=None, **kwargs: Any
) -> nn.Module:
    """The model of any weights ``create_model`` is pointed at: a ``.pt`` model file (a
    run's ``best.pt``), a :func:`save_pretrained` folder or its safetensors file, a Hub id."""
    path = Path(source)
    if path.suffix in (".pt", ".pth") or (path.is_file() and path.suffix != ".safetensors"):
        return load_model(path, num_classes, **kwargs)
    return from_pretrained(source, num_classes=num_classes, cache_dir=cache_dir, **kwargs)


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = True,
    commit_message: str = "Upload a cxrlib model",
) -> str:
    """Upload ``model`` (the :func:`save_pretrained` files) to the Hub repository ``repo_id``,
    made if missing (private by default); returns the commit's URL. Needs the network and a
    token with write access (``huggingface-cli login`` or ``token=``)."""
    from huggingface_hub import HfApi  # here: only uploading needs it

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(model, folder)
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
