"""Convert checkpoints of the official iTPN code to mmitpn parameter names.

The official models (github.com/sunsmarterjie/iTPN) keep every backbone stage
in one ``blocks`` list and the pyramid and heads at the root. This module
finds the stage boundaries from the keys themselves (the two ``PatchMerge``
blocks are the only ones with ``reduction.weight``), so any depth converts.

Every official key falls into one group:

- ``backbone``: patch embedding, stage-1/2 MLP blocks, merges, attention
  blocks, ``absolute_pos_embed`` and the CLIP ``mask_token`` -> ``backbone.``
- ``pyramid``: the feature pyramid -> ``neck.``
- ``cls_head``: ``fc_norm`` / ``head`` -> ``neck.norm`` / ``head.fc``
- ``pixel_decoder``: the pixel MIM decoder -> ``head.``
- ``clip_heads``: CLIP pre-training heads, no mmitpn counterpart
- ``decomposed_rel_pos``: ViTDet ``rel_pos_h/w`` (det CLIP-L), no counterpart
- ``task_heads``: heads of a trained mmdet 2.x / mmseg 0.x model, kept
  under their names, which mmdet 3.x / mmseg 1.x did not change
- ``unknown``: anything else

The released det/seg weights are trained mmdet 2.x / mmseg 0.x models: the
official backbone (with the pyramid inside) under ``backbone.`` beside
``rpn_head``/``roi_head`` or ``decode_head``/``auxiliary_head``. Such a
checkpoint is recognised by its ``backbone.`` keys; the wrapper is removed
and the backbone converted as above (pyramid -> ``neck.``).

Fixed tables (``relative_position_index``, ``decoder_pos_embed``) are checked
against the values mmitpn computes itself and then dropped; a
``decoder_pos_embed`` that is not sin-cos (random test weights) is kept as
``head.pos_embed`` and the report says so. Keys of groups
without a counterpart and unknown keys are refused unless their group is
named in ``drop``; naming a mapped group leaves it out of the output.
"""
import argparse
import io
import os.path as osp
import pickle
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import torch

from mmitpn.compat.checkpoints import atomic_write
from mmitpn.models.utils.checkpoint_files import (STATE_DICT_KEYS,
                                                 code_payload,
                                                 explain_unreadable,
                                                 refused_global,
                                                 unwrap_state_dict)
from mmitpn.models.utils.pos_embed import (build_2d_sincos_pos_embed,
                                           relative_position_index)
from mmitpn.version import __version__

GROUPS = {
    'backbone': 'backbone -> backbone.',
    'pyramid': 'feature pyramid -> neck.',
    'cls_head': 'fc_norm, head -> neck.norm, head.fc',
    'pixel_decoder': 'mask_token, decoder_* -> head.',
    'clip_heads': ('CLIP pre-training heads norm, lm_head, norm_cls, '
                   'lm_cls_head, cls_pt_layers, decoder_embed '
                   '(no mmitpn counterpart)'),
    'decomposed_rel_pos': ('ViTDet rel_pos_h/w of the det CLIP-L backbone '
                           '(no mmitpn counterpart)'),
    'task_heads': ('heads of a trained det/seg model rpn_head, roi_head, '
                   'decode_head, auxiliary_head -> same names'),
    'unknown': 'keys this converter does not recognise',
}
# Groups whose keys have nowhere to go in mmitpn.
UNMAPPED_GROUPS = ('clip_heads', 'decomposed_rel_pos', 'unknown')

# The pyramid always has three levels; official lists run from stride 16 down
# to stride 4, ours from stride 4 up.
NUM_PYRAMID_LEVELS = 3


class ConversionError(ValueError):
    """The checkpoint cannot be converted as asked."""


def _affine(src: str, dst: Optional[str] = None) -> Dict[str, str]:
    dst = src if dst is None else dst
    return {f'{src}.weight': f'{dst}.weight', f'{src}.bias': f'{dst}.bias'}


