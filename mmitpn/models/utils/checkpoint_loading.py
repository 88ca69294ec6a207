"""Checked loading: a checkpoint fills a module completely, or it is refused.

mmengine loads non-strictly and only warns about what it skipped, so a wrong
prefix, another arch or a pyramid of another depth leaves a run training
from random weights with a line in the log to show for it. Here every
tensor of the module must come from the checkpoint with its shape, unless
the config names it in ``allow_missing``; when the shapes or tensor counts
say the checkpoint was made with other settings (``fpn_depth``,
``patch_size``, the arch's widths and depths), the message names them.

- :func:`load_pretrained` serves ``init_cfg=dict(type='Pretrained', ...)``
  of mmitpn's modules (:class:`PretrainedCheckedModule`);
- :func:`load_checkpoint_checked` serves whole models: ``load_from``,
  ``--resume``, ``tools/test.py`` and the visualisation tools.
"""
import re
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule, is_model_wrapper
from mmengine.runner.checkpoint import load_state_dict

from .checkpoint_files import (CONVERT_HINT, CheckpointError, CheckpointFile,
                               read_checkpoint, unwrap_state_dict)

# Keys a ``Pretrained`` init_cfg of an mmitpn module may hold.
PRETRAINED_CFG_KEYS = ('type', 'checkpoint', 'prefix', 'map_location',
                       'strict', 'allow_missing')
# The parts of a model that hold pre-trained weights: loading must fill them.
PRETRAINED_PARTS = ('backbone', 'neck')
# How a whole-model load may differ from the model (see load_checkpoint_checked).
PURPOSES = ('load_from', 'resume', 'test')


@dataclass
class LoadReport:
    """How a checkpoint's tensors fit a module; kept as
    ``module.pretrained_report`` by :class:`PretrainedCheckedModule`.

    Names are as the module saves them (``state_dict()`` keys).

    Attributes:
        checkpoint (str): The file.
        prefix (str): The key prefix taken from it.
        loaded (list[str]): Module tensors filled from the checkpoint.
        missing (list[str]): Module tensors the checkpoint lacks.
        unused (list[str]): Checkpoint tensors the module has no place for.
        mismatched (list[str]): ``key: checkpoint shape vs module shape``.
        settings (list[str]): Settings the checkpoint was made with that
            differ from the module's, e.g. ``fpn_depth: 1 in the
            checkpoint, 2 here``.
    """
    checkpoint: str
    prefix: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    settings: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.loaded) + len(self.missing) + len(self.mismatched)


def summarize_keys(keys: List[str], limit: int = 12) -> str:
    """``blocks.0.attn.x, blocks.1.attn.x`` -> ``blocks.*.attn.x (x2)``."""
    patterns = Counter(re.sub(r'\.\d+(?=\.|$)', '.*', k) for k in keys)
    parts = [p if n == 1 else f'{p} (x{n})' for p, n in patterns.items()]
    if len(parts) > limit:
        parts = parts[:limit] + [f'... {len(parts) - limit} more patterns']
    return ', '.join(parts)


def count_blocks(state: Dict[str, torch.Tensor], name: str) -> int:
    """How many ``name.<i>.`` blocks ``state`` has tensors of."""
    pattern = re.compile(rf'{re.escape(name)}\.(\d+)\.')
    return len({m.group(1) for k in state if (m := pattern.match(k))})


def _as_loaded(module: torch.nn.Module, state: Dict[str, torch.Tensor]):
    """``state`` as ``module.load_state_dict`` sees it: after the load
    pre-hooks of the module and its submodules (position tables resized to
    the model's grid, layer-scale names mapped, a frozen teacher's weights
    put in place); and, for the reports, each key's name in ``state``."""
    hooked = dict(state)
    for name, sub in module.named_modules():
        for hook in sub._load_state_dict_pre_hooks.values():
            hook(hooked, f'{name}.' if name else '', {}, True, [], [], [])
    saved_name = {id(v): k for k, v in state.items()}
    return hooked, {k: saved_name.get(id(v), k) for k, v in hooked.items()}


def settings_differences(module: torch.nn.Module,
                         state: Dict[str, torch.Tensor]) -> List[str]:
    """Settings of ``module`` that the checkpoint ``state`` was not made
    with, read from tensor shapes and counts by the module's
    ``settings_from_state_dict`` (empty if it has none)."""
    infer = getattr(module, 'settings_from_state_dict', None)
    if infer is None or not state:
        return []
    theirs, ours = infer(state), infer(module.state_dict())
    return [
        f'{key}: {theirs[key]!r} in the checkpoint, {value!r} here'
        for key, value in ours.items()
        if key in theirs and theirs[key] != value
    ]


