"""Fixes that today's torch needs for mmengine 0.10.x, applied once on import.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and
mmengine 0.10.7 does not pass ``weights_only``: its own checkpoints (resume,
``load_from``, ``Pretrained`` init) then fail on ``HistoryBuffer``, numpy
arrays and scalars, and the ``getattr`` that pickles HistoryBuffer's
statistics methods. Rather than switching weights-only loading off, we allow
exactly those objects; ``getattr`` is replaced by a version that resolves only
HistoryBuffer's own methods, so a pickle carrying a code payload is still
refused.
"""
import pickle

import numpy as np
import torch

_PATCHED = False


def _torch_version():
    return tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2])


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to what mmengine's message hub pickles."""
    from mmengine.logging import HistoryBuffer
    if (obj is HistoryBuffer and not name.startswith('_')
            and callable(getattr(HistoryBuffer, name, None))):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer methods are allowed. Load untrusted files with '
        'torch.load(weights_only=True) and inspect them first.')


def _numpy_globals():
    """numpy objects in mmengine checkpoints, under numpy 1 and 2 names."""
    core = np._core if hasattr(np, '_core') else np.core
    entries = [np.ndarray, np.dtype]
    for module in ('numpy._core', 'numpy.core'):
        entries.append((core.multiarray._reconstruct,
                        f'{module}.multiarray._reconstruct'))
        entries.append((core.multiarray.scalar, f'{module}.multiarray.scalar'))
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        entries += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return entries


def allow_mmengine_checkpoints():
    """Let ``torch.load(weights_only=True)`` read mmengine's checkpoints."""
    from mmengine.logging import HistoryBuffer
    torch.serialization.add_safe_globals(
        [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')] +
        _numpy_globals())


def apply_compat_patches():
    """Apply every fix once (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    if _torch_version() >= (2, 6):
        allow_mmengine_checkpoints()
    _PATCHED = True
