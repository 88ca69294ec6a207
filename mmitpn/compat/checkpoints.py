"""mmitpn's fixes of mmengine 0.10.x checkpointing (see :mod:`mmitpn.compat`).

``weights_only_checkpoints``: torch >= 2.6 loads checkpoints with
``weights_only=True`` by default, and mmengine 0.10.7 does not pass
``weights_only``: its own checkpoints (resume, ``load_from``, ``Pretrained``
init) then fail on ``HistoryBuffer``, numpy arrays and scalars, and the
``getattr`` that pickles HistoryBuffer's statistics methods. Rather than
switching weights-only loading off, we allow exactly those objects;
``getattr`` is replaced by a version that resolves only HistoryBuffer's own
methods, so a pickle carrying a code payload is still refused.

``atomic_checkpoint_writes``: mmengine writes a checkpoint straight to its
final path, so a kill during the write (preemption, OOM killer, a full disk)
leaves a truncated file under the name of a good one. Every file written
through mmengine's local file backend (``LocalBackend.put`` / ``put_text``,
where ``Runner.save_checkpoint`` writes every checkpoint) now goes to a
temporary file in the same folder, is flushed to disk and then renamed over
the final path: a reader sees the old file or the new one, never half of
one.

``prune_checkpoints_after_saving``: ``CheckpointHook`` deletes the oldest
kept checkpoint *before* writing the new one (with ``max_keep_ckpts=1`` a
crash then leaves none); it now deletes it after the new one is written.
(Its few-byte ``last_checkpoint`` record is still written in place;
``tools/train.py --resume`` checks what it names.)
"""
import errno
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import torch


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


def atomic_write(data, filepath, encoding: str = 'utf-8') -> None:
    """Write ``data`` (bytes or str) to ``filepath`` all or nothing.

    The bytes go to a hidden temporary file beside ``filepath`` (same file
    system, so the rename is atomic), are fsynced, and the file is renamed
    over ``filepath``; the folder is fsynced so the rename survives a power
    loss. If the write fails the temporary file is removed and ``filepath``
    keeps its old content. A process killed mid-write leaves only the
    temporary ``.<name>.tmp-<pid>`` file behind.
    """
    filepath = os.fspath(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.tmp-{os.getpid()}')
    if isinstance(data, str):
        data = data.encode(encoding)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC,
                                                      errno.EDQUOT):
            # The plain error names neither the file nor the space needed.
            raise OSError(
                err.errno,
                f'{err.strerror}: writing {filepath} needs {len(data)} bytes, '
                f'{shutil.disk_usage(folder).free} are free on that file '
                'system; the previous file there is unchanged. Free space, '
                'lower max_keep_ckpts, or use a --work-dir on another disk',
                filepath) from err
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def make_local_writes_atomic():
    """Route mmengine's local file writes through :func:`atomic_write`."""
    from mmengine.fileio.backends.local_backend import LocalBackend

    def put(self, obj, filepath):
        atomic_write(obj, filepath)

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write(obj, filepath, encoding)

    put.__doc__ = LocalBackend.put.__doc__
    put_text.__doc__ = LocalBackend.put_text.__doc__
    LocalBackend.put = put
    LocalBackend.put_text = put_text


class _DeferredRemoval:
    """A file backend proxy that records removals instead of doing them."""

    def __init__(self, backend):
        self._backend = backend
        self.removals = []

    def remove(self, filepath):
        self.removals.append(('remove', filepath))

    def rmtree(self, dir_path):
        self.removals.append(('rmtree', dir_path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


def prune_checkpoints_after_saving():
    """Make ``CheckpointHook`` delete outdated checkpoints after the save."""
    from mmengine.hooks import CheckpointHook
    save_with_step = CheckpointHook._save_checkpoint_with_step

    def save_then_prune(self, runner, step, meta):
        backend = self.file_backend
        self.file_backend = _DeferredRemoval(backend)
        try:
            save_with_step(self, runner, step, meta)
            removals = self.file_backend.removals
        finally:
            self.file_backend = backend
        for method, path in removals:
            getattr(backend, method)(path)

    CheckpointHook._save_checkpoint_with_step = save_then_prune
