"""Models: one switchable dual-branch network (CTransCNN, CheXNet, Conformer, ablations) and
the papers' timm baselines, behind one registry and one output contract."""

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
    "predict_proba",
]
