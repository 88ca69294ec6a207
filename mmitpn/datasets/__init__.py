"""Datasets, each an adapter of the codebase it builds on, imported only
when asked for (mmitpn's registry does that for ``type='mmitpn.X'``):
:mod:`.fashion_mnist` and :mod:`.image_folder` (mmpretrain),
:mod:`.tiny_real_seg` (mmseg)."""
