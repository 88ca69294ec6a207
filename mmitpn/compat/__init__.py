"""mmitpn's fixes of the OpenMMLab packages it runs on, in one place.

:func:`apply_compat_patches` applies them and logs, once for each, what it
changed and why. It runs when mmitpn's tools start and when a config first
asks mmitpn's registry for a type (``type='mmitpn.X'``, from any codebase's
tools); ``import mmitpn`` alone changes nothing. Each fix names the versions
of the package it patches that it was written for and is skipped, with a
warning, on others. ``MMITPN_NO_COMPAT=1`` skips all of them,
``MMITPN_NO_COMPAT=name,...`` those named.

- ``weights_only_checkpoints``, ``atomic_checkpoint_writes``,
  ``prune_checkpoints_after_saving``: mmengine's checkpoints load on
  torch >= 2.6 and survive a kill while being written
  (:mod:`.checkpoints`).
- ``mmcv_ops_fallback``: mmcv's NMS and RoIAlign run where mmcv has no
  kernel (CUDA tensors with a CPU-only mmcv build) and on bfloat16 / float16
  inputs (:mod:`.mmcv_ops`). Applied once ``mmcv.ops`` has been imported (by
  mmdet or mmseg), so runs that never use it do not import it.
- ``mmpretrain_vis_sample_indices``: mmpretrain's ``VisualizationHook``
  names and picks the samples of a last, smaller batch right
  (:mod:`.mmpretrain_hooks`); applied once mmpretrain's hooks are imported.
"""
import logging
import os
import re
import sys
from importlib import import_module
from typing import Callable, Dict, NamedTuple, Optional

import torch

OPT_OUT_ENV = 'MMITPN_NO_COMPAT'


class Patch(NamedTuple):
    """A fix: ``apply()`` it to ``package`` versions ``low <= v < high``.

    ``skip()`` gives a reason not to (or None); ``ready()`` says whether it
    can be applied yet (a fix of a package that is not imported waits).
    """
    apply: Callable[[], None]
    package: str
    versions: tuple
    why: str
    skip: Callable[[], Optional[str]] = lambda: None
    ready: Callable[[], bool] = lambda: True


def _torch_before_2_6() -> Optional[str]:
    version = tuple(int(p) for p in re.findall(r'\d+', torch.__version__)[:2])
    return 'not needed before torch 2.6' if version < (2, 6) else None


def _from(module: str, name: str) -> Callable[[], None]:
    return lambda: getattr(import_module(f'{__name__}.{module}'), name)()


PATCHES: Dict[str, Patch] = {
    'weights_only_checkpoints':
    Patch(_from('checkpoints', 'allow_mmengine_checkpoints'), 'mmengine',
          ('0.10.0', '0.11.0'),
          "torch >= 2.6 loads weights-only and mmengine's checkpoints hold "
          'HistoryBuffer and numpy objects',
          skip=_torch_before_2_6),
    'atomic_checkpoint_writes':
    Patch(_from('checkpoints', 'make_local_writes_atomic'), 'mmengine',
          ('0.10.0', '0.11.0'),
          'a kill during a checkpoint write would leave a truncated file'),
    'prune_checkpoints_after_saving':
    Patch(_from('checkpoints', 'prune_checkpoints_after_saving'), 'mmengine',
          ('0.10.0', '0.11.0'),
          'CheckpointHook deletes the oldest checkpoint before saving the '
          'new'),
    'mmcv_ops_fallback':
    Patch(_from('mmcv_ops', 'install_kernel_fallback'), 'mmcv',
          ('2.0.0rc4', '2.2.0'),
          "nms and RoIAlign raise where mmcv has no kernel (CUDA tensors, "
          'CPU-only build) and on bfloat16/float16 inputs; they go to '
          "torchvision's kernels or run in float32 there",
          ready=lambda: 'mmcv.ops' in sys.modules),
    'mmpretrain_vis_sample_indices':
    Patch(_from('mmpretrain_hooks', 'number_samples_from_loader_batch_size'),
          'mmpretrain', ('1.0.0', '1.3.0'),
          'VisualizationHook draws the samples of a last, smaller batch '
          'under the indices of earlier ones',
          ready=lambda: 'mmpretrain.engine.hooks' in sys.modules),
}

# name -> what happened, for the patches applied or skipped so far.
_RESOLVED: Dict[str, str] = {}


def _version(text: str) -> tuple:
    """'2.0.0rc4' -> (2, 0, 0, -1) < (2, 0, 0, 0): pre-releases first."""
    numbers = tuple(int(p) for p in re.findall(r'\d+', text.split('rc')[0]))
    return numbers[:3] + ((-1, ) if 'rc' in text else (0, ))


def _opted_out() -> set:
    value = os.environ.get(OPT_OUT_ENV, '').strip()
    if value.lower() in ('1', 'all', 'true'):
        return set(PATCHES)
    names = {n.strip() for n in value.split(',') if n.strip()}
    unknown = names - set(PATCHES)
    if unknown:
        raise ValueError(
            f'{OPT_OUT_ENV} names unknown patches {sorted(unknown)}; known: '
            f'{sorted(PATCHES)} (or 1 for all)')
    return names


def apply_compat_patches() -> Dict[str, str]:
    """Apply every fix that is ready and not yet applied or skipped.

    Returns:
        dict: ``{patch name: what happened}`` (applied, or why skipped) for
        the fixes resolved by this call, as logged; empty when none was.
    """
    opted_out = _opted_out()
    done = {}
    for name, patch in PATCHES.items():
        if name in _RESOLVED:
            continue
        if name in opted_out:
            done[name] = f'skipped ({OPT_OUT_ENV})'
            continue
        if not patch.ready():
            continue
        low, high = patch.versions
        found = import_module(patch.package).__version__
        reason = patch.skip()
        if not _version(low) <= _version(found) < _version(high):
            done[name] = (f'skipped: written for {patch.package} >={low},'
                          f'<{high}, found {found}')
        elif reason is not None:
            done[name] = reason
        else:
            patch.apply()
            done[name] = f'applied ({patch.why})'
    _RESOLVED.update(done)
    if done:
        from mmengine.logging import print_log
        outdated = any(v.startswith('skipped: written') for v in done.values())
        print_log(
            'mmitpn compat patches: ' +
            '; '.join(f'{name} {what}' for name, what in done.items()),
            logger='current',
            level=logging.WARNING if outdated else logging.INFO)
    return done
