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


def load_model(path, num_classes=None, device="cpu"):
    """A trained model from its file (a run's ``best.pt``) alone, or from its run folder:
    see :func:`cxrlib.train.model.load_model_file`."""
    from cxrlib.train.model import load_model_file  # here: `import cxrlib` stays light (no torch)

    return load_model_file(path, num_classes, device)
