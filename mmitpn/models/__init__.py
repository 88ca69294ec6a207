from .algorithms import iTPN
from .backbones import iTPNHiViT
from .heads import iTPNCLIPHead, iTPNMFMHead, iTPNPixelHead
from .necks import GlobalAvgPoolNorm, iTPNPyramid
from .teachers import CLIPTeacher

__all__ = [
    'iTPN', 'iTPNHiViT', 'iTPNPixelHead', 'iTPNMFMHead', 'iTPNCLIPHead',
    'GlobalAvgPoolNorm', 'iTPNPyramid', 'CLIPTeacher'
]
