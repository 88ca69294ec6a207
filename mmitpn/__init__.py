"""mmitpn: Integrally Pre-Trained Transformer Pyramid Networks for OpenMMLab."""
from .utils.compat import apply_compat_patches
from .version import __version__, version_info

apply_compat_patches()

__all__ = ['__version__', 'version_info']
