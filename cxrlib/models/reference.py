"""Loading checkpoints of the authors' CTransCNN implementation (mmcls layout) into ours.

The authors' code (github.com/wuliwuxin/CTransCNN @ cd1ed1d8, Wu et al., KBS 2023) names its
modules ``conv_1``, ``trans_1``, ``conv_trans_<i>.{cnn_block,fusion_block,squeeze_block,
expand_block,trans_block}``, ``trans_norm`` and the head ``conv_cls_head``/``trans_cls_head``
(plus an unused ``fc``). :func:`convert_reference_checkpoint` renames every tensor to our
:class:`~cxrlib.models.dual_branch.DualBranchNet` and refuses keys it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_CONV_BLOCK = {
    "conv1": "reduce",
    "bn1": "reduce_bn",
    "conv_identity": "outer",
    "bn_out": "outer_bn",
    "conv2": "conv3x3",
    "bn2": "conv3x3_bn",
    "conv3": "expand",
    "bn3": "expand_bn",
    "conv_64_16": "inner",
    "residual_conv": "shortcut.0",
    "residual_bn": "shortcut.1",
}
_TOKEN_LAYER = {
    "ln1": "norm1",
    "attn": "attn",
    "attn2": "attn2",
    "ln2": "norm2",
    "ln3": "norm_ffn",
    "ffn.layers.0.0": "ffn.0",
    "ffn.layers.1": "ffn.2",
}
_C2T = {
    "conv_project": "project",
    "conv1": "gate.0",
    "bn1": "gate.1",
    "conv2": "gate_out",
    "ln": "norm",
}
_T2C = {"conv_project": "project", "bn": "norm", "conv2": "refine.0", "conv3": "refine.2"}
_BLOCK_PARTS = {
    "cnn_block": ("cnn_block", _CONV_BLOCK),
    "fusion_block": ("fusion_block", _CONV_BLOCK),
    "squeeze_block": ("c2t", _C2T),
    "expand_block": ("t2c", _T2C),
    "trans_block": ("token_layer", _TOKEN_LAYER),
}
_IGNORED = ("head.fc.",)  # the reference defines Linear(2K -> K) but never uses it


def _rename(module_path: str, table: Mapping[str, str]) -> str | None:
    """Rename the longest matching module prefix of ``module_path`` by ``table``."""
    for old in sorted(table, key=len, reverse=True):
        if module_path == old or module_path.startswith(old + "."):
            return table[old] + module_path[len(old) :]
    return None


#: The token layer of mmpretrain's Conformer (its ViT encoder layer): ``ln2`` is the FFN's norm.
_CONFORMER_TOKEN_LAYER = {
    "ln1": "norm1",
    "attn": "attn",
    "ln2": "norm_ffn",
    "ffn.layers.0.0": "ffn.0",
    "ffn.layers.1": "ffn.2",
}


def _convert_key(key: str, token_layer: Mapping[str, str] = _TOKEN_LAYER) -> str | None:
    if key.startswith("head."):
        rest = key[len("head.") :]
        for old, new in (("conv_cls_head.", "conv_head."), ("trans_cls_head.", "token_head.")):
            if rest.startswith(old):
                return new + rest[len(old) :]
        return None
    if not key.startswith("backbone."):
        return None
    rest = key[len("backbone.") :]
    if rest == "cls_token":
        return rest
    for old, new in (
        ("conv1.", "stem.0."),
        ("bn1.", "stem.1."),
        ("trans_patch_conv.", "patch_embed."),
        ("trans_norm.", "token_norm."),
    ):
        if rest.startswith(old):
            return new + rest[len(old) :]
    if rest.startswith("conv_1."):
        renamed = _rename(rest[len("conv_1.") :], _CONV_BLOCK)
        return renamed and "conv1." + renamed
    if rest.startswith("trans_1."):
        renamed = _rename(rest[len("trans_1.") :], token_layer)
        return renamed and "tokens1." + renamed
    match = re.match(r"conv_trans_(\d+)\.(\w+)\.(.+)", rest)
    if match:
        layer, part, inner = int(match[1]), match[2], match[3]
        if part in _BLOCK_PARTS:
            ours, table = _BLOCK_PARTS[part]
            renamed = _rename(inner, token_layer if part == "trans_block" else table)
            return renamed and f"blocks.{layer - 2}.{ours}.{renamed}"
    return None


def _convert(
    state_dict: Mapping[str, torch.Tensor],
    skipped: tuple[str, ...],
    token_layer: Mapping[str, str],
    what: str,
) -> dict[str, torch.Tensor]:
    """Rename every key (``skipped`` prefixes left out); ``KeyError`` for any key without a
    counterpart, so that nothing is dropped silently. Accepts a full mmcls checkpoint too."""
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        if key.startswith(skipped):
            continue
        new = _convert_key(key, token_layer)
        if new is None:
            unknown.append(key)
        else:
            converted[new] = tensor
    if unknown:
        raise KeyError(f"{len(unknown)} {what} key(s) have no counterpart: {unknown[:5]}")
    return converted


def convert_reference_checkpoint(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an authors'-layout state dict (``backbone.…``, ``head.…``) to our key names.

    Accepts a full mmcls checkpoint too (its ``state_dict`` entry). Raises ``KeyError`` listing
    any key that has no counterpart, so that nothing is dropped silently.
    """
    return _convert(state_dict, _IGNORED, _TOKEN_LAYER, "reference")


def convert_conformer_checkpoint(
    state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Map an mmpretrain/mmcls **Conformer** checkpoint (Peng et al., ICCV 2021; e.g. the
    public ImageNet Conformer-Ti, ``conformer-tiny-p16_3rdparty_8xb128_in1k``) to our key names.

    Its ImageNet classifier heads (``head.…``, 1000 classes) are left out; any other key
    without a counterpart raises ``KeyError``, so that nothing is dropped silently.
    """
    return _convert(state_dict, ("head.",), _CONFORMER_TOKEN_LAYER, "Conformer")
