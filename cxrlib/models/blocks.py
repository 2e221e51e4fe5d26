"""Building blocks of the dual-branch (CNN + Transformer) network, each with its switch: the
conv blocks and the coupling between the branches (the token layers and the label decoder are
:mod:`cxrlib.models.attention`).

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

    Patch tokens (cls dropped) -> B×D×h×w -> 1x1 conv to mid, BN, ReLU -> up-sampling to the
    CNN map [+ sigmoid(1x1(ReLU(1x1(u))))]. ``upsample``: ``bilinear`` (the authors' CTransCNN
    code, ``mode='bilinear'`` in their FCUUp) or ``nearest`` (Conformer's FCUUp, which calls
    ``F.interpolate`` with its default mode).
    """

    def __init__(self, dim: int, mid: int, gated: bool, upsample: str = "bilinear") -> None:
        super().__init__()
        self.project = nn.Conv2d(dim, mid, 1)
        self.norm = _bn(mid)
        self.gated = gated
        self.upsample = upsample
        if gated:
            self.refine = nn.Sequential(
                nn.Conv2d(mid, mid, 1), nn.ReLU(), nn.Conv2d(mid, mid, 1), nn.Sigmoid()
            )

    def forward(self, tokens: torch.Tensor, size: tuple[int, int], grid: tuple[int, int]):
        b, _, d = tokens.shape
        r = tokens[:, 1:].transpose(1, 2).reshape(b, d, *grid)  # (B, N, D) -> (B, D, h, w)
        r = F.relu(self.norm(self.project(r)))
        if self.upsample == "bilinear":
            u = F.interpolate(r, size=size, mode="bilinear", align_corners=False)
        else:
            u = F.interpolate(r, size=size, mode="nearest")
        return u + self.refine(u) if self.gated else u


class ConvToKeys(nn.Module):
    """The CNN branch's map as keys and values for MEMSP's cross-attention (``label_kv='conv'``:
    the paper's "conv-extracted image features"): average-pooled to the token grid, a 1x1 conv
    to the token width, LayerNorm. B×C×H×W -> B×(H/s·W/s)×D."""

    def __init__(self, channels: int, dim: int, stride: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()
        self.project = nn.Conv2d(channels, dim, 1)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = self.project(self.pool(x)).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)
        return self.norm(keys)
