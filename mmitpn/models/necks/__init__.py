from .itpn_pyramid import iTPNPyramid
from .pooling import GlobalAvgPoolNorm

__all__ = ['iTPNPyramid', 'GlobalAvgPoolNorm']
