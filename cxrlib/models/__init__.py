"""Models: one switchable dual-branch network (CTransCNN, CheXNet, Conformer, ablations) and
the papers' timm baselines, behind one registry and one output contract."""

from cxrlib.models.checkpoint import load_model, pretrained_cfg, save_model
from cxrlib.models.dual_branch import ArchConfig, DualBranchNet, ModelOutput
from cxrlib.models.reference import convert_reference_checkpoint
from cxrlib.models.registry import REGISTRY, create_model, get_spec, list_models, predict_proba

__all__ = [
    "REGISTRY",
    "ArchConfig",
    "DualBranchNet",
    "ModelOutput",
    "convert_reference_checkpoint",
    "create_model",
    "get_spec",
    "list_models",
    "load_model",
    "predict_proba",
    "pretrained_cfg",
    "save_model",
]
