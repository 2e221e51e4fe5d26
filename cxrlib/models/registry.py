"""The model registry: every model of both papers by name, at paper size or a micro size.

:func:`build_model` (``name, num_classes, size="paper", image_size=224, **overrides``) builds

* our dual-branch presets -- CTransCNN (Wu et al., KBS 2023), its module ablations, CheXNet
  (Wu et al., PRCV 2023) and its Table 3 variants, and Conformer-tiny (Peng et al., ICCV 2021)
  -- as switch settings of one :class:`~cxrlib.models.dual_branch.DualBranchNet`;
* the papers' baselines from timm, ``pretrained=False`` (both papers train from scratch), with
  the exact timm variant recorded here because the papers do not name theirs.

``size="micro"`` shrinks every model for the smoke profile, keeping what tells the models apart
(block types, relative widths and head counts; e.g. ViT-B stays twice DeiT-S's width): the
dual-branch micro size is the reference fixture's (embed 48, 4 heads, depth 6, channel ratio
0.25); the CNN baselines keep one block per stage at a quarter of their widths. All models
take the grey X-ray replicated to 3 channels (``in_chans=1``: grey as it is) and return the
fused logits, as timm models do (every head: :func:`~cxrlib.models.dual_branch.forward_heads`).
Model files and ``create_model`` (as timm's) are :mod:`cxrlib.models.files` and
:mod:`cxrlib.models.factory`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, replace

import torch
from torch import nn

from cxrlib.core.config import ConfigError
from cxrlib.core.workspace import Workspace
from cxrlib.models.dual_branch import SWITCHES, ArchConfig, DualBranchNet, check_image_size
from cxrlib.models.imagenet import conformer_checkpoint, init_from_conformer

SIZES = ("paper", "micro")
DUAL_MICRO = {"embed_dim": 48, "num_heads": 4, "depth": 6, "channel_ratio": 0.25}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: either a dual-branch switch setting or a timm architecture."""

    name: str
    description: str
    arch: ArchConfig | None = None
    _: KW_ONLY
    timm_name: str | None = None
    micro_kwargs: dict = field(default_factory=dict)
    takes_image_size: bool = False
    #: the ablation study whose table lists it ("ctranscnn" or "chexnet"; CheXNet's Table 3)
    study: str | None = None
    #: the model it is an ablation of (compared with; differs in one switch)
    ablation_of: str | None = None

    @property
    def family(self) -> str:
        return "dual-branch" if self.arch is not None else "timm"


