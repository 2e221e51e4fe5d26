"""cxrlib: the helper package behind the CTransCNN / CheXNet replication notebooks.

Papers replicated:
* X. Wu et al., "CTransCNN: Combining transformer and CNN in multilabel medical image
  classification", Knowledge-Based Systems 281:111030 (2023).
* X. Wu et al., "CheXNet: Combing Transformer and CNN for Thorax Disease Diagnosis from
  Chest X-ray Images", PRCV 2023, LNCS 14437, pp. 73-84.

Datasets: NIH ChestX-ray14 (Wang et al., CVPR 2017) and RANZCR CLiP (Kaggle, 2021).

The package is a house of layers, one sub-package each, listed here from the ground up
(:data:`LAYERS`, the one place of this order): a module may import its own layer and the layers
below it, never one above, and no import circle exists (``tests/test_architecture.py``).
"""

from __future__ import annotations

import logging as _logging
import sys as _sys

__version__ = "0.1.0"

#: The layers of the house, from the ground up: each sub-package of cxrlib is one of them.
LAYERS = (
    "core",  # validated config and its workspace, the authors' recipe, errors, clock, files
    "data",  # dataset definitions, readers, split files, phantom, image cache, batches
    "models",  # networks, the registry, converters, model files
    "evaluate",  # metrics, statistics, Grad-CAM maps and localisation
    "train",  # a run: its folder, record and checkpoints; the loop; device/precision/DDP
    "paper",  # the papers' items and outputs, experiments, tables, figures, report
    "app",  # entry points: the notebooks' module, the session, python -m cxrlib
)

#: Progress lines (a run's start, each epoch, pauses, the result) go through ``logging`` to
#: the console -- the notebook's output, or the terminal -- as well as to the run's train.log.
#: Configure the ``cxrlib`` logger to send them elsewhere.
_LOGGER = _logging.getLogger("cxrlib")
if not _LOGGER.handlers:
    _handler = _logging.StreamHandler(_sys.stdout)
    _handler.setFormatter(_logging.Formatter("%(message)s"))
    _LOGGER.addHandler(_handler)
    _LOGGER.setLevel(_logging.INFO)
    _LOGGER.propagate = False


#: The public API at the top level, imported on first use (``import cxrlib`` stays light:
#: no torch until a model is asked for): name -> (module, attribute).
_PUBLIC = {
    "create_model": ("cxrlib.models.factory", "create_model"),
    "list_models": ("cxrlib.models.registry", "list_models"),
    "save_pretrained": ("cxrlib.models.hub", "save_pretrained"),
    "from_pretrained": ("cxrlib.models.hub", "from_pretrained"),
    "push_to_hub": ("cxrlib.models.hub", "push_to_hub"),
    "forward_heads": ("cxrlib.models.dual_branch", "forward_heads"),
    "cam_target_layers": ("cxrlib.models.cam", "cam_target_layers"),
    "cam_reshape_transform": ("cxrlib.models.cam", "cam_reshape_transform"),
}


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib  # here: only a first use of a public name needs it

        module, attribute = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cxrlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


def load_model(path, num_classes=None, device="cpu"):
    """A trained model from its file (a run's ``best.pt``) alone, or from its run folder:
    see :func:`cxrlib.train.model.load_model_file`."""
    from cxrlib.train.model import load_model_file  # here: `import cxrlib` stays light (no torch)

    return load_model_file(path, num_classes, device)


class _RegisterWithTimm:
    """A meta-path finder that, once timm is imported, registers the kit's architectures with
    it (:mod:`cxrlib.models.timm_names`), so that ``timm.create_model("ctranscnn_tiny")``
    works after ``import cxrlib`` without this import loading torch and timm itself."""

    def find_spec(self, name, path=None, target=None):
        if name != "timm":
            return None
        import importlib.machinery  # here: only when an import is looked up

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            _sys.meta_path[:] = [f for f in _sys.meta_path if f is not self]
            models = _sys.modules.get("cxrlib.models")
            if models is not None and getattr(models.__spec__, "_initializing", False):
                return  # timm came with cxrlib.models, which registers at its end
            import cxrlib.models.timm_names  # noqa: F401 -- registers on import

        spec.loader.exec_module = exec_and_register
        return spec


def _register_with_timm() -> None:
    if "timm" in _sys.modules:
        import cxrlib.models.timm_names  # noqa: F401 -- registers on import
    elif not any(isinstance(f, _RegisterWithTimm) for f in _sys.meta_path):
        _sys.meta_path.insert(0, _RegisterWithTimm())


_register_with_timm()
