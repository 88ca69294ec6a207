"""Turning a training checkpoint into a release file (the back end of
``tools/model_converters/publish_model.py``).

A published checkpoint holds ``meta`` and ``state_dict`` only: the optimizer
state, parameter schedulers and message hub of mmengine's training
checkpoints, and the ``ema_state_dict`` of mmengine's ``EMAHook`` (whose
``state_dict`` already holds the averaged weights), are left out. So are
the teacher tensors of iTPN pre-training (``teacher.*``: the EMA copy of
the backbone, or the frozen CLIP model), which only the pre-training itself
uses; fine-tuning, detection and segmentation load ``backbone.`` and
``neck.``. The file is named after its content, ``NAME-<first 8 hex digits
of its sha256>.pth``, as OpenMMLab's model zoos name theirs, and written
atomically.
"""
import hashlib
import io
from typing import Dict, Tuple

import torch

import mmitpn
from mmitpn.compat import apply_compat_patches
from mmitpn.compat.checkpoints import atomic_write
from mmitpn.models.utils.checkpoint_files import (CONVERT_HINT,
                                                  STATE_DICT_KEYS,
                                                  CheckpointError,
                                                  read_checkpoint)

TEACHER_PREFIX = 'teacher.'


def published_name(out_file: str, content: bytes) -> str:
    """``out_file`` with the sha256 prefix of ``content``:
    ``a/b.pth`` -> ``a/b-1a2b3c4d.pth``."""
    stem = out_file[:-len('.pth')] if out_file.endswith('.pth') else out_file
    return f'{stem}-{hashlib.sha256(content).hexdigest()[:8]}.pth'


def publish_checkpoint(in_file: str,
                       out_file: str,
                       keep_teacher: bool = False) -> Tuple[str, Dict]:
    """Write the release file of ``in_file`` (see module doc).

    Returns:
        tuple: The written path and a summary: ``dropped_keys`` (top-level
        entries left out), ``dropped_teacher`` (number of teacher tensors
        left out), ``tensors`` (number kept).

    Raises:
        CheckpointError: ``in_file`` is unreadable, or an official iTPN
            checkpoint (convert it first).
    """
    # mmengine's training checkpoints load weights-only with its fixes.
    apply_compat_patches()
    ckpt = read_checkpoint(in_file)
    if ckpt.kind == 'official':
        raise CheckpointError(
            f'{in_file} is {ckpt.describe()}; {CONVERT_HINT}')
    meta = dict(ckpt.content.get('meta') or {})
    meta.setdefault('mmitpn_version', mmitpn.__version__)
    state_dict = {
        k: v
        for k, v in ckpt.state_dict.items()
        if keep_teacher or not k.startswith(TEACHER_PREFIX)
    }
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=state_dict), buffer)
    content = buffer.getvalue()
    final_file = published_name(out_file, content)
    atomic_write(content, final_file)
    return final_file, dict(
        dropped_keys=sorted(k for k in ckpt.content
                            if k != 'meta' and k not in STATE_DICT_KEYS),
        dropped_teacher=len(ckpt.state_dict) - len(state_dict),
        tensors=len(state_dict))
