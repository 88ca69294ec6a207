"""iTPN's integral pre-training: backbone and feature pyramid trained jointly
by masked image modelling (MIM) and masked feature modelling (MFM)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage
from mmpretrain.models.selfsup import BaseSelfSupervisor

from mmitpn.registry import MODELS
from ..heads.mfm_heads import iTPNCLIPHead, iTPNMFMHead
from ..utils import (block_masking, build_2d_sincos_pos_embed, gather_patches,
                     random_masking, tokens_to_nchw)

# BEiT's block-masking counts are given for a 14x14 patch grid.
BEIT_GRID_PATCHES = 196


class EMATeacher(ExponentialMovingAverage):
    """mmengine's EMA copy of a module, updated by one foreach call.

    The state dict (``module.*``, ``steps``) and the formula are mmengine's:
    the first update copies the source, later ones compute ``avg.lerp_(src,
    momentum)`` (``momentum`` is the weight of the source). mmengine loops
    over the tensors (a ``lerp_`` and two ``.data`` detaches each, about
    1000 operator calls per update of iTPN-B); here all parameters go
    through one ``torch._foreach_lerp_`` and the buffers through one
    ``torch._foreach_copy_``, with the same values. Whether the copy has
    been initialised is also kept on the host (``initialized``, refreshed
    when a state dict is loaded), so neither an update nor a forward reads
    ``steps`` back from the device: that was a synchronisation per step on
    GPUs and a graph break under ``torch.compile``.
    """

    def __init__(self, model: nn.Module, momentum: float):
        super().__init__(model, momentum=momentum)
        self.initialized = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        steps = state_dict.get(prefix + 'steps')
        if steps is not None:
            self.initialized = bool(steps > 0)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        # Paired by name, as mmengine does: the same Parameter objects stay
        # registered under model wrappers such as FSDP (use_orig_params).
        source = dict(model.named_parameters())
        averaged, current = [], []
        for name, param in self.module.named_parameters():
            averaged.append(param)
            current.append(source[name])
        if self.initialized:
            torch._foreach_lerp_(averaged, current, self.momentum)
        else:
            torch._foreach_copy_(averaged, current)
            self.initialized = True
        buffers = list(self.module.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))
        self.steps += 1


@MODELS.register_module()
class iTPN(BaseSelfSupervisor):
    """Integrally pre-trained transformer pyramid network (CVPR 2023).

    The HiViT ``backbone`` and the pyramid ``neck`` are the modules (and
    parameter names) used downstream, so ``backbone.*`` and ``neck.*`` of a
    checkpoint load into classifiers, detectors and segmentors. Three
    recipes, chosen by the configured parts:

    - **Pixel MIM** (``head`` only): MAE-style random masking (per-sample
      noise from torch's generator, ``mask_ratio`` of the patches dropped
      right after the patch embedding); all pyramid levels of the visible
      patches feed the pixel decoder ``head``; loss ``loss_mim``
      (norm-pixel MSE on masked patches).
    - **Pixel MIM + MFM with an EMA teacher** (``head``, ``mfm_head`` and
      ``teacher='ema'``, paper §3.3-3.4): the teacher is an exponential
      moving average of the online backbone, kept here as
      ``self.teacher`` (an :class:`EMATeacher`, mmengine's
      ``ExponentialMovingAverage`` with a foreach update, so it is saved in
      checkpoints and restored on resume), frozen and in eval
      mode, and updated by :class:`~mmitpn.engine.EMATeacherHook`. Its
      stage outputs ``(F1, F2, F3)`` are the targets of the pyramid levels
      ``(V^1, V^2, V^3)``: ``loss_mfm_s4/_s8/_s16``, each weighted by λ
      (``mfm_head.loss_weight``), i.e. L = L_MIM + λ Σ_s L_MFM^s. As in the
      paper the teacher sees only the visible patches (``teacher_input=
      'masked'``); ``'full'`` feeds it the whole image and takes its
      features at the visible patches, so the targets carry context of the
      masked ones.
    - **MFM with a CLIP teacher** (``mfm_head`` and a teacher dict such as
      ``dict(type='CLIPTeacher', ...)``, no ``head``): BEiT block-wise masks
      of about 75 of 196 patches (min 16 per block, aspect 0.3-3.33; both
      counts scaled by ``N / 196`` for other patch grids); masked patches
      become mask tokens at the patch embedding and again at the stage-3
      input, so no masked pixel reaches any feature (the official code and
      mmpretrain leak them through the stage-1/2 laterals). The teacher sees
      the whole image: the data preprocessor's normalisation is undone and
      CLIP's own applied. Losses ``loss_mfm`` and ``loss_mfm_aux`` (the
      early-stage branch, Appendix A).

    Args:
        backbone (dict): :class:`iTPNHiViT` config. The CLIP recipe needs
            ``use_mask_token=True``.
        neck (dict, optional): :class:`iTPNPyramid` config.
        head (dict, optional): :class:`iTPNPixelHead` config (MIM). It gets
            the last ``head.num_levels`` levels.
        mfm_head (dict, optional): :class:`iTPNMFMHead` (EMA teacher) or
            :class:`iTPNCLIPHead` (frozen teacher) config; None disables MFM.
        teacher (str | dict, optional): ``'ema'`` for an EMA copy of the
            backbone, or the config of a frozen feature teacher
            (:class:`CLIPTeacher`). Needed exactly when ``mfm_head`` is set.
        teacher_input (str): ``'masked'`` or ``'full'``, see above (EMA
            teacher only).
        use_pyramid (bool): False drops the neck (the MAE-style baseline of
            the ablations): the heads get the backbone stage outputs, e.g. a
            one-level pixel head only the stage-3 output.
        mask_ratio (float): Fraction of patches removed by random masking.
        block_mask_patches (int): Patches masked per image by block masking,
            for a 14x14 grid.
        block_min_patches (int): Smallest block, for a 14x14 grid.
        block_aspect_ratio (tuple[float, float]): Block height/width range.
        sincos_pos_embed (bool): Initialise the backbone's (trainable)
            position embedding with 2-D sin-cos values, as the official pixel
            pre-training does.
        data_preprocessor (dict, optional): Defaults to mmpretrain's
            ``SelfSupDataPreprocessor``. The CLIP recipe assumes RGB inputs
            in 0-255 before normalisation (``to_rgb=True``).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 mfm_head: Optional[dict] = None,
                 teacher: Optional[Union[str, dict]] = None,
                 teacher_input: str = 'masked',
                 use_pyramid: bool = True,
                 mask_ratio: float = 0.75,
                 block_mask_patches: int = 75,
                 block_min_patches: int = 16,
                 block_aspect_ratio: Tuple[float, float] = (0.3, 1 / 0.3),
                 sincos_pos_embed: bool = False,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None):
        if not 0. < mask_ratio < 1.:
            raise ValueError(
                f'mask_ratio must be strictly between 0 and 1, got '
                f'{mask_ratio}: at 0 no patch is masked, so MIM has no '
                'target and its loss is NaN; at 1 nothing is visible to '
                'encode (the paper masks 0.75)')
        if teacher_input not in ('masked', 'full'):
            raise ValueError(f"teacher_input must be 'masked' or 'full', got "
                             f'{teacher_input!r}')
        if (mfm_head is None) != (teacher is None):
            raise ValueError('MFM needs both mfm_head and teacher (or '
                             'neither for MIM only)')
        if use_pyramid and neck is None:
            raise ValueError('use_pyramid=True needs a neck (iTPNPyramid); '
                             'set use_pyramid=False for the no-pyramid '
                             'baseline')
        # Built with mmitpn's registry so that our unprefixed types resolve
        # in mmitpn even under another default scope (mmpretrain's base
        # class would look them up in mmpretrain).
        if data_preprocessor is None or isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor or {})
            data_preprocessor.setdefault('type',
                                         'mmpretrain.SelfSupDataPreprocessor')
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            backbone=MODELS.build(backbone),
            neck=MODELS.build(neck) if use_pyramid else None,
            head=MODELS.build(head) if head is not None else None,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.mfm_head = (
            MODELS.build(mfm_head) if mfm_head is not None else None)
        self.teacher_input = teacher_input
        self.mask_ratio = mask_ratio
        self.block_mask_patches = block_mask_patches
        self.block_min_patches = block_min_patches
        self.block_aspect_ratio = tuple(block_aspect_ratio)
        self.sincos_pos_embed = sincos_pos_embed

        if teacher is None:
            self.teacher_mode = None
            self.teacher = None
            if head is None:
                raise ValueError('nothing to train: set head (MIM) and/or '
                                 'mfm_head with a teacher (MFM)')
        elif teacher == 'ema':
            self.teacher_mode = 'ema'
            self._check_ema_setup()
            # The momentum is set by update_teacher on every update.
            self.teacher = EMATeacher(self.backbone, momentum=1 - 0.996)
        elif isinstance(teacher, dict):
            self.teacher_mode = 'frozen'
            self._check_frozen_teacher_setup()
            self.teacher = MODELS.build(teacher)
            if self.mfm_head.out_channels != self.teacher.embed_dims:
                raise ValueError(
                    f'mfm_head.out_channels ({self.mfm_head.out_channels}) '
                    f'must equal the teacher width '
                    f'({self.teacher.embed_dims})')
        else:
            raise ValueError(
                f"teacher must be None, 'ema' or a config dict, got "
                f'{teacher!r}')

    def _check_ema_setup(self):
        if not isinstance(self.mfm_head, iTPNMFMHead):
            raise TypeError('the EMA teacher needs an iTPNMFMHead, got '
                            f'{type(self.mfm_head).__name__}')
        if self.head is None:
            raise ValueError('MFM with an EMA teacher complements MIM (the '
                             'teacher is built from the student); set the '
                             'pixel head')
        widths = [p.out_features for p in self.mfm_head.predictors]
        if widths != list(self.backbone.dims):
            raise ValueError(
                f'mfm_head.out_channels {tuple(widths)} must equal the '
                f'backbone stage widths {tuple(self.backbone.dims)}')

    def _check_frozen_teacher_setup(self):
        if not isinstance(self.mfm_head, iTPNCLIPHead):
            raise TypeError('a frozen feature teacher needs an iTPNCLIPHead, '
                            f'got {type(self.mfm_head).__name__}')
        if self.head is not None:
            raise ValueError('the CLIP recipe uses block masking without '
                             'dropping patches; set head=None')
        if self.backbone.mask_token is None:
            raise ValueError('the CLIP recipe masks with mask tokens; build '
                             'the backbone with use_mask_token=True')

    def init_weights(self):
        if self.sincos_pos_embed and self.backbone.pos_embed is not None:
            table = build_2d_sincos_pos_embed(self.backbone.embed_dims,
                                              self.backbone.patch_grid)
            with torch.no_grad():
                self.backbone.pos_embed.copy_(table)
        # After the sin-cos fill, so that a Pretrained init_cfg wins.
        super().init_weights()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    # EMA teacher -----------------------------------------------------------

    def _ema_teacher(self) -> EMATeacher:
        if self.teacher_mode != 'ema':
            raise RuntimeError(
                "this iTPN has no EMA teacher (teacher='ema')")
        return self.teacher

    def init_teacher(self):
        """Copy the online backbone into the EMA teacher."""
        teacher = self._ema_teacher()
        teacher.steps.zero_()
        # The first update of an average is a plain copy.
        teacher.initialized = False
        teacher.update_parameters(self.backbone)

    def update_teacher(self, momentum: float = 0.996):
        """``teacher = momentum * teacher + (1 - momentum) * online``."""
        teacher = self._ema_teacher()
        if not teacher.initialized:
            raise RuntimeError('init_teacher() must run before updates')
        # mmengine's momentum is the weight of the new (online) value.
        teacher.momentum = 1. - momentum
        teacher.update_parameters(self.backbone)

    @torch.no_grad()
    def _ema_targets(self, inputs: torch.Tensor,
                     ids_keep: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if not self.teacher.initialized:
            raise RuntimeError(
                'the EMA teacher was never initialised from the backbone: '
                "add dict(type='mmitpn.EMATeacherHook') to custom_hooks")
        teacher = self.teacher.module
        if self.teacher_input == 'masked':
            feats, _ = teacher.forward_tokens(inputs, ids_keep=ids_keep)
            return feats
        feats, _ = teacher.forward_tokens(inputs)
        return tuple(gather_patches(f, ids_keep) for f in feats)

    # Forward ---------------------------------------------------------------

    def _grid(self, inputs: torch.Tensor) -> Tuple[int, int]:
        p = self.backbone.patch_size
        return inputs.shape[-2] // p, inputs.shape[-1] // p

    def _levels(self, feats: Sequence[torch.Tensor], grid: Tuple[int, int],
                ids_keep: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Pyramid outputs, or the backbone stage outputs without pyramid."""
        if not self.with_neck:
            return tuple(feats)
        return self.neck(feats, grid=grid, ids_keep=ids_keep)

    def extract_feat(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """NCHW pyramid maps of the full image (strides 4, 8, 16), or the
        backbone stage maps without pyramid."""
        grid = self._grid(inputs)
        feats, _ = self.backbone.forward_tokens(inputs)
        return tuple(
            tokens_to_nchw(x, grid) for x in self._levels(feats, grid, None))

    def loss(self, inputs: torch.Tensor,
             data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """Weighted loss terms of the configured recipe (see class doc)."""
        grid = self._grid(inputs)
        if self.teacher_mode == 'frozen':
            return self._frozen_teacher_loss(inputs, grid)
        return self._pixel_loss(inputs, grid)

    def _mim_forward(self, inputs: torch.Tensor, noise: torch.Tensor):
        """Masks from ``noise``; visible-patch levels and pixel predictions."""
        grid = self._grid(inputs)
        ids_keep, ids_restore, mask = random_masking(noise, self.mask_ratio)
        feats, _ = self.backbone.forward_tokens(inputs, ids_keep=ids_keep)
        levels = self._levels(feats, grid, ids_keep)
        pred = self.head(levels[-self.head.num_levels:], ids_restore, grid)
        return pred, mask, levels, ids_keep

    def reconstruct(self, inputs: torch.Tensor, noise: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pixel MIM on given masking noise, e.g. to draw reconstructions.

        Args:
            inputs (Tensor): Normalised images ``(B, 3, H, W)``.
            noise (Tensor): ``(B, N)`` masking noise; the patches of lowest
                noise stay visible (see ``random_masking``).

        Returns:
            tuple[Tensor, Tensor]: ``(B, N, p * p * 3)`` predictions of all
            patches (the head's patchify order) and the ``(B, N)`` mask, 1
            for masked patches.
        """
        pred, mask, _, _ = self._mim_forward(inputs, noise)
        return pred, mask

    def _pixel_loss(self, inputs: torch.Tensor,
                    grid: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        noise = torch.rand(
            inputs.shape[0], grid[0] * grid[1], device=inputs.device)
        pred, mask, levels, ids_keep = self._mim_forward(inputs, noise)
        losses = dict(loss_mim=self.head.loss(pred, inputs, mask))
        if self.mfm_head is not None:
            targets = self._ema_targets(inputs, ids_keep)
            losses.update(self.mfm_head.loss(self.mfm_head(levels), targets))
        return losses

    def block_mask(self, batch_size: int, grid: Tuple[int, int],
                   device=None) -> torch.Tensor:
        """BEiT block masks ``(B, N)`` (True = masked) for a patch grid."""
        scale = grid[0] * grid[1] / BEIT_GRID_PATCHES
        return block_masking(
            batch_size,
            grid,
            num_masked=max(1, round(self.block_mask_patches * scale)),
            min_block=max(1, round(self.block_min_patches * scale)),
            aspect_ratio=self.block_aspect_ratio,
            device=device)

    def _unit_range_rgb(self, inputs: torch.Tensor) -> torch.Tensor:
        """Undo the data preprocessor's normalisation: RGB in [0, 1]."""
        mean = getattr(self.data_preprocessor, 'mean', None)
        if mean is not None:
            inputs = inputs * self.data_preprocessor.std + mean
        return inputs / 255.

    def predict_teacher_features(
            self, inputs: torch.Tensor,
            mask: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Student predictions of the frozen teacher's tokens.

        Args:
            inputs (Tensor): Normalised images ``(B, 3, H, W)``.
            mask (Tensor): ``(B, N)`` bool block mask, True = masked.

        Returns:
            tuple[Tensor]: ``(B, T, D)`` predictions on the teacher grid (see
            :class:`iTPNCLIPHead`).
        """
        grid = self._grid(inputs)
        aux_ids = ((self.mfm_head.aux_block_index(self.backbone.depth), )
                   if self.mfm_head.with_aux else ())
        feats, block_outs = self.backbone.forward_tokens(
            inputs, mask=mask, return_block_indices=aux_ids)
        levels = self._levels(feats, grid, None)
        return self.mfm_head(levels, block_outs[0] if aux_ids else None,
                             grid, self.teacher.grid_size)

    def _frozen_teacher_loss(self, inputs: torch.Tensor,
                             grid: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        mask = self.block_mask(inputs.shape[0], grid, inputs.device)
        preds = self.predict_teacher_features(inputs, mask)
        target = self.teacher(self._unit_range_rgb(inputs))
        return self.mfm_head.loss(preds, target)
