"""Tables about the registered models (notebook 02): size, cost, outputs, ablation structure."""

from __future__ import annotations

import re
from collections import Counter
from contextlib import nullcontext

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cxrlib.models.blocks import as_published
from cxrlib.models.dual_branch import SWITCHES, forward_heads
from cxrlib.models.factory import create_model
from cxrlib.models.files import skipped_init
from cxrlib.models.registry import ablations, get_spec

#: Each ablation, the full model it is compared with, and the one switch that differs
#: (derived from the registry: :func:`cxrlib.models.registry.ablations`).
ABLATIONS: dict[str, tuple[str, str]] = ablations()

#: Module groups of a DualBranchNet, by parameter-name pattern (first match wins).
MODULE_GROUPS = (
    (
        "label decoder",
        r"^(label_embed|label_head\.|labels1\.|keys1\.)|\.(label_layer|label_keys)\.",
    ),
    ("token head", r"^(token_head|token_norm)\."),
    ("conv head", r"^conv_head\."),
    ("coupling", r"\.(c2t|t2c)\."),
    ("token layers", r"^tokens1\.|\.token_layer\."),
    ("conv blocks", r"^conv1\.|\.(cnn_block|fusion_block)\."),
    ("stem and embeddings", r"^(stem|patch_embed)\.|^cls_token$"),
)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_gflops(model: nn.Module, image_size: int = 224, published: bool = False) -> float:
    """Forward GFLOP for one image (torch's flop counter: 2 FLOP per multiply-add).

    ``published``: in the order of operations of the authors' code (the papers give no FLOPs;
    22.43 GFLOPs for ``ctranscnn_tiny`` at 224 px was measured on that code); else of what
    this kit executes (the same function in fewer FLOPs; see
    :func:`~cxrlib.models.blocks.as_published`).
    """
    model.eval()  # autograd stays on: the counter's module tracker needs grad functions
    with (
        as_published(model) if published else nullcontext(),
        FlopCounterMode(display=False) as counter,
    ):
        model(torch.zeros(1, 3, image_size, image_size))
    return counter.get_total_flops() / 1e9


def _shape(tensor: torch.Tensor | None) -> str:
    return "-" if tensor is None else str(tuple(tensor.shape))


def model_summary(
    names: list[str], num_classes: int = 14, size: str = "paper", image_size: int = 224
) -> pd.DataFrame:
    """One row per model: family, what it is, parameters, GFLOPs (authors' order: the function
    computed in the order of the authors' code -- for ``ctranscnn_tiny`` the 22.43 GFLOPs
    measured on their code; executed: what this kit computes for the same function) and
    output shapes. Neither paper states FLOPs."""
    rows = []
    for name in names:
        spec = get_spec(name)
        with skipped_init():  # counts and shapes only: zeros instead of drawn weights
            model = create_model(name, num_classes=num_classes, size=size, image_size=image_size)
        with torch.no_grad():
            for tensor in (*model.parameters(), *model.buffers()):
                if tensor.is_floating_point():
                    tensor.zero_()  # not left as uninitialised memory (NaN, denormals)
            out = forward_heads(model.eval(), torch.zeros(2, 3, image_size, image_size))
        if spec.timm_name:
            definition = f"timm {spec.timm_name}"
        else:
            definition = ", ".join(f"{k}={v}" for k, v in spec.arch.switches().items())
        rows.append(
            {
                "model": name,
                "family": spec.family,
                "definition": definition,
                "parameters (M)": round(count_parameters(model) / 1e6, 3),
                # in the authors' order of operations, and as this kit executes the same function
                f"GFLOPs @{image_size} authors' order": round(
                    forward_gflops(model, image_size, published=True), 2
                ),
                f"GFLOPs @{image_size} executed": round(forward_gflops(model, image_size), 2),
                "logits": _shape(out.logits),
                "conv head": _shape(out.conv_logits),
                "token/label head": _shape(out.token_logits),
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows)


def switch_table(names: list[str]) -> pd.DataFrame:
    """The switch settings of dual-branch models side by side (one column per model)."""
    return (
        pd.DataFrame({name: get_spec(name).arch.switches() for name in names}, index=list(SWITCHES))
        .rename_axis("switch")
        .reset_index()
    )


def group_of(parameter_name: str) -> str:
    for group, pattern in MODULE_GROUPS:
        if re.search(pattern, parameter_name):
            return group
    raise KeyError(f"parameter {parameter_name} belongs to no module group")


def parameters_by_group(model: nn.Module) -> Counter:
    counts: Counter = Counter()
    for name, p in model.named_parameters():
        counts[group_of(name)] += p.numel()
    return counts


def ablation_differences(num_classes: int = 14, size: str = "paper") -> pd.DataFrame:
    """Per ablation: parameters it has minus its full model's, per module group.

    ``only named module`` checks that every group outside the switched module is unchanged
    (a removed label decoder hands its head back to the cls token head, which counts as the
    label decoder's).
    """
    counts: dict[str, Counter] = {}

    def counted(name: str) -> Counter:
        if name not in counts:
            with skipped_init():  # counts only: no weights drawn
                counts[name] = parameters_by_group(
                    create_model(name, num_classes=num_classes, size=size)
                )
        return counts[name]

    rows = []
    for variant, (full, switch) in ABLATIONS.items():
        a, b = counted(variant), counted(full)
        diff = {g: a[g] - b[g] for g, _ in MODULE_GROUPS}
        allowed = {
            "attention": {"token layers"},
            "conv_block": {"conv blocks"},
            "coupling": {"coupling"},
            "label_decoder": {"label decoder", "token head"},
            # the token layers go, MEMSP reads conv maps; no tokens at all without coupling
            "token_stream": {"token layers", "label decoder", "stem and embeddings"},
        }[switch]
        rows.append(
            {
                "ablation": variant,
                "compared with": full,
                "switch": f"{switch}: {getattr(get_spec(full).arch, switch)} -> "
                f"{getattr(get_spec(variant).arch, switch)}",
                **diff,
                "only named module": all(v == 0 for g, v in diff.items() if g not in allowed),
            }
        )
    return pd.DataFrame(rows)


def parameter_name_diff(a: nn.Module, b: nn.Module) -> tuple[set[str], set[str], set[str]]:
    """(names only in ``a``, names only in ``b``, shared names whose shapes differ)."""
    pa = {n: p.shape for n, p in a.named_parameters()}
    pb = {n: p.shape for n, p in b.named_parameters()}
    changed = {n for n in pa.keys() & pb.keys() if pa[n] != pb[n]}
    return set(pa) - set(pb), set(pb) - set(pa), changed
