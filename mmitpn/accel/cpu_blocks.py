"""CPU fast paths of mmitpn's blocks, swapped in by
:func:`mmitpn.accel.accelerate` for the plain classes they subclass.

Each keeps its plain class's parameters and keys and falls back to the plain
computation wherever its fast path does not apply (GPU tensors, autograd
where it matters), so a swapped model gives the plain model's results up to
the rounding of the other kernels.
"""
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmitpn.models.utils.blocks import (Attention, AttentionBlock, CMLPBlock,
                                        Mlp)
from .cpu_linear import OneDNNLinear

# Without autograd on CPU, MLP hidden activations larger than
# _CHUNK_MIN elements are computed in chunks of about _CHUNK_ELEMS.
_CHUNK_MIN = 1 << 22  # 16 MiB in fp32
_CHUNK_ELEMS = 1 << 20


def residual_per_token(x: torch.Tensor, branch: Callable,
                       hidden: int) -> torch.Tensor:
    """``x + branch(x)`` for a per-token MLP ``branch`` of width ``hidden``.

    Without autograd on CPU, large inputs go through in chunks: large CPU
    buffers come from the system allocator as fresh pages that are
    page-faulted in on every forward, which made the stem stages (38 MiB
    hidden activations for iTPN-B at batch 8) twice as slow as their FLOPs
    suggest. Results are unchanged because tokens are independent.
    """
    rows = x.numel() // x.shape[-1]
    if (x.device.type != 'cpu' or torch.is_grad_enabled()
            or rows * hidden <= _CHUNK_MIN):
        return x + branch(x)
    flat = x.reshape(rows, x.shape[-1])
    out = flat.new_empty(flat.shape)
    size = max(1, _CHUNK_ELEMS // hidden)
    for chunk, dst in zip(flat.split(size), out.split(size)):
        torch.add(chunk, branch(chunk), out=dst)
    return out.view(x.shape)


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     bias: Optional[torch.Tensor],
                     dropout_p: float) -> torch.Tensor:
    """Attention as two low-precision matmuls around a softmax.

    On iTPN-B shapes (2 threads), PyTorch's fused CPU attention kernel is
    1.4-2.1x slower in bfloat16 than this in the forward and 2.5-3.5x slower
    in forward plus backward, while bfloat16 matmuls run at twice the
    float32 rate. The CPU softmax kernel computes in float32 internally, and
    keeping the scores in bfloat16 avoids converting ``(B, heads, N, N)``
    tensors back and forth.
    """
    scores = torch.matmul(q * q.shape[-1]**-0.5, k.transpose(-2, -1))
    if bias is not None:
        scores = scores + bias
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.:
        weights = F.dropout(weights, dropout_p)
    return torch.matmul(weights, v)


class FusedGeluMlp(Mlp):
    """:class:`Mlp` whose exact GELU runs inside ``fc1``'s oneDNN product
    (``fc1`` is a :class:`~mmitpn.accel.cpu_linear.OneDNNLinear`)."""

    @staticmethod
    def can_replace(mlp: Mlp) -> bool:
        # The GELU runs inside fc1's product (swapped to oneDNN first), and
        # oneDNN's fused activation is the exact GELU.
        return (isinstance(mlp.fc1, OneDNNLinear) and type(mlp.act) is nn.GELU
                and mlp.act.approximate == 'none')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.fc1(x, gelu=True))
        return self.drop(self.fc2(x))


class CPUMatmulAttention(Attention):
    """:class:`Attention` with :func:`matmul_attention` for CPU bfloat16 /
    float16 inputs."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: Optional[torch.Tensor]) -> torch.Tensor:
        if q.device.type == 'cpu' and q.dtype in (torch.bfloat16,
                                                  torch.float16):
            return matmul_attention(
                q, k, v, bias, self.attn_drop if self.training else 0.)
        return super().attend(q, k, v, bias)


class ChunkedCMLPBlock(CMLPBlock):
    """:class:`CMLPBlock` through :func:`residual_per_token`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_per_token(x, self.branch, self.mlp.fc1.out_features)


class ChunkedAttentionBlock(AttentionBlock):
    """:class:`AttentionBlock` whose MLP goes through
    :func:`residual_per_token`."""

    def forward(self,
                x: torch.Tensor,
                grid=None,
                ids_keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn_branch(x, grid, ids_keep)
        return residual_per_token(x, self.mlp_branch,
                                  self.mlp.fc1.out_features)