# Official suffix -> mmitpn suffix, per kind of block.
MLP_BLOCK = {
    **_affine('norm2', 'norm'), **_affine('mlp.fc1'), **_affine('mlp.fc2'),
    'gamma_2': 'gamma'
}
ATTENTION_BLOCK = {
    **_affine('norm1'), **_affine('attn.qkv'), **_affine('attn.proj'),
    'attn.relative_position_bias_table': 'attn.relative_position_bias_table',
    **_affine('norm2'), **_affine('mlp.fc1'), **_affine('mlp.fc2'),
    'gamma_1': 'gamma1', 'gamma_2': 'gamma2'
}
PATCH_MERGE = {**_affine('norm'), 'reduction.weight': 'reduction.weight'}
PATCH_SPLIT = {**_affine('norm'), 'reduction.weight': 'proj.weight'}
DECOMPOSED_REL_POS = ('attn.rel_pos_h', 'attn.rel_pos_w')


def _in_group(group: str, prefix: str,
              mapping: Dict[str, str]) -> Dict[str, Tuple[str, str]]:
    return {src: (group, prefix + dst) for src, dst in mapping.items()}


# Official root-level keys -> (group, mmitpn name).
ROOT_KEYS = {
    **_in_group('backbone', 'backbone.', {
        **_affine('patch_embed.proj'), **_affine('patch_embed.norm'),
        'absolute_pos_embed': 'pos_embed'
    }),
    **_in_group('pyramid', 'neck.', {
        **_affine('align_dim_16tofpn', 'top_proj'),
        'align_dim_16to8.weight': 'lateral_s8.weight',
        'align_dim_8to4.weight': 'lateral_s4.weight'
    }),
    **_in_group('cls_head', '', {
        **_affine('fc_norm', 'neck.norm'), **_affine('head', 'head.fc')
    }),
    **_in_group('pixel_decoder', 'head.', {
        **_affine('decoder_norm', 'norm'), **_affine('decoder_pred', 'pred')
    }),
}
# Tables mmitpn recomputes: checked, then dropped.
FIXED_TABLES = {
    'relative_position_index': 'backbone',
    'decoder_pos_embed': 'pixel_decoder'
}

CLIP_HEAD_ROOTS = ('norm', 'norm_cls', 'lm_head', 'lm_cls_head',
                   'cls_pt_layers', 'decoder_embed')

# A trained mmdet/mmseg model holds the official backbone under this prefix.
TASK_MODEL_BACKBONE = 'backbone.'
# Parameters of the heads the official det/seg configs use. mmdet 3.x and
# mmseg 1.x kept every one of these names (their model zoos still serve the
# 2.x / 0.x Mask R-CNN, Cascade and UPerNet weights), so they map to
# themselves. A ConvModule holds ``conv`` and its norm (SyncBN: ``bn``).
_CONV_MODULE = (r'(conv\.(weight|bias)|bn\.(weight|bias|running_mean|'
                r'running_var|num_batches_tracked))')
_AFFINE = r'(weight|bias)'
_STAGE = r'(\.\d+)?'  # Cascade R-CNN: one head per stage
TASK_HEAD_PATTERNS = {
    # mmdet RPNHead
    'rpn_head': rf'rpn_(conv|cls|reg)\.{_AFFINE}',
    # mmdet ConvFCBBoxHead (Shared4Conv1FCBBoxHead) and FCNMaskHead
    'roi_head': (
        rf'bbox_head{_STAGE}\.((shared|cls|reg)_convs\.\d+\.{_CONV_MODULE}'
        rf'|(shared|cls|reg)_fcs\.\d+\.{_AFFINE}|fc_(cls|reg)\.{_AFFINE})'
        rf'|mask_head{_STAGE}\.(convs\.\d+\.{_CONV_MODULE}'
        rf'|(upsample|conv_logits)\.{_AFFINE})'),
    # mmseg UPerHead
    'decode_head': (
        rf'(psp_modules\.\d+\.1|bottleneck|lateral_convs\.\d+'
        rf'|fpn_convs\.\d+|fpn_bottleneck)\.{_CONV_MODULE}'
        rf'|conv_seg\.{_AFFINE}'),
    # mmseg FCNHead
    'auxiliary_head': (rf'(convs\.\d+|conv_cat)\.{_CONV_MODULE}'
                       rf'|conv_seg\.{_AFFINE}'),
}
TASK_MODEL_KINDS = {
    'rpn_head': 'mmdet detector', 'roi_head': 'mmdet detector',
    'decode_head': 'mmseg segmentor', 'auxiliary_head': 'mmseg segmentor'
}


