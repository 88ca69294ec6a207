"""Heads of iTPN's masked feature modelling (MFM, paper §3.3-3.4).

Both heads regress teacher features with the same loss: smooth-L1 against
the teacher tokens LayerNorm-ed per token without affine parameters (the
official CLIP-MFM target, ``itpn_clip/clip/create_clip.py``). Normalising
each token makes stages of very different scales (a stage-1 C-MLP output vs.
the output of 24 attention blocks, or a CLIP tower) comparable, so one loss
weight means the same for every term, and it hides the drift in scale of an
EMA teacher. Smooth-L1 (β = 1, the official choice) is MSE/2 on the small
residuals of unit-variance targets but bounds the gradient of outliers, e.g.
of the still random EMA teacher early in training.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmitpn.registry import MODELS
from ..utils import AttentionBlock, PyramidLevelEmbed, init_linear_and_norm


def normalized_feature_loss(pred: torch.Tensor, target: torch.Tensor,
                            beta: float) -> torch.Tensor:
    """Smooth-L1 between ``pred`` and the per-token LayerNorm of ``target``.

    Computed in float32 (targets may come from an autocast teacher) and
    averaged over all tokens and channels.
    """
    target = F.layer_norm(target.float(), target.shape[-1:])
    return F.smooth_l1_loss(pred.float(), target, beta=beta)


@MODELS.register_module()
class iTPNMFMHead(BaseModule):
    """Per-stage feature predictors ``h^s`` of MFM with an EMA teacher.

    ``h^s`` is a Linear applied to each token of pyramid level ``V^s``
    (paper §3.4); it predicts the teacher backbone's last feature of stage
    ``s`` at the same resolution, so level and target tokens correspond one
    to one. The loss of each stage is :func:`normalized_feature_loss` over
    all its tokens, times ``loss_weight`` (λ of Eq. 4).

    Args:
        in_channels (int | Sequence[int]): Channels of the stride 4, 8, 16
            student levels: the pyramid width, or the backbone stage widths
            when the algorithm runs without pyramid.
        out_channels (Sequence[int]): Teacher stage widths ``(C/4, C/2, C)``.
        loss_weight (float): λ, applied to every stage term (paper: 0.3).
        beta (float): Smooth-L1 threshold.
        init_cfg (dict, optional): mmengine init config.
    """

    level_names = ('s4', 's8', 's16')

    def __init__(self,
                 in_channels: Union[int, Sequence[int]] = 256,
                 out_channels: Sequence[int] = (128, 256, 512),
                 loss_weight: float = 0.3,
                 beta: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int):
            in_channels = (in_channels, ) * len(self.level_names)
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError(
                f'need 3 in/out channel numbers (stride 4, 8, 16), got '
                f'{tuple(in_channels)} / {tuple(out_channels)}')
        self.loss_weight = loss_weight
        self.beta = beta
        self.predictors = nn.ModuleList(
            nn.Linear(c_in, c_out)
            for c_in, c_out in zip(in_channels, out_channels))
        init_linear_and_norm(self)

    def forward(self, levels: Sequence[torch.Tensor]
                ) -> Tuple[torch.Tensor, ...]:
        """Predict teacher features from ``(V^1, V^2, V^3)`` tokens."""
        return tuple(h(v) for h, v in zip(self.predictors, levels))

    def loss(self, preds: Sequence[torch.Tensor],
             targets: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``loss_mfm_s4/_s8/_s16``, each already weighted by λ."""
        return {
            f'loss_mfm_{name}':
            self.loss_weight * normalized_feature_loss(p, t, self.beta)
            for name, p, t in zip(self.level_names, preds, targets)
        }


def _resize_tokens(x: torch.Tensor, grid: Tuple[int, int],
                   target_grid: Tuple[int, int]) -> torch.Tensor:
    """Bilinearly resample ``(B, rows*cols, C)`` raster tokens to a grid."""
    if tuple(grid) == tuple(target_grid):
        return x
    B, _, C = x.shape
    x = x.transpose(1, 2).reshape(B, C, *grid)
    x = F.interpolate(x, size=tuple(target_grid), mode='bilinear',
                      align_corners=False)
    return x.flatten(2).transpose(1, 2)


