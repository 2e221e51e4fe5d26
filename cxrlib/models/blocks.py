"""Building blocks of the dual-branch (CNN + Transformer) network, each with its switch.

References (facts taken from them; the code is our own):

* Conformer (Peng et al., ICCV 2021): the skeleton, the bottleneck ConvBlock, FCU coupling.
* CTransCNN (Wu et al., Knowledge-Based Systems 281:111030, 2023; authors' code
  github.com/wuliwuxin/CTransCNN @ cd1ed1d8): MBR conv block, IIM (gated) coupling, MMAEF
  token layer. See ``shared/design/models.md`` section 2.
* CheXNet hybrid (Wu et al., PRCV 2023, LNCS 14437): IB conv block, MEMSP label decoder with
  MSP. No code was released; our reading is documented in :mod:`cxrlib.models.dual_branch`.

Normalisation epsilons follow the reference exactly (they matter at 1e-5): BatchNorm in conv
blocks and in tokens->CNN 1e-6; in the CNN->tokens gate the PyTorch default 1e-5; LayerNorm in
token layers and CNN->tokens 1e-6.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-6
LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def _conv1x1(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=bias)


def _bn(channels: int, eps: float = BN_EPS) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps)


# --------------------------------------------------------------------------------------------
# Conv blocks: forward(x, fusion=None) -> (out, x_mid)
# --------------------------------------------------------------------------------------------
class _ConvBlockBase(nn.Module):
    """Shared parts: the 1x1 reduction, the residual projection and the output."""

    def __init__(self, cin: int, cout: int, stride: int, project: bool, drop_path: float):
        super().__init__()
        mid = cout // 4
        self.reduce = _conv1x1(cin, mid)
        self.reduce_bn = _bn(mid)
        self.expand = _conv1x1(mid, cout)
        self.expand_bn = _bn(cout)  # zero-initialised (the block starts as its shortcut)
        self.shortcut = (
            nn.Sequential(_conv1x1(cin, cout, stride), _bn(cout)) if project else nn.Identity()
        )
        self.drop_path = DropPath(drop_path)
        self.output = nn.Identity()  # a tap on the block's output (Grad-CAM hooks need one)

    def _finish(self, x: torch.Tensor, mid: torch.Tensor, extra=None) -> torch.Tensor:
        out = self.drop_path(self.expand_bn(self.expand(mid))) + self.shortcut(x)
        if extra is not None:
            out = out + extra
        return self.output(F.relu(out))


class BottleneckBlock(_ConvBlockBase):
    """Conformer's ConvBlock: 1x1 -> 3x3 (+ fusion map) -> 1x1, residual, ReLU."""

    def __init__(self, cin, cout, stride=1, project=False, drop_path=0.0):
        super().__init__(cin, cout, stride, project, drop_path)
        mid = cout // 4
        self.conv3x3 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.conv3x3_bn = _bn(mid)

    def forward(self, x, fusion=None):
        a = F.relu(self.reduce_bn(self.reduce(x)))
        y = self.conv3x3(a if fusion is None else a + fusion)
        mid = F.relu(self.conv3x3_bn(y))
        return self._finish(x, mid), mid


class MBRBlock(_ConvBlockBase):
    """CTransCNN's multi-branch residual block (models.md 2.1).

    Beside the bottleneck path it adds an outer 1x1 conv + BN branch from the input, and after
    the 3x3 conv a re-parameterisable sum ``bn(y) + conv1x1(y) + bn(y)``. The reference applies
    the *same* BatchNorm twice to ``y``; in training mode its running statistics are therefore
    updated twice per step. We reproduce that exactly (the reference fixture checks it).
    """

    def __init__(self, cin, cout, stride=1, project=False, drop_path=0.0):
        super().__init__(cin, cout, stride, project, drop_path)
        mid = cout // 4
        self.outer = _conv1x1(cin, cout, stride)
        self.outer_bn = _bn(cout)
        self.conv3x3 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.conv3x3_bn = _bn(mid)
        self.inner = _conv1x1(mid, mid)

    def forward(self, x, fusion=None):
        a = F.relu(self.reduce_bn(self.reduce(x)))
        outer = self.outer_bn(self.outer(x))
        y = self.conv3x3(a if fusion is None else a + fusion)
        # bn applied twice on purpose, as the reference (see class docstring)
        mid = F.relu(self.conv3x3_bn(y) + self.inner(y) + self.conv3x3_bn(y))
        return self._finish(x, mid, extra=outer), mid


