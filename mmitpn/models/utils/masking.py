"""Masking of the patch grid: MAE-style random and BEiT-style block-wise."""
import math
import random
from typing import Tuple

import numpy as np
import torch


def random_masking(noise: torch.Tensor, mask_ratio: float
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the patches with the smallest noise (MAE / official iTPN rule).

    Args:
        noise (Tensor): ``(B, N)`` per-patch noise, e.g. ``torch.rand``.
        mask_ratio (float): Fraction of patches to remove; ``int(N * (1 -
            mask_ratio))`` patches are kept.

    Returns:
        tuple: ``ids_keep (B, L)`` (kept patch indices, in noise order),
        ``ids_restore (B, N)`` (the inverse permutation, to unshuffle
        ``[kept, removed]`` sequences) and ``mask (B, N)`` in raster order,
        1 for removed patches and 0 for kept ones, in ``noise.dtype``.
    """
    if not 0. <= mask_ratio < 1.:
        raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
    B, N = noise.shape
    len_keep = int(N * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    mask = torch.ones_like(noise)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return ids_keep, ids_restore, mask


def gather_patches(x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """``(B, N, ...) -> (B, L, ...)``: the patches ``ids_keep`` (``(B, L)``)
    of each sample, along the patch axis (dim 1), whatever the trailing
    shape (tokens ``(h, w, C)``, position rows ``(C, )``, ...)."""
    index = ids_keep.reshape(*ids_keep.shape, *(1, ) * (x.ndim - 2))
    return x.gather(1, index.expand(-1, -1, *x.shape[2:]))


# Host-side sampling, one rectangle after another, each depending on the
# mask so far: it cannot be one graph, and dynamo's tracing of Python's
# `random` failed inside it (InternalTorchDynamoError), so torch.compile
# leaves it to eager Python, breaking the graph here.
@torch.compiler.disable
def block_masking(batch_size: int,
                  grid: Tuple[int, int],
                  num_masked: int,
                  min_block: int,
                  aspect_ratio: Tuple[float, float] = (0.3, 1 / 0.3),
                  max_attempts: int = 10,
                  device=None) -> torch.Tensor:
    """BEiT's block-wise masking, seeded from torch's CPU generator.

    Rectangles of ``min_block`` up to the remaining number of patches and a
    log-uniform aspect ratio are added until ``num_masked`` patches are
    masked; a rectangle may only add as many new patches as remain, so the
    count never exceeds ``num_masked`` (it may fall short when
    ``max_attempts`` draws in a row add nothing, as in BEiT). One seed is
    drawn from torch per call, so ``torch.manual_seed`` reproduces the masks
    while the per-rectangle draws stay cheap Python ones.

    Args:
        batch_size (int): Number of masks.
        grid (tuple[int, int]): Patch grid ``(rows, cols)``.
        num_masked (int): Target number of masked patches per sample.
        min_block (int): Smallest rectangle area, in patches.
        aspect_ratio (tuple[float, float]): Range of height / width.
        max_attempts (int): Draws per rectangle before giving up.
        device (torch.device, optional): Device of the returned mask.

    Returns:
        Tensor: ``(B, rows * cols)`` bool, True = masked, raster order.
    """
    rows, cols = grid
    if not 0 < num_masked <= rows * cols:
        raise ValueError(
            f'num_masked must be in [1, {rows * cols}], got {num_masked}')
    min_block = max(1, min(min_block, num_masked))
    log_ratio = (math.log(aspect_ratio[0]), math.log(aspect_ratio[1]))
    rng = random.Random(int(torch.randint(2**62, ())))

    def add_block(mask, budget):
        for _ in range(max_attempts):
            area = rng.uniform(min_block, max(min_block, budget))
            ratio = math.exp(rng.uniform(*log_ratio))
            h = int(round(math.sqrt(area * ratio)))
            w = int(round(math.sqrt(area / ratio)))
            if not (0 < h < rows and 0 < w < cols):
                continue
            top = rng.randint(0, rows - h)
            left = rng.randint(0, cols - w)
            block = mask[top:top + h, left:left + w]
            new = h * w - int(block.sum())
            if 0 < new <= budget:
                block[...] = True
                return new
        return 0

    masks = np.zeros((batch_size, rows, cols), dtype=bool)
    for mask in masks:
        count = 0
        while count < num_masked:
            added = add_block(mask, num_masked - count)
            if added == 0:
                break
            count += added
    return torch.from_numpy(masks.reshape(batch_size, -1)).to(device)