CTRANSCNN = ArchConfig(
    attention="mmaef", label_decoder="off", conv_block="mbr", coupling="iim", head_fusion="weighted"
)
#: CTransCNN without each of its modules (``-no_<module>``): the switch setting of each.
CTRANSCNN_ABLATIONS = {
    "mmaef": ("CTransCNN without MMAEF (softmax attention)", {"attention": "softmax"}),
    "mbr": ("CTransCNN without MBR (bottleneck conv blocks)", {"conv_block": "bottleneck"}),
    "iim": ("CTransCNN without IIM (Conformer's ungated FCU)", {"coupling": "fcu"}),
    "coupling": ("CTransCNN without any coupling (independent branches)", {"coupling": "none"}),
}
CONFORMER = ArchConfig(
    attention="softmax",
    label_decoder="off",
    conv_block="bottleneck",
    coupling="fcu",
    head_fusion="sum",
    upsample="nearest",  # Conformer's FCUUp: F.interpolate's default mode
)
#: CheXNet Table 3 (CXR11): Baseline = softmax encoder + bottleneck + no coupling; M1 = +MEMSP
#: without MSP; M2 = Baseline with IB; M3 = M1 + IB; M4 = M2 + IIM; M5 = M3 + IIM; CheXNet = M5
#: + MSP (models.md section 4). Conformer's up-sampling (nearest) where the model is Conformer's
#: (Baseline-M3 have no coupling: it has nothing to up-sample there); the IIM coupling, taken
#: from the authors' CTransCNN code, up-samples bilinearly (M4, M5, CheXNet).
CHEXNET_BASELINE = ArchConfig(
    attention="softmax",
    label_decoder="off",
    conv_block="bottleneck",
    coupling="none",
    head_fusion="sum",
    upsample="nearest",
)
IIM = {"coupling": "iim", "upsample": "bilinear"}
#: Table 3's chain: the model each variant is compared with (it adds one module to it).
CHEXNET_TABLE3 = {
    "chexnet_baseline": "chexnet_m1",
    "chexnet_m1": "chexnet_m3",
    "chexnet_m2": "chexnet_m4",
    "chexnet_m3": "chexnet_m5",
    "chexnet_m4": "chexnet_m5",
    "chexnet_m5": "chexnet_tiny",
    "chexnet_tiny": None,
}
CHEXNET_VARIANTS = {
    "chexnet_baseline": ("CheXNet Table 3 Baseline", CHEXNET_BASELINE),
    "chexnet_m1": (
        "Baseline + MEMSP without MSP",
        replace(CHEXNET_BASELINE, label_decoder="memsp"),
    ),
    "chexnet_m2": ("Baseline with the IB conv block", replace(CHEXNET_BASELINE, conv_block="ib")),
    "chexnet_m3": ("M1 + IB", replace(CHEXNET_BASELINE, label_decoder="memsp", conv_block="ib")),
    "chexnet_m4": ("M2 + IIM", replace(CHEXNET_BASELINE, conv_block="ib", **IIM)),
    "chexnet_m5": (
        "M3 + IIM",
        replace(CHEXNET_BASELINE, label_decoder="memsp", conv_block="ib", **IIM),
    ),
    "chexnet_tiny": (
        "CheXNet (PRCV 2023): MEMSP with MSP + IB + IIM, heads summed",
        replace(CHEXNET_BASELINE, label_decoder="memsp+msp", conv_block="ib", **IIM),
    ),
}
#: The other reading of CheXNet's MEMSP: it *replaces* the Transformer (the paper's words for
#: M1), so the patch-token layers are off and the label decoder's cross-attention reads the
#: CNN branch's maps ("conv-extracted image features"); for every model built on M1.
REPLACE_READING = {"token_stream": "off", "label_kv": "conv"}
CHEXNET_REPLACE = {
    f"{name}-replace": (
        f"{text}; MEMSP replaces the token stream",
        replace(arch, **REPLACE_READING),
    )
    for name, (text, arch) in CHEXNET_VARIANTS.items()
    if arch.label_decoder != "off"
}

