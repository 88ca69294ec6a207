"""mmitpn: Integrally Pre-Trained Transformer Pyramid Networks for OpenMMLab.

Importing mmitpn fixes nothing in other packages: mmengine's fixes are
applied by :func:`mmitpn.compat.apply_compat_patches` (see there for when).
It only makes mmitpn's models known by name to mmpretrain's, mmdet's and
mmseg's look-ups once those are imported (:mod:`mmitpn.model_index`).
"""
from .model_index import register_model_index
from .version import __version__, version_info

register_model_index()

__all__ = ['__version__', 'version_info', 'register_model_index']
