"""The strides of iTPN's feature maps, from the patch size.

HiViT's three stages run at strides ``p/4``, ``p/2`` and ``p`` for patch
size ``p`` (two 2x2 merges lead from the stage-1 tokens to one token per
patch), and each extra pyramid level halves the one below. Detector heads
must be told these strides (anchor generators, RoI extractors); configs take
them from :func:`pyramid_strides` instead of writing them out, so that they
follow ``patch_size``.
"""
from typing import List

# Stage-1 tokens per patch side (iTPNHiViT's inner_patches).
_TOKENS_PER_PATCH_SIDE = 4
# iTPNPyramid: the three backbone levels plus up to two pooled ones.
_MIN_LEVELS, _MAX_LEVELS = 3, 5


def pyramid_strides(patch_size: int, num_levels: int = 5) -> List[int]:
    """Strides of the first ``num_levels`` pyramid levels.

    Args:
        patch_size (int): The backbone's ``patch_size``.
        num_levels (int): The pyramid's ``num_outs`` (3 to 5).

    Returns:
        list[int]: ``[p/4, p/2, p, 2p, 4p][:num_levels]``; ``[4, 8, 16, 32,
        64]`` for ``p = 16``, ``[1, 2, 4, 8, 16]`` for ``p = 4``.

    Examples:
        In a config (after its ``_base_`` line, which mmengine needs first)::

            from mmitpn.models.utils.strides import pyramid_strides
            strides = pyramid_strides(patch_size=8)  # [2, 4, 8, 16, 32]
            model = dict(rpn_head=dict(anchor_generator=dict(strides=strides)))
    """
    if (isinstance(patch_size, bool) or not isinstance(patch_size, int)
            or patch_size <= 0 or patch_size % _TOKENS_PER_PATCH_SIDE):
        raise ValueError(
            f'patch_size must be a positive multiple of '
            f'{_TOKENS_PER_PATCH_SIDE} (iTPNHiViT splits each patch into '
            f'{_TOKENS_PER_PATCH_SIDE}x{_TOKENS_PER_PATCH_SIDE} stage-1 '
            f'tokens), got {patch_size!r}')
    if not _MIN_LEVELS <= num_levels <= _MAX_LEVELS:
        raise ValueError(
            f'num_levels must be the pyramid\'s num_outs, {_MIN_LEVELS} to '
            f'{_MAX_LEVELS}, got {num_levels!r}')
    first = patch_size // _TOKENS_PER_PATCH_SIDE
    return [first * 2**level for level in range(num_levels)]
