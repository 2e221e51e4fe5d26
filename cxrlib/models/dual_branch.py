"""One dual-branch network whose switches make it CTransCNN, CheXNet, Conformer or any ablation.

Skeleton (Conformer-tiny; models.md section 1): a stem, then ``depth`` layers. Layer 1 is a
conv block beside a patch embedding + token layer; layers 2..depth are interaction blocks in
three stages (CNN at 1/4, 1/8, 1/16 of the input; tokens always at 1/patch). Each interaction
block runs ``conv block -> CNN->tokens -> token layer -> tokens->CNN -> fusion conv block``.

Switches (:class:`ArchConfig`), independent of each other:

=================  =========================================================================
``attention``      ``softmax`` (Conformer) | ``mmaef`` (CTransCNN)
``label_decoder``  ``off`` | ``memsp`` (label embeddings, no MSP) | ``memsp+msp`` (CheXNet)
``conv_block``     ``bottleneck`` (Conformer) | ``mbr`` (CTransCNN) | ``ib`` (CheXNet)
``coupling``       ``none`` (independent branches) | ``fcu`` (Conformer) | ``iim`` (gated)
``head_fusion``    ``weighted`` (0.9 CNN + 0.1 token, CTransCNN) | ``sum`` (CheXNet, Conformer)
``upsample``       tokens->CNN: ``bilinear`` (the authors' CTransCNN code) | ``nearest``
                   (Conformer's FCUUp, F.interpolate's default)
``token_stream``   ``on`` | ``off`` (no patch-token layers: MEMSP replaces the Transformer)
``label_kv``       MEMSP's cross-attention reads ``tokens`` (patch tokens after each layer) |
                   ``conv`` (the CNN branch's map at the token grid)
=================  =========================================================================

CheXNet (Wu et al., PRCV 2023) released no code; these are our interpretations, each kept
where the paper is silent to the CTransCNN/Conformer choice:

1. The patch-token stream keeps one standard pre-norm encoder layer (softmax attention + FFN)
   per layer, so that CNN->tokens and tokens->CNN exchange with a real token stream; the paper
   does not say how patch tokens are updated.
2. MEMSP runs K learnable label embeddings (trunc-normal, std 0.02) *beside* the token stream,
   one post-norm label layer per layer (self-attention, cross-attention to the patch tokens of
   that layer, MSP, FFN), as drawn in the paper's Fig. 2 -- the default reading, used by every
   table, because Fig. 2 draws both streams and the IIM coupling needs tokens to exchange with.
   The paper's text for M1 says MEMSP *replaces* the Transformer: that reading is registered as
   ``<model>-replace`` for M1 and every model built on it (``token_stream='off'``; the label
   decoder's cross-attention then reads the CNN maps, the paper's "conv-extracted image
   features", ``label_kv='conv'``), and notebook 05 trains both readings of M1.
3. The label head is one weight vector and bias per class applied to its own final embedding.
4. Predictions are ``sigmoid(T + C)`` ("directly sums"); training puts the loss on each head
   (the CTransCNN recipe; the training issue makes it switchable).
5. Coupling, conv-block stride placement and initialisation follow CTransCNN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cxrlib.models.attention import FeedForward, LabelLayer, TokenLayer
from cxrlib.models.blocks import CONV_BLOCKS, CnnToTokens, ConvToKeys, TokensToCnn

SWITCHES = {
    "attention": ("softmax", "mmaef"),
    "label_decoder": ("off", "memsp", "memsp+msp"),
    "conv_block": ("bottleneck", "mbr", "ib"),
    "coupling": ("none", "fcu", "iim"),
    "head_fusion": ("weighted", "sum"),
    "upsample": ("bilinear", "nearest"),
    "token_stream": ("on", "off"),
    "label_kv": ("tokens", "conv"),
}
WEIGHTED_CONV_SHARE = 0.9  # CTransCNN's inference rule: 0.9 conv + 0.1 token logits


@dataclass(frozen=True, kw_only=True)
class ArchConfig:
    """Everything that defines a :class:`DualBranchNet`; sizes default to Conformer-tiny."""

    attention: str = "mmaef"
    label_decoder: str = "off"
    conv_block: str = "mbr"
    coupling: str = "iim"
    head_fusion: str = "weighted"
    upsample: str = "bilinear"  #: tokens -> CNN up-sampling (Conformer: nearest)
    token_stream: str = "on"  #: the patch-token layers (off: MEMSP replaces the Transformer)
    label_kv: str = "tokens"  #: what MEMSP's cross-attention reads: patch tokens, or conv maps
    embed_dim: int = 384
    num_heads: int = 6
    depth: int = 12
    channel_ratio: float = 1.0
    base_channels: int = 64
    patch_size: int = 16
    mlp_ratio: float = 4.0
    drop_path: float = 0.1  #: stochastic depth, reaching this at the last layer
    in_chans: int = 3  #: input channels (1: grey input, timm's ``in_chans=1``)
    drop_rate: float = 0.0  #: dropout on the pooled features before the heads (timm's)

    def __post_init__(self) -> None:
        for name, allowed in SWITCHES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )
        if self.depth < 3 or self.depth % 3:
            raise ValueError(f"depth must be a multiple of 3 (>= 3); got {self.depth}")
        if self.patch_size % 16:
            raise ValueError(f"patch_size must be a multiple of 16; got {self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        if self.in_chans < 1:
            raise ValueError(f"in_chans must be at least 1; got {self.in_chans}")
        if self.token_stream == "off" and self.label_decoder == "off":
            raise ValueError("token_stream 'off' needs a label decoder: it replaces the tokens")

    def switches(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in SWITCHES}


@dataclass
class ModelOutput:
    """Every head of a model, as :func:`forward_heads` returns it (``model(x)`` returns only
    ``logits``). ``conv_logits``/``token_logits`` are None for single-head (timm) models.

    ``logits`` are the fused logits of the paper's rule; ``probabilities()`` applies the sigmoid.
    ``features``: ``conv`` (B×C), ``cls`` (B×D) or ``labels`` (B×K×D), ``cnn_map``, ``tokens``.
    """

    logits: torch.Tensor
    conv_logits: torch.Tensor | None = None
    token_logits: torch.Tensor | None = None
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def heads(self) -> list[torch.Tensor]:
        """The per-head logits a loss is put on (the fused logits for one-head models)."""
        heads = [h for h in (self.conv_logits, self.token_logits) if h is not None]
        return heads or [self.logits]

    def probabilities(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class InteractionBlock(nn.Module):
    """Layers 2..depth: conv block, coupling, token layer [, label layer], fusion block."""

    def __init__(
        self,
        arch: ArchConfig,
        *,
        cin: int,
        cout: int,
        stride: int,
        project: bool,
        pool: int,
        drop_path: float,
        last: bool,
    ) -> None:
        super().__init__()
        block = CONV_BLOCKS[arch.conv_block]
        mid = cout // 4
        self.cnn_block = block(cin, cout, stride=stride, project=project)
        self.fusion_block = block(
            cout, cout, stride=2 if last else 1, project=last, drop_path=drop_path
        )
        self.token_layer = None
        if arch.token_stream == "on":
            self.token_layer = TokenLayer(
                arch.embed_dim, arch.num_heads, arch.attention, drop_path, arch.mlp_ratio
            )
        self.pool = pool
        coupled = arch.coupling != "none"
        gated = arch.coupling == "iim"
        self.c2t = CnnToTokens(mid, arch.embed_dim, pool, gated) if coupled else None
        self.t2c = TokensToCnn(arch.embed_dim, mid, gated, arch.upsample) if coupled else None
        self.label_layer = self.label_keys = None
        if arch.label_decoder != "off":
            msp = arch.label_decoder == "memsp+msp"
            self.label_layer = LabelLayer(arch.embed_dim, arch.num_heads, msp, arch.mlp_ratio)
            if arch.label_kv == "conv":  # the block's CNN map at the token grid (/2 after last)
                self.label_keys = ConvToKeys(
                    cout, arch.embed_dim, max(pool // (2 if last else 1), 1)
                )

    def _tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens if self.token_layer is None else self.token_layer(tokens)

    def forward(self, x, tokens, labels):
        x, x_mid = self.cnn_block(x)
        if self.c2t is None:
            tokens = self._tokens(tokens) if tokens is not None else None
            x = self.fusion_block(x)[0]
        else:
            # the incoming cls token is inside both summands: it enters as 2·cls (reference)
            tokens = self._tokens(self.c2t(x_mid, tokens) + tokens)
            h, w = x_mid.shape[-2:]
            fusion = self.t2c(tokens, size=(h, w), grid=(h // self.pool, w // self.pool))
            x = self.fusion_block(x, fusion)[0]
        if self.label_layer is not None:
            keys = tokens[:, 1:] if self.label_keys is None else self.label_keys(x)
            labels = self.label_layer(labels, keys)
        return x, tokens, labels


class LabelHead(nn.Module):
    """CheXNet's label head: one weight vector and bias per class, applied to that class's own
    final label embedding (B×K×D -> B×K)."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_classes, dim))
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return (labels * self.weight).sum(-1) + self.bias


