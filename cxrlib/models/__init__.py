"""The models layer: one switchable dual-branch network (CTransCNN, CheXNet, Conformer and every
ablation) and the papers' timm baselines, behind one registry and one output contract.

Owns the building blocks (:mod:`~cxrlib.models.blocks`, :mod:`~cxrlib.models.attention`), the
network (:mod:`~cxrlib.models.dual_branch`), the registry of every model as switch settings
(:mod:`~cxrlib.models.registry`), converters of the authors' and mmpretrain's weights
(:mod:`~cxrlib.models.reference`, :mod:`~cxrlib.models.imagenet`), model files that describe
themselves (:mod:`~cxrlib.models.files`), ``create_model`` (:mod:`~cxrlib.models.factory`)
and the tables of notebook 02 (:mod:`~cxrlib.models.summary`).

The dual-branch models are registered with timm (:mod:`~cxrlib.models.timm_names`) when timm
is imported -- ``import cxrlib`` arranges it -- so that building or loading one of them never
loads timm and torchvision, two seconds of a ``predict``'s start.

Imports: core and data (normalisation constants); never evaluate, train or anything above.
"""

from cxrlib.models.dual_branch import (
    ArchConfig,
    DualBranchNet,
    ModelOutput,
    TrainingHeads,
    forward_heads,
)
from cxrlib.models.factory import create_model, predict_proba, reference_model
from cxrlib.models.files import load_model, pretrained_cfg, save_model
from cxrlib.models.hub import from_pretrained, push_to_hub, save_pretrained
from cxrlib.models.reference import convert_reference_checkpoint
from cxrlib.models.registry import REGISTRY, build_model, check_model, get_spec, list_models

__all__ = [
    "REGISTRY",
    "ArchConfig",
    "DualBranchNet",
    "ModelOutput",
    "TrainingHeads",
    "build_model",
    "check_model",
    "convert_reference_checkpoint",
    "create_model",
    "forward_heads",
    "from_pretrained",
    "get_spec",
    "list_models",
    "load_model",
    "predict_proba",
    "pretrained_cfg",
    "push_to_hub",
    "reference_model",
    "save_model",
    "save_pretrained",
]
