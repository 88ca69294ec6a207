"""Reading a checkpoint file and saying what it is, or why it is no
checkpoint.

Every entry point that takes a checkpoint (``init_cfg`` Pretrained,
``load_from``, ``--resume``, ``tools/test.py``, the visualisation tools and
the converter) reads it through :func:`read_checkpoint`, so an empty,
truncated or foreign file, or a pickle carrying code, is named as such
everywhere instead of surfacing as torch's ``EOFError`` or
``PytorchStreamReader`` traceback.
"""
import os
import os.path as osp
import pickle
import re
import struct
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from mmengine.runner.checkpoint import _load_checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or cannot fill what it is meant
    for; the message names the file, what is wrong and the fix."""


# Wrappers of the state dict in mmengine, MAE/BEiT and DDP checkpoints.
STATE_DICT_KEYS = ('state_dict', 'model', 'module')

# What each kind of file is, as the messages say it.
KINDS = {
    'training': 'an mmengine training checkpoint',
    'weights': 'a weights-only checkpoint (state_dict and meta, no '
    'optimizer state)',
    'state_dict': 'a plain state dict (tensors only)',
    'safetensors': 'a safetensors file (tensors only)',
    'official': 'an official iTPN checkpoint (official key layout)',
}

CONVERT_HINT = ('convert it first: python tools/model_converters/'
                'official2mmitpn.py SRC DST, then use DST')

# Modules whose functions a pickle can call to run code or reach the system;
# weights never need them, so a file that asks for one carries a payload.
CODE_MODULES = ('builtins', 'os', 'posix', 'nt', 'subprocess', 'sys',
                'shutil', 'socket', 'importlib', 'runpy', 'pty', 'code',
                'ctypes', 'webbrowser', 'pickle', 'marshal', 'types')
_REFUSED_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')
# An official HiViT keeps its two patch merges inside ``blocks``.
_OFFICIAL_MERGE = re.compile(r'(^|\.)blocks\.\d+\.reduction\.weight$')


@dataclass
class CheckpointFile:
    """A read checkpoint.

    Attributes:
        path (str): The file.
        kind (str): A key of :data:`KINDS`.
        state_dict (dict): Its tensors, without the ``module.`` prefix of
            DDP.
        content (dict): The whole loaded object (what mmengine's resume and
            hooks read: ``meta``, ``optimizer``, ...); ``{'state_dict':
            state_dict}`` for a bare state dict.
    """
    path: str
    kind: str
    state_dict: Dict[str, torch.Tensor]
    content: dict = field(default_factory=dict)

    def __post_init__(self):
        self.content = self.content or {'state_dict': self.state_dict}

    def describe(self) -> str:
        """E.g. ``an mmengine training checkpoint (iter 6, epoch 0)``."""
        text = KINDS[self.kind]
        meta = self.content.get('meta')
        if self.kind == 'training' and isinstance(meta, dict):
            text += f' (iter {meta.get("iter")}, epoch {meta.get("epoch")})'
        return text


def is_local(path: str) -> bool:
    """Whether mmengine reads ``path`` from the local file system."""
    return '://' not in path and not path.startswith(
        ('open-mmlab:', 'openmmlab:', 'mmcls:', 'torchvision:'))


def unwrap_state_dict(ckpt) -> Optional[Dict[str, torch.Tensor]]:
    """The tensors of a loaded checkpoint, or None if it holds none.

    Takes the dict under the first of :data:`STATE_DICT_KEYS` present, else
    the checkpoint itself, and removes the ``module.`` prefix that
    DistributedDataParallel puts on every name.
    """
    for key in STATE_DICT_KEYS:
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict) or not ckpt or not all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        return None
    if all(k.startswith('module.') for k in ckpt):
        ckpt = {k[len('module.'):]: v for k, v in ckpt.items()}
    return ckpt


def is_official_layout(keys) -> bool:
    """Whether state-dict keys use the official iTPN code's layout."""
    return any(_OFFICIAL_MERGE.search(k) for k in keys)


def refused_global(err: Exception) -> Optional[str]:
    """The pickled global that a weights-only load refused, if any."""
    match = _REFUSED_GLOBAL.search(str(err))
    return match.group(1) if match else None


def code_payload(err: Exception) -> Optional[str]:
    """The code-running global a weights-only load refused, if any."""
    name = refused_global(err)
    return name if name and name.split('.')[0] in CODE_MODULES else None