#: One block per stage at a quarter of the widths (the block type -- basic, bottleneck,
#: grouped, squeeze-excitation -- stays what tells them apart).
_RESNET_MICRO = {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128), "stem_width": 16}
#: ViT-B/16 (768 wide, 12 heads) and DeiT-S/16 (384 wide, 6 heads) at an eighth of their width
#: and two layers: the same head size (8), ViT twice DeiT's width, as at full size.
_VIT_MICRO = {"depth": 2, "embed_dim": 96, "num_heads": 12}
_DEIT_MICRO = {"depth": 2, "embed_dim": 48, "num_heads": 6}

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "ctranscnn_tiny",
            "CTransCNN (KBS 2023): MMAEF + MBR + IIM, 0.9/0.1 heads",
            CTRANSCNN,
            study="ctranscnn",
        ),
        *(
            ModelSpec(
                f"ctranscnn_tiny-no_{module}",
                text,
                replace(CTRANSCNN, **switch),
                study="ctranscnn",
                ablation_of="ctranscnn_tiny",
            )
            for module, (text, switch) in CTRANSCNN_ABLATIONS.items()
        ),
        ModelSpec(
            "conformer_tiny", "Conformer-tiny (softmax + bottleneck + FCU, heads summed)", CONFORMER
        ),
        *(
            ModelSpec(name, text, arch, study="chexnet", ablation_of=CHEXNET_TABLE3[name])
            for name, (text, arch) in CHEXNET_VARIANTS.items()
        ),
        *(
            ModelSpec(
                name,
                text,
                arch,
                # M1's other reading stands beside it in Table 3; the others are for study
                study="chexnet" if name == "chexnet_m1-replace" else None,
                ablation_of=name.removesuffix("-replace"),
            )
            for name, (text, arch) in CHEXNET_REPLACE.items()
        ),
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
            "repvgg_a2",
            "RepVGG-A2 (the papers do not say which RepVGG)",
            timm_name="repvgg_a2",
            # one block per stage at a quarter of RepVGG-A2's widths (96, 192, 384, 1408)
            micro_kwargs={"byob_stages": ((1, 24), (1, 48), (1, 96), (1, 352)), "byob_stem": 16},
        ),
        ModelSpec(
            "deit_small_patch16_224",
            "DeiT-S/16",
            timm_name="deit_small_patch16_224",
            micro_kwargs=_DEIT_MICRO,
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


def _byob_stages(timm_name: str, stages: tuple[tuple[int, int], ...], stem: int):
    """A timm ByobNet config (RepVGG) with ``(depth, width)`` per stage and a ``stem`` width:
    the micro RepVGG (timm's constructor takes no sizes for these networks)."""
    from timm.models import byobnet  # here: timm loads only when a timm model is built

    base = byobnet.model_cfgs[timm_name]
    blocks = tuple(
        replace(block, d=depth, c=width)
        for block, (depth, width) in zip(base.blocks, stages, strict=True)
    )
    return replace(base, blocks=blocks, stem_chs=stem)


def _timm_model(timm_name: str, num_classes: int, pretrained: bool = False, **kwargs) -> nn.Module:
    """The timm model itself (from scratch unless ``pretrained``: timm's ImageNet weights);
    ``byob_stages``/``byob_stem``: a ByobNet (RepVGG) of other stage sizes (micro). timm (and
    torchvision with it: two seconds) loads here, never for a dual-branch model."""
    import timm  # here: only timm's models need it
    from timm.models import byobnet  # here: likewise

    if "byob_stages" in kwargs:
        cfg = _byob_stages(timm_name, kwargs.pop("byob_stages"), kwargs.pop("byob_stem"))
        model = byobnet.ByobNet(cfg, num_classes=num_classes, **kwargs)
        model.pretrained_cfg = timm.models.get_pretrained_cfg(timm_name).to_dict()
        return model
    try:
        return timm.create_model(
            timm_name, pretrained=pretrained, num_classes=num_classes, **kwargs
        )
    except OSError as error:  # no internet, or the hub refused
        raise OSError(
            f"timm could not fetch the ImageNet weights of {timm_name} ({error}); they "
            f"are downloaded once (needs internet) into the Hugging Face cache"
        ) from error


#: timm's keyword names for what ArchConfig calls otherwise (``timm.create_model`` passes them)
TIMM_KWARGS = {"drop_path_rate": "drop_path", "drop_rate": "drop_rate", "in_chans": "in_chans"}


def _arch_overrides(name: str, overrides: dict) -> dict:
    """``overrides`` as ArchConfig fields (timm's names translated), or a TypeError naming
    what a dual-branch model accepts."""
    fields = set(ArchConfig.__dataclass_fields__)
    out = {TIMM_KWARGS.get(k, k): v for k, v in overrides.items()}
    unknown = sorted(k for k in out if k not in fields)
    if unknown:
        raise TypeError(
            f"{name} got unexpected keyword arguments {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(fields | set(TIMM_KWARGS)))}"
        )
    return out


def list_models(family: str | None = None) -> list[str]:
    """Registered names (optionally only ``dual-branch`` or ``timm``)."""
    return [n for n, s in REGISTRY.items() if family in (None, s.family)]


def study(name: str) -> tuple[list[str], str]:
    """The models of the ablation study ``name`` (``ctranscnn``, ``chexnet``), in the order of
    its table -- each reading of a model beside it -- and the full model they are compared
    with."""
    members = [n for n, s in REGISTRY.items() if s.study == name]
    if not members:
        raise KeyError(f"no ablation study {name!r}; studies: {', '.join(studies())}")
    base = [n for n in members if not n.endswith("-replace")]
    members.sort(key=lambda n: (base.index(n.removesuffix("-replace")), n.endswith("-replace")))
    full = next(n for n in members if REGISTRY[n].ablation_of is None)
    return members, full


def studies() -> list[str]:
    """The ablation studies, in registry order (``ctranscnn``, ``chexnet``)."""
    return list(dict.fromkeys(s.study for s in REGISTRY.values() if s.study))


def ablations() -> dict[str, tuple[str, str]]:
    """Every registered ablation: ``{variant: (the model it is compared with, the switch that
    tells them apart)}`` -- the first switch of :data:`~cxrlib.models.dual_branch.SWITCHES` that
    differs (IIM's coupling brings its own up-sampling, MEMSP's other reading its own keys)."""
    out = {}
    for name, spec in REGISTRY.items():
        if spec.ablation_of is None:
            continue
        full = REGISTRY[spec.ablation_of].arch.switches()
        mine = spec.arch.switches()
        out[name] = (spec.ablation_of, next(k for k in SWITCHES if mine[k] != full[k]))
    return out


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def check_model(name: str) -> str:
    """``name`` if it is a registered model, else a :class:`~cxrlib.core.config.ConfigError`
    listing them (a configuration's MODEL is checked here, before any data work)."""
    if name not in REGISTRY:
        raise ConfigError(
            f"parameter MODEL must be a registered model; got {name!r}. Allowed: "
            f"{', '.join(REGISTRY)}"
        )
    return name


def build_model(
    name: str,
    num_classes: int = 14,
    size: str = "paper",
    image_size: int = 224,
    imagenet: bool = False,
    workspace: Workspace | None = None,
    **overrides,
) -> nn.Module:
    """The registered network ``name`` with fresh weights (from ImageNet with ``imagenet``:
    timm's for the baselines, the public Conformer-Ti for the dual-branch models -- found or
    downloaded in ``workspace``, :func:`~cxrlib.models.imagenet.conformer_checkpoint` -- whose
    ``model.pretrained_report`` then says what loaded and what stays random).

    ``size``: ``paper`` or ``micro``; ``image_size`` matters only for models with absolute
    position embeddings; ``overrides`` replace ArchConfig fields of dual-branch models or go to
    the timm constructor. Model files and the public :func:`cxrlib.models.create_model` build
    on this.
    """
    spec = get_spec(name)
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    report = None
    if spec.arch is not None:
        sized = {**(DUAL_MICRO if size == "micro" else {}), **_arch_overrides(name, overrides)}
        arch = replace(spec.arch, **sized)
        check_image_size((image_size, image_size), arch.patch_size)  # at creation, not later
        model = DualBranchNet(num_classes, arch)
        if imagenet:  # the public ImageNet Conformer-Ti (models/imagenet.py)
            if workspace is None:
                raise ValueError("ImageNet weights of a dual-branch model need a workspace")
            path = conformer_checkpoint(workspace)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            report = init_from_conformer(model, checkpoint)
    else:
        kwargs = dict(spec.micro_kwargs) if size == "micro" else {}
        if spec.takes_image_size:
            kwargs["img_size"] = image_size
        model = _timm_model(spec.timm_name, num_classes, pretrained=imagenet, **kwargs, **overrides)
    model.pretrained_report = report  # dual-branch from ImageNet: what loaded, what is random
    return model
