"""official2mmitpn: official key lists convert and fill mmitpn models."""
import argparse
import functools
import glob
import math
import os
import os.path as osp
import re

import pytest
import torch
import torch.nn as nn

from mmitpn.models.backbones import iTPNHiViT
from mmitpn.models.heads import iTPNPixelHead
from mmitpn.models.necks import GlobalAvgPoolNorm, iTPNPyramid
from mmitpn.models.utils import (build_2d_sincos_pos_embed,
                                 relative_position_index)
from mmitpn.tools.official_converter import (ConversionError,
                                             convert_official_state_dict,
                                             load_official_state_dict)
from official_keys import fake_state_dict, read_key_list

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KEY_LISTS = sorted(
    glob.glob(
        osp.join(REPO_ROOT, '..', 'shared', 'reference', 'official', 'keys',
                 'keys_*.txt')))
# Official groups without an mmitpn counterpart, by key list.
REQUIRED_DROPS = {
    'clip_pretrain': ('clip_heads', ),
    'det_clip_large': ('decomposed_rel_pos', ),
}
CONVERTER_CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
                         'official2mmitpn.py')


def required_drops(path):
    name = osp.basename(path)[len('keys_'):-len('.txt')]
    return next((groups for prefix, groups in REQUIRED_DROPS.items()
                 if name.startswith(prefix)), ())


def count_indices(shapes, prefix):
    return len({m.group(1) for k in shapes
                if (m := re.match(re.escape(prefix) + r'(\d+)\.', k))})


def model_for(shapes):
    """mmitpn model (on the meta device) of the official architecture.

    Depths come from the named arch ('base'/'large' by width), so the
    converter's own layout detection is checked, not reused.
    """
    embed_dims = shapes['absolute_pos_embed'][-1]
    arch = {512: 'base', 768: 'large'}[embed_dims]
    tables = [s for k, s in shapes.items()
              if re.fullmatch(r'blocks\.\d+\.attn\.relative_position_bias_'
                              r'table', k)]
    # The model grid is the one of the RPE tables (512 input for seg).
    side = (math.isqrt(tables[0][0]) + 1) // 2 if tables else 14
    has_decoder = 'decoder_pred.weight' in shapes
    modules = dict(
        backbone=iTPNHiViT(
            arch=arch,
            img_size=16 * side,
            use_rel_pos_bias=bool(tables),
            layer_scale_init_value=0.1 if any(
                'gamma' in k for k in shapes) else 0.,
            use_mask_token='mask_token' in shapes and not has_decoder))
    if 'align_dim_16to8.weight' in shapes:
        modules['neck'] = iTPNPyramid(
            in_channels=(embed_dims // 4, embed_dims // 2, embed_dims),
            out_channels=shapes['align_dim_16to8.weight'][0],
            fpn_depth=count_indices(shapes, 'block_16to8.'))
    if 'fc_norm.weight' in shapes:
        modules['neck'] = GlobalAvgPoolNorm(embed_dims)
        modules['head'] = nn.ModuleDict(
            dict(fc=nn.Linear(embed_dims, shapes['head.weight'][0])))
    if has_decoder:
        modules['head'] = iTPNPixelHead(
            in_channels=shapes['decoder_embed.0.0.weight'][0],
            embed_dims=shapes['decoder_norm.weight'][0],
            depth=count_indices(shapes, 'decoder_blocks.'))
    return nn.ModuleDict(modules)


@pytest.mark.skipif(not KEY_LISTS, reason='official key lists not found')
@pytest.mark.parametrize('path', KEY_LISTS, ids=osp.basename)
def test_official_key_list_converts_and_fills_model(path, monkeypatch):
    shapes = read_key_list(path)
    official = fake_state_dict(shapes)
    drops = required_drops(path)
    if drops:
        with pytest.raises(ConversionError) as err:
            convert_official_state_dict(official)
        for group in drops:
            assert group in str(err.value)

    converted, report = convert_official_state_dict(official, drop=drops)
    assert len(report.entries) == len(official)
    assert len(converted) == sum(e.target is not None for e in report.entries)

    # Build B/L models without memory or init cost; drop-path rates are read
    # back with .tolist(), which needs real data, so linspace stays on CPU.
    monkeypatch.setattr(torch, 'linspace',
                        functools.partial(torch.linspace, device='cpu'))
    with torch.device('meta'):
        model = model_for(shapes)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in converted.items()}
    # stem_mask_token is new in mmitpn (the official CLIP stem sees the
    # unmasked image).
    assert set(expected) - set(got) <= {'backbone.stem_mask_token'}
    assert set(got) - set(expected) == set()
    mismatched = {k for k in got if got[k] != expected[k]}
    # Official seg backbones keep a 14x14 APE beside 32x32 RPE tables.
    assert mismatched <= {'backbone.pos_embed'}
    if mismatched:
        assert osp.basename(path).startswith('keys_seg')