@dataclass
class Layout:
    """Where the stages of the official ``blocks`` list start and end."""
    stage1: List[int] = field(default_factory=list)
    merge1: Optional[int] = None
    stage2: List[int] = field(default_factory=list)
    merge2: Optional[int] = None
    attention: List[int] = field(default_factory=list)
    has_pixel_decoder: bool = False

    def describe(self) -> str:
        if self.merge1 is None:
            return 'no backbone blocks'
        return (f'stem depths ({len(self.stage1)}, {len(self.stage2)}), '
                f'{len(self.attention)} attention blocks, PatchMerge at '
                f'blocks.{self.merge1} and blocks.{self.merge2}')


@dataclass
class Entry:
    """What happened to one official key."""
    key: str
    group: str
    target: Optional[str]  # mmitpn name; None when the key is not kept
    note: str = ''


@dataclass
class ConversionReport:
    """Every official key with its group and fate."""
    layout: Layout
    entries: List[Entry]
    dropped_groups: Tuple[str, ...] = ()
    # 'mmdet detector' / 'mmseg segmentor' for a trained task model, whose
    # backbone keys carry the ``backbone.`` wrapper; None otherwise.
    task_model: Optional[str] = None

    def counts(self) -> Dict[str, Dict[str, int]]:
        """``{group: {'mapped': n, 'checked_dropped': n, 'dropped': n}}``."""
        counts = {}
        for entry in self.entries:
            group = counts.setdefault(entry.group, {
                'mapped': 0, 'checked_dropped': 0, 'dropped': 0})
            if entry.target is not None:
                group['mapped'] += 1
            elif entry.group in self.dropped_groups:
                group['dropped'] += 1
            else:
                group['checked_dropped'] += 1
        return counts

    def format(self, verbose: bool = False) -> str:
        """Counts per group, notes, and with ``verbose`` every key."""
        lines = [f'layout: {self.layout.describe()}']
        if self.task_model:
            lines.append(f'trained {self.task_model}: backbone taken from '
                         f'"{TASK_MODEL_BACKBONE}*", task heads kept under '
                         'their (mmdet 3.x / mmseg 1.x) names')
        for group, count in self.counts().items():
            parts = [f'{n} {what.replace("_", " ")}'
                     for what, n in count.items() if n]
            lines.append(f'  {group:<20s} ' + ', '.join(parts))
        for entry in self.entries:
            if entry.target is not None and entry.note:
                lines.append(f'  note: {entry.key}: {entry.note}')
        if verbose:
            for entry in self.entries:
                if entry.target is not None:
                    fate = entry.target
                elif entry.group in self.dropped_groups:
                    fate = 'dropped (--drop)'
                else:
                    fate = f'dropped, {entry.note}'
                lines.append(f'  [{entry.group}] {entry.key} -> {fate}')
        return '\n'.join(lines)


def detect_layout(keys: Iterable[str]) -> Layout:
    """Find the three stages in ``blocks.{k}`` from the PatchMerge keys."""
    keys = list(keys)
    indices = sorted({int(m.group(1)) for k in keys
                      if (m := re.match(r'blocks\.(\d+)\.', k))})
    layout = Layout(
        has_pixel_decoder=any(k.startswith('decoder_blocks.') for k in keys))
    if not indices:
        return layout
    if indices != list(range(len(indices))):
        raise ConversionError(
            f'blocks.* indices are not contiguous: {indices}')
    merges = sorted({int(k.split('.')[1]) for k in keys
                     if re.fullmatch(r'blocks\.\d+\.reduction\.weight', k)})
    if len(merges) != 2:
        raise ConversionError(
            'expected exactly two PatchMerge blocks (blocks.k.reduction.'
            f'weight), found {len(merges)} at {merges}')
    layout.merge1, layout.merge2 = merges
    layout.stage1 = indices[:layout.merge1]
    layout.stage2 = indices[layout.merge1 + 1:layout.merge2]
    layout.attention = indices[layout.merge2 + 1:]
    return layout