def fit_report(module: torch.nn.Module, state: Dict[str, torch.Tensor],
               checkpoint: str = '', prefix: str = '') -> LoadReport:
    """How ``state`` (keys relative to ``module``) fits ``module``."""
    own, own_names = _as_loaded(module, module.state_dict())
    theirs, their_names = _as_loaded(module, state)
    report = LoadReport(checkpoint, prefix,
                        settings=settings_differences(module, state))
    for key, value in own.items():
        name = own_names[key]
        if key not in theirs:
            report.missing.append(name)
        elif theirs[key].shape != value.shape:
            report.mismatched.append(
                f'{name}: {tuple(theirs[key].shape)} in the checkpoint, '
                f'{tuple(value.shape)} here')
        else:
            report.loaded.append(name)
    report.unused = [their_names[k] for k in theirs if k not in own]
    return report


def _settings_text(report: LoadReport) -> str:
    if not report.settings:
        return ''
    return (' It was made with other settings than this model: ' +
            '; '.join(report.settings) + '. Build the model with the '
            "checkpoint's settings, or use a checkpoint made with the "
            "model's.")


def _misfit_lines(report: LoadReport, allow_missing: Sequence[str] = ()):
    """What keeps ``report`` from being a complete load, one line each."""
    lines = []
    if report.mismatched:
        lines.append(f'{len(report.mismatched)} tensors have other shapes:'
                     '\n    ' + '\n    '.join(report.mismatched[:12]))
    missing = [k for k in report.missing
               if not any(fnmatchcase(k, p) for p in allow_missing)]
    if missing:
        lines.append(f'{len(missing)} tensors of the model are not in the '
                     f'checkpoint: {summarize_keys(missing)}')
    if report.unused and report.settings:
        lines.append(f'{len(report.unused)} checkpoint tensors have no '
                     f'place in the model: {summarize_keys(report.unused)}')
    return lines


def _log_report(name: str, report: LoadReport, source: str) -> None:
    print_log(
        f'{name}: loaded {len(report.loaded)}/{report.total} tensors from '
        f'{source}', logger='current')
    if report.missing:
        print_log(
            f'{name}: {len(report.missing)} tensors are not in the checkpoint '
            f'and keep their initialisation (allowed): '
            f'{summarize_keys(report.missing)}',
            logger='current', level=30)
    if report.unused:
        print_log(
            f'{name}: {len(report.unused)} checkpoint tensors were not used: '
            f'{summarize_keys(report.unused)}',
            logger='current', level=30)


