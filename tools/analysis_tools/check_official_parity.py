"""Check mmitpn against outputs of the official iTPN code.

Every sub-folder of FIXTURES_DIR holding ``meta.json``, ``official.pth`` and
``tensors.pt`` is one fixture (format: the fixtures' README). For each, the
matching mmitpn model is built from ``meta.json`` (official argument names),
``official.pth`` is converted with ``mmitpn.tools.official_converter`` and
loaded strictly, ``tensors['input']`` is run in eval mode in float32, and
every output named in ``meta['outputs']`` is compared with its expected
value.

Exit status: 0 when every output of every fixture was checked and is within
``--atol``; 1 when any output is above it (whatever else happened); 2 when
some output could not be checked (the reason is printed).

Example::

    python tools/analysis_tools/check_official_parity.py \
        shared/reference/official/fixtures
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn as nn

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.accel import accel_mode, accelerate
from mmitpn.models.backbones import iTPNHiViT
from mmitpn.models.heads import iTPNPixelHead
from mmitpn.models.necks import iTPNPyramid
from mmitpn.models.utils import random_masking
from mmitpn.tools.official_converter import (ConversionError,
                                             convert_official_state_dict,
                                             load_official_state_dict)

FIXTURE_FILES = ('meta.json', 'official.pth', 'tensors.pt')
# The pyramid proper (strides 4, 8, 16). Det fixtures may append parameter-
# free stride 32/64 levels; those are a design choice (we avg-pool, as the
# official det code), so they are reported but do not decide the exit status.
NUM_PYRAMID_LEVELS = 3


class Unchecked(Exception):
    """A fixture (or one of its outputs) cannot be checked; says why."""


def _need(source: dict, key: str, where: str = 'meta.json'):
    if key not in source:
        raise Unchecked(f'{where} has no "{key}"')
    return source[key]


def backbone_kwargs(meta: dict, out_indices: Sequence[int]) -> dict:
    """``iTPNHiViT`` arguments from official argument names."""
    if 'mlp_depth1' in meta or 'mlp_depth2' in meta:
        stem_depths = (_need(meta, 'mlp_depth1'), _need(meta, 'mlp_depth2'))
    else:  # the pixel classes' single ``mlp_depth`` serves both stages
        stem_depths = (_need(meta, 'mlp_depth'), ) * 2
    arch = dict(
        embed_dims=_need(meta, 'embed_dim'),
        stem_depths=stem_depths,
        depth=_need(meta, 'depth'),
        num_heads=_need(meta, 'num_heads'),
        stem_mlp_ratio=meta.get('bridge_mlp_ratio', 3.),
        mlp_ratio=meta.get('mlp_ratio', 4.))
    return dict(
        arch=arch,
        img_size=meta.get('img_size', 224),
        patch_size=meta.get('patch_size', 16),
        inner_patches=meta.get('inner_patches', 4),
        in_channels=meta.get('in_chans', 3),
        qkv_bias=meta.get('qkv_bias', True),
        norm_eps=_need(meta, 'norm_eps'),
        use_abs_pos_embed=_need(meta, 'ape'),
        use_rel_pos_bias=_need(meta, 'rpe'),
        # Official None means no layer scale.
        layer_scale_init_value=meta.get('layer_scale') or 0.,
        out_indices=out_indices)


def pyramid_kwargs(meta: dict, num_outs: int = NUM_PYRAMID_LEVELS) -> dict:
    """``iTPNPyramid`` arguments; official pyramid blocks use ``mlp_ratio``."""
    embed_dim = _need(meta, 'embed_dim')
    return dict(
        in_channels=(embed_dim // 4, embed_dim // 2, embed_dim),
        out_channels=_need(meta, 'fpn_dim'),
        fpn_depth=_need(meta, 'fpn_depth'),
        mlp_ratio=meta.get('mlp_ratio', 4.),
        norm_eps=_need(meta, 'norm_eps'),
        num_outs=num_outs,
        extra_pool='avg')


def build_cls(meta: dict, tensors: dict, persistent_pos_embed: bool):
    """mmpretrain ``ImageClassifier``: backbone, pooling neck, linear head."""
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    embed_dim = _need(meta, 'embed_dim')
    return MMPRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='mmitpn.iTPNHiViT',
                **backbone_kwargs(meta, out_indices=(2, ))),
            neck=dict(
                type='mmitpn.GlobalAvgPoolNorm',
                in_channels=embed_dim,
                norm_cfg=dict(type='LN', eps=meta['norm_eps'])),
            head=dict(
                type='LinearClsHead',
                num_classes=_need(meta, 'num_classes'),
                in_channels=embed_dim)))


def run_cls(model: nn.Module, meta: dict, tensors: dict) -> Dict:
    return {'logits': model(tensors['input'].float(), mode='tensor')}


def build_det(meta: dict, tensors: dict, persistent_pos_embed: bool):
    """Backbone plus pyramid with as many levels as the fixture holds."""
    num_outs = len(_need(tensors, 'features', 'tensors.pt'))
    if not NUM_PYRAMID_LEVELS <= num_outs <= 5:
        raise Unchecked(
            f'"features" holds {num_outs} levels; the pyramid gives 3 to 5')
    return nn.ModuleDict(
        dict(
            backbone=iTPNHiViT(**backbone_kwargs(meta, (0, 1, 2))),
            neck=iTPNPyramid(**pyramid_kwargs(meta, num_outs))))


def run_det(model: nn.Module, meta: dict, tensors: dict) -> Dict:
    maps = model['backbone'](tensors['input'].float())
    return {'features': model['neck'](maps)}


def build_pretrain(meta: dict, tensors: dict, persistent_pos_embed: bool):
    """Backbone, pyramid and pixel decoder head."""
    return nn.ModuleDict(
        dict(
            backbone=iTPNHiViT(
                **backbone_kwargs(meta, (0, 1, 2)),
                resample_pos_embed_on_drop=True),
            neck=iTPNPyramid(**pyramid_kwargs(meta)),
            head=iTPNPixelHead(
                in_channels=_need(meta, 'fpn_dim'),
                num_levels=NUM_PYRAMID_LEVELS,
                embed_dims=_need(meta, 'decoder_embed_dim'),
                depth=_need(meta, 'decoder_depth'),
                num_heads=_need(meta, 'decoder_num_heads'),
                mlp_ratio=meta.get('mlp_ratio', 4.),
                qkv_bias=meta.get('qkv_bias', True),
                patch_size=meta.get('patch_size', 16),
                in_pixels=meta.get('in_chans', 3),
                img_size=meta.get('img_size', 224),
                norm_eps=meta['norm_eps'],
                norm_pix=meta.get('norm_pix_loss', True),
                persistent_pos_embed=persistent_pos_embed)))


def run_pretrain(model: nn.Module, meta: dict, tensors: dict) -> Dict:
    images = tensors['input'].float()
    patch_size = meta.get('patch_size', 16)
    grid = (images.shape[2] // patch_size, images.shape[3] // patch_size)
    noise = _need(tensors, 'noise', 'tensors.pt')
    if noise.shape[1] != grid[0] * grid[1]:
        raise Unchecked(
            f'noise covers {noise.shape[1]} patches, the input has '
            f'{grid[0]}x{grid[1]}')
    ids_keep, ids_restore, mask = random_masking(
        noise, _need(meta, 'mask_ratio'))
    feats, _ = model['backbone'].forward_tokens(images, ids_keep=ids_keep)
    pyramid = model['neck'](feats)
    pred = model['head'](pyramid, ids_restore, grid)
    return {
        # The fixture lists the levels from stride 16 down, ours go up.
        'pyramid': list(pyramid[::-1]),
        'pred': pred,
        'mask': mask,
        'loss': model['head'].loss(pred, images, mask),
    }


class Task(NamedTuple):
    """How to build and run the mmitpn model of one fixture task."""
    build: Callable  # (meta, tensors, persistent_pos_embed) -> nn.Module
    run: Callable  # (model, meta, tensors) -> {output name: tensor(s)}
    outputs: Tuple[str, ...]  # the outputs ``run`` returns


TASKS = {
    'cls': Task(build_cls, run_cls, ('logits', )),
    'det': Task(build_det, run_det, ('features', )),
    'pretrain': Task(build_pretrain, run_pretrain,
                     ('pyramid', 'pred', 'mask', 'loss')),
}


def load_for_eval(model: nn.Module, state_dict: dict) -> None:
    """Load every model key from ``state_dict`` (no more, no less); eval."""
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise Unchecked(
            f'converted weights do not fill the model: missing {missing}, '
            f'unexpected {unexpected}')
    model.eval()


def _compare(name: str, ours: torch.Tensor, expected: torch.Tensor,
             atol: float) -> Tuple[bool, str]:
    if not isinstance(ours, torch.Tensor):
        return False, f'{name}: the model gives a list, expected one tensor'
    expected = torch.as_tensor(expected)
    if ours.shape != expected.shape:
        return False, (f'{name}: shape {tuple(ours.shape)} != expected '
                       f'{tuple(expected.shape)}')
    err = (ours.float() - expected.float()).abs().max().item()
    scale = expected.float().abs().max().item()
    rel = err / scale if scale > 0 else (0. if err == 0 else float('inf'))
    ok = err <= atol
    return ok, (f'{name}: max abs err {err:.3e}, rel {rel:.3e}, shape '
                f'{tuple(expected.shape)} {"ok" if ok else "ABOVE atol"}')


def check_fixture(folder: str, atol: float,
                  accel: str = 'auto') -> List[Tuple[str, str]]:
    """Check one fixture; returns ``(status, line)`` per output.

    ``accel`` is the fast-path switch (:func:`mmitpn.accel.accelerate`).

    Status is 'ok', 'fail', 'info' (informational, passed or not) or
    'unchecked'.
    """
    name = osp.basename(osp.normpath(folder))
    try:
        with open(osp.join(folder, 'meta.json'), encoding='utf-8') as f:
            meta = json.load(f)
    except ValueError as err:
        return [('unchecked', f'{name}: meta.json is not valid JSON: {err}')]
    outputs = list(meta.get('outputs', {}))
    if not outputs:
        return [('unchecked', f'{name}: meta.json names no outputs')]
    task = meta.get('task')
    if task not in TASKS:
        return [('unchecked', f'{name}/{out}: unknown task {task!r}')
                for out in outputs]

    results = []
    unknown = [out for out in outputs if out not in TASKS[task].outputs]
    for out in unknown:
        results.append(('unchecked', f'{name}/{out}: the tool does not know '
                        f'output "{out}" of task {task!r}'))
    try:
        tensors = torch.load(
            osp.join(folder, 'tensors.pt'), map_location='cpu',
            weights_only=True)
        _need(tensors, 'input', 'tensors.pt')
        state_dict, _ = convert_official_state_dict(
            load_official_state_dict(osp.join(folder, 'official.pth')))
        # Random-weight fixtures carry a non-sin-cos decoder table, which the
        # converter keeps under this name.
        model = TASKS[task].build(meta, tensors,
                                  'head.pos_embed' in state_dict)
        load_for_eval(model, state_dict)
        accelerate(model, accel)
        with torch.no_grad():
            ours = TASKS[task].run(model, meta, tensors)
    except (Unchecked, ConversionError, KeyError, ValueError,
            RuntimeError) as err:
        return results + [('unchecked', f'{name}/{out}: {err}')
                          for out in outputs if out not in unknown]

    for out in outputs:
        if out in unknown:
            continue
        if out not in tensors:
            results.append(('unchecked', f'{name}/{out}: not in tensors.pt'))
            continue
        if isinstance(tensors[out], (list, tuple)):
            if not isinstance(ours[out], (list, tuple)) or len(
                    ours[out]) != len(tensors[out]):
                results.append(('fail', f'{name}/{out}: expected a list '
                                f'of {len(tensors[out])} tensors'))
                continue
            for i, (mine, ref) in enumerate(zip(ours[out], tensors[out])):
                ok, line = _compare(f'{name}/{out}[{i}]', mine, ref, atol)
                if task == 'det' and i >= NUM_PYRAMID_LEVELS:
                    results.append(('info', line + ' (informational)'))
                else:
                    results.append(('ok' if ok else 'fail', line))
        else:
            ok, line = _compare(f'{name}/{out}', ours[out], tensors[out],
                                atol)
            results.append(('ok' if ok else 'fail', line))
    return results


def find_fixtures(root: str) -> Tuple[List[str], List[str]]:
    """Folders with all fixture files, and messages for incomplete ones."""
    complete, incomplete = [], []
    for entry in sorted(os.listdir(root)):
        folder = osp.join(root, entry)
        if not osp.isfile(osp.join(folder, 'meta.json')):
            continue
        missing = [f for f in FIXTURE_FILES
                   if not osp.isfile(osp.join(folder, f))]
        if missing:
            incomplete.append(f'{entry}: missing {", ".join(missing)}')
        else:
            complete.append(folder)
    return complete, incomplete


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Compare mmitpn with official iTPN fixtures.')
    parser.add_argument('fixtures_dir')
    parser.add_argument(
        '--atol', type=float, default=1e-4,
        help='largest accepted max abs error (default 1e-4)')
    parser.add_argument(
        '--accel', choices=['auto', 'on', 'off'], default='auto',
        help="mmitpn's fast paths, as tools/test.py switches them (auto: on "
        'on CPU; MMITPN_ACCEL wins)')
    args = parser.parse_args(argv)

    if not osp.isdir(args.fixtures_dir):
        print(f'error: {args.fixtures_dir} is not a directory')
        return 2
    fixtures, incomplete = find_fixtures(args.fixtures_dir)
    results = [('unchecked', msg) for msg in incomplete]
    for folder in fixtures:
        results += check_fixture(folder, args.atol, args.accel)
    for status, line in results:
        print(f'[{status:^9s}] {line}')

    counts = {s: sum(r[0] == s for r in results)
              for s in ('ok', 'fail', 'unchecked', 'info')}
    if counts['fail']:
        verdict, code = 'FAIL', 1
    elif counts['unchecked'] or not fixtures:
        verdict, code = 'INCOMPLETE', 2
    else:
        verdict, code = 'PASS', 0
    print(f'SUMMARY: {verdict}: {len(fixtures)} fixtures '
          f'(accel {accel_mode(args.accel)}), '
          f'{counts["ok"]} outputs within atol={args.atol:g}, '
          f'{counts["fail"]} above, {counts["unchecked"]} not checked, '
          f'{counts["info"]} informational')
    return code


if __name__ == '__main__':
    sys.exit(main())