def _tiny_official(extra=None):
    """A small official classifier state dict (1-1-2 blocks, C=32)."""
    shapes = {
        'absolute_pos_embed': (1, 4, 32),
        'patch_embed.proj.weight': (8, 3, 4, 4),
        'patch_embed.proj.bias': (8, ),
        'blocks.0.norm2.weight': (8, ),
        'blocks.1.reduction.weight': (16, 32),
        'blocks.2.mlp.fc1.weight': (48, 16),
        'blocks.3.reduction.weight': (32, 64),
        'blocks.4.attn.qkv.weight': (96, 32),
        'blocks.5.gamma_1': (32, ),
        'fc_norm.weight': (32, ),
        'head.weight': (10, 32),
    }
    sd = {k: torch.randn(s) for k, s in shapes.items()}
    sd.update(extra or {})
    return sd


def test_layout_detected_from_patch_merges():
    converted, report = convert_official_state_dict(_tiny_official())
    assert report.layout.describe().startswith('stem depths (1, 1), 2 attent')
    assert set(converted) == {
        'backbone.pos_embed', 'backbone.patch_embed.proj.weight',
        'backbone.patch_embed.proj.bias', 'backbone.stage1.0.norm.weight',
        'backbone.merge1.reduction.weight', 'backbone.stage2.0.mlp.fc1.weight',
        'backbone.merge2.reduction.weight',
        'backbone.blocks.0.attn.qkv.weight',
        'backbone.blocks.1.gamma1', 'neck.norm.weight', 'head.fc.weight'
    }


def test_unknown_key_is_refused_unless_dropped():
    official = _tiny_official({
        'foo.bar': torch.zeros(1),
        # An attention part in a stem block is not an official layout.
        'blocks.0.attn.qkv.weight': torch.zeros(24, 8),
    })
    with pytest.raises(ConversionError) as err:
        convert_official_state_dict(official)
    message = str(err.value)
    for text in ('foo.bar', 'blocks.0.attn.qkv.weight', '--drop', 'unknown',
                 'clip_heads', 'decomposed_rel_pos'):
        assert text in message
    converted, report = convert_official_state_dict(official, ('unknown', ))
    assert report.counts()['unknown'] == {
        'mapped': 0, 'checked_dropped': 0, 'dropped': 2}
    with pytest.raises(ConversionError, match='unknown group'):
        convert_official_state_dict(official, ('no_such_group', ))


def test_dropping_a_mapped_group_leaves_it_out():
    converted, _ = convert_official_state_dict(_tiny_official(),
                                               ('cls_head', ))
    assert not any(k.startswith(('neck.', 'head.')) for k in converted)


def test_classifier_and_pyramid_cannot_share_the_neck():
    official = _tiny_official({'align_dim_16to8.weight': torch.zeros(4, 16)})
    with pytest.raises(ConversionError, match='neck'):
        convert_official_state_dict(official)
    converted, _ = convert_official_state_dict(official, ('cls_head', ))
    assert 'neck.lateral_s8.weight' in converted


def test_fixed_tables_are_checked():
    index = relative_position_index((2, 2)).clone()
    converted, report = convert_official_state_dict(
        _tiny_official({'relative_position_index': index}))
    assert report.counts()['backbone']['checked_dropped'] == 1
    index[0, 0] += 1
    with pytest.raises(ConversionError, match='relative_position_index'):
        convert_official_state_dict(
            _tiny_official({'relative_position_index': index}))


