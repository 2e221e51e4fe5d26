"""A synthetic checkpoint in the layout of mmpretrain's ImageNet Conformer-tiny, for the offline
tests of ImageNet initialisation (the real file cannot be downloaded here)."""

from __future__ import annotations

import torch


def mmpretrain_conformer_tiny() -> dict:
    """A state dict in the layout of mmpretrain's Conformer-tiny (its source: ConvBlock conv1-3
    / bn1-3 / residual_*, FCUDown conv_project + ln, FCUUp conv_project + bn, the ViT encoder
    layer ln1 / attn / ln2 / ffn, ConformerHead), random values, ImageNet's 1000 classes."""
    sd: dict[str, torch.Tensor] = {}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{prefix}.{name}"] = torch.rand(c) + 0.5
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    def conv(prefix, cout, cin, k, bias=False):
        sd[f"{prefix}.weight"] = torch.randn(cout, cin, k, k) * 0.05
        if bias:
            sd[f"{prefix}.bias"] = torch.randn(cout) * 0.05

    def linear(prefix, cout, cin):
        sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = (
            torch.randn(cout, cin) * 0.02,
            torch.zeros(cout),
        )

    def ln(prefix, c):
        sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = torch.ones(c), torch.zeros(c)

    def conv_block(prefix, cin, cout, residual):
        mid = cout // 4
        conv(f"{prefix}.conv1", mid, cin, 1), bn(f"{prefix}.bn1", mid)
        conv(f"{prefix}.conv2", mid, mid, 3), bn(f"{prefix}.bn2", mid)
        conv(f"{prefix}.conv3", cout, mid, 1), bn(f"{prefix}.bn3", cout)
        if residual:
            conv(f"{prefix}.residual_conv", cout, cin, 1), bn(f"{prefix}.residual_bn", cout)

    def encoder(prefix, d=384):
        ln(f"{prefix}.ln1", d), linear(f"{prefix}.attn.qkv", 3 * d, d)
        linear(f"{prefix}.attn.proj", d, d), ln(f"{prefix}.ln2", d)
        linear(f"{prefix}.ffn.layers.0.0", 4 * d, d), linear(f"{prefix}.ffn.layers.1", d, 4 * d)

    b = "backbone"
    sd[f"{b}.cls_token"] = torch.randn(1, 1, 384)
    conv(f"{b}.conv1", 64, 3, 7), bn(f"{b}.bn1", 64)
    conv_block(f"{b}.conv_1", 64, 64, True)
    conv(f"{b}.trans_patch_conv", 384, 64, 4, bias=True)
    encoder(f"{b}.trans_1")
    for i in range(2, 13):
        cout = 64 if i <= 4 else 128 if i <= 8 else 256
        cin = {5: 64, 9: 128}.get(i, cout)
        p = f"{b}.conv_trans_{i}"
        conv_block(f"{p}.cnn_block", cin, cout, i in (5, 9))
        conv_block(f"{p}.fusion_block", cout, cout, i == 12)
        conv(f"{p}.squeeze_block.conv_project", 384, cout // 4, 1, bias=True)
        ln(f"{p}.squeeze_block.ln", 384)
        conv(f"{p}.expand_block.conv_project", cout // 4, 384, 1, bias=True)
        bn(f"{p}.expand_block.bn", cout // 4)
        encoder(f"{p}.trans_block")
    ln(f"{b}.trans_norm", 384)
    linear("head.conv_cls_head", 1000, 256), linear("head.trans_cls_head", 1000, 384)
    return {"meta": {"note": "synthetic"}, "state_dict": sd}
