"""A frozen CLIP image tower (open_clip) that gives iTPN's MFM targets."""
import os.path as osp
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmitpn.registry import MODELS

CHECKPOINT_KEY = 'model.teacher.checkpoint'


@MODELS.register_module()
class CLIPTeacher(BaseModule):
    """Frozen open_clip ViT whose last-layer patch tokens are MFM targets.

    The tower is built by ``open_clip.create_model`` from **local** weights
    only; nothing is downloaded. Targets follow the official iTPN/BEiT-v2
    teacher: the last block's tokens after ``ln_post``, projected by
    ``proj``, without the class token. The input is the whole image in the
    range CLIP was trained on (unlike the official code, which feeds [0, 1]
    to a layer that expects [-1, 1]).

    The weights are not saved in, nor loaded from, checkpoints of the model
    that holds the teacher: they always come from ``checkpoint``, which
    keeps checkpoints small and resumable.

    Args:
        model_name (str): open_clip model name, e.g. ``'ViT-B-16-quickgelu'``
            for OpenAI's CLIP-B/16 weights, or ``'local-dir:/path'`` for a
            folder holding ``open_clip_config.json`` and the weights.
        checkpoint (str, optional): Weights file for a built-in
            ``model_name``: an open_clip state dict (``.bin``, ``.pt``,
            ``.safetensors``) or OpenAI's original archive. Required unless
            ``model_name`` is ``'local-dir:...'``.
        image_size (int, optional): Teacher input size; defaults to the
            model's. The official CLIP-L/14 teacher uses 196 (14x14 tokens),
            the position embedding is resized by open_clip.
        model_kwargs (dict, optional): Overrides of the open_clip model
            config, e.g. a tiny ``vision_cfg`` for tests.
        init_cfg (dict, optional): Unused; the weights come from
            ``checkpoint``.
    """

    def __init__(self,
                 model_name: str,
                 checkpoint: Optional[str] = None,
                 image_size: Optional[int] = None,
                 model_kwargs: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        import open_clip
        from open_clip.transformer import VisionTransformer

        if model_name.startswith('hf-hub:'):
            raise ValueError(
                f'{model_name!r} would be downloaded; download the weights '
                f'once and set {CHECKPOINT_KEY} to the local file, or use '
                "model_name='local-dir:/path/to/folder'")
        if model_name.startswith('local-dir:'):
            folder = model_name[len('local-dir:'):]
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'CLIP teacher folder not found: {folder!r} (config key '
                    'model.teacher.model_name). It must hold '
                    'open_clip_config.json and the weights.')
            pretrained = None
        else:
            if checkpoint is None or not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'CLIP teacher weights not found: {checkpoint!r} (config '
                    f'key {CHECKPOINT_KEY}). Download the open_clip weights '
                    f'of {model_name} once and pass the file, e.g. '
                    f'--cfg-options {CHECKPOINT_KEY}=/path/to/'
                    'open_clip_pytorch_model.bin; the teacher is never '
                    'downloaded.')
            pretrained = checkpoint
        clip = open_clip.create_model(
            model_name,
            pretrained=pretrained,
            force_image_size=image_size,
            require_pretrained=True,
            **(model_kwargs or {}))
        visual = clip.visual
        if not isinstance(visual, VisionTransformer) or visual.proj is None:
            raise TypeError(
                f'{model_name} has a {type(visual).__name__} image tower; '
                'only open_clip VisionTransformer towers with a projection '
                'are supported as iTPN teachers')
        self.visual = visual.requires_grad_(False).eval()
        cfg = visual.preprocess_cfg
        self.register_buffer(
            'mean', torch.tensor(cfg['mean']).view(1, -1, 1, 1),
            persistent=False)
        self.register_buffer(
            'std', torch.tensor(cfg['std']).view(1, -1, 1, 1),
            persistent=False)
        self.register_state_dict_post_hook(self._drop_weights)
        self.register_load_state_dict_pre_hook(self._keep_weights)

    @property
    def image_size(self) -> Tuple[int, int]:
        return tuple(self.visual.image_size)

    @property
    def grid_size(self) -> Tuple[int, int]:
        """Token grid ``(rows, cols)`` of the targets."""
        return tuple(self.visual.grid_size)

    @property
    def embed_dims(self) -> int:
        """Width of the targets."""
        return self.visual.proj.shape[1]

    @staticmethod
    def _drop_weights(module, state_dict, prefix, local_metadata):
        for key in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[key]

    @staticmethod
    def _keep_weights(module, state_dict, prefix, *args):
        # Put the current weights in place of whatever the checkpoint holds,
        # so loading neither reports them missing nor replaces the teacher.
        state_dict.update(module.visual.state_dict(prefix=prefix + 'visual.'))

    def init_weights(self):
        """Nothing to initialise: the weights come from ``checkpoint``."""

    def train(self, mode: bool = True):
        """Stay in eval mode: the teacher is frozen."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Target tokens of RGB images in [0, 1].

        Args:
            images (Tensor): ``(B, 3, H, W)``, RGB, values in [0, 1]; resized
                to ``image_size`` (bicubic, antialiased) when they differ.

        Returns:
            Tensor: ``(B, rows * cols, embed_dims)`` in raster order of
            ``grid_size``.
        """
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(
                images,
                size=self.image_size,
                mode='bicubic',
                align_corners=False,
                antialias=True)
        images = (images - self.mean) / self.std
        out = self.visual.forward_intermediates(
            images,
            indices=1,
            normalize_intermediates=True,
            intermediates_only=True,
            output_fmt='NLC')
        return out['image_intermediates'][-1] @ self.visual.proj