def _map_block(suffix: str, table: Dict[str, str], group: str,
               prefix: str) -> Tuple[str, Optional[str]]:
    if suffix in table:
        return group, prefix + table[suffix]
    return 'unknown', None


def classify_key(key: str, layout: Layout,
                 num_decoder_levels: int) -> Tuple[str, Optional[str]]:
    """``(group, mmitpn name or None)`` for one official key."""
    if key in ROOT_KEYS:
        return ROOT_KEYS[key]
    if key == 'mask_token':
        # Pixel pre-training: the decoder's token; CLIP: the backbone's.
        if layout.has_pixel_decoder:
            return 'pixel_decoder', 'head.mask_token'
        return 'backbone', 'backbone.mask_token'
    if key in FIXED_TABLES:
        return FIXED_TABLES[key], None

    m = re.fullmatch(r'blocks\.(\d+)\.(.+)', key)
    if m:
        k, suffix = int(m.group(1)), m.group(2)
        if k in layout.stage1:
            return _map_block(suffix, MLP_BLOCK, 'backbone',
                              f'backbone.stage1.{layout.stage1.index(k)}.')
        if k in layout.stage2:
            return _map_block(suffix, MLP_BLOCK, 'backbone',
                              f'backbone.stage2.{layout.stage2.index(k)}.')
        if k in (layout.merge1, layout.merge2):
            name = 'merge1' if k == layout.merge1 else 'merge2'
            return _map_block(suffix, PATCH_MERGE, 'backbone',
                              f'backbone.{name}.')
        if suffix in DECOMPOSED_REL_POS:
            return 'decomposed_rel_pos', None
        return _map_block(suffix, ATTENTION_BLOCK, 'backbone',
                          f'backbone.blocks.{layout.attention.index(k)}.')

    m = re.fullmatch(r'split_(16to8|8to4)\.(.+)', key)
    if m:
        level = 's8' if m.group(1) == '16to8' else 's4'
        return _map_block(m.group(2), PATCH_SPLIT, 'pyramid',
                          f'neck.upsample_{level}.')
    m = re.fullmatch(r'block_(16to8|8to4)\.(\d+)\.(.+)', key)
    if m:
        level = 's8' if m.group(1) == '16to8' else 's4'
        return _map_block(m.group(3), MLP_BLOCK, 'pyramid',
                          f'neck.fuse_{level}.{m.group(2)}.')
    m = re.fullmatch(r'fpn_modules\.(\d+)\.(.+)', key)
    if m and int(m.group(1)) < NUM_PYRAMID_LEVELS:
        level = NUM_PYRAMID_LEVELS - 1 - int(m.group(1))
        return _map_block(m.group(2), MLP_BLOCK, 'pyramid',
                          f'neck.out_blocks.{level}.')

    if layout.has_pixel_decoder:
        m = re.fullmatch(r'decoder_embed\.(\d+)\.([01])\.(weight|bias)', key)
        if m and int(m.group(1)) < num_decoder_levels:
            level = num_decoder_levels - 1 - int(m.group(1))
            part = 'norm' if m.group(2) == '0' else 'proj'
            return 'pixel_decoder', \
                f'head.level_embeds.{level}.{part}.{m.group(3)}'
        m = re.fullmatch(r'decoder_blocks\.(\d+)\.(.+)', key)
        if m:
            return _map_block(m.group(2), ATTENTION_BLOCK, 'pixel_decoder',
                              f'head.blocks.{m.group(1)}.')
    if key.split('.')[0] in CLIP_HEAD_ROOTS:
        return 'clip_heads', None
    return 'unknown', None


def classify_task_head_key(key: str) -> Tuple[str, Optional[str]]:
    """``(group, mmitpn name or None)`` for a key outside ``backbone.``
    of a trained det/seg model."""
    root, _, rest = key.partition('.')
    pattern = TASK_HEAD_PATTERNS.get(root)
    if pattern is not None and re.fullmatch(pattern, rest):
        return 'task_heads', key
    return 'unknown', None


