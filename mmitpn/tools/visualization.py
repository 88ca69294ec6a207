"""Pictures of a pre-training run: MAE-style reconstruction grids and loss
curves from mmengine's scalar logs.

Used by ``tools/visualization/vis_reconstruction.py`` and
``tools/run_demo.py``.
"""
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import mkdir_or_exist

from mmitpn.compat import apply_compat_patches
from mmitpn.datasets.fashion_mnist import FashionMNIST
from mmitpn.models.utils.checkpoint_loading import load_checkpoint_checked
# Read here by the demo tools, which draw the loss curves below.
from mmitpn.tools.log_analysis import (  # noqa: F401
    find_scalar_logs, load_loss_history)

COLUMN_TITLES = ('original', 'masked', 'patch mean only', 'reconstruction',
                 'recon. + visible')


def reconstruction_panels(head: torch.nn.Module, images: torch.Tensor,
                          pred: torch.Tensor, mask: torch.Tensor,
                          mean: Sequence[float],
                          std: Sequence[float]) -> List[np.ndarray]:
    """The panels of the reconstruction grid, as uint8 ``(B, H, W, 3)``.

    Args:
        head (iTPNPixelHead): The pixel head that made ``pred``; gives the
            patch size, the patch order and whether it predicts norm-pix
            patches. Those are mapped back with the mean and variance of
            the *true* patch, as MAE's visualisation does: a norm-pix model
            never predicts them.
        images (Tensor): ``(B, 3, H, W)`` model inputs, i.e. normalised by
            the data preprocessor's ``mean`` and ``std``.
        pred (Tensor): ``(B, N, p * p * 3)`` pixel predictions.
        mask (Tensor): ``(B, N)``, 1 for masked patches.
        mean, std (Sequence[float]): The data preprocessor's per-channel
            normalisation, undone for display.

    Returns:
        list[ndarray]: In the order of :data:`COLUMN_TITLES`: the original;
        the masked input (masked patches grey); every masked patch filled
        with its true mean, which is what the de-normalisation alone gives
        a norm-pix model that predicts nothing (so the reconstruction must
        be judged against it); the reconstruction of every patch; the
        reconstruction with the visible patches pasted from the original.
    """
    p = head.patch_size
    grid = (images.shape[-2] // p, images.shape[-1] // p)
    target = head.patchify(images)
    target_mean = target.mean(-1, keepdim=True)
    pred = pred.detach().float()
    if head.norm_pix:
        # Unbiased variance and eps as in the norm-pix loss.
        pred = pred * (target.var(-1, keepdim=True) + 1e-6)**.5 + target_mean
    recon = head.unpatchify(pred, grid)
    mean_only = head.unpatchify(target_mean.expand_as(target), grid)
    pixel_mask = head.unpatchify(mask.float()[..., None].expand_as(target),
                                 grid)

    mean = images.new_tensor(mean).view(1, -1, 1, 1)
    std = images.new_tensor(std).view(1, -1, 1, 1)

    def to_uint8(x):
        x = (x * std + mean).clamp(0, 255).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    def paste(masked_part):
        return to_uint8(images * (1 - pixel_mask) + masked_part * pixel_mask)

    # Grey (128) stands for the removed patches.
    grey = (128 - mean) / std
    return [
        to_uint8(images),
        paste(grey),
        paste(mean_only),
        to_uint8(recon),
        paste(recon)
    ]


def load_pretrain_model(config: str,
                        checkpoint: Optional[str] = None,
                        device: str = 'cpu') -> torch.nn.Module:
    """Build the config's pre-training model in eval mode, with the weights
    of ``checkpoint`` (mmengine or plain state dict) when given."""
    apply_compat_patches()
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    # As mmengine's Runner does: a top-level data_preprocessor is the
    # model's unless the model has its own.
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        # Exactly, so a checkpoint of another model is refused, not drawn.
        load_checkpoint_checked(model, checkpoint, 'test')
    return model.to(device).eval()


def reconstruction_inputs(model: torch.nn.Module,
                          image_files: Sequence[str] = (),
                          fashion_mnist_test: int = 0,
                          data_root: Optional[str] = None) -> torch.Tensor:
    """Normalised model inputs ``(B, 3, H, W)`` from image files and/or the
    first test images of Fashion-MNIST.

    Every image is resized (short edge) and centre-cropped to the size the
    backbone was built for, then goes through the model's data
    preprocessor, as in training.
    """
    size = tuple(model.backbone.img_size)
    # ResizeEdge and CenterCrop take (w, h) sizes.
    resize = [
        dict(
            type='ResizeEdge',
            scale=min(size),
            edge='short',
            backend='pillow',
            interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=size[::-1]),
        dict(type='PackInputs')
    ]
    samples = []
    if image_files:
        pipeline = Compose([dict(type='LoadImageFromFile')] + resize)
        samples += [pipeline(dict(img_path=f)) for f in image_files]
    if fashion_mnist_test:
        dataset = FashionMNIST(
            data_root=data_root or FashionMNIST.DEFAULT_ROOT,
            split='test',
            with_label=False,
            indices=fashion_mnist_test,
            pipeline=resize)
        samples += [dataset[i] for i in range(len(dataset))]
    if not samples:
        raise ValueError('no images: give image files and/or a number of '
                         'Fashion-MNIST test images')
    data = model.data_preprocessor(default_collate(samples), False)
    return data['inputs']


@torch.no_grad()
def visualize_reconstruction(model: torch.nn.Module,
                             inputs: torch.Tensor,
                             out_file: str,
                             seed: int = 0) -> Dict[str, float]:
    """Mask, reconstruct and draw ``inputs``; writes the PNG grid.

    The masks come from a generator seeded with ``seed``, so pictures of
    different checkpoints hide the same patches.

    Returns:
        dict: ``loss_mim`` of the model on these images, and
        ``loss_mim_mean_only``, the loss of predicting every masked patch as
        its own mean (a zero norm-pix prediction): the part of the picture
        that MAE-style de-normalisation gives for free.
    """
    head = model.head
    p = head.patch_size
    num_patches = (inputs.shape[-2] // p) * (inputs.shape[-1] // p)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(inputs.shape[0], num_patches, generator=generator)
    pred, mask = model.reconstruct(inputs, noise.to(inputs.device))
    preprocessor = model.data_preprocessor
    panels = reconstruction_panels(head, inputs, pred, mask,
                                   preprocessor.mean.flatten().tolist(),
                                   preprocessor.std.flatten().tolist())
    save_rgb(compose_grid(panels), out_file)

    target = head.patchify(inputs)
    mean_only = (
        torch.zeros_like(target) if head.norm_pix else target.mean(
            -1, keepdim=True).expand_as(target))
    return dict(
        loss_mim=float(head.loss(pred, inputs, mask)),
        loss_mim_mean_only=float(head.loss(mean_only, inputs, mask)))


def compose_grid(panels: Sequence[np.ndarray],
                 titles: Sequence[str] = COLUMN_TITLES,
                 cell: int = 112,
                 pad: int = 4,
                 header: int = 24) -> np.ndarray:
    """Lay panels out as a grid: one row per image, one column per panel.

    Args:
        panels (Sequence[ndarray]): ``(B, h, w, 3)`` uint8 arrays, one per
            column.
        titles (Sequence[str]): Column titles written in the header.
        cell (int): Side of each image after nearest-neighbour upscaling,
            so that small images stay crisp.
        pad (int): White border around every cell.
        header (int): Height of the title strip.

    Returns:
        ndarray: RGB uint8 image of height ``header + B * (cell + pad) +
        pad`` and width ``len(panels) * (cell + pad) + pad``.
    """
    if len(titles) != len(panels):
        raise ValueError(
            f'{len(panels)} panels but {len(titles)} column titles')
    num_rows = len(panels[0])
    step = cell + pad
    canvas = np.full(
        (header + num_rows * step + pad, len(panels) * step + pad, 3), 255,
        np.uint8)
    for j, (panel, title) in enumerate(zip(panels, titles)):
        x0 = pad + j * step
        # Fit the title to the cell width (cv2 fonts do not wrap).
        scale = min(
            0.45, 0.45 * cell / max(
                cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                                1)[0][0], 1))
        cv2.putText(canvas, title, (x0, header - 8), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 0), 1, cv2.LINE_AA)
        for i, img in enumerate(panel):
            y0 = header + i * step
            canvas[y0:y0 + cell, x0:x0 + cell] = cv2.resize(
                img, (cell, cell), interpolation=cv2.INTER_NEAREST)
    return canvas