class IBBlock(_ConvBlockBase):
    """CheXNet's inner-branch block (PRCV 2023, Fig. 2; our reading, models.md section 3).

    ``1x1(in->mid)-BN-ReLU`` -> a nested residual block at ``mid`` channels
    ``[1x1-BN-ReLU -> 3x3-BN-ReLU -> 1x1-BN] + 1x1-BN shortcut, add, ReLU`` -> ``1x1(mid->out)-BN``
    -> add the outer identity/projection -> ReLU. The tokens->CNN map is added to the input of
    the nested 3x3 conv; the nested block's output is ``x_mid`` (what CNN->tokens reads). The
    stride sits on the nested 3x3 conv and its shortcut.
    """

    def __init__(self, cin, cout, stride=1, project=False, drop_path=0.0):
        super().__init__(cin, cout, stride, project, drop_path)
        mid = cout // 4
        self.inner_reduce = _conv1x1(mid, mid)
        self.inner_reduce_bn = _bn(mid)
        self.conv3x3 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.conv3x3_bn = _bn(mid)
        self.inner_expand = _conv1x1(mid, mid)
        self.inner_expand_bn = _bn(mid)
        self.inner_shortcut = nn.Sequential(_conv1x1(mid, mid, stride), _bn(mid))

    def forward(self, x, fusion=None):
        a = F.relu(self.reduce_bn(self.reduce(x)))
        n = F.relu(self.inner_reduce_bn(self.inner_reduce(a)))
        n = F.relu(self.conv3x3_bn(self.conv3x3(n if fusion is None else n + fusion)))
        n = self.inner_expand_bn(self.inner_expand(n))
        mid = F.relu(n + self.inner_shortcut(a))
        return self._finish(x, mid), mid


CONV_BLOCKS = {"bottleneck": BottleneckBlock, "mbr": MBRBlock, "ib": IBBlock}


# --------------------------------------------------------------------------------------------
# Coupling between the branches
# --------------------------------------------------------------------------------------------
class CnnToTokens(nn.Module):
    """CNN -> tokens (bottom-up). ``gated``: IIM's sigmoid gate (models.md 2.2), else FCU.

    As published: ``x_mid`` (B×mid×H×W) -> ``p = project(x_mid)`` (1x1 conv to D)
    [``p = p + gate_out(sigmoid(BN(gate(p))))``] -> avg-pool by ``stride`` -> B×N×D tokens ->
    LayerNorm -> GELU, with the incoming cls token prepended.

    Executed (``fast``, the default): the same function with less work. Every 1x1 conv is
    linear and commutes with average pooling, so ``project`` and ``gate_out`` run on the pooled
    maps (``stride``² fewer positions), and ``gate ∘ project`` -- two 1x1 convs with nothing
    between them -- runs as one mid->D conv whose weight is the product of theirs (computed each
    step, so both stay ordinary parameters with their own gradients). Only ``sigmoid(BN(·))``,
    which is not linear, needs the full-resolution map. The outputs agree with the published
    order to rounding (tests compare them; :func:`as_published` runs the published order, for
    its FLOP count and for checks).
    """

    def __init__(self, mid: int, dim: int, stride: int, gated: bool) -> None:
        super().__init__()
        self.project = nn.Conv2d(mid, dim, 1)
        self.gated = gated
        if gated:
            self.gate = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim), nn.Sigmoid())
            self.gate_out = nn.Conv2d(dim, dim, 1)
        self.pool = nn.AvgPool2d(stride, stride)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.fast = True

    def _published(self, x_mid: torch.Tensor) -> torch.Tensor:
        p = self.project(x_mid)
        if self.gated:
            p = p + self.gate_out(self.gate(p))
        return self.pool(p)

    def _fast(self, x_mid: torch.Tensor) -> torch.Tensor:
        pooled = self.project(self.pool(x_mid))  # = pool(project(x_mid)): both linear
        if not self.gated:
            return pooled
        conv, norm, sigmoid = self.gate
        w_gate = conv.weight.flatten(1)  # (D, D, 1, 1) -> (D, D)
        w_project = self.project.weight.flatten(1)  # (D, mid, 1, 1) -> (D, mid)
        weight = (w_gate @ w_project)[:, :, None, None]  # (D, mid) -> (D, mid, 1, 1)
        bias = torch.addmv(conv.bias, w_gate, self.project.bias)  # W_gate·b_project + b_gate
        g = sigmoid(norm(F.conv2d(x_mid, weight, bias)))  # = gate(project(x_mid))
        return pooled + self.gate_out(self.pool(g))  # gate_out after pooling: linear

    def forward(self, x_mid: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        pooled = self._fast(x_mid) if self.fast else self._published(x_mid)
        u = pooled.flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)
        u = F.gelu(self.norm(u))
        return torch.cat([tokens[:, :1], u], dim=1)


