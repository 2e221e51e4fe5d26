"""cxrlib: the helper package behind the CTransCNN / CheXNet replication notebooks.

Papers replicated:
* X. Wu et al., "CTransCNN: Combining transformer and CNN in multilabel medical image
  classification", Knowledge-Based Systems 281:111030 (2023).
* X. Wu et al., "CheXNet: Combing Transformer and CNN for Thorax Disease Diagnosis from
  Chest X-ray Images", PRCV 2023, LNCS 14437, pp. 73-84.

Datasets: NIH ChestX-ray14 (Wang et al., CVPR 2017) and RANZCR CLiP (Kaggle, 2021).
"""

__version__ = "0.1.0"


import logging as _logging
import sys as _sys

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
    """A trained model from its file (a run's ``best.pt``) alone: see
    :func:`cxrlib.models.checkpoint.load_model`."""
    from cxrlib.models.checkpoint import load_model as _load

    return _load(path, num_classes, device)
