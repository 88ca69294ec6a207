"""Back ends of the scripts in ``tools/`` (set-up of train/test runs, the
official-checkpoint converter, visualisation, dataset writers).

Nothing in mmitpn's runtime (models, engine, datasets, accel) imports this
package.
"""
import warnings

# mmengine's `is_installed` (run for every `mmdet::`/`mmseg::`/`mmpretrain::`
# base a config names) imports and reloads setuptools' pkg_resources, which
# warns at every load that it is deprecated: five identical warnings before
# a detection run starts, none of them actionable by a user. The tools import
# this package before they read a config, so this is the earliest point;
# only that one message is ignored, and only in tool processes.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API',
    category=UserWarning)
