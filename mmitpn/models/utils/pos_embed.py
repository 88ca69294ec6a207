"""Absolute and relative position embeddings on the grid of 16x16 patches.

All grids are ``(rows, cols)`` and tokens are in raster order, as in the
official iTPN code.
"""
import functools
from typing import Tuple

import torch
import torch.nn.functional as F


def build_2d_sincos_pos_embed(embed_dims: int,
                              grid_size: Tuple[int, int],
                              temperature: float = 10000.) -> torch.Tensor:
    """Fixed 2-D sin-cos table of shape ``(1, rows * cols, embed_dims)``.

    Follows MAE's ``get_2d_sincos_pos_embed``: the first half of the channels
    encodes the column index, the second half the row index, each as
    ``[sin, cos]`` over ``embed_dims // 4`` frequencies.
    """
    if embed_dims % 4 != 0:
        raise ValueError(
            f'embed_dims must be divisible by 4 for a 2-D sin-cos table, '
            f'got {embed_dims}')
    rows, cols = grid_size
    omega = torch.arange(embed_dims // 4, dtype=torch.float64)
    omega = 1. / temperature**(omega / (embed_dims // 4))
    grid_r, grid_c = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64),
        torch.arange(cols, dtype=torch.float64),
        indexing='ij')

    def encode(pos):
        out = pos.flatten()[:, None] * omega[None, :]
        return torch.cat([out.sin(), out.cos()], dim=1)

    table = torch.cat([encode(grid_c), encode(grid_r)], dim=1)
    return table.float().unsqueeze(0)


def resize_pos_embed(pos_embed: torch.Tensor,
                     src_grid: Tuple[int, int],
                     dst_grid: Tuple[int, int],
                     force: bool = False) -> torch.Tensor:
    """Bicubically resize a ``(1, rows * cols, C)`` table to ``dst_grid``.

    Reproduces the official ``interpolate_pos_encoding`` (DINO's recipe): the
    scale factor is ``(dst + 0.1) / src`` and is handed to ``interpolate`` as
    is, so the sampling positions (and hence the values) match the official
    models to float precision. A table already on ``dst_grid`` is returned
    unchanged unless ``force``: the official code skips the resize only when
    the token count equals the table size, so with MAE-dropped patches it
    resamples (and slightly smooths) even an unchanged grid, and the released
    pre-training ran that way.
    """
    # int(): under jit tracing (e.g. FLOP counting) grid sizes taken from
    # input shapes are tensors, which interpolate's scale_factor rejects.
    src_grid = tuple(int(s) for s in src_grid)
    dst_grid = tuple(int(s) for s in dst_grid)
    if src_grid == dst_grid and not force:
        return pos_embed
    channels = pos_embed.shape[-1]
    table = pos_embed.reshape(1, *src_grid, channels).permute(0, 3, 1, 2)
    # The 0.1 keeps floor(src * scale) == dst despite float rounding.
    scale = ((dst_grid[0] + 0.1) / src_grid[0],
             (dst_grid[1] + 0.1) / src_grid[1])
    table = F.interpolate(
        table.float(), scale_factor=scale, mode='bicubic',
        align_corners=False).to(pos_embed.dtype)
    if tuple(table.shape[-2:]) != dst_grid:
        raise RuntimeError(
            f'position embedding resized from {src_grid} to '
            f'{tuple(table.shape[-2:])}, expected {dst_grid}')
    return table.permute(0, 2, 3, 1).reshape(1, -1, channels)


def relative_position_index(grid: Tuple[int, int],
                            device=None) -> torch.Tensor:
    """Swin-style index ``(N, N)`` into a ``((2R-1)(2C-1), heads)`` table.

    Entry ``[i, j]`` encodes the offset of token ``i`` relative to token
    ``j``. The index is int32 (half the memory; ``index_select`` accepts it)
    and the last few are cached per grid and device, because every attention
    block of a model asks for the same one on every forward.
    """
    grid = tuple(grid)
    device = torch.device(device) if device is not None else torch.device(
        'cpu')
    if torch.compiler.is_compiling():
        # Under torch.export / torch.compile the index is a traced fake
        # tensor: cached, it would leak into later eager forwards.
        return _cached_relative_position_index.__wrapped__(grid, device)
    return _cached_relative_position_index(grid, device)


@functools.lru_cache(maxsize=4)
def _cached_relative_position_index(grid, device):
    rows, cols = grid
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(rows, device=device),
            torch.arange(cols, device=device),
            indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    index = (rel[0] + rows - 1) * (2 * cols - 1) + (rel[1] + cols - 1)
    return index.int()


def resize_rel_pos_table(table: torch.Tensor,
                         src_grid: Tuple[int, int],
                         dst_grid: Tuple[int, int]) -> torch.Tensor:
    """Bicubically resize a Swin-style ``((2R-1)(2C-1), heads)`` table.

    Used at run time when the input grid differs from the construction grid
    and by checkpoint converters (as the official det/seg loaders do).
    """
    src = (2 * src_grid[0] - 1, 2 * src_grid[1] - 1)
    dst = (2 * dst_grid[0] - 1, 2 * dst_grid[1] - 1)
    if src == dst:
        return table
    heads = table.shape[-1]
    grid = table.t().reshape(1, heads, *src)
    grid = F.interpolate(
        grid.float(), size=dst, mode='bicubic',
        align_corners=False).to(table.dtype)
    return grid.reshape(heads, -1).t()