def trained_task_model(keys: Iterable[str]) -> Optional[str]:
    """What kind of trained model holds the backbone under ``backbone.``
    (None for a bare official model, whose keys never start so)."""
    keys = list(keys)
    if not any(k.startswith(TASK_MODEL_BACKBONE) for k in keys):
        return None
    kinds = {TASK_MODEL_KINDS[root] for k in keys
             if (root := k.split('.')[0]) in TASK_MODEL_KINDS}
    return ' / '.join(sorted(kinds)) or 'det/seg model without known heads'


def _square_grid(num_tokens: int, key: str) -> Tuple[int, int]:
    side = int(round(num_tokens**0.5))
    if side * side != num_tokens:
        raise ConversionError(
            f'{key} covers {num_tokens} tokens, not a square grid')
    return side, side


def fixed_table_matches(key: str, value: torch.Tensor) -> bool:
    """Whether a fixed table equals the one mmitpn computes itself."""
    if key == 'relative_position_index':
        expected = relative_position_index(_square_grid(value.shape[0], key))
        return value.shape == expected.shape and torch.equal(
            value.long(), expected)
    # decoder_pos_embed (1, N, D)
    expected = build_2d_sincos_pos_embed(
        value.shape[-1], _square_grid(value.shape[1], key))
    return value.shape == expected.shape and torch.allclose(
        value.float(), expected, atol=1e-5)


def _fixed_table_entry(key: str, group: str, value: torch.Tensor) -> Entry:
    if fixed_table_matches(key, value):
        return Entry(key, group, None, 'equals the table mmitpn computes')
    if key == 'decoder_pos_embed':
        # Real checkpoints hold sin-cos (the official Parameter is frozen);
        # other values (e.g. random test weights) are kept, not lost.
        return Entry(
            key, group, 'head.pos_embed',
            'not the sin-cos table: kept as head.pos_embed, which needs '
            'iTPNPixelHead(persistent_pos_embed=True)')
    raise ConversionError(
        f'{key} {tuple(value.shape)} differs from the table mmitpn computes '
        'for its grid; the checkpoint is not an official one')


def convert_official_state_dict(
        state_dict: Dict[str, torch.Tensor],
        drop: Iterable[str] = ()) -> Tuple[Dict[str, torch.Tensor],
                                           ConversionReport]:
    """Map an official state dict to mmitpn names.

    Args:
        state_dict: official keys (``module.``/``encoder.`` already removed),
            or a trained det/seg model's (backbone under ``backbone.``).
        drop: group names (see ``GROUPS``) to leave out of the output.

    Returns:
        ``(state_dict, report)`` with ``backbone.``/``neck.``/``head.`` keys,
        and for a trained det/seg model its task heads' keys.

    Raises:
        ConversionError: on unknown or unmappable keys whose group is not in
            ``drop``, on a table that differs from mmitpn's, or when two
            groups would share ``neck.`` or ``head.``.
    """
    drop = tuple(drop)
    bad = [g for g in drop if g not in GROUPS]
    if bad:
        raise ConversionError(
            f'unknown group(s) {bad}; groups are: {", ".join(GROUPS)}')
    task_model = trained_task_model(state_dict)
    if task_model:
        # The official backbone's own names, without the wrapper.
        names = {k: k[len(TASK_MODEL_BACKBONE):] if k.startswith(
            TASK_MODEL_BACKBONE) else None for k in state_dict}
    else:
        names = {k: k for k in state_dict}
    backbone_names = [n for n in names.values() if n is not None]
    layout = detect_layout(backbone_names)
    num_decoder_levels = len({n.split('.')[1] for n in backbone_names
                              if n.startswith('decoder_embed.')})

    entries, refused, converted = [], {}, {}
    for key, value in state_dict.items():
        name = names[key]
        if name is None:
            group, target = classify_task_head_key(key)
        else:
            group, target = classify_key(name, layout, num_decoder_levels)
        if group in drop:
            entries.append(Entry(key, group, None))
        elif group in UNMAPPED_GROUPS:
            refused.setdefault(group, []).append(key)
        elif name in FIXED_TABLES:
            entry = _fixed_table_entry(name, group, value)
            entry.key = key
            entries.append(entry)
            if entry.target is not None:
                converted[entry.target] = value
        else:
            entries.append(Entry(key, group, target))
            converted[target] = value
    if refused:
        listing = '\n'.join(
            f'  {group} ({GROUPS[group]}):\n' +
            '\n'.join(f'    {k}' for k in keys)
            for group, keys in refused.items())
        raise ConversionError(
            'keys without an mmitpn counterpart:\n' + listing +
            '\nName their group(s) with --drop (drop=... in Python) to '
            f'discard them. Groups: {", ".join(GROUPS)}.')

    # Classifier and pyramid both live under neck., classifier and pixel
    # decoder both under head.: one checkpoint can only fill each once.
    owners = {}
    for entry in entries:
        if entry.target is not None:
            owners.setdefault(entry.target.split('.')[0], set()).add(
                entry.group)
    for prefix, groups in owners.items():
        if len(groups) > 1:
            raise ConversionError(
                f'groups {sorted(groups)} would all be written under '
                f'"{prefix}."; --drop all but one of them')
    return converted, ConversionReport(layout, entries, drop, task_model)


