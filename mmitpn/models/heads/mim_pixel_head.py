"""iTPN's pixel MIM decoder: all pyramid levels feed an MAE-style decoder."""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.utils import to_2tuple

from mmitpn.registry import MODELS
from ..utils import (AttentionBlock, PyramidLevelEmbed,
                     build_2d_sincos_pos_embed, init_linear_and_norm,
                     resize_pos_embed)


@MODELS.register_module()
class iTPNPixelHead(BaseModule):
    """Pixel decoder and norm-pix loss of iTPN's MAE-style pre-training.

    Each pyramid level (visible patches only, official token layout
    ``(B, L, h, w, C)``) goes through ``LN + Linear(C -> D / (h*w))``; its
    ``h x w`` sub-tokens are then stacked into channels, giving ``(B, L, D)``
    per level. Every level is padded with the same ``mask_token`` and
    unshuffled to the full grid, the levels are summed (so masked patches
    get ``num_levels * mask_token``, as in the official code), a fixed 2-D
    sin-cos table is added, and ``depth`` attention blocks, ``norm`` and
    ``pred`` map each patch to its pixels.

    Args:
        in_channels (int): Channels of the pyramid levels (``fpn_dim``).
        num_levels (int): Pyramid levels fed to the decoder. The coarsest has
            one token per patch (stride ``patch_size``); each finer level has
            twice the resolution of the next.
        embed_dims (int): Decoder width ``D``; divisible by ``4 **
            (num_levels - 1)``.
        depth (int): Decoder attention blocks.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / ``embed_dims``.
        qkv_bias (bool): Bias of the fused ``qkv`` projections.
        patch_size (int): Pixels per patch side.
        in_pixels (int): Image channels to reconstruct.
        img_size (int | tuple[int, int]): Construction-time image size; sets
            the grid of the cached position table (other grids work too).
        norm_eps (float): LayerNorm epsilon.
        norm_pix (bool): Normalise each target patch by its mean and std.
        persistent_pos_embed (bool): Keep the position table in the state
            dict (key ``pos_embed``, resized bicubically for other grids)
            instead of recomputing sin-cos for each grid. Only needed for
            checkpoints whose ``decoder_pos_embed`` is not the sin-cos table,
            e.g. the random-weight parity fixtures.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 num_levels: int = 3,
                 embed_dims: int = 512,
                 depth: int = 8,
                 num_heads: int = 16,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 patch_size: int = 16,
                 in_pixels: int = 3,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 norm_eps: float = 1e-6,
                 norm_pix: bool = True,
                 persistent_pos_embed: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_levels = num_levels
        self.embed_dims = embed_dims
        self.patch_size = patch_size
        self.norm_pix = norm_pix
        self.persistent_pos_embed = persistent_pos_embed
        img_size = to_2tuple(img_size)
        self.grid_size = (img_size[0] // patch_size,
                          img_size[1] // patch_size)

        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.level_embeds = PyramidLevelEmbed(in_channels, embed_dims,
                                              num_levels, norm_eps)
        self.register_buffer(
            'pos_embed',
            build_2d_sincos_pos_embed(embed_dims, self.grid_size),
            persistent=persistent_pos_embed)
        self.blocks = nn.ModuleList([
            AttentionBlock(
                embed_dims,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                norm_eps=norm_eps) for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.pred = nn.Linear(embed_dims, patch_size**2 * in_pixels)

        init_linear_and_norm(self)
        nn.init.normal_(self.mask_token, std=.02)

    def position_table(self, grid: Tuple[int, int]) -> torch.Tensor:
        """``(1, rows * cols, D)`` position table for a patch grid."""
        grid = tuple(grid)
        if grid == self.grid_size:
            return self.pos_embed
        if self.persistent_pos_embed:
            return resize_pos_embed(self.pos_embed, self.grid_size, grid)
        return build_2d_sincos_pos_embed(self.embed_dims, grid).to(
            self.pos_embed)

    def forward(self, feats: Sequence[torch.Tensor],
                ids_restore: torch.Tensor,
                grid: Tuple[int, int]) -> torch.Tensor:
        """Predict the pixels of every patch.

        Args:
            feats (Sequence[Tensor]): ``num_levels`` tensors ``(B, L, h, w,
                C)`` of the ``L`` visible patches, ordered by increasing
                stride (s4, s8, s16 for three levels), in the patch order of
                the backbone's ``ids_keep``.
            ids_restore (Tensor): ``(B, N)`` inverse of the masking shuffle.
            grid (tuple[int, int]): Patch grid ``(rows, cols)``, ``rows *
                cols == N``.

        Returns:
            Tensor: ``(B, N, patch_size ** 2 * in_pixels)`` predictions in
            MAE patchify order ``(p, q, c)``.
        """
        B, N = ids_restore.shape
        if grid[0] * grid[1] != N:
            raise ValueError(f'grid {tuple(grid)} does not hold {N} patches')
        index = ids_restore[..., None].expand(-1, -1, self.embed_dims)
        x = self.position_table(grid)
        for tokens in self.level_embeds(feats):
            pad = self.mask_token.expand(B, N - tokens.shape[1], -1)
            x = x + torch.gather(torch.cat([tokens, pad], dim=1), 1, index)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, c, H, W) -> (B, N, p * p * c)`` in MAE order ``(p, q, c)``."""
        B, C, H, W = images.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(
                f'image size {H}x{W} is not a multiple of patch size {p}')
        x = images.reshape(B, C, H // p, p, W // p, p)
        x = x.permute(0, 2, 4, 3, 5, 1)
        return x.reshape(B, (H // p) * (W // p), p * p * C)

    def unpatchify(self, patches: torch.Tensor,
                   grid: Tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``(B, N, p * p * c) -> (B, c, H, W)``
        for a ``grid`` of ``(rows, cols)`` patches."""
        B, N, D = patches.shape
        p = self.patch_size
        rows, cols = grid
        c = D // (p * p)
        x = patches.reshape(B, rows, cols, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, c, rows * p, cols * p)

    def loss(self, pred: torch.Tensor, images: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """MAE loss: per-patch MSE, averaged over masked patches only.

        Args:
            pred (Tensor): ``(B, N, p * p * c)`` from :meth:`forward`.
            images (Tensor): ``(B, c, H, W)`` input images.
            mask (Tensor): ``(B, N)``, 1 for masked (removed) patches.
        """
        target = self.patchify(images)
        if self.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            # Unbiased variance, as in MAE.
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6)**.5
        loss = (pred - target).pow(2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()
