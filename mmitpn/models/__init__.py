"""mmitpn's model core (torch + mmengine only): the HiViT backbone, the
pyramid and the pre-training heads.

The adapters that need another codebase are imported only when asked for:
:mod:`mmitpn.models.algorithms` (mmpretrain) and :mod:`mmitpn.models.teachers`
(open_clip); mmitpn's registry does that for ``type='mmitpn.iTPN'``.
"""
from .backbones import iTPNHiViT
from .heads import iTPNCLIPHead, iTPNMFMHead, iTPNPixelHead
from .necks import GlobalAvgPoolNorm, iTPNPyramid

__all__ = [
    'iTPNHiViT', 'iTPNPixelHead', 'iTPNMFMHead', 'iTPNCLIPHead',
    'GlobalAvgPoolNorm', 'iTPNPyramid'
]
