"""The models layer: one switchable dual-branch network (CTransCNN, CheXNet, Conformer and every
ablation) and the papers' timm baselines, behind one registry and one output contract.

Owns the building blocks (:mod:`~cxrlib.models.blocks`, :mod:`~cxrlib.models.attention`), the
network (:mod:`~cxrlib.models.dual_branch`), the registry of every model as switch settings
(:mod:`~cxrlib.models.registry`), converters of the authors' and mmpretrain's weights
(:mod:`~cxrlib.models.reference`, :mod:`~cxrlib.models.imagenet`), model files that describe
themselves (:mod:`~cxrlib.models.files`), ``create_model`` (:mod:`~cxrlib.models.factory`)
and the tables of notebook 02 (:mod:`~cxrlib.models.summary`).

Imports: core and data (normalisation constants); never evaluate, train or anything above.
"""

from cxrlib.models.dual_branch import ArchConfig, DualBranchNet, ModelOutput
from cxrlib.models.factory import create_model, predict_proba, reference_model
from cxrlib.models.files import load_model, pretrained_cfg, save_model
from cxrlib.models.reference import convert_reference_checkpoint
from cxrlib.models.registry import REGISTRY, build_model, check_model, get_spec, list_models

__all__ = [
    "REGISTRY",
    "ArchConfig",
    "DualBranchNet",
    "ModelOutput",
    "build_model",
    "check_model",
    "convert_reference_checkpoint",
    "create_model",
    "get_spec",
    "list_models",
    "load_model",
    "predict_proba",
    "pretrained_cfg",
    "reference_model",
    "save_model",
]