def load_pretrained(module: torch.nn.Module,
                    checkpoint: str,
                    prefix: str = '',
                    map_location: str = 'cpu',
                    strict: bool = False,
                    allow_missing: Sequence[str] = ()) -> LoadReport:
    """Fill ``module`` from the ``prefix`` part of a checkpoint, checked.

    Tensors are matched by name after removing ``prefix``; the module's load
    pre-hooks (e.g. the backbone's position-table resizing) apply. Nothing
    is loaded unless every module tensor is in the checkpoint with its
    shape, except those matching a pattern of ``allow_missing``.

    Args:
        module (nn.Module): The module to fill.
        checkpoint (str): Path or URL that mmengine can load.
        prefix (str): Key prefix of the module's tensors in the checkpoint,
            e.g. ``'backbone.'``; removed before matching.
        map_location (str): Device to load tensors to.
        strict (bool): Also fail when a checkpoint tensor under ``prefix``
            is unused.
        allow_missing (Sequence[str]): ``fnmatch`` patterns of module tensor
            names that may keep their initialisation, e.g.
            ``['blocks.*.attn.relative_position_bias_table']`` for tables
            that pre-training does not have.

    Raises:
        CheckpointError: The file is missing or unreadable, no tensor under
            ``prefix`` matches, a tensor's shape differs, a tensor is
            missing and not allowed to be, the checkpoint was made with
            other settings (``fpn_depth``, ``depth``, ...), or, with
            ``strict``, a tensor is unused.
    """
    name = type(module).__name__
    ckpt = read_checkpoint(checkpoint, map_location)
    source = f'{checkpoint!r} (prefix {prefix!r})'
    if ckpt.kind == 'official':
        raise CheckpointError(
            f'{name}: {source} is {ckpt.describe()}; {CONVERT_HINT}')
    picked = {k[len(prefix):]: v for k, v in ckpt.state_dict.items()
              if k.startswith(prefix)}
    report = fit_report(module, picked, checkpoint, prefix)
    if not report.loaded and not report.mismatched:
        tops = sorted({k.split('.')[0] + '.' for k in ckpt.state_dict})
        raise CheckpointError(
            f'{name}: no tensor of {source} matches this module '
            f'({len(picked)} tensors under the prefix; top-level prefixes in '
            f'the checkpoint: {summarize_keys(tops)}). Set init_cfg.prefix '
            'to the part holding these weights (mmitpn checkpoints: '
            "'backbone.', 'neck.'); official iTPN checkpoints must first be "
            'converted with tools/model_converters/official2mmitpn.py')
    problems = _misfit_lines(report, allow_missing)
    if strict and report.unused and not report.settings:
        problems.append(f'strict: {len(report.unused)} checkpoint tensors '
                        f'are unused: {summarize_keys(report.unused)}')
    if problems:
        raise CheckpointError(
            f'{name}: {source} does not fit this module ({ckpt.describe()}, '
            f'{len(report.loaded)}/{report.total} tensors fit).' +
            _settings_text(report) + '\n  ' + '\n  '.join(problems) +
            ('\nTensors meant to start from their initialisation (e.g. '
             "tables new in fine-tuning) go in the init_cfg's allow_missing="
             "['pattern', ...] (fnmatch patterns of the names above)."
             if report.missing else ''))
    # Checked above: this load neither skips nor fails on anything.
    module.load_state_dict(picked, strict=False)
    _log_report(name, report, source)
    return report


