"""Datasets, each an adapter of the codebase it builds on, imported only
when asked for (mmitpn's registry does that for ``type='mmitpn.X'``):
:mod:`.fashion_mnist` and :mod:`.image_folder` (mmpretrain),
:mod:`.tiny_real_seg` (mmseg)."""


class DataError(ValueError):
    """Data that cannot be read (a damaged file, an undecodable image); the
    message names the file, what is wrong and the fix."""