def explain_unreadable(path: str, err: Exception) -> str:
    """Why ``path`` could not be loaded, and what (not) to do about it."""
    if is_local(path) and osp.isfile(path) and osp.getsize(path) == 0:
        return (f'{path} is empty (0 bytes): it was never written completely '
                '(a full disk or an unfinished copy or download); copy or '
                'download it again, or use another checkpoint')
    payload = code_payload(err)
    if payload is not None:
        return (f'{path} is not a checkpoint to load: unpickling it would '
                f'call {payload}, i.e. run code, which weights-only loading '
                'refused. Delete the file; never load it with '
                'weights_only=False, which would run that code.')
    name = refused_global(err)
    if name is not None:
        return (f'{path} holds a pickled {name} object, which '
                'weights-only loading refuses. If you trust the file, load '
                'it in Python with torch.load(path, weights_only=False) and '
                'save its state dict alone (torch.save(dict(state_dict=sd), '
                'new_path)).')
    # torch's text for a failed unpickling advises weights_only=False,
    # which would run whatever the file holds: give the type alone.
    detail = type(err).__name__ if isinstance(
        err, pickle.UnpicklingError) else \
        f'{type(err).__name__}: {err}'.splitlines()[0]
    if _starts_as_torch_file(path):
        what = ('truncated or damaged: it starts as a torch.save file but '
                'cannot be read to its end (a run killed while writing it, '
                'a full disk or an unfinished copy)')
    else:
        what = ('not a PyTorch checkpoint (neither a torch.save file nor '
                'safetensors)')
    return f'{path} is {what} [{detail}]; copy it again or use another one'


def _starts_as_torch_file(path: str) -> bool:
    """torch.save writes a zip archive (or, before torch 1.6, a pickle)."""
    if not (is_local(path) and osp.isfile(path)):
        return False
    with open(path, 'rb') as f:
        head = f.read(4)
    return head == b'PK\x03\x04' or head[:1] == b'\x80'


def _is_safetensors(path: str) -> bool:
    """A safetensors file starts with its JSON header's length, then '{'."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    size = struct.unpack('<Q', head[:8])[0]
    return head[8:9] == b'{' and size < os.path.getsize(path)


def _read_safetensors(path: str, map_location) -> Dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise CheckpointError(
            f'{path} is a safetensors file; reading it needs the '
            '`safetensors` package (pip install safetensors)') from err
    device = map_location if isinstance(map_location, str) and \
        map_location not in ('default', '') else 'cpu'
    try:
        return load_file(path, device=device)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(
            f'{path} is a damaged safetensors file ({err}); copy it '
            'again') from err


def read_checkpoint(path: str, map_location='cpu') -> CheckpointFile:
    """Read ``path`` (a file or anything mmengine can load) and classify it.

    Raises:
        CheckpointError: The file is missing, empty, truncated, not a
            checkpoint, carries a code payload, or holds no tensors; the
            message says which and what to do.
    """
    path = os.fspath(path)
    if is_local(path):
        if not osp.isfile(path):
            raise CheckpointError(f'checkpoint {path} not found')
        if osp.getsize(path) == 0:
            raise CheckpointError(explain_unreadable(path, EOFError()))
        if _is_safetensors(path):
            return CheckpointFile(path, 'safetensors',
                                  _read_safetensors(path, map_location))
    try:
        content = _load_checkpoint(path, map_location=map_location)
    except Exception as err:  # torch raises many types for a broken file
        raise CheckpointError(explain_unreadable(path, err)) from err
    state = unwrap_state_dict(content)
    if state is None:
        raise CheckpointError(
            f'{path} holds no tensors (it is a {type(content).__name__}'
            + (f' with keys {sorted(content)[:8]}' if isinstance(
                content, dict) else '') +
            f'; a checkpoint is a dict of tensors, possibly under one of '
            f'{STATE_DICT_KEYS}); use the checkpoint file itself')
    if not any(isinstance(content.get(k), dict) for k in STATE_DICT_KEYS):
        content = {'state_dict': state}  # a bare state dict
    if is_official_layout(state):
        kind = 'official'
    elif isinstance(content.get('meta'), dict) and (
            'optimizer' in content or 'message_hub' in content):
        kind = 'training'
    elif 'meta' in content:
        kind = 'weights'
    else:
        kind = 'state_dict'
    return CheckpointFile(path, kind, state, content)