def _refusal(path: str, err: Exception) -> ConversionError:
    """Why weights-only loading refused ``path``, and what (not) to do."""
    payload = code_payload(err)
    if payload is not None:
        return ConversionError(
            f'{explain_unreadable(path, err)} Never convert it with '
            '--allow-pickle either.')
    name = refused_global(err)
    if name is None or osp.getsize(path) == 0:
        return ConversionError(explain_unreadable(path, err))
    return ConversionError(
        f'{path} holds a pickled {name} object, which weights-only '
        'loading refuses; if you trust the file, --allow-pickle '
        '(allow_pickle=True) unpickles it fully.')


def load_official_state_dict(path: str,
                             allow_pickle: bool = False
                             ) -> Dict[str, torch.Tensor]:
    """Read an official checkpoint and return its bare state dict.

    Accepts ``{'model': sd}``, ``{'state_dict': sd}``, ``{'module': sd}`` or
    a raw state dict, and strips ``module.``/``encoder.`` prefixes as the
    official loaders do. The training scripts also pickle their
    ``argparse.Namespace``; that class is allowed, anything else needs
    ``allow_pickle`` (full unpickling: only for files you trust). An empty,
    truncated or non-PyTorch file, or one whose pickle would call code, is
    refused with a :class:`ConversionError` saying which.
    """
    if not osp.isfile(path):
        raise ConversionError(f'{path} not found')
    if allow_pickle:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    else:
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                ckpt = torch.load(path, map_location='cpu', weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError,
                OSError) as err:
            raise _refusal(path, err) from err
    state = unwrap_state_dict(ckpt)
    if state is None:
        raise ConversionError(
            f'{path}: no state dict found (looked for a dict of tensors, '
            f'possibly under one of {STATE_DICT_KEYS})')
    # Some official pre-training checkpoints nest the model in ``encoder.``.
    if state and all(k.startswith('encoder.') for k in state):
        state = {k[len('encoder.'):]: v for k, v in state.items()}
    return state


def save_converted(state_dict: Dict[str, torch.Tensor], meta: Dict,
                   path: str) -> None:
    """Write ``{'state_dict', 'meta'}`` atomically (temp file + rename)."""
    buffer = io.BytesIO()
    torch.save({'state_dict': state_dict, 'meta': meta}, buffer)
    atomic_write(buffer.getvalue(), path)


def conversion_meta(source: str, report: ConversionReport) -> Dict:
    """Plain ``str``/``int`` metadata recorded beside the weights."""
    layout = report.layout
    return {
        'converter': 'official2mmitpn',
        'mmitpn_version': __version__,
        'source': osp.basename(source),
        'stem_depths': f'{len(layout.stage1)},{len(layout.stage2)}',
        'depth': len(layout.attention),
        'groups': ','.join(g for g, c in report.counts().items()
                           if c['mapped']),
        'dropped_groups': ','.join(report.dropped_groups),
        'trained_task_model': report.task_model or '',
    }