@contextmanager
def as_published(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model``'s CNN->tokens couplings in the published order inside the block (FLOP
    counts of the authors' model, checks of the faster order); restored on exit."""
    couplings = [m for m in model.modules() if isinstance(m, CnnToTokens)]
    before = [m.fast for m in couplings]
    for m in couplings:
        m.fast = False
    try:
        yield model
    finally:
        for m, fast in zip(couplings, before, strict=True):
            m.fast = fast


class TokensToCnn(nn.Module):
    """Tokens -> CNN (top-down). ``gated``: IIM's sigmoid refinement, else FCU.

    Patch tokens (cls dropped) -> B×D×h×w -> 1x1 conv to mid, BN, ReLU -> bilinear upsampling to
    the CNN map [+ sigmoid(1x1(ReLU(1x1(u))))].
    """

    def __init__(self, dim: int, mid: int, gated: bool) -> None:
        super().__init__()
        self.project = nn.Conv2d(dim, mid, 1)
        self.norm = _bn(mid)
        self.gated = gated
        if gated:
            self.refine = nn.Sequential(
                nn.Conv2d(mid, mid, 1), nn.ReLU(), nn.Conv2d(mid, mid, 1), nn.Sigmoid()
            )

    def forward(self, tokens: torch.Tensor, size: tuple[int, int], grid: tuple[int, int]):
        b, _, d = tokens.shape
        r = tokens[:, 1:].transpose(1, 2).reshape(b, d, *grid)  # (B, N, D) -> (B, D, h, w)
        r = F.relu(self.norm(self.project(r)))
        u = F.interpolate(r, size=size, mode="bilinear", align_corners=False)
        return u + self.refine(u) if self.gated else u


# --------------------------------------------------------------------------------------------
# Token layers
# --------------------------------------------------------------------------------------------
def _sigmoid_score(score, batch, head, q_index, kv_index):
    """flex_attention score modifier: MMAEF's sigmoid between the scaled logits and softmax."""
    return torch.sigmoid(score)


_FLEX: dict[str, object] = {}  # the compiled flex_attention, or the reason it is not used


def _compiled_flex():
    """``torch.compile(flex_attention)`` once per process (eager flex is a slow reference
    implementation), or None where flex attention cannot run (it is not in this torch)."""
    if "kernel" not in _FLEX:
        try:
            from torch.nn.attention.flex_attention import flex_attention
        except ImportError as error:  # older torch: the hand-written form is used
            _FLEX["kernel"], _FLEX["why"] = None, str(error)
        else:
            _FLEX["kernel"] = torch.compile(flex_attention, dynamic=False)
    return _FLEX["kernel"]


def mmaef_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> torch.Tensor:
    """``softmax(sigmoid(q·kᵀ·scale))·v`` (CTransCNN's MMAEF; q, k, v: B×heads×N×d_head).

    On a GPU this runs as one fused ``flex_attention`` kernel with a sigmoid score modifier
    (the N×N weights never reach memory); elsewhere, or if the kernel fails to build, as the
    hand-written form (the published one). ``USE_FLEX_ATTENTION = False`` forces the latter.
    """
    if q.is_cuda and USE_FLEX_ATTENTION and _FLEX.get("failed") is None:
        if torch.compiler.is_compiling():  # inside a compiled model: its compiler fuses it
            from torch.nn.attention.flex_attention import flex_attention

            return flex_attention(q, k, v, score_mod=_sigmoid_score, scale=scale)
        kernel = _compiled_flex()
        if kernel is not None:
            try:
                return kernel(q, k, v, score_mod=_sigmoid_score, scale=scale)
            except Exception as error:  # a compiler failure: fall back, and say so
                _FLEX["failed"] = repr(error)
                warnings.warn(
                    f"flex_attention could not run here ({error!r}); MMAEF uses the "
                    f"hand-written attention for the rest of this process",
                    RuntimeWarning,
                    stacklevel=2,
                )
    weights = torch.sigmoid((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)  # (B, h, N, N)
    return weights @ v


#: Set False to run MMAEF's hand-written attention on the GPU too (checks, benchmarks).
USE_FLEX_ATTENTION = True


class Attention(nn.Module):
    """Multi-head self-attention; ``sigmoid_logits`` gives MMAEF's softmax(sigmoid(q·kᵀ/√d))."""

    def __init__(self, dim: int, heads: int, sigmoid_logits: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.sigmoid_logits = sigmoid_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, N, d_head)
        if self.sigmoid_logits:
            out = mmaef_attention(q, k, v, self.scale)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class FeedForward(nn.Sequential):
    """Linear(D -> ratio·D), GELU, Linear(ratio·D -> D)."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TokenLayer(nn.Module):
    """Pre-norm token layer. ``softmax``: attention + FFN (ViT/Conformer). ``mmaef``: two
    separately parameterised sigmoid-softmax attentions, then the FFN (models.md 2.3)."""

    def __init__(self, dim: int, heads: int, kind: str, drop_path: float, mlp_ratio=4.0):
        super().__init__()
        if kind not in ("softmax", "mmaef"):
            raise ValueError(f"token attention must be 'softmax' or 'mmaef'; got {kind!r}")
        mmaef = kind == "mmaef"
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, sigmoid_logits=mmaef)
        self.attn2 = Attention(dim, heads, sigmoid_logits=True) if mmaef else None
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS) if mmaef else None
        self.norm_ffn = nn.LayerNorm(dim, eps=LN_EPS)
        self.ffn = FeedForward(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t + self.drop_path(self.attn(self.norm1(t)))
        if self.attn2 is not None:
            t = t + self.drop_path(self.attn2(self.norm2(t)))
        return t + self.drop_path(self.ffn(self.norm_ffn(t)))


# --------------------------------------------------------------------------------------------
# CheXNet's label decoder (MEMSP)
# --------------------------------------------------------------------------------------------
def adaptive_max_pool2d(z: torch.Tensor, s: int) -> torch.Tensor:
    """``F.adaptive_max_pool2d(z, s)`` as maxima over its static row and column bands (the
    same regions: ``[floor(i·n/s), ceil((i+1)·n/s))``; a maximum over a rectangle is the
    maximum over its rows of the maxima over its columns). Equal to the library's, and
    exportable to ONNX, which has no adaptive max pooling."""
    for dim in (-2, -1):
        n = z.shape[dim]
        bands = [
            z.narrow(dim, i * n // s, -(-(i + 1) * n // s) - i * n // s).amax(dim, keepdim=True)
            for i in range(s)
        ]
        z = torch.cat(bands, dim)
    return z


class MultiScalePooling(nn.Module):
    """MSP (CheXNet Eqs. 3–6): attention over label embeddings with multi-scale pooled q, k, v.

    For each scale s in ``scales`` the per-head (K × d_head) planes of q, k and v are adaptively
    max-pooled to s×s and bilinearly upsampled back; q and k fuse by element-wise product over
    scales, v by sum. Output: ``softmax(q'·k'ᵀ/√d)·v' + q'``, heads merged, projected.
    """

    def __init__(self, dim: int, heads: int, scales: tuple[int, ...] = (2, 3, 4)) -> None:
        super().__init__()
        self.heads, self.scales = heads, scales
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def _multi_scale(self, z: torch.Tensor) -> list[torch.Tensor]:
        size = z.shape[-2:]
        return [
            F.interpolate(
                adaptive_max_pool2d(z, s), size=size, mode="bilinear", align_corners=False
            )
            for s in self.scales
        ]

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        b, k, d = labels.shape
        qkv = self.qkv(labels).reshape(b, k, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, key, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, K, d_head): a K × d_head plane
        q = math.prod(self._multi_scale(q))
        key = math.prod(self._multi_scale(key))
        v = sum(self._multi_scale(v))
        out = F.scaled_dot_product_attention(q, key, v) + q  # softmax(q·kᵀ/√d)·v + q
        return self.proj(out.transpose(1, 2).reshape(b, k, d))  # (B, K, D)


class LabelLayer(nn.Module):
    """One MEMSP step on the label embeddings Q, post-norm as the paper's Fig. 2:
    ``Q = LN(Q + SelfAttn(Q))``, ``Q = LN(Q + CrossAttn(Q, patch tokens))``,
    [``Q = LN(Q + MSP(Q))``], ``Q = LN(Q + FFN(Q))``."""

    def __init__(self, dim: int, heads: int, with_msp: bool, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.msp = MultiScalePooling(dim, heads) if with_msp else None
        self.ffn = FeedForward(dim, mlp_ratio)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4 if with_msp else 3))

    def forward(self, q: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        norms = iter(self.norms)
        q = next(norms)(q + self.self_attn(q, q, q, need_weights=False)[0])
        q = next(norms)(q + self.cross_attn(q, patches, patches, need_weights=False)[0])
        if self.msp is not None:
            q = next(norms)(q + self.msp(q))
        return next(norms)(q + self.ffn(q))