@MODELS.register_module()
class iTPNCLIPHead(BaseModule):
    """Fused-pyramid and early-stage predictors of MFM with a CLIP teacher.

    Main prediction (official ``decoder_embed``/``norm``/``lm_head``): each
    pyramid level goes through ``LN + Linear(in -> embed_dims / (h*w))``, its
    ``h x w`` sub-tokens are stacked into channels (space-to-depth) and the
    levels are summed on the patch grid; the sum is resampled bilinearly to
    the teacher's token grid when that differs, then ``LN + Linear`` map it
    to the teacher width. Early-stage prediction (Appendix A, BEiT-v2): the
    backbone tokens after attention block ``int(aux_layer_ratio * depth)``
    pass ``aux_depth`` fresh attention blocks, ``LN`` and ``Linear``.

    Both predictions are regressed on **all** tokens with
    :func:`normalized_feature_loss`, as the official code does: the student
    is leak-free here (the backbone masks at the patch embedding), so masked
    tokens are a genuine prediction task, and the visible tokens add plain
    feature distillation, which the official recipe keeps.

    Args:
        in_channels (int): Pyramid width.
        embed_dims (int): Width of the fused tokens; the backbone width, as
            the early-stage branch runs at that width too.
        out_channels (int): Teacher width (CLIP-B/16: 512, CLIP-L/14: 768).
        num_levels (int): Pyramid levels, finest first, ending at one token
            per patch.
        num_heads (int): Heads of the early-stage attention blocks.
        mlp_ratio (float): MLP ratio of those blocks.
        aux_depth (int): Attention blocks of the early-stage branch; 0
            disables it.
        aux_layer_ratio (float): Where in stage 3 the early-stage branch
            taps, as a fraction of its depth (paper: 3/4).
        aux_drop_path_rate (float): Stochastic depth of those blocks.
        layer_scale_init_value (float): Their layer-scale init (0: off).
        rel_pos_grid (tuple[int, int], optional): Construction-time patch
            grid of their relative position bias; None disables it.
        norm_eps (float): LayerNorm epsilon.
        loss_weight (float): Weight of ``loss_mfm``.
        aux_loss_weight (float): Weight of ``loss_mfm_aux`` (official: equal).
        beta (float): Smooth-L1 threshold.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 embed_dims: int = 512,
                 out_channels: int = 512,
                 num_levels: int = 3,
                 num_heads: int = 8,
                 mlp_ratio: float = 4.,
                 aux_depth: int = 2,
                 aux_layer_ratio: float = 0.75,
                 aux_drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 0.,
                 rel_pos_grid: Optional[Tuple[int, int]] = None,
                 norm_eps: float = 1e-6,
                 loss_weight: float = 1.0,
                 aux_loss_weight: float = 1.0,
                 beta: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not 0 < aux_layer_ratio < 1:
            raise ValueError(
                f'aux_layer_ratio must be in (0, 1), got {aux_layer_ratio}')
        self.embed_dims = embed_dims
        self.out_channels = out_channels
        self.aux_layer_ratio = aux_layer_ratio
        self.loss_weight = loss_weight
        self.aux_loss_weight = aux_loss_weight
        self.beta = beta

        self.level_embeds = PyramidLevelEmbed(in_channels, embed_dims,
                                              num_levels, norm_eps)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.proj = nn.Linear(embed_dims, out_channels)

        self.aux_blocks = nn.ModuleList(
            AttentionBlock(
                embed_dims,
                num_heads,
                mlp_ratio=mlp_ratio,
                norm_eps=norm_eps,
                drop_path=aux_drop_path_rate,
                layer_scale_init_value=layer_scale_init_value,
                rel_pos_grid=rel_pos_grid) for _ in range(aux_depth))
        if aux_depth > 0:
            self.aux_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
            self.aux_proj = nn.Linear(embed_dims, out_channels)
        init_linear_and_norm(self)

    @property
    def with_aux(self) -> bool:
        """Whether the early-stage branch exists."""
        return len(self.aux_blocks) > 0

    def aux_block_index(self, depth: int) -> int:
        """Index of the backbone attention block the early branch taps."""
        return int(self.aux_layer_ratio * depth)

    def forward(self,
                levels: Sequence[torch.Tensor],
                aux_tokens: Optional[torch.Tensor],
                grid: Tuple[int, int],
                target_grid: Tuple[int, int]) -> Tuple[torch.Tensor, ...]:
        """Predict teacher tokens.

        Args:
            levels (Sequence[Tensor]): ``(B, N, h, w, C)`` pyramid levels of
                all ``N`` patches, by increasing stride.
            aux_tokens (Tensor, optional): ``(B, N, embed_dims)`` backbone
                tokens for the early-stage branch (None without it).
            grid (tuple[int, int]): Student patch grid ``(rows, cols)``.
            target_grid (tuple[int, int]): Teacher token grid.

        Returns:
            tuple[Tensor]: ``(B, T, out_channels)`` predictions on the
            teacher grid: the fused one, then the early-stage one if any.
        """
        fused = sum(self.level_embeds(levels))
        fused = _resize_tokens(fused, grid, target_grid)
        preds = (self.proj(self.norm(fused)), )
        if self.with_aux:
            x = aux_tokens
            for block in self.aux_blocks:
                x = block(x, grid)
            x = _resize_tokens(x, grid, target_grid)
            preds += (self.aux_proj(self.aux_norm(x)), )
        return preds

    def loss(self, preds: Sequence[torch.Tensor],
             target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_mfm`` (and ``loss_mfm_aux``), weighted."""
        losses = dict(loss_mfm=self.loss_weight *
                      normalized_feature_loss(preds[0], target, self.beta))
        if len(preds) > 1:
            losses['loss_mfm_aux'] = self.aux_loss_weight * \
                normalized_feature_loss(preds[1], target, self.beta)
        return losses