class DualBranchNet(nn.Module):
    """CNN + Transformer hybrid with switchable modules (see the module docstring).

    The timm model interface: ``model(x)`` gives the fused logits (B×K, the papers' rule);
    :meth:`forward_heads` gives every head (what the training loss takes);
    ``forward_features`` -> ``forward_head`` is the same computation in two steps. Because
    the branches end in maps of different shapes, the features are already pooled: the CNN
    map averaged (C) beside the token side (D: the normed cls token, or with a label decoder
    each class's label embedding, B×K×(C+D)); ``num_features = C + D``. The unpooled maps are
    reached through :func:`cxrlib.models.cam.cam_target_layers`.

    ``torch.jit.script`` is not supported: the switches choose submodules (``None`` or not)
    and blocks take optional tensors, which TorchScript cannot type; ``torch.jit.trace`` and
    ``torch.export`` are.
    """

    def __init__(self, num_classes: int, arch: ArchConfig | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or ArchConfig()
        self.num_classes = num_classes
        stage1 = int(arch.base_channels * arch.channel_ratio)
        channels = (stage1, stage1 * 2, stage1 * 4)
        self.num_features = self.head_hidden_size = channels[2] + arch.embed_dim
        rates = torch.linspace(0, arch.drop_path, arch.depth).tolist()
        pool = arch.patch_size // 4
        self.stem = nn.Sequential(
            nn.Conv2d(arch.in_chans, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.conv1 = CONV_BLOCKS[arch.conv_block](64, stage1, stride=1, project=True)
        self._first_layer(arch, stage1, pool, rates[0])
        per_stage, blocks = arch.depth // 3, []
        for layer in range(2, arch.depth + 1):
            stage = 0 if layer <= per_stage else (1 if layer <= 2 * per_stage else 2)
            first = layer in (per_stage + 1, 2 * per_stage + 1)
            blocks.append(
                InteractionBlock(
                    arch,
                    cin=channels[stage - 1] if first else channels[stage],
                    cout=channels[stage],
                    stride=2 if first else 1,
                    project=first,
                    pool=pool >> stage,  # tokens stay at 1/patch while the CNN map grows finer
                    drop_path=rates[layer - 1],
                    last=layer == arch.depth,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.conv_channels = channels[2]
        if arch.label_decoder == "off":  # the cls token feeds the token head
            self.token_norm = nn.LayerNorm(arch.embed_dim)
        self._heads(num_classes)
        self._init_weights()

    def _first_layer(self, arch: ArchConfig, stage1: int, pool: int, rate: float) -> None:
        """Layer 1's token side: patch embedding and cls token (where tokens exist), its token
        layer (with the token stream), the label embeddings and label layer (with MEMSP)."""
        dim = arch.embed_dim
        self.has_tokens = arch.token_stream == "on" or arch.coupling != "none"
        if self.has_tokens:  # without token layers the cls slot stays zero: nothing reads it
            self.patch_embed = nn.Conv2d(64, dim, kernel_size=pool, stride=pool)
        if arch.token_stream == "on":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.tokens1 = None
        if arch.token_stream == "on":
            self.tokens1 = TokenLayer(dim, arch.num_heads, arch.attention, rate, arch.mlp_ratio)
        self.keys1 = None
        if arch.label_decoder != "off":
            # K label queries; a feature extractor (num_classes 0) keeps one
            self.label_embed = nn.Parameter(torch.zeros(1, max(self.num_classes, 1), dim))
            msp = arch.label_decoder == "memsp+msp"
            self.labels1 = LabelLayer(dim, arch.num_heads, msp, arch.mlp_ratio)
            if arch.label_kv == "conv":
                self.keys1 = ConvToKeys(stage1, dim, pool)

    def _heads(self, num_classes: int) -> None:
        """The classifier heads for ``num_classes`` (0: none, the model gives its features)."""
        dim = self.arch.embed_dim
        linear = nn.Linear if num_classes else (lambda *_: nn.Identity())
        self.conv_head = linear(self.conv_channels, num_classes)
        self.token_head = self.label_head = None
        if self.arch.label_decoder == "off":
            self.token_head = linear(dim, num_classes)
        elif num_classes:  # one weight vector and bias per class, on that class's own embedding
            self.label_head = LabelHead(num_classes, dim)

    # --- timm's classifier interface ------------------------------------------------------
    def get_classifier(self) -> tuple[nn.Module, nn.Module | None]:
        """The two heads: the CNN head and the token (or label) head."""
        return self.conv_head, self.token_head if self.label_head is None else self.label_head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New heads for ``num_classes`` (fresh weights, as at creation); 0 removes them, so
        that ``model(x)`` gives the pooled features (B × ``num_features``). A label decoder's
        queries are one per class: other ``num_classes`` start new ones (0 keeps them)."""
        if global_pool not in (None, "", "avg"):
            raise ValueError(f"the CNN branch pools by average only; got {global_pool!r}")
        self.num_classes = num_classes
        self._heads(num_classes)
        for head in self.get_classifier():
            if isinstance(head, nn.Linear):
                nn.init.trunc_normal_(head.weight, std=0.02)
                nn.init.zeros_(head.bias)
        if self.label_head is not None:
            nn.init.trunc_normal_(self.label_head.weight, std=0.02)
            if self.label_embed.shape[1] != num_classes:
                dim = self.arch.embed_dim
                self.label_embed = nn.Parameter(torch.zeros(1, num_classes, dim))
                nn.init.trunc_normal_(self.label_embed, std=0.02)

    # ---------------------------------------------------------------------------------------
    def _init_weights(self) -> None:
        """The reference's initialisation (models.md section 1)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if hasattr(m, "expand_bn"):
                nn.init.zeros_(m.expand_bn.weight)  # each conv block starts as its shortcut
            if isinstance(m, FeedForward):
                for linear in (m[0], m[2]):
                    nn.init.xavier_uniform_(linear.weight)
                    nn.init.normal_(linear.bias, std=1e-6)
        if self.arch.token_stream == "on":
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.arch.label_decoder != "off":
            nn.init.trunc_normal_(self.label_embed, std=0.02)
            if self.label_head is not None:
                nn.init.trunc_normal_(self.label_head.weight, std=0.02)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says what is expected for a wrong input shape."""
        channels = self.arch.in_chans
        if x.ndim != 4 or x.shape[1] != channels:
            hint = " (grey replicated to 3 channels)" if channels == 3 else ""
            raise ValueError(f"expected a batch B×{channels}×H×W{hint}; got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        check_image_size((int(h), int(w)), self.arch.patch_size)

    def forward_trunk(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Both branches: the last CNN map (B×C×h×w), the token sequence (B×(1+N)×D, or None
        without tokens) and the label embeddings (B×K×D, or None without a label decoder)."""
        self.check_input(x)
        b = x.shape[0]
        base = self.stem(x)
        cnn = self.conv1(base)[0]
        tokens = labels = None
        if self.has_tokens:
            patches = self.patch_embed(base).flatten(2).transpose(1, 2)  # (B, D, h, w)->(B, N, D)
            if self.tokens1 is None:  # no token layers: the cls slot is an unused zero
                tokens = torch.cat([patches.new_zeros(b, 1, patches.shape[-1]), patches], dim=1)
            else:
                tokens = self.tokens1(torch.cat([self.cls_token.expand(b, -1, -1), patches], 1))
        if self.arch.label_decoder != "off":
            keys = tokens[:, 1:] if self.keys1 is None else self.keys1(cnn)
            labels = self.labels1(self.label_embed.expand(b, -1, -1), keys)
        for block in self.blocks:
            cnn, tokens, labels = block(cnn, tokens, labels)
        return cnn, tokens, labels

    def _summaries(self, cnn, tokens, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled CNN features (B×C) and the token side (cls B×D, or labels B×K×D)."""
        conv = F.adaptive_avg_pool2d(cnn, 1).flatten(1)
        return conv, (self.token_norm(tokens)[:, 0] if labels is None else labels)

    def _head_logits(
        self, conv: torch.Tensor, side: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused, CNN-head, token/label-head) logits from the two summaries."""
        if self.arch.drop_rate > 0:  # a Python test: dropout of 0 leaves the numbers alone
            conv = F.dropout(conv, self.arch.drop_rate, self.training)
            side = F.dropout(side, self.arch.drop_rate, self.training)
        conv_logits = self.conv_head(conv)
        head = self.token_head if self.label_head is None else self.label_head
        token_logits = head(side)
        if self.arch.head_fusion == "weighted":
            logits = WEIGHTED_CONV_SHARE * conv_logits + (1 - WEIGHTED_CONV_SHARE) * token_logits
        else:
            logits = conv_logits + token_logits
        return logits, conv_logits, token_logits

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features of both branches: B×(C+D), or with a label decoder B×K×(C+D)
        (the CNN features beside each class's label embedding)."""
        conv, side = self._summaries(*self.forward_trunk(x))
        if side.ndim == 3:  # (B, C) -> (B, K, C), beside (B, K, D)
            conv = conv[:, None].expand(-1, side.shape[1], -1)
        return torch.cat([conv, side], dim=-1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Fused logits (B×K) from :meth:`forward_features`; ``pre_logits``: the features the
        heads read, B×``num_features`` (a label decoder's embeddings averaged over classes)."""
        c = self.conv_channels
        if features.ndim == 3:  # label decoder: (B, K, C+D)
            conv = features[:, 0, :c].contiguous()
            side = features[:, :, c:].contiguous()
            if pre_logits or not self.num_classes:
                return torch.cat([conv, side.mean(1)], dim=-1)
        else:
            if pre_logits or not self.num_classes:
                return features
            conv, side = features[:, :c].contiguous(), features[:, c:].contiguous()
        return self._head_logits(conv, side)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused logits (B×K): the papers' prediction rule before the sigmoid."""
        return self.forward_head(self.forward_features(x))

    def forward_heads(self, x: torch.Tensor) -> ModelOutput:
        """Every head and the backbone's outputs (:class:`ModelOutput`): what the loss, the
        faithfulness figures and the model summary read."""
        if not self.num_classes:
            raise ValueError("a model without classifier (num_classes 0) has no heads")
        cnn, tokens, labels = self.forward_trunk(x)
        conv, side = self._summaries(cnn, tokens, labels)
        logits, conv_logits, token_logits = self._head_logits(conv, side)
        features = {"conv": conv, "cnn_map": cnn, "tokens": tokens}
        features["cls" if labels is None else "labels"] = side
        return ModelOutput(logits, conv_logits, token_logits, features)


def image_size_multiple(patch_size: int) -> int:
    """What a dual-branch input's height and width must be a multiple of: the CNN halves the
    map five times (32) and the tokens stand at 1/patch of the input, halved once more."""
    return max(32, patch_size * 2)


def check_image_size(size: tuple[int, int], patch_size: int) -> None:
    """A ValueError naming the sizes allowed, for an input size the network cannot take."""
    multiple = image_size_multiple(patch_size)
    h, w = size
    if h % multiple or w % multiple or min(h, w) < 64:
        raise ValueError(
            f"input size must be a multiple of {multiple} and at least 64 px; got {h}×{w} "
            f"(e.g. {max(64, round(h / multiple) * multiple)})"
        )


def forward_heads(model: nn.Module, x: torch.Tensor) -> ModelOutput:
    """Every head of ``model`` on ``x``: a dual-branch model's :meth:`~DualBranchNet.forward_heads`,
    a one-head (timm) model's logits as its only head."""
    if hasattr(model, "forward_heads"):
        return model.forward_heads(x)
    return ModelOutput(model(x))


class TrainingHeads(nn.Module):
    """``model`` seen as ``x -> ModelOutput`` (every head): what the training loop calls, so
    that DDP and ``torch.compile``, which wrap this module, see the call the loss needs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return forward_heads(self.model, x)
