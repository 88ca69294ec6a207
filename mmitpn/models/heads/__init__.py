from .mfm_heads import iTPNCLIPHead, iTPNMFMHead
from .mim_pixel_head import iTPNPixelHead

__all__ = ['iTPNPixelHead', 'iTPNMFMHead', 'iTPNCLIPHead']
