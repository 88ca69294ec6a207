"""Checked loading of pre-trained weights into the backbone and the pyramid.

mmengine's ``Pretrained`` init loads non-strictly and only warns about what
it skipped, so a wrong prefix, another arch or a pyramid of another width can
leave a detector training from random weights with a line in the log to show
for it. mmitpn's modules route ``init_cfg=dict(type='Pretrained', ...)``
through :func:`load_pretrained` instead, which reports what was loaded and
fails when nothing fits or a tensor has the wrong shape.
"""
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import _load_checkpoint

# Keys a ``Pretrained`` init_cfg of an mmitpn module may hold.
PRETRAINED_CFG_KEYS = ('type', 'checkpoint', 'prefix', 'map_location',
                       'strict')
# Wrappers of the state dict in mmengine, MAE/BEiT and DDP checkpoints.
STATE_DICT_KEYS = ('state_dict', 'model', 'module')


class PretrainedLoadError(RuntimeError):
    """A pre-trained checkpoint that cannot fill the module it is meant for."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did; kept as ``module.pretrained_report``.

    Attributes:
        checkpoint (str): The file.
        prefix (str): The key prefix taken from it.
        loaded (list[str]): Module tensors filled from the checkpoint.
        missing (list[str]): Module tensors the checkpoint lacks (left at
            their initialisation).
        unused (list[str]): Checkpoint tensors under ``prefix`` that the
            module has no place for.
    """
    checkpoint: str
    prefix: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.loaded) + len(self.missing)


def summarize_keys(keys: List[str], limit: int = 12) -> str:
    """``blocks.0.attn.x, blocks.1.attn.x`` -> ``blocks.*.attn.x (x2)``."""
    patterns = Counter(re.sub(r'\.\d+(?=\.|$)', '.*', k) for k in keys)
    parts = [p if n == 1 else f'{p} (x{n})' for p, n in patterns.items()]
    if len(parts) > limit:
        parts = parts[:limit] + [f'... {len(parts) - limit} more patterns']
    return ', '.join(parts)


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
    if not isinstance(ckpt, dict) or not all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        return None
    if ckpt and all(k.startswith('module.') for k in ckpt):
        ckpt = {k[len('module.'):]: v for k, v in ckpt.items()}
    return ckpt


def read_state_dict(checkpoint: str,
                    map_location: str = 'cpu') -> Dict[str, torch.Tensor]:
    """The state dict of an mmengine, converted or raw checkpoint file."""
    try:
        ckpt = _load_checkpoint(checkpoint, map_location=map_location)
    except FileNotFoundError as err:
        raise PretrainedLoadError(
            f'pre-trained checkpoint {checkpoint!r} not found ({err}); fix '
            'init_cfg.checkpoint (e.g. --cfg-options '
            'model.backbone.init_cfg.checkpoint=PATH), or set the init_cfg '
            'to None to train from scratch') from err
    except Exception as err:  # torch raises many types for a broken file
        raise PretrainedLoadError(
            f'cannot read pre-trained checkpoint {checkpoint!r}: '
            f'{type(err).__name__}: {err}. The file is corrupted, truncated '
            'or not a PyTorch checkpoint; download or convert it again') \
            from err
    state = unwrap_state_dict(ckpt)
    if state is None:
        raise PretrainedLoadError(
            f'{checkpoint!r} holds no state dict (a dict of tensors, '
            f'possibly under one of {STATE_DICT_KEYS})')
    return state


