"""Conversions between the official token layout and NCHW maps.

Token layout: ``(B, N, h, w, C)`` with ``N = rows * cols`` patches in raster
order, each holding an ``h x w`` sub-grid of tokens.
"""
from typing import Tuple

import torch


def tokens_to_nchw(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """``(B, rows*cols, h, w, C) -> (B, C, rows*h, cols*w)``."""
    B, N, h, w, C = x.shape
    rows, cols = grid
    if rows * cols != N:
        raise ValueError(
            f'{N} patches do not form a {rows}x{cols} grid; token tensors '
            f'of dropped (MAE-masked) patches cannot be made into maps')
    x = x.reshape(B, rows, cols, h, w, C).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, C, rows * h, cols * w)


def nchw_to_tokens(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """``(B, C, rows*h, cols*w) -> (B, rows*cols, h, w, C)``."""
    B, C, H, W = x.shape
    rows, cols = grid
    if H % rows or W % cols:
        raise ValueError(
            f'a {H}x{W} map does not divide into a {rows}x{cols} patch grid')
    h, w = H // rows, W // cols
    x = x.reshape(B, C, rows, h, cols, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, rows * cols, h, w, C)
