"""The HiViT backbone of iTPN (Tian et al., "Integrally Pre-Trained
Transformer Pyramid Networks", CVPR 2023), weight-compatible with the official
models through ``mmitpn.tools.official_converter``.

Stage 1 (stride patch/4) and stage 2 (stride patch/2) are per-token MLP
blocks (the paper's C-MLP) joined by 2x2 patch merges that stay inside each
patch; stage 3 (stride patch) is a plain ViT on the patch grid. Because no
operation before stage 3 crosses a patch, masked patches can be dropped (MAE)
or blanked (BEiT) right after the patch embedding.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from mmitpn.registry import MODELS
from ..utils.blocks import (AttentionBlock, CMLPBlock, PatchMerge,
                           dropout_or_identity)
from ..utils.checkpoint_loading import PretrainedCheckedModule, count_blocks
from ..utils.layout import nchw_to_tokens, tokens_to_nchw
from ..utils.masking import gather_patches
from ..utils.pos_embed import resize_pos_embed, resize_rel_pos_table


def _pair(x) -> Tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    x = tuple(int(v) for v in x)
    if len(x) != 2:
        raise ValueError(f'expected an int or a pair of ints, got {x}')
    return x


def _square_side(n: int) -> Optional[int]:
    side = math.isqrt(n)
    return side if side * side == n else None


def _resize_position_tables(module, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: fit position tables of another image size.

    Checkpoints may hold tables for another grid than the model's
    ``img_size`` (e.g. official seg backbones: a 14x14 ``pos_embed`` but
    63x63 relative tables). Square checkpoint grids are resized to the
    model's: ``pos_embed`` with the official run-time recipe
    (``resize_pos_embed``), relative tables bicubically as the official
    det/seg loaders do.
    """
    key = prefix + 'pos_embed'
    if module.pos_embed is not None and key in state_dict:
        table = state_dict[key]
        side = _square_side(table.shape[1])
        if table.shape != module.pos_embed.shape and side is not None:
            state_dict[key] = resize_pos_embed(table, (side, side),
                                               module.patch_grid)
    for i, blk in enumerate(module.blocks):
        key = f'{prefix}blocks.{i}.attn.relative_position_bias_table'
        own = blk.attn.relative_position_bias_table
        if own is None or key not in state_dict:
            continue
        table = state_dict[key]
        side = _square_side(table.shape[0])
        if table.shape != own.shape and side is not None and side % 2:
            state_dict[key] = resize_rel_pos_table(
                table, ((side + 1) // 2, ) * 2, module.patch_grid)


class PatchEmbed(BaseModule):
    """Conv stem producing the ``(B, N, r, r, C)`` stride-(patch/r) tokens.

    Args:
        patch_size (int): Pixels per patch side (stage-3 stride).
        inner_patches (int): Tokens per patch side ``r`` at stage 1; the conv
            kernel and stride are ``patch_size // inner_patches``.
        in_channels (int): Image channels.
        embed_dims (int): Stage-1 channels.
        norm_eps (float): Epsilon of the LayerNorm after the conv.
    """

    def __init__(self, patch_size: int, inner_patches: int, in_channels: int,
                 embed_dims: int, norm_eps: float = 1e-6):
        super().__init__()
        self.patch_size = patch_size
        kernel = patch_size // inner_patches
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel, stride=kernel)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
        return self.norm(nchw_to_tokens(self.proj(x), grid))


@MODELS.register_module()
class iTPNHiViT(PretrainedCheckedModule):
    """iTPN's HiViT backbone: C-MLP stem stages plus a plain-ViT stage 3.

    Architectures (``arch``); stage widths are ``C/4, C/2, C``:

    ========  =====  ===========  =====  =====  ==============================
    name      C      stem_depths  depth  heads  note
    ========  =====  ===========  =====  =====  ==============================
    nano      128    (1, 1)       4      4      mmitpn addition (the CPU demo)
    tiny      192    (1, 1)       12     3      mmitpn addition (ViT-Ti width)
    small     384    (2, 2)       12     6      mmitpn addition (ViT-S width)
    base      512    (3, 3)       24     8      official iTPN-B
    large     768    (2, 2)       40     12     official iTPN-L
    ========  =====  ===========  =====  =====  ==============================

    All use ``stem_mlp_ratio=3`` and ``mlp_ratio=4``. Only base and large
    have official weights.

    Args:
        arch (str | dict): A name above, or a dict with ``embed_dims``,
            ``stem_depths`` (C-MLP blocks at stride patch/4 and patch/2),
            ``depth`` (attention blocks), ``num_heads`` and optionally
            ``stem_mlp_ratio`` (3.0) and ``mlp_ratio`` (4.0).
        img_size (int | tuple): Size the position tables are built for;
            other input sizes are handled by resizing them at run time.
        patch_size (int): Stage-3 stride. Inputs must be divisible by it.
        inner_patches (int): Stage-1 tokens per patch side; must be 4 (two
            2x2 merges lead to one token per patch) and divide
            ``patch_size``.
        in_channels (int): Image channels.
        qkv_bias (bool): Bias of the attention ``qkv`` projection.
        drop_rate (float): Dropout after the position embedding, in MLPs and
            after attention projections.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Maximum stochastic depth; rates rise
            linearly over all stem and attention blocks, in order.
        norm_eps (float): LayerNorm epsilon (official: 1e-6 for pre-training
            and classification, 1e-5 in the det/seg backbones).
        use_abs_pos_embed (bool): Learned absolute position embedding added
            once to the stage-3 input.
        use_rel_pos_bias (bool): Per-block relative position bias tables.
        layer_scale_init_value (float): Layer-scale init (CLIP models: 0.1);
            0 disables layer scale.
        use_mask_token (bool): Create ``mask_token`` and ``stem_mask_token``
            for BEiT-style masked inputs (see ``forward_tokens``).
        resample_pos_embed_on_drop (bool): With MAE-style dropping
            (``ids_keep``), resample the position table bicubically even when
            the grid is unchanged, as the official pixel pre-training does
            (it skips the resize only when all tokens are present), which
            blurs the table slightly. Needed to reproduce official
            pre-training outputs exactly; off by default so that
            pre-training and fine-tuning see the same table.
        out_indices (Sequence[int]): Stages returned by ``forward``: 0
            (stride patch/4, C/4 ch), 1 (patch/2, C/2), 2 (patch, C).
        frozen_stages (int): -1 freezes nothing; 0 the patch embedding (and
            ``stem_mask_token``); k >= 1 additionally stages 1..k with their
            following merges, stage 3 including ``pos_embed`` and
            ``mask_token``.
        with_cp (bool): Gradient checkpointing of every block in training.
        init_cfg (dict, optional): mmengine init config; a ``Pretrained``
            one is loaded and checked by
            :func:`~mmitpn.models.utils.checkpoint_loading.load_pretrained`.
    """

    arch_zoo = {
        'nano': dict(embed_dims=128, stem_depths=(1, 1), depth=4,
                     num_heads=4),
        'tiny': dict(embed_dims=192, stem_depths=(1, 1), depth=12,
                     num_heads=3),
        'small': dict(embed_dims=384, stem_depths=(2, 2), depth=12,
                      num_heads=6),
        'base': dict(embed_dims=512, stem_depths=(3, 3), depth=24,
                     num_heads=8),
        'large': dict(embed_dims=768, stem_depths=(2, 2), depth=40,
                      num_heads=12),
    }
    _required_arch_keys = ('embed_dims', 'stem_depths', 'depth', 'num_heads')
    _optional_arch_keys = {'stem_mlp_ratio': 3.0, 'mlp_ratio': 4.0}

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 inner_patches: int = 4,
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6,
                 use_abs_pos_embed: bool = True,
                 use_rel_pos_bias: bool = False,
                 layer_scale_init_value: float = 0.,
                 use_mask_token: bool = False,
                 resample_pos_embed_on_drop: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        self.embed_dims = C = arch['embed_dims']
        self.stem_depths = arch['stem_depths']
        self.depth = arch['depth']
        self.num_heads = arch['num_heads']
        self.dims = (C // 4, C // 2, C)

        if inner_patches != 4 or patch_size % inner_patches != 0:
            raise ValueError(
                f'need inner_patches == 4 (two 2x2 merges reach one token per '
                f'patch) and patch_size divisible by it, got inner_patches='
                f'{inner_patches}, patch_size={patch_size}; use patch_size 8 '
                f'for small images')
        self.patch_size = patch_size
        self.img_size = _pair(img_size)
        for s in self.img_size:
            if s % patch_size != 0:
                raise ValueError(
                    f'img_size {self.img_size} is not divisible by '
                    f'patch_size {patch_size}; choose an img_size that is a '
                    f'multiple of {patch_size}')
        self.patch_grid = (self.img_size[0] // patch_size,
                           self.img_size[1] // patch_size)

        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages <= 3:
            raise ValueError(
                f'frozen_stages must be in [-1, 3], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.resample_pos_embed_on_drop = resample_pos_embed_on_drop

        self.patch_embed = PatchEmbed(patch_size, inner_patches, in_channels,
                                      self.dims[0], norm_eps)
        if use_mask_token:
            self.stem_mask_token = nn.Parameter(
                torch.zeros(1, 1, self.dims[0]))
            self.mask_token = nn.Parameter(torch.zeros(1, 1, C))
            nn.init.trunc_normal_(self.stem_mask_token, std=.02)
            nn.init.trunc_normal_(self.mask_token, std=.02)
        else:
            self.stem_mask_token = self.mask_token = None

        # device='cpu' so that models can be built under torch.device('meta')
        dpr = torch.linspace(0, drop_path_rate,
                             sum(self.stem_depths) + self.depth,
                             device='cpu').tolist()
        s1, s2 = self.stem_depths
        self.stage1 = nn.ModuleList(
            CMLPBlock(self.dims[0], arch['stem_mlp_ratio'], norm_eps, dpr[i],
                      layer_scale_init_value, drop_rate) for i in range(s1))
        self.merge1 = PatchMerge(self.dims[0], norm_eps)
        self.stage2 = nn.ModuleList(
            CMLPBlock(self.dims[1], arch['stem_mlp_ratio'], norm_eps,
                      dpr[s1 + i], layer_scale_init_value, drop_rate)
            for i in range(s2))
        self.merge2 = PatchMerge(self.dims[1], norm_eps)

        if use_abs_pos_embed:
            self.pos_embed = nn.Parameter(
                torch.zeros(1, self.patch_grid[0] * self.patch_grid[1], C))
            nn.init.trunc_normal_(self.pos_embed, std=.02)
        else:
            self.pos_embed = None
        self.pos_drop = dropout_or_identity(drop_rate)
        self.blocks = nn.ModuleList(
            AttentionBlock(
                C, self.num_heads, arch['mlp_ratio'], qkv_bias, norm_eps,
                dpr[s1 + s2 + i], attn_drop_rate, drop_rate,
                layer_scale_init_value,
                self.patch_grid if use_rel_pos_bias else None)
            for i in range(self.depth))

        self._freeze_stages()
        self.register_load_state_dict_pre_hook(_resize_position_tables)

    @staticmethod
    def settings_from_state_dict(state: dict) -> dict:
        """The settings a state dict of this backbone was made with, as far
        as tensor shapes and counts tell (checked loading names those that
        differ from the model's)."""
        settings = {}
        proj = state.get('patch_embed.proj.weight')
        if proj is not None:
            # The stem conv's kernel is patch_size // inner_patches (4).
            settings['patch_size'] = proj.shape[-1] * 4
            settings['in_channels'] = proj.shape[1]
        merge = state.get('merge2.reduction.weight')
        if merge is not None:
            settings['arch.embed_dims'] = merge.shape[0]
        settings['arch.stem_depths'] = (count_blocks(state, 'stage1'),
                                        count_blocks(state, 'stage2'))
        settings['arch.depth'] = count_blocks(state, 'blocks')
        fc1 = state.get('blocks.0.mlp.fc1.weight')
        if fc1 is not None:
            settings['arch.mlp_ratio'] = fc1.shape[0] / fc1.shape[1]
        settings['layer_scale'] = any(
            k.endswith(('.gamma', '.gamma1', '.gamma2')) for k in state)
        return settings

    @classmethod
    def _parse_arch(cls, arch) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise ValueError(
                    f'unknown arch {arch!r}; choose one of '
                    f'{sorted(cls.arch_zoo)} or pass a dict with keys '
                    f'{cls._required_arch_keys}')
            arch = cls.arch_zoo[arch]
        if not isinstance(arch, dict):
            raise ValueError(f'arch must be a str or a dict, got {arch!r}')
        missing = [k for k in cls._required_arch_keys if k not in arch]
        unknown = [
            k for k in arch if k not in cls._required_arch_keys
            and k not in cls._optional_arch_keys
        ]
        if missing or unknown:
            raise ValueError(
                f'arch dict has missing keys {missing} / unknown keys '
                f'{unknown}; required: {cls._required_arch_keys}, optional: '
                f'{tuple(cls._optional_arch_keys)}')
        arch = {**cls._optional_arch_keys, **arch}
        arch['stem_depths'] = tuple(int(d) for d in arch['stem_depths'])
        if len(arch['stem_depths']) != 2:
            raise ValueError(
                f'stem_depths needs 2 entries, got {arch["stem_depths"]}')
        if arch['embed_dims'] % 4 or arch['embed_dims'] % arch['num_heads']:
            raise ValueError(
                f'embed_dims ({arch["embed_dims"]}) must be divisible by 4 '
                f'and by num_heads ({arch["num_heads"]})')
        return arch

    @staticmethod
    def _parse_out_indices(out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out = tuple(int(i) % 3 if -3 <= int(i) < 0 else int(i)
                    for i in out_indices)
        if not out or any(i not in (0, 1, 2) for i in out) or \
                len(set(out)) != len(out):
            raise ValueError(
                f'out_indices must be distinct stage indices in (0, 1, 2), '
                f'got {tuple(out_indices)}')
        return out

    @property
    def num_layers(self) -> int:
        """Layers for layer-wise lr decay (official count, ids 0..num)."""
        return sum(self.stem_depths) + self.depth + 1

    def _frozen_modules(self):
        stages = [[self.patch_embed], [self.stage1, self.merge1],
                  [self.stage2, self.merge2], [self.blocks]]
        return [m for stage in stages[:self.frozen_stages + 1] for m in stage]

    def _frozen_params(self):
        params = [
            p for m in self._frozen_modules() for p in m.parameters()
        ]
        if self.frozen_stages >= 0 and self.stem_mask_token is not None:
            params.append(self.stem_mask_token)
        if self.frozen_stages >= 3:
            params += [
                p for p in (self.pos_embed, self.mask_token) if p is not None
            ]
        return params

    def _freeze_stages(self):
        for m in self._frozen_modules():
            m.eval()
        for p in self._frozen_params():
            p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def _check_input(self, x: torch.Tensor) -> Tuple[int, int]:
        H, W = x.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(
                f'input size {H}x{W} is not divisible by patch_size '
                f'{self.patch_size}; pad or resize the image to a multiple '
                f'of {self.patch_size} (e.g. Pad size_divisor='
                f'{self.patch_size} or 32 in the data preprocessor)')
        return H // self.patch_size, W // self.patch_size

    def _run(self, blk, *args):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    def forward_tokens(
        self,
        x: torch.Tensor,
        ids_keep: Optional[torch.Tensor] = None,
        mask: Optional[torch.Tensor] = None,
        return_block_indices: Sequence[int] = ()
    ) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
        """Token-level forward for pre-training and pyramid necks.

        Args:
            x (Tensor): Images ``(B, 3, H, W)``, H and W multiples of
                ``patch_size``; the patch grid is ``(H/p, W/p)`` with
                ``N = H*W/p**2`` patches in raster order.
            ids_keep (Tensor, optional): ``(B, L)`` indices of the patches to
                keep (MAE-style dropping, see ``random_masking``). The other
                patches are removed right after the patch embedding, so every
                output holds the ``L`` kept patches in ``ids_keep`` order, and
                the position embedding and relative bias are gathered at the
                kept positions. Stage-1/2 outputs equal the full-image ones
                gathered at ``ids_keep``. As in the official pre-training, the
                position table is bicubically resampled in this mode even on
                its own grid (see ``resize_pos_embed``).
            mask (Tensor, optional): ``(B, N)`` bool, True = masked
                (BEiT-style, no dropping). The patch-embedding tokens of
                masked patches are replaced by ``stem_mask_token`` and their
                stage-3 input by ``mask_token`` (before the position
                embedding), so no masked pixel reaches any output. Needs
                ``use_mask_token=True``; exclusive with ``ids_keep``.
            return_block_indices (Sequence[int]): Indices of attention blocks
                (``blocks[i]``, negative allowed) whose outputs to return,
                e.g. for early-stage supervision.

        Returns:
            tuple: ``(stage_feats, block_outs)``. ``stage_feats`` is ``(F1,
            F2, F3)`` in the official layout: ``(B, L, 4, 4, C/4)``,
            ``(B, L, 2, 2, C/2)`` and ``(B, L, 1, 1, C)``, where F1/F2 are the
            stage-1/2 outputs before their merge and F3 the last block's
            output; ``(h, w)`` index (row, col) inside the patch.
            ``block_outs`` holds ``(B, L, C)`` tensors in the order of
            ``return_block_indices``.
        """
        if ids_keep is not None and mask is not None:
            raise ValueError('ids_keep and mask are mutually exclusive')
        if mask is not None and self.mask_token is None:
            raise ValueError('mask needs a model built with use_mask_token')
        grid = self._check_input(x)
        if any(not -self.depth <= i < self.depth
               for i in return_block_indices):
            raise ValueError(
                f'return_block_indices {tuple(return_block_indices)} out of '
                f'range for {self.depth} blocks')
        block_ids = [i % self.depth for i in return_block_indices]

        x = self.patch_embed(x)
        B = x.shape[0]
        if ids_keep is not None:
            x = gather_patches(x, ids_keep)
        if mask is not None:
            mask = mask.bool()
            x = torch.where(mask[:, :, None, None, None],
                            self.stem_mask_token.to(x.dtype)[:, :, None], x)

        for blk in self.stage1:
            x = self._run(blk, x)
        f1 = x
        x = self._run(self.merge1, x)
        for blk in self.stage2:
            x = self._run(blk, x)
        f2 = x
        x = self._run(self.merge2, x).flatten(1, 3)

        if mask is not None:
            x = torch.where(mask[:, :, None], self.mask_token.to(x.dtype), x)
        if self.pos_embed is not None:
            pos = resize_pos_embed(
                self.pos_embed, self.patch_grid, grid,
                force=ids_keep is not None
                and self.resample_pos_embed_on_drop)
            if ids_keep is not None:
                pos = gather_patches(pos.expand(B, -1, -1), ids_keep)
            x = x + pos
        x = self.pos_drop(x)

        block_outs = {}
        for i, blk in enumerate(self.blocks):
            x = self._run(blk, x, grid, ids_keep)
            if i in block_ids:
                block_outs[i] = x
        f3 = x[:, :, None, None, :]
        return (f1, f2, f3), tuple(block_outs[i] for i in block_ids)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return NCHW maps of the stages in ``out_indices``.

        Stage 0: ``(B, C/4, H/p*4, W/p*4)`` ... stage 2: ``(B, C, H/p, W/p)``
        for patch size ``p`` (strides 4, 8, 16 with p = 16).
        """
        grid = self._check_input(x)
        feats, _ = self.forward_tokens(x)
        return tuple(tokens_to_nchw(feats[i], grid) for i in self.out_indices)

    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Layer id for layer-wise lr decay, as the official cls code.

        Returns ``(layer_id, num_layers)`` with ``num_layers = sum(stem_depths)
        + depth + 1``: 0 for the patch embedding, position embedding and mask
        tokens; ``i + 1`` for the i-th block counted over stage1, stage2 and
        blocks; a merge shares the id of the block before it; parameters
        outside this backbone (not starting with ``prefix``, e.g. the
        classifier head) get ``num_layers``. The official scale is
        ``decay ** (num_layers - layer_id)``.
        """
        num_layers = self.num_layers
        if not param_name.startswith(prefix):
            return num_layers, num_layers
        name = param_name[len(prefix):]
        s1, s2 = self.stem_depths
        top = name.split('.')[0]
        if top in ('patch_embed', 'pos_embed', 'mask_token',
                   'stem_mask_token'):
            return 0, num_layers
        if top == 'merge1':
            return s1, num_layers
        if top == 'merge2':
            return s1 + s2, num_layers
        offsets = {'stage1': 0, 'stage2': s1, 'blocks': s1 + s2}
        if top in offsets:
            return offsets[top] + int(name.split('.')[1]) + 1, num_layers
        return num_layers, num_layers