def save_rgb(image: np.ndarray, out_file: str) -> str:
    """Write an RGB uint8 image (PNG by extension), creating folders."""
    mmcv.imwrite(image[..., ::-1], out_file)
    return out_file


def loss_names(history: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> List[str]:
    """The total ``loss`` first, then the terms in natural order
    (``loss_mfm_s4`` before ``loss_mfm_s16``)."""

    def key(name):
        parts = re.split(r'(\d+)', name)
        return (name != 'loss', [int(p) if p.isdigit() else p for p in parts])

    return sorted(history, key=key)


def plot_loss_curves(history: Dict[str, Tuple[np.ndarray, np.ndarray]],
                     out_file: str,
                     title: str = 'pre-training losses') -> str:
    """One panel per loss term against the iteration; writes a PNG."""
    if not history:
        raise ValueError('no loss terms to plot: the log holds no key '
                         'containing "loss"')
    import matplotlib
    matplotlib.use('Agg')  # no display needed (CI, ssh sessions)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(history), figsize=(3.6 * len(history), 3.2), squeeze=False)
    for ax, name in zip(axes[0], loss_names(history)):
        steps, values = history[name]
        ax.plot(steps, values, lw=1.2)
        # A term that falls by orders of magnitude (a feature loss may drop
        # 100x in a few hundred iterations) gets a log axis, so that its
        # later course stays visible.
        if values.min() > 0 and values.max() > 10 * values.min():
            ax.set_yscale('log')
        ax.set_title(name)
        ax.set_xlabel('iteration')
        ax.grid(alpha=.3)
    fig.suptitle(title)
    fig.tight_layout()
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
