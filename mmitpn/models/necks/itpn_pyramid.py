"""iTPN's feature pyramid: the top-down path that the paper pre-trains
jointly with the backbone (official ``align_dim_*``/``split_*``/``block_*``/
``fpn_modules``), usable on dense NCHW maps and on MIM token tensors.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmitpn.registry import MODELS
from ..utils.blocks import CMLPBlock, PatchSplit, init_linear_and_norm
from ..utils.checkpoint_loading import PretrainedCheckedModule, count_blocks
from ..utils.layout import nchw_to_tokens, tokens_to_nchw
from ..utils.masking import gather_patches


class Conv3x3Block(BaseModule):
    """C-MLP block whose first layer is a 3x3 conv (Table 6 ablation).

    ``x + fc2(GELU(conv3x3(LN(x))))``: the conv mixes neighbouring tokens,
    across patch borders too. On MAE-kept tokens the normed tokens are
    scattered onto the full map with zeros at dropped patches, so the conv
    sees nothing of a masked patch but its absence.

    Args:
        dim (int): Channels.
        mlp_ratio (float): Hidden width / ``dim``.
        norm_eps (float): LayerNorm epsilon.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.,
                 norm_eps: float = 1e-6, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden = int(dim * mlp_ratio)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.conv = nn.Conv2d(dim, hidden, 3, padding=1)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        init_linear_and_norm(self)

    def forward(self,
                x: torch.Tensor,
                grid: Tuple[int, int],
                ids_keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x (Tensor): ``(B, L, h, w, C)`` tokens of all patches of ``grid``
                or, with ``ids_keep``, of the kept patches only.
            grid (tuple[int, int]): Patch grid ``(rows, cols)``.
            ids_keep (Tensor, optional): ``(B, L)`` kept patch indices.
        """
        y = self.norm(x)
        if ids_keep is not None:
            B, _, h, w, C = y.shape
            index = ids_keep[:, :, None, None, None].expand_as(y)
            y = y.new_zeros(B, grid[0] * grid[1], h, w, C).scatter(
                1, index, y)
        y = nchw_to_tokens(self.conv(tokens_to_nchw(y, grid)), grid)
        if ids_keep is not None:
            y = gather_patches(y, ids_keep)
        return x + self.fc2(self.act(y))


@MODELS.register_module()
class iTPNPyramid(PretrainedCheckedModule):
    """Top-down pyramid with C-MLP fusion and learned 2x upsampling.

    With ``C3`` the stage-3 feature and ``F2``/``F1`` the stage-2/1 features::

        P16 = top_proj(C3)
        T8  = fuse_s8(upsample_s8(C3) + lateral_s8(F2))
        T4  = fuse_s4(upsample_s4(T8) + lateral_s4(F1))
        outs = out_blocks[0](T4), out_blocks[1](T8), out_blocks[2](P16)

    With the default C-MLP blocks every operation stays inside a 16x16
    patch, so the pyramid also runs on the tokens of MAE-kept patches only.
    ``fusion_block='conv3x3'`` swaps every C-MLP block for a
    :class:`Conv3x3Block` (the convolutional variant of Table 6), whose conv
    crosses patches; on kept tokens it needs ``grid`` and ``ids_keep``.

    Args:
        in_channels (Sequence[int]): Channels of the stride 4, 8, 16 inputs
            (``C/4, C/2, C`` of the backbone).
        out_channels (int): Pyramid width (official ``fpn_dim``, 256).
        fpn_depth (int): C-MLP blocks after each top-down fusion (official:
            2 for pixel pre-training and seg, 1 for CLIP pre-training and det).
        mlp_ratio (float): MLP ratio of all pyramid blocks.
        norm_eps (float): LayerNorm epsilon.
        num_outs (int): 3, or 4/5 to append parameter-free stride 32/64
            levels pooled from the previous level (NCHW inputs only).
        extra_pool (str): ``'avg'`` (official det) or ``'max'`` (official
            seg) 2x2 stride-2 pooling for the extra levels.
        concat_inputs (bool): Concatenate each pyramid output with the input
            of the same stride along channels (official seg; NCHW only).
        fusion_block (str): ``'cmlp'`` (paper, official) or ``'conv3x3'``
            (Table 6 ablation).
        init_cfg (dict, optional): mmengine init config; a ``Pretrained``
            one (``prefix='neck.'`` for mmitpn checkpoints) is loaded and
            checked by
            :func:`~mmitpn.models.utils.checkpoint_loading.load_pretrained`.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 256, 512),
                 out_channels: int = 256,
                 fpn_depth: int = 2,
                 mlp_ratio: float = 4.0,
                 norm_eps: float = 1e-6,
                 num_outs: int = 3,
                 extra_pool: str = 'avg',
                 concat_inputs: bool = False,
                 fusion_block: str = 'cmlp',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        in_channels = tuple(int(c) for c in in_channels)
        if len(in_channels) != 3:
            raise ValueError(
                f'in_channels needs the 3 backbone widths (stride 4, 8, 16), '
                f'got {in_channels}')
        if num_outs not in (3, 4, 5):
            raise ValueError(f'num_outs must be 3, 4 or 5, got {num_outs}')
        if extra_pool not in ('avg', 'max'):
            raise ValueError(
                f"extra_pool must be 'avg' or 'max', got {extra_pool!r}")
        if fpn_depth < 0:
            raise ValueError(f'fpn_depth must be >= 0, got {fpn_depth}')
        if fusion_block not in ('cmlp', 'conv3x3'):
            raise ValueError(f"fusion_block must be 'cmlp' or 'conv3x3', "
                             f'got {fusion_block!r}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.extra_pool = extra_pool
        self.concat_inputs = concat_inputs
        self.fusion_block = fusion_block
        block = CMLPBlock if fusion_block == 'cmlp' else Conv3x3Block

        c4, c8, c16 = in_channels
        self.top_proj = (
            nn.Identity() if c16 == out_channels else nn.Linear(
                c16, out_channels))
        self.lateral_s8 = nn.Linear(c8, out_channels, bias=False)
        self.upsample_s8 = PatchSplit(c16, out_channels, norm_eps)
        self.fuse_s8 = nn.Sequential(*[
            block(out_channels, mlp_ratio, norm_eps)
            for _ in range(fpn_depth)
        ])
        self.lateral_s4 = nn.Linear(c4, out_channels, bias=False)
        self.upsample_s4 = PatchSplit(out_channels, out_channels, norm_eps)
        self.fuse_s4 = nn.Sequential(*[
            block(out_channels, mlp_ratio, norm_eps)
            for _ in range(fpn_depth)
        ])
        self.out_blocks = nn.ModuleList(
            block(out_channels, mlp_ratio, norm_eps) for _ in range(3))
        init_linear_and_norm(self)

    @staticmethod
    def settings_from_state_dict(state: dict) -> dict:
        """The settings a state dict of this pyramid was made with, as far
        as tensor shapes and counts tell (checked loading names those that
        differ from the model's)."""
        settings = {'fpn_depth': count_blocks(state, 'fuse_s8')}
        lateral = state.get('lateral_s8.weight')
        if lateral is not None:
            settings['out_channels'] = lateral.shape[0]
        widths = [state[k].shape[1] for k in ('lateral_s4.weight',
                                              'lateral_s8.weight')
                  if k in state]
        top = state.get('upsample_s8.norm.weight')
        if len(widths) == 2 and top is not None:
            settings['in_channels'] = (*widths, top.shape[0])
        if 'out_blocks.0.conv.weight' in state:
            settings['fusion_block'] = 'conv3x3'
        elif 'out_blocks.0.mlp.fc1.weight' in state:
            settings['fusion_block'] = 'cmlp'
        return settings

    @property
    def out_channels_per_level(self) -> Tuple[int, ...]:
        """Channels of each NCHW output, by increasing stride."""
        chans = [self.out_channels] * 3
        if self.concat_inputs:
            chans = [c + i for c, i in zip(chans, self.in_channels)]
        return tuple(chans + [chans[-1]] * (self.num_outs - 3))

    def forward_tokens(self,
                       f1: torch.Tensor,
                       f2: torch.Tensor,
                       f3: torch.Tensor,
                       grid: Optional[Tuple[int, int]] = None,
                       ids_keep: Optional[torch.Tensor] = None
                       ) -> Tuple[torch.Tensor, ...]:
        """Pyramid on official-layout tokens; returns (P4, P8, P16).

        Inputs are ``(B, L, 4, 4, C/4)``, ``(B, L, 2, 2, C/2)`` and
        ``(B, L, 1, 1, C)``; outputs ``(B, L, h, w, out_channels)`` with
        h = w = 4, 2, 1. ``grid`` (patch grid) and ``ids_keep`` (kept patch
        indices, None if all patches are given) are only used by the conv
        fusion blocks.
        """
        if self.fusion_block == 'conv3x3':
            if grid is None:
                raise ValueError('conv3x3 fusion on tokens needs the grid')
            layout = dict(grid=grid, ids_keep=ids_keep)
        else:
            layout = dict()

        def run(blocks, x):
            for blk in blocks:
                x = blk(x, **layout)
            return x

        t8 = run(self.fuse_s8, self.upsample_s8(f3) + self.lateral_s8(f2))
        t4 = run(self.fuse_s4, self.upsample_s4(t8) + self.lateral_s4(f1))
        outs = (t4, t8, self.top_proj(f3))
        return tuple(
            blk(x, **layout) for blk, x in zip(self.out_blocks, outs))

    def forward(self,
                inputs: Sequence[torch.Tensor],
                grid: Optional[Tuple[int, int]] = None,
                ids_keep: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, ...]:
        """Pyramid outputs by increasing stride, in the inputs' form.

        Args:
            inputs (Sequence[Tensor]): The 3 backbone features (stride 4, 8,
                16), either NCHW maps (dense tasks) or official-layout tokens
                ``(B, L, h, w, C)`` (pre-training, possibly MAE-dropped).
            grid (tuple[int, int], optional): Patch grid of token inputs;
                only needed by ``fusion_block='conv3x3'``.
            ids_keep (Tensor, optional): ``(B, L)`` kept patches of token
                inputs; only used by ``fusion_block='conv3x3'``.

        Returns:
            tuple[Tensor]: NCHW: ``num_outs`` maps (strides 4 ... 64) with
            ``out_channels_per_level`` channels. Tokens: ``(P4, P8, P16)``.
        """
        if len(inputs) != 3:
            raise ValueError(
                f'expected 3 inputs (stride 4, 8, 16), got {len(inputs)}')
        if all(x.dim() == 5 for x in inputs):
            if self.num_outs != 3 or self.concat_inputs:
                raise ValueError(
                    'num_outs > 3 and concat_inputs need NCHW inputs')
            return self.forward_tokens(*inputs, grid=grid, ids_keep=ids_keep)
        if not all(x.dim() == 4 for x in inputs):
            raise ValueError(
                f'inputs must be all NCHW maps or all (B, L, h, w, C) token '
                f'tensors, got shapes {[tuple(x.shape) for x in inputs]}')

        grid = tuple(inputs[2].shape[-2:])
        outs = self.forward_tokens(
            *[nchw_to_tokens(x, grid) for x in inputs], grid=grid)
        outs = [tokens_to_nchw(x, grid) for x in outs]
        if self.concat_inputs:
            outs = [torch.cat([o, x], dim=1) for o, x in zip(outs, inputs)]
        pool = F.avg_pool2d if self.extra_pool == 'avg' else F.max_pool2d
        for _ in range(self.num_outs - 3):
            outs.append(pool(outs[-1], kernel_size=2, stride=2))
        return tuple(outs)