class PretrainedCheckedModule(BaseModule):
    """``BaseModule`` whose ``Pretrained`` init goes through
    :func:`load_pretrained`.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...,
    allow_missing=[...], strict=False)`` loads after every other
    initialisation, as mmengine orders it; the :class:`LoadReport` is kept as
    ``pretrained_report``.
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
            strict=cfg.get('strict', False),
            allow_missing=list(cfg.get('allow_missing') or ()))


def _part_reports(model: torch.nn.Module,
                  state: Dict[str, torch.Tensor],
                  path: str) -> Dict[str, LoadReport]:
    """The fit of each pre-trained part (backbone, neck) of ``model``, and
    of the rest under the key ``''``."""
    parts = [p for p in PRETRAINED_PARTS
             if isinstance(getattr(model, p, None), torch.nn.Module)]
    reports = {}
    for part in parts:
        prefix = part + '.'
        reports[part] = fit_report(
            getattr(model, part),
            {k[len(prefix):]: v for k, v in state.items()
             if k.startswith(prefix)}, path, prefix)
    rest = fit_report(model, state, path)
    inside = tuple(p + '.' for p in parts)
    for name in ('loaded', 'missing', 'unused', 'mismatched'):
        setattr(rest, name, [k for k in getattr(rest, name)
                             if not k.startswith(inside)])
    rest.settings = []
    reports[''] = rest
    return reports


def _nothing_fits(model, ckpt: CheckpointFile, what: str) -> CheckpointError:
    state = ckpt.state_dict
    for part in PRETRAINED_PARTS:
        module = getattr(model, part, None)
        if isinstance(module, torch.nn.Module) and set(
                module.state_dict()) & set(state):
            return CheckpointError(
                f'{what}: {ckpt.path} holds the tensors of a bare {part} '
                f"(names without the '{part}.' prefix), not of a whole "
                f'model. Load it into the {part} instead: model.{part}.'
                f"init_cfg=dict(type='Pretrained', checkpoint="
                f"'{ckpt.path}', prefix='')")
    tops = sorted({k.split('.')[0] + '.' for k in state})
    own = sorted({k.split('.')[0] + '.' for k in model.state_dict()})
    return CheckpointError(
        f'{what}: no tensor of {ckpt.path} ({ckpt.describe()}) matches the '
        f'model: it has {summarize_keys(tops)}, the model has '
        f'{summarize_keys(own)}. It is a checkpoint of another model; use '
        "one of this config's model, or load a part of it with that part's "
        "init_cfg=dict(type='Pretrained', prefix=...)")


def check_model_checkpoint(model: torch.nn.Module, ckpt: CheckpointFile,
                           purpose: str) -> Dict[str, LoadReport]:
    """Refuse a checkpoint that would not fill ``model`` as ``purpose``
    needs; return the fit of each part (``''``: all but backbone and neck).

    - ``'resume'`` needs an mmengine training checkpoint that fits exactly;
    - ``'test'`` needs every tensor, nothing left over, no shape changed;
    - ``'load_from'`` needs the backbone and neck complete and unchanged;
      other tensors of other shapes (e.g. a head for another
      ``num_classes``) or missing ones keep their initialisation, with a
      warning.

    Raises:
        CheckpointError: Naming the file's kind, the misfit, the settings
            that differ and the fix.
    """
    if purpose not in PURPOSES:
        raise ValueError(f'purpose must be one of {PURPOSES}, got {purpose!r}')
    what = {'load_from': 'load_from', 'resume': '--resume',
            'test': 'testing'}[purpose]
    if ckpt.kind == 'official':
        raise CheckpointError(f'{what}: {ckpt.path} is {ckpt.describe()}; '
                              f'{CONVERT_HINT}')
    if purpose == 'resume' and ckpt.kind != 'training':
        raise CheckpointError(
            f'{what}: {ckpt.path} is {ckpt.describe()}, with no optimizer '
            'state or iteration to continue from. To start a new run from '
            'its weights, drop --resume and pass --cfg-options load_from='
            f'{ckpt.path}')
    model = model.module if is_model_wrapper(model) else model
    reports = _part_reports(model, ckpt.state_dict, ckpt.path)
    if not any(r.loaded or r.mismatched for r in reports.values()):
        raise _nothing_fits(model, ckpt, what)
    exact = purpose != 'load_from'
    problems = []
    for part, report in reports.items():
        lines = _misfit_lines(report) if part or exact else []
        if exact and report.unused and not report.settings:
            lines.append(f'{len(report.unused)} checkpoint tensors have no '
                         f'place in the model: '
                         f'{summarize_keys(report.unused)}')
        if lines:
            label = (f'model.{part} ({type(getattr(model, part)).__name__})'
                     if part else 'the rest of the model')
            problems.append(f'{label}:{_settings_text(report)}\n    ' +
                            '\n    '.join(lines))
    if problems:
        raise CheckpointError(
            f'{what}: {ckpt.path} ({ckpt.describe()}) does not fit the '
            'model:\n  ' + '\n  '.join(problems))
    return reports


def load_checkpoint_checked(
        model: torch.nn.Module,
        filename: str,
        purpose: str,
        map_location='cpu',
        after_read: Optional[Callable[[dict], None]] = None) -> dict:
    """Read ``filename``, check it against ``model`` for ``purpose`` (see
    :func:`check_model_checkpoint`) and load it; returns the checkpoint's
    content (what mmengine's resume reads: ``meta``, ``optimizer``, ...).

    ``after_read(content)`` runs before the check, as mmengine runs its
    ``after_load_checkpoint`` hooks before loading (they may edit it).

    Raises:
        CheckpointError: The file is unreadable or does not fit; nothing
            has been loaded then.
    """
    ckpt = read_checkpoint(filename, map_location)
    if after_read is not None:
        after_read(ckpt.content)
        ckpt.state_dict = unwrap_state_dict(ckpt.content) or {}
    reports = check_model_checkpoint(model, ckpt, purpose)
    # Checked above: for 'load_from' mmengine skips, with a warning, the
    # head tensors of other shapes; otherwise everything fits.
    load_state_dict(model, ckpt.state_dict, strict=False)
    loaded = sum(len(r.loaded) for r in reports.values())
    total = sum(r.total for r in reports.values())
    print_log(f'{purpose}: loaded {loaded}/{total} tensors from {filename} '
              f'({ckpt.describe()})', logger='current')
    rest = reports['']
    for keys, what in ((rest.missing, 'model tensors are not in the '
                        'checkpoint and keep their initialisation'),
                       (rest.mismatched, 'model tensors have other shapes '
                        'in the checkpoint and keep their initialisation'),
                       (rest.unused, 'checkpoint tensors were not used')):
        if keys:
            print_log(
                f'{purpose}: outside the backbone and neck, {len(keys)} '
                f'{what}: {summarize_keys([k.split(":")[0] for k in keys])}',
                logger='current', level=30)
    return ckpt.content
