"""mmitpn: Integrally Pre-Trained Transformer Pyramid Networks for OpenMMLab.

Importing mmitpn changes nothing in other packages: mmengine's fixes are
applied by :func:`mmitpn.compat.apply_compat_patches` (see there for when).
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