def test_non_sincos_decoder_table_is_kept_with_a_note():
    decoder = {
        'decoder_blocks.0.norm1.weight': torch.ones(16),
        'mask_token': torch.zeros(1, 1, 16),
    }
    sincos = build_2d_sincos_pos_embed(16, (2, 2))
    official = _tiny_official({**decoder, 'decoder_pos_embed': sincos})
    converted, _ = convert_official_state_dict(official, ('cls_head', ))
    assert 'head.pos_embed' not in converted
    assert 'head.mask_token' in converted  # the decoder's, not the CLIP one

    official['decoder_pos_embed'] = torch.randn(1, 4, 16)
    converted, report = convert_official_state_dict(official, ('cls_head', ))
    assert torch.equal(converted['head.pos_embed'],
                       official['decoder_pos_embed'])
    assert 'persistent_pos_embed=True' in report.format()


def test_cli_writes_weights_only_loadable_file(tmp_path, capsys):
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location('official2mmitpn', CONVERTER_CLI)
    cli = module_from_spec(spec)
    spec.loader.exec_module(cli)

    official = _tiny_official({'lm_head.weight': torch.zeros(4, 32)})
    src, dst = tmp_path / 'official.pth', tmp_path / 'out' / 'mmitpn.pth'
    # As the official scripts save: wrapped, with their argparse args.
    torch.save(
        {
            'model': {f'module.{k}': v for k, v in official.items()},
            'args': argparse.Namespace(lr=1e-3),
            'epoch': 3
        }, src)
    assert load_official_state_dict(str(src)).keys() == official.keys()

    assert cli.main([str(src), str(dst)]) == 1
    assert 'clip_heads' in capsys.readouterr().err
    assert not dst.exists()

    assert cli.main([str(src), str(dst), '--drop', 'clip_heads',
                     '--verbose']) == 0
    out = capsys.readouterr().out
    assert 'head.weight -> head.fc.weight' in out
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['stem_depths'] == '1,1'
    assert all(isinstance(v, (str, int)) for v in saved['meta'].values())
    assert torch.equal(saved['state_dict']['head.fc.weight'],
                       official['head.weight'])
    assert os.listdir(dst.parent) == ['mmitpn.pth']  # no temp files left


class _Opaque:
    """Stands for any pickled object weights-only loading refuses."""


def test_other_pickled_objects_need_allow_pickle(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': _tiny_official(), 'extra': _Opaque()}, path)
    with pytest.raises(ConversionError, match='--allow-pickle'):
        load_official_state_dict(str(path))
    assert 'head.weight' in load_official_state_dict(
        str(path), allow_pickle=True)


class _ShellPayload:

    def __reduce__(self):
        return (os.system, ('echo owned',))


def test_code_payload_is_refused_without_suggesting_allow_pickle(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': _tiny_official(), 'extra': _ShellPayload()}, path)
    with pytest.raises(ConversionError) as err:
        load_official_state_dict(str(path))
    message = str(err.value)
    assert f'unpickling it would call {os.system.__module__}.system' in message
    assert 'Never convert it with --allow-pickle' in message
    assert 'if you trust' not in message


def test_other_globals_name_the_object(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': _tiny_official(), 'extra': _Opaque()}, path)
    with pytest.raises(ConversionError,
                       match=f'pickled {__name__}._Opaque object'):
        load_official_state_dict(str(path))


@pytest.mark.parametrize('content,expected', [
    (b'', 'is empty'),
    (bytes(range(256)) * 4, 'not a PyTorch checkpoint'),
    ('truncated', 'is truncated or damaged'),
])
def test_unreadable_files_say_what_they_are(tmp_path, content, expected):
    path = tmp_path / 'official.pth'
    if content == 'truncated':
        torch.save({'model': _tiny_official()}, path)
        content = path.read_bytes()[:len(path.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(ConversionError, match=expected) as err:
        load_official_state_dict(str(path))
    assert '--allow-pickle' not in str(err.value)
    assert 'weights_only' not in str(err.value)