def load_pretrained(module: torch.nn.Module,
                    checkpoint: str,
                    prefix: str = '',
                    map_location: str = 'cpu',
                    strict: bool = False) -> LoadReport:
    """Fill ``module`` from the ``prefix`` part of a checkpoint, checked.

    Tensors are matched by name after removing ``prefix``; load pre-hooks of
    the module (e.g. the backbone's position-table resizing) still apply.
    The numbers loaded, missing and unused are logged.

    Args:
        module (nn.Module): The module to fill.
        checkpoint (str): Path or URL that mmengine can load.
        prefix (str): Key prefix of the module's tensors in the checkpoint,
            e.g. ``'backbone.'``; removed before matching.
        map_location (str): Device to load tensors to.
        strict (bool): Also fail when a module tensor is missing from the
            checkpoint or a checkpoint tensor is unused.

    Raises:
        PretrainedLoadError: The file is missing or unreadable, no tensor
            under ``prefix`` matches the module, a tensor's shape differs
            (another arch or width), or, with ``strict``, anything is missing
            or unused.
    """
    name = type(module).__name__
    state = read_state_dict(checkpoint, map_location)
    source = f'{checkpoint!r} (prefix {prefix!r})'
    picked = {k[len(prefix):]: v for k, v in state.items()
              if k.startswith(prefix)}
    own = module.state_dict()
    report = LoadReport(
        checkpoint=checkpoint,
        prefix=prefix,
        loaded=[k for k in own if k in picked],
        missing=[k for k in own if k not in picked],
        unused=[k for k in picked if k not in own])
    if not report.loaded:
        tops = sorted({k.split('.')[0] + '.' for k in state})
        raise PretrainedLoadError(
            f'{name}: no tensor of {source} matches this module '
            f'({len(picked)} tensors under the prefix; top-level prefixes in '
            f'the checkpoint: {summarize_keys(tops)}). Set init_cfg.prefix '
            'to the part holding these weights (mmitpn checkpoints: '
            "'backbone.', 'neck.'); official iTPN checkpoints must first be "
            'converted with tools/model_converters/official2mmitpn.py')
    if strict and (report.missing or report.unused):
        raise PretrainedLoadError(
            f'{name}: strict loading of {source} failed; not in the '
            f'checkpoint: [{summarize_keys(report.missing)}]; unused: '
            f'[{summarize_keys(report.unused)}]')
    try:
        module.load_state_dict(picked, strict=False)
    except RuntimeError as err:
        mismatches = [
            line.strip() for line in str(err).splitlines()
            if 'size mismatch' in line
        ]
        raise PretrainedLoadError(
            f'{name}: {len(mismatches)} tensors of {source} have other '
            'shapes than this module, so the checkpoint was made for another '
            'arch or width (backbone arch / embed_dims, pyramid in_channels '
            '/ out_channels); build the model with the checkpoint\'s '
            'settings or use a matching checkpoint:\n  ' +
            '\n  '.join(mismatches or [str(err)])) from err

    print_log(
        f'{name}: loaded {len(report.loaded)}/{report.total} tensors from '
        f'{source}', logger='current')
    if report.missing:
        print_log(
            f'{name}: {len(report.missing)} tensors are not in the checkpoint '
            f'and keep their initialisation: {summarize_keys(report.missing)}',
            logger='current', level=30)
    if report.unused:
        print_log(
            f'{name}: {len(report.unused)} checkpoint tensors under '
            f'{prefix!r} were not used: {summarize_keys(report.unused)}',
            logger='current', level=30)
    return report


class PretrainedCheckedModule(BaseModule):
    """``BaseModule`` whose ``Pretrained`` init goes through
    :func:`load_pretrained`.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...,
    strict=False)`` loads after every other initialisation, as mmengine
    orders it; the :class:`LoadReport` is kept as ``pretrained_report``.
    """

    pretrained_report: Optional[LoadReport] = None

    def init_weights(self):
        cfgs = self.init_cfg
        if isinstance(cfgs, dict):
            cfgs = [cfgs]
        cfgs = list(cfgs or [])
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained or self._is_init:
            return super().init_weights()
        if len(pretrained) > 1:
            raise ValueError(f'{type(self).__name__}: more than one '
                             f'Pretrained init_cfg: {pretrained}')
        cfg = dict(pretrained[0])
        unknown = sorted(set(cfg) - set(PRETRAINED_CFG_KEYS))
        if unknown or not cfg.get('checkpoint'):
            raise ValueError(
                f'{type(self).__name__}: a Pretrained init_cfg needs '
                f'`checkpoint` and may have {PRETRAINED_CFG_KEYS[2:]}; got '
                f'{cfg}')
        original = self.init_cfg
        self.init_cfg = [c for c in cfgs if c is not pretrained[0]] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        self.pretrained_report = load_pretrained(
            self,
            cfg['checkpoint'],
            prefix=cfg.get('prefix') or '',
            map_location=cfg.get('map_location', 'cpu'),
            strict=cfg.get('strict', False))
