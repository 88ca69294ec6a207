"""Building blocks of iTPN's HiViT backbone and feature pyramid.

Hierarchical features use the official layout ``(B, N, h, w, C)``: ``N``
patches (16x16 pixels with the default patch size) in raster order, each
holding an ``h x w`` sub-grid of tokens (4x4 at stride 4, 2x2 at stride 8,
1x1 at stride 16). Nothing in this file mixes tokens of different patches
except ``Attention``, which is why MAE-style dropping of whole patches is
exact for the stem stages.
"""
import functools
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from .pos_embed import relative_position_index, resize_rel_pos_table


def init_linear_and_norm(module: nn.Module) -> None:
    """Official init: trunc-normal(.02) Linear weights, zero biases, unit LN.

    Convolutions keep PyTorch's default init, as in the official code.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample.

    Blocks use ``nn.Identity`` instead when the rate is 0.
    """

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = 1. - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class LayerScale(nn.Module):
    """Per-channel scale ``x * gamma`` of a residual branch (CaiT)."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def drop_path_or_identity(drop_prob: float) -> nn.Module:
    return DropPath(drop_prob) if drop_prob > 0 else nn.Identity()


def dropout_or_identity(drop_prob: float) -> nn.Module:
    # A switched-off dropout is no operator at all (an nn.Dropout(0) is
    # still dispatched, about 200 times per iTPN-B training step).
    return nn.Dropout(drop_prob) if drop_prob > 0 else nn.Identity()


def layer_scale_or_identity(dim: int, init_value: float) -> nn.Module:
    return LayerScale(dim, init_value) if init_value > 0 else nn.Identity()


def _save_flat_layer_scale_keys(names, module, state_dict, prefix,
                                local_metadata):
    for attr, key in names.items():
        value = state_dict.pop(f'{prefix}{attr}.gamma', None)
        if value is not None:
            state_dict[prefix + key] = value


def _load_flat_layer_scale_keys(names, module, state_dict, prefix, *args):
    for attr, key in names.items():
        if prefix + key in state_dict:
            state_dict[f'{prefix}{attr}.gamma'] = state_dict.pop(prefix + key)


def keep_layer_scale_keys(block: nn.Module, names: Dict[str, str]) -> None:
    """Save and load ``block``'s layer scales under their flat official-era
    names (``names``: ``{'ls1': 'gamma1'}`` stores ``ls1.gamma`` as
    ``gamma1``), so checkpoints keep the keys they have always had.
    """
    # Partials of module-level functions, so that models still pickle.
    block.register_state_dict_post_hook(
        functools.partial(_save_flat_layer_scale_keys, names))
    block.register_load_state_dict_pre_hook(
        functools.partial(_load_flat_layer_scale_keys, names))


class Mlp(nn.Module):
    """``fc1 -> act -> drop -> fc2 -> drop`` on the last axis (timm's
    ``Mlp`` signature and keys)."""

    def __init__(self,
                 in_features: int,
                 hidden_features: Optional[int] = None,
                 out_features: Optional[int] = None,
                 act_layer: Type[nn.Module] = nn.GELU,
                 drop: float = 0.):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop = dropout_or_identity(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class CMLPBlock(BaseModule):
    """Pre-norm per-token MLP block: ``x + drop_path(ls(mlp(norm(x))))``.

    The paper's C-MLP: a 1x1-conv MLP written with ``nn.Linear`` so that it
    runs on the last axis of a tensor of any rank (e.g. ``(B, N, h, w, C)``).

    Args:
        dim (int): Channels.
        mlp_ratio (float): Hidden width / ``dim``.
        norm_eps (float): LayerNorm epsilon.
        drop_path (float): Stochastic-depth rate.
        layer_scale_init_value (float): Initial layer scale (saved as
            ``gamma``); 0 disables layer scale.
        drop_rate (float): Dropout inside the MLP.
        mlp_layer (type): The MLP module, built as
            ``mlp_layer(dim, hidden, drop=drop_rate)``.
    """

    def __init__(self,
                 dim: int,
                 mlp_ratio: float = 4.,
                 norm_eps: float = 1e-6,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 0.,
                 drop_rate: float = 0.,
                 mlp_layer: Type[nn.Module] = Mlp,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp_layer(dim, int(dim * mlp_ratio), drop=drop_rate)
        self.ls = layer_scale_or_identity(dim, layer_scale_init_value)
        self.drop_path = drop_path_or_identity(drop_path)
        keep_layer_scale_keys(self, {'ls': 'gamma'})
        init_linear_and_norm(self)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.ls(self.mlp(self.norm(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Attention(nn.Module):
    """Multi-head self-attention with an optional Swin-style relative bias.

    Args:
        dim (int): Channels.
        num_heads (int): Heads; ``dim`` must be divisible by it.
        qkv_bias (bool): Bias of the fused ``qkv`` projection.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after ``proj``.
        rel_pos_grid (tuple[int, int], optional): Patch grid ``(rows, cols)``
            the bias table is built for; None disables the bias.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 rel_pos_grid: Optional[Tuple[int, int]] = None):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(
                f'dim ({dim}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = dropout_or_identity(proj_drop)
        if rel_pos_grid is not None:
            self.rel_pos_grid = tuple(int(s) for s in rel_pos_grid)
            rows, cols = self.rel_pos_grid
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * rows - 1) * (2 * cols - 1), num_heads))
        else:
            self.rel_pos_grid = None
            self.relative_position_bias_table = None

    def rel_pos_bias(self,
                     grid: Tuple[int, int],
                     ids_keep: Optional[torch.Tensor] = None,
                     dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Bias ``(1, heads, N, N)``, or ``(B, heads, L, L)`` with ids_keep.

        The table is bicubically resized when ``grid`` differs from the grid
        it was built for; gradients flow through the resize. ``dtype`` is the
        dtype of the returned bias.
        """
        table = resize_rel_pos_table(self.relative_position_bias_table,
                                     self.rel_pos_grid, grid)
        index = relative_position_index(grid, table.device)
        if ids_keep is not None:
            index = index[ids_keep[:, :, None], ids_keep[:, None, :]]
        # index_select on a (heads, T) table is far faster than advanced
        # indexing and directly yields the (heads, ...) layout SDPA wants;
        # it is several times slower on bfloat16 than on float32 on CPU, so
        # the cast comes after the gather.
        bias = table.t().contiguous().index_select(1, index.flatten())
        bias = bias.view(-1, *index.shape)
        if dtype is not None:
            bias = bias.to(dtype)
        return bias.unsqueeze(0) if ids_keep is None else bias.transpose(0, 1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: Optional[torch.Tensor]) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d) + bias) v`` with attention dropout."""
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias,
            dropout_p=self.attn_drop if self.training else 0.)

    def forward(self,
                x: torch.Tensor,
                grid: Optional[Tuple[int, int]] = None,
                ids_keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, L, C = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = None
        if self.relative_position_bias_table is not None:
            bias = self.rel_pos_bias(grid or self.rel_pos_grid, ids_keep,
                                     q.dtype)
        x = self.attend(q, k, v, bias).transpose(1, 2).reshape(B, L, C)
        return self.proj_drop(self.proj(x))


class AttentionBlock(BaseModule):
    """Pre-norm ViT block on ``(B, L, C)`` tokens of the stage-3 patch grid.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / ``dim``.
        qkv_bias (bool): Bias of the fused ``qkv`` projection.
        norm_eps (float): LayerNorm epsilon.
        drop_path (float): Stochastic-depth rate.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after the attention and MLP projections.
        layer_scale_init_value (float): Initial layer scales (saved as
            ``gamma1``/``gamma2``); 0 disables layer scale.
        rel_pos_grid (tuple[int, int], optional): Construction-time patch grid
            of the relative-position bias table; None disables it.
        mlp_layer (type): The MLP module, built as
            ``mlp_layer(dim, hidden, drop=proj_drop)``.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 norm_eps: float = 1e-6,
                 drop_path: float = 0.,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 layer_scale_init_value: float = 0.,
                 rel_pos_grid: Optional[Tuple[int, int]] = None,
                 mlp_layer: Type[nn.Module] = Mlp,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop,
                              rel_pos_grid)
        self.ls1 = layer_scale_or_identity(dim, layer_scale_init_value)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp_layer(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.ls2 = layer_scale_or_identity(dim, layer_scale_init_value)
        self.drop_path = drop_path_or_identity(drop_path)
        keep_layer_scale_keys(self, {'ls1': 'gamma1', 'ls2': 'gamma2'})
        init_linear_and_norm(self)

    def attn_branch(self,
                    x: torch.Tensor,
                    grid: Optional[Tuple[int, int]] = None,
                    ids_keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.drop_path(self.ls1(self.attn(self.norm1(x), grid,
                                                 ids_keep)))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def forward(self,
                x: torch.Tensor,
                grid: Optional[Tuple[int, int]] = None,
                ids_keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x (Tensor): ``(B, L, C)`` tokens in raster order of ``grid``, or
                the tokens of patches ``ids_keep`` of that grid.
            grid (tuple[int, int], optional): Runtime patch grid; needed for
                the relative bias when it differs from ``rel_pos_grid``.
            ids_keep (Tensor, optional): ``(B, L)`` indices of the kept
                patches (MAE-style dropping); the bias is gathered per sample.
        """
        x = x + self.attn_branch(x, grid, ids_keep)
        return x + self.mlp_branch(x)


class PatchMerge(BaseModule):
    """Swin-style 2x2 merge inside each patch.

    ``(B, N, h, w, C) -> LN(4C) -> Linear(4C, 2C) -> (B, N, h/2, w/2, 2C)``.

    Channel groups are ordered ``(0,0), (1,0), (0,1), (1,1)`` as (row, col)
    offsets, the official order, so official weights load unchanged.
    """

    def __init__(self, dim: int, norm_eps: float = 1e-6, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        init_linear_and_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, h, w, C = x.shape
        # (row_off, col_off) -> channel group col_off * 2 + row_off.
        x = x.reshape(B, N, h // 2, 2, w // 2, 2, C)
        x = x.permute(0, 1, 2, 4, 5, 3, 6)
        x = x.reshape(B, N, h // 2, w // 2, 4 * C)
        return self.reduction(self.norm(x))


class PatchSplit(BaseModule):
    """Learned 2x sub-pixel upsampling inside each patch (official PatchSplit).

    ``LN(dim) -> Linear(dim, 4 * out_dim, bias=False)``, then channel group
    ``row_off * 2 + col_off`` becomes the token at ``(2i + row_off,
    2j + col_off)``: ``(B,N,h,w,dim) -> (B,N,2h,2w,out_dim)``. Note that this
    group order is row-major, unlike ``PatchMerge``'s.
    """

    def __init__(self, dim: int, out_dim: int, norm_eps: float = 1e-6,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.out_dim = out_dim
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.proj = nn.Linear(dim, 4 * out_dim, bias=False)
        init_linear_and_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, h, w, _ = x.shape
        x = self.proj(self.norm(x)).reshape(B, N, h, w, 2, 2, self.out_dim)
        x = x.permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, N, 2 * h, 2 * w, self.out_dim)


class PyramidLevelEmbed(nn.ModuleList):
    """Brings pyramid levels to one ``embed_dims`` token per patch.

    Level ``j`` (ordered finest first, ``num_levels`` levels) holds
    ``4 ** (num_levels - 1 - j)`` sub-tokens per patch. Each is embedded by
    its level's LayerNorm + Linear to ``embed_dims / 4 ** (num_levels - 1 -
    j)`` channels and the sub-tokens are concatenated (space-to-depth), so
    every level gives ``(B, N, embed_dims)``: the official ``decoder_embed``
    of the pixel decoder and of the CLIP head. Items are ``{j}.norm`` and
    ``{j}.proj``.

    Args:
        in_channels (int): Channels of every level.
        embed_dims (int): Channels per patch after embedding.
        num_levels (int): Number of levels.
        norm_eps (float): LayerNorm epsilon.
    """

    def __init__(self, in_channels: int, embed_dims: int, num_levels: int,
                 norm_eps: float = 1e-6):
        if embed_dims % 4**(num_levels - 1):
            raise ValueError(
                f'embed_dims ({embed_dims}) must be divisible by 4 ** '
                f'(num_levels - 1) = {4**(num_levels - 1)}')
        super().__init__([
            nn.Sequential(
                OrderedDict(
                    norm=nn.LayerNorm(in_channels, eps=norm_eps),
                    proj=nn.Linear(in_channels,
                                   embed_dims // 4**(num_levels - 1 - j))))
            for j in range(num_levels)
        ])
        self.embed_dims = embed_dims

    def forward(self, levels: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """``(B, L, h, w, C)`` levels -> list of ``(B, L, embed_dims)``."""
        if len(levels) != len(self):
            raise ValueError(
                f'expected {len(self)} pyramid levels, got {len(levels)}')
        tokens = []
        for level, embed in zip(levels, self):
            embedded = embed(level).flatten(2)
            if embedded.shape[-1] != self.embed_dims:
                raise ValueError(
                    f'a level of shape {tuple(level.shape)} does not match '
                    'its embedding; levels must be ordered by increasing '
                    'stride, ending at one token per patch')
            tokens.append(embedded)
        return tokens
