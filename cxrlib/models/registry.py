"""The model registry: every model of both papers by name, at paper size or a micro size.

``create_model(name, num_classes, size="paper", image_size=224, **overrides)`` builds

* our dual-branch presets -- CTransCNN (Wu et al., KBS 2023), its module ablations, CheXNet
  (Wu et al., PRCV 2023) and its Table 3 variants, and Conformer-tiny (Peng et al., ICCV 2021)
  -- as switch settings of one :class:`~cxrlib.models.dual_branch.DualBranchNet`;
* the papers' baselines from timm, ``pretrained=False`` (both papers train from scratch), with
  the exact timm variant recorded here because the papers do not name theirs.

``size="micro"`` shrinks every model for the smoke profile (the dual-branch micro size is the
reference fixture's: embed 48, 4 heads, depth 6, channel ratio 0.25). All models take the
grey X-ray replicated to 3 channels and return a
:class:`~cxrlib.models.dual_branch.ModelOutput`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from cxrlib.models.dual_branch import ArchConfig, DualBranchNet, ModelOutput

SIZES = ("paper", "micro")
DUAL_MICRO = {"embed_dim": 48, "num_heads": 4, "depth": 6, "channel_ratio": 0.25}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: either a dual-branch switch setting or a timm architecture."""

    name: str
    description: str
    arch: ArchConfig | None = None
    timm_name: str | None = None
    micro_kwargs: dict = field(default_factory=dict)
    takes_image_size: bool = False

    @property
    def family(self) -> str:
        return "dual-branch" if self.arch is not None else "timm"


CTRANSCNN = ArchConfig(
    attention="mmaef", label_decoder="off", conv_block="mbr", coupling="iim", head_fusion="weighted"
)
CONFORMER = ArchConfig(
    attention="softmax",
    label_decoder="off",
    conv_block="bottleneck",
    coupling="fcu",
    head_fusion="sum",
)
#: CheXNet Table 3 (CXR11): Baseline = softmax encoder + bottleneck + no coupling; M1 = +MEMSP
#: without MSP; M2 = Baseline with IB; M3 = M1 + IB; M4 = M2 + IIM; M5 = M3 + IIM; CheXNet = M5
#: + MSP (models.md section 4).
CHEXNET_BASELINE = ArchConfig(
    attention="softmax",
    label_decoder="off",
    conv_block="bottleneck",
    coupling="none",
    head_fusion="sum",
)
CHEXNET_VARIANTS = {
    "chexnet_baseline": ("CheXNet Table 3 Baseline", CHEXNET_BASELINE),
    "chexnet_m1": (
        "Baseline + MEMSP without MSP",
        replace(CHEXNET_BASELINE, label_decoder="memsp"),
    ),
    "chexnet_m2": ("Baseline with the IB conv block", replace(CHEXNET_BASELINE, conv_block="ib")),
    "chexnet_m3": ("M1 + IB", replace(CHEXNET_BASELINE, label_decoder="memsp", conv_block="ib")),
    "chexnet_m4": ("M2 + IIM", replace(CHEXNET_BASELINE, conv_block="ib", coupling="iim")),
    "chexnet_m5": (
        "M3 + IIM",
        replace(CHEXNET_BASELINE, label_decoder="memsp", conv_block="ib", coupling="iim"),
    ),
    "chexnet_tiny": (
        "CheXNet (PRCV 2023): MEMSP with MSP + IB + IIM, heads summed",
        replace(CHEXNET_BASELINE, label_decoder="memsp+msp", conv_block="ib", coupling="iim"),
    ),
}

_RESNET_MICRO = {"layers": (1, 1, 1, 1)}
_VIT_MICRO = {"depth": 2, "embed_dim": 96, "num_heads": 3}

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "ctranscnn_tiny", "CTransCNN (KBS 2023): MMAEF + MBR + IIM, 0.9/0.1 heads", CTRANSCNN
        ),
        ModelSpec(
            "ctranscnn_tiny-no_mmaef",
            "CTransCNN without MMAEF (softmax attention)",
            replace(CTRANSCNN, attention="softmax"),
        ),
        ModelSpec(
            "ctranscnn_tiny-no_mbr",
            "CTransCNN without MBR (bottleneck conv blocks)",
            replace(CTRANSCNN, conv_block="bottleneck"),
        ),
        ModelSpec(
            "ctranscnn_tiny-no_iim",
            "CTransCNN without IIM (Conformer's ungated FCU)",
            replace(CTRANSCNN, coupling="fcu"),
        ),
        ModelSpec(
            "ctranscnn_tiny-no_coupling",
            "CTransCNN without any coupling (independent branches)",
            replace(CTRANSCNN, coupling="none"),
        ),
        ModelSpec(
            "conformer_tiny", "Conformer-tiny (softmax + bottleneck + FCU, heads summed)", CONFORMER
        ),
        *(ModelSpec(name, text, arch) for name, (text, arch) in CHEXNET_VARIANTS.items()),
        ModelSpec("resnet34", "ResNet-34", timm_name="resnet34", micro_kwargs=_RESNET_MICRO),
        ModelSpec("resnet50", "ResNet-50", timm_name="resnet50", micro_kwargs=_RESNET_MICRO),
        ModelSpec(
            "resnext50_32x4d",
            "ResNeXt-50 32x4d",
            timm_name="resnext50_32x4d",
            micro_kwargs=_RESNET_MICRO,
        ),
        ModelSpec("seresnet50", "SE-ResNet-50", timm_name="seresnet50", micro_kwargs=_RESNET_MICRO),
        ModelSpec(
            "vit_base_patch16_224",
            "ViT-B/16",
            timm_name="vit_base_patch16_224",
            micro_kwargs=_VIT_MICRO,
            takes_image_size=True,
        ),
        ModelSpec(
            "swin_tiny_patch4_window7_224",
            "Swin-T",
            timm_name="swin_tiny_patch4_window7_224",
            takes_image_size=True,
            micro_kwargs={
                "depths": (1, 1, 1, 1),
                "embed_dim": 32,
                "num_heads": (1, 2, 4, 8),
                "window_size": 2,
            },
        ),
        ModelSpec(
            "convnext_tiny",
            "ConvNeXt-T",
            timm_name="convnext_tiny",
            micro_kwargs={"depths": (1, 1, 1, 1), "dims": (32, 64, 128, 256)},
        ),
        ModelSpec(
            "repvgg_a2", "RepVGG-A2 (the papers do not say which RepVGG)", timm_name="repvgg_a2"
        ),
        ModelSpec(
            "deit_small_patch16_224",
            "DeiT-S/16",
            timm_name="deit_small_patch16_224",
            micro_kwargs=_VIT_MICRO,
            takes_image_size=True,
        ),
        ModelSpec(
            "densenet121",
            "DenseNet-121 (Rajpurkar et al.'s original CheXNet; added)",
            timm_name="densenet121",
            micro_kwargs={"block_config": (1, 1, 1, 1)},
        ),
    ]
}


