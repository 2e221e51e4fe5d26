"""Attention of the dual-branch network: the token layers (softmax, or CTransCNN's MMAEF) and
CheXNet's label decoder (MEMSP with multi-scale pooling).

References (facts taken from them; the code is our own):

* CTransCNN (Wu et al., Knowledge-Based Systems 281:111030, 2023; authors' code
  github.com/wuliwuxin/CTransCNN @ cd1ed1d8): MMAEF, ``softmax(sigmoid(q·kᵀ/√d))``, two
  separately parameterised attentions per layer (``shared/design/models.md`` section 2.3).
* CheXNet hybrid (Wu et al., PRCV 2023, LNCS 14437): MEMSP label embeddings and MSP (Eqs. 3-6);
  our reading is documented in :mod:`cxrlib.models.dual_branch`.

On a GPU, MMAEF runs as one fused ``flex_attention`` kernel; where that kernel cannot be built
(forward or backward), it falls back to the hand-written form with one warning, and
:func:`attention_path` says which ran.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from cxrlib.models.blocks import LN_EPS, DropPath

try:  # flex_attention arrived in torch 2.5; older versions use the hand-written form
    from torch.nn.attention.flex_attention import flex_attention as _flex_attention
except ImportError:  # pragma: no cover - torch < 2.5
    _flex_attention = None


def _sigmoid_score(score, batch, head, q_index, kv_index):
    """flex_attention score modifier: MMAEF's sigmoid between the scaled logits and softmax."""
    return torch.sigmoid(score)


#: Set False to run MMAEF's hand-written attention on the GPU too (checks, benchmarks).
USE_FLEX_ATTENTION = True
#: The compiled kernel, the shapes it passed its first forward and backward with, and why it
#: is not used (after a failure it stays off for the rest of the process).
_FLEX: dict = {"kernel": None, "checked": set(), "failed": None, "ran": False}


def hand_written_attention(q, k, v, scale: float) -> torch.Tensor:
    """``softmax(sigmoid(q·kᵀ·scale))·v``, written out (the published form)."""
    weights = torch.sigmoid((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)  # (B, h, N, N)
    return weights @ v


def flex_kernel():
    """``torch.compile(flex_attention)``, made once per process (eager flex is a slow reference
    implementation), or None where this torch has no flex attention."""
    if _FLEX["kernel"] is None and _flex_attention is not None:
        _FLEX["kernel"] = torch.compile(_flex_attention, dynamic=False)
    return _FLEX["kernel"]


def _flex_fails(q: torch.Tensor, scale: float) -> Exception | None:
    """Compile and run the kernel forward *and* backward once for this shape and dtype, on
    random inputs (a failure surfaces here, not in the middle of a training step)."""
    key = (tuple(q.shape), q.dtype, q.device, scale)
    if key in _FLEX["checked"]:
        return None
    try:
        probe = [torch.randn_like(q, requires_grad=True) for _ in range(3)]
        out = flex_kernel()(*probe, score_mod=_sigmoid_score, scale=scale)
        out.float().sum().backward()
    except Exception as error:
        return error
    _FLEX["checked"].add(key)
    return None


def _fall_back(error: Exception) -> None:
    _FLEX["failed"] = f"{type(error).__name__}: {error}"
    warnings.warn(
        f"flex_attention could not be compiled here ({_FLEX['failed'][:300]}); MMAEF uses the "
        f"hand-written attention for the rest of this process",
        RuntimeWarning,
        stacklevel=3,
    )


def attention_path() -> str:
    """Which MMAEF attention this process has run: ``flex_attention``, or the hand-written
    form and why (results and benchmarks record it)."""
    if _FLEX["failed"]:
        return f"hand-written (flex_attention failed: {_FLEX['failed'][:200]})"
    if _FLEX["ran"]:
        return "flex_attention"
    return "hand-written (no CUDA device, or USE_FLEX_ATTENTION off)"


def _wants_flex(q: torch.Tensor) -> bool:
    """Flex attention for this input: on a GPU, where this torch has it, unless it failed."""
    usable = q.is_cuda and USE_FLEX_ATTENTION and _FLEX["failed"] is None
    return usable and _flex_attention is not None


def mmaef_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> torch.Tensor:
    """``softmax(sigmoid(q·kᵀ·scale))·v`` (CTransCNN's MMAEF; q, k, v: B×heads×N×d_head).

    On a GPU this runs as one fused ``flex_attention`` kernel with a sigmoid score modifier
    (the N×N weights never reach memory). Before its first use at a shape, the kernel is
    compiled and run forward and backward once; if that fails, or flex attention is not in
    this torch, the hand-written form runs (with one warning) for the rest of the process.
    ``USE_FLEX_ATTENTION = False`` forces the hand-written form.
    """
    if _wants_flex(q):
        if torch.compiler.is_compiling():  # inside a compiled model: its compiler fuses it
            _FLEX["ran"] = True
            return _flex_attention(q, k, v, score_mod=_sigmoid_score, scale=scale)
        error = _flex_fails(q, scale)
        if error is None:
            try:
                out = flex_kernel()(q, k, v, score_mod=_sigmoid_score, scale=scale)
                _FLEX["ran"] = True
                return out
            except Exception as failure:
                error = failure
        _fall_back(error)
    return hand_written_attention(q, k, v, scale)


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