class TimmClassifier(nn.Module):
    """A timm model behind the common :class:`ModelOutput` contract (from scratch unless
    ``pretrained``: timm's ImageNet weights)."""

    def __init__(self, timm_name: str, num_classes: int, pretrained: bool = False, **kwargs):
        super().__init__()
        import timm

        self.timm_name = timm_name
        self.num_classes = num_classes
        try:
            self.net = timm.create_model(
                timm_name, pretrained=pretrained, num_classes=num_classes, **kwargs
            )
        except OSError as error:  # no internet, or the hub refused
            raise OSError(
                f"timm could not fetch the ImageNet weights of {timm_name} ({error}); they "
                f"are downloaded once (needs internet) into the Hugging Face cache"
            ) from error

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch B×3×H×W; got {tuple(x.shape)}")
        return ModelOutput(self.net(x))


def list_models(family: str | None = None) -> list[str]:
    """Registered names (optionally only ``dual-branch`` or ``timm``)."""
    return [n for n, s in REGISTRY.items() if family in (None, s.family)]


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    size: str = "paper",
    image_size: int = 224,
    *,
    pretrained: bool | str | os.PathLike = False,
    checkpoint_path: str | os.PathLike | None = None,
    **overrides,
) -> nn.Module:
    """Build the registered model ``name`` (as ``timm.create_model``).

    ``num_classes``: labels (default 14, CXR14's; with a checkpoint, the checkpoint's).
    ``size``: ``paper`` or ``micro`` (smoke runs). ``image_size`` matters only for models with
    absolute position embeddings (ViT, DeiT, Swin). ``pretrained``: ``False`` (from scratch, as
    both papers), a model file (a run's ``best.pt``, :func:`~cxrlib.models.checkpoint.save_model`),
    or ``"imagenet"`` (timm baselines: timm's ImageNet weights, downloaded once).
    ``checkpoint_path`` is the same as a path in ``pretrained``. ``overrides`` replace
    ArchConfig fields of dual-branch models (e.g. ``drop_path=0``) or go to
    ``timm.create_model``. Every model carries ``model.pretrained_cfg`` (input size,
    normalisation, classes, fusion rule).
    """
    from cxrlib.errors import ModelFileError
    from cxrlib.models.checkpoint import load_model, pretrained_cfg

    spec = get_spec(name)
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    is_file = pretrained not in (False, None, True, "imagenet")
    source = checkpoint_path or (pretrained if is_file else None)
    if pretrained is True:
        raise ValueError(
            "pretrained=True is ambiguous here: give a model file (a run's best.pt) or "
            "'imagenet' (timm baselines)"
        )
    if source is not None:
        model = load_model(source, num_classes)
        if model.card["model"] != name:
            raise ModelFileError(f"{source} holds a {model.card['model']!r}, not a {name!r}")
        return model.train()
    num_classes = num_classes or 14
    report = None
    if spec.arch is not None:
        arch = replace(spec.arch, **(DUAL_MICRO if size == "micro" else {}), **overrides)
        model = DualBranchNet(num_classes, arch)
        if pretrained == "imagenet":  # the public ImageNet Conformer-Ti (models/imagenet.py)
            from cxrlib.models.imagenet import conformer_checkpoint, init_from_conformer

            checkpoint = torch.load(conformer_checkpoint(), map_location="cpu", weights_only=True)
            report = init_from_conformer(model, checkpoint)
    else:
        kwargs = dict(spec.micro_kwargs) if size == "micro" else {}
        if spec.takes_image_size:
            kwargs["img_size"] = image_size
        model = TimmClassifier(
            spec.timm_name, num_classes, pretrained=pretrained == "imagenet", **kwargs, **overrides
        )
    model.pretrained_cfg = pretrained_cfg(name, num_classes, image_size)
    model.pretrained_cfg["source"] = "imagenet" if pretrained == "imagenet" else None
    model.pretrained_report = report  # dual-branch from ImageNet: what loaded, what is random
    return model


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Probabilities of the paper's fused prediction rule (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        return model(x).probabilities()
    finally:
        model.train(was_training)
