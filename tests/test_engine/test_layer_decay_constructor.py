"""The layer-decay constructor against the official tables and in det/seg."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict

from mmitpn.engine import iTPNLayerDecayOptimWrapperConstructor
from mmitpn.models import GlobalAvgPoolNorm, iTPNHiViT
from mmitpn.tools.official_converter import convert_official_state_dict

from official_keys import fake_state_dict, read_key_list


def read_table(ref_dir, section):
    """{official name prefix: (layer id, lr scale, weight decays)}."""
    path = osp.join(ref_dir, 'layer_decay_tables.txt')
    rows, current = {}, None
    for line in open(path):
        if line.startswith('====='):
            current = line.strip('= \n')
        elif current == section and line.strip().startswith('('):
            prefix, layer, scale, decays = eval(line.strip())
            rows[prefix] = (layer, scale, decays)
    assert rows, f'section {section} not found'
    return rows


class _Classifier(nn.Module):
    """backbone / neck / head, as mmpretrain's ImageClassifier names them."""

    def __init__(self, arch):
        super().__init__()
        with torch.device('meta'):
            self.backbone = iTPNHiViT(arch=arch, use_rel_pos_bias=True,
                                      out_indices=(2, ))
            dims = self.backbone.embed_dims
            self.neck = GlobalAvgPoolNorm(dims)
            self.head = nn.Module()
            self.head.fc = nn.Linear(dims, 1000)


def build_groups(model, rate, **extra):
    """{parameter name: its param group in the built optimizer}."""
    constructor = iTPNLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        dict(layer_decay_rate=rate, **extra))
    optimizer = constructor(model).optimizer
    by_param = {id(p): g for g in optimizer.param_groups for p in g['params']}
    return {
        name: by_param[id(p)]
        for name, p in model.named_parameters() if id(p) in by_param
    }


@pytest.mark.parametrize('arch,rate,section,key_file', [
    ('base', 0.60, 'cls_base_ld0.60', 'keys_pixel_finetune_base.txt'),
    ('large', 0.55, 'cls_large_ld0.55', 'keys_pixel_finetune_large.txt'),
])
def test_lr_scales_match_official_classification(official_ref_dir, arch,
                                                 rate, section, key_file):
    table = read_table(official_ref_dir, section)
    shapes = read_key_list(osp.join(official_ref_dir, 'keys', key_file))
    _, report = convert_official_state_dict(fake_state_dict(shapes))
    ours_to_official = {e.target: e.key for e in report.entries if e.target}

    model = _Classifier(arch)
    groups = build_groups(model, rate, decay_rescale_depth=12)
    checked = 0
    for name, group in groups.items():
        if 'relative_position_bias_table' in name:
            continue  # not in the official table (fine-tune-only, zeros)
        off_name = ours_to_official[name]
        prefix = max((p for p in table if off_name.startswith(p)), key=len)
        layer, scale, decays = table[prefix]
        assert group['lr'] == pytest.approx(scale, rel=1e-3, abs=1e-5), \
            (name, off_name)
        assert group['weight_decay'] in decays, (name, group['weight_decay'])
        checked += 1
    assert checked > 300 if arch == 'base' else checked > 500


def test_unknown_and_missing_options():
    with pytest.raises(ValueError, match='layer_decay_rate'):
        iTPNLayerDecayOptimWrapperConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.)),
            dict())
    with pytest.raises(ValueError, match='unknown paramwise_cfg'):
        iTPNLayerDecayOptimWrapperConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.)),
            dict(layer_decay_rate=0.9, decay_rate=0.9))


TINY_BACKBONE = dict(type='mmitpn.iTPNHiViT', arch='tiny', out_indices=(0, 1,
                                                                        2))
TINY_NECK = dict(type='mmitpn.iTPNPyramid', in_channels=(48, 96, 192),
                 out_channels=32, fpn_depth=1)


def _mask_rcnn():
    from mmdet.registry import MODELS
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    cfg = get_config('mmdet::_base_/models/mask-rcnn_r50_fpn.py')
    cfg.merge_from_dict(dict(model=dict(
        backbone=dict(_delete_=True, **TINY_BACKBONE),
        neck=dict(_delete_=True, num_outs=5, **TINY_NECK),
        rpn_head=dict(in_channels=32, feat_channels=32),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=32),
            bbox_head=dict(in_channels=32, num_classes=3),
            mask_roi_extractor=dict(out_channels=32),
            mask_head=dict(in_channels=32, conv_out_channels=32,
                           num_classes=3)))))
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def _upernet():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(dict(
        type='EncoderDecoder',
        backbone=TINY_BACKBONE,
        neck=dict(num_outs=4, extra_pool='max', **TINY_NECK),
        decode_head=dict(type='UPerHead', in_channels=[32] * 4,
                         in_index=[0, 1, 2, 3], channels=32, num_classes=5),
        auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=2,
                            channels=16, num_classes=5)))


@pytest.mark.parametrize('build', [_mask_rcnn, _upernet])
@pytest.mark.parametrize('neck_layer_id', [None, 13])
def test_ids_in_detector_and_segmentor(build, neck_layer_id):
    """Backbone ids from get_layer_depth, the neck its configured id, heads
    the top id (lr scale 1), 0.9 decay per layer."""
    model = build()
    groups = build_groups(model, 0.9, neck_layer_id=neck_layer_id)
    num_layers = model.backbone.get_layer_depth('')[1]
    assert num_layers == 1 + 1 + 12 + 1  # tiny: stem 1-1, 12 blocks
    heads = [n for n in groups if n.split('.')[0] not in ('backbone',
                                                           'neck')]
    assert heads, 'no head parameters found'
    for name, group in groups.items():
        if name.startswith('backbone.'):
            layer = model.backbone.get_layer_depth(name[9:])[0]
        elif name.startswith('neck.') and neck_layer_id is not None:
            layer = neck_layer_id
        else:
            layer = num_layers
        assert group['lr'] == pytest.approx(0.9**(num_layers - layer)), name
    assert groups['backbone.patch_embed.proj.weight']['lr'] == \
        pytest.approx(0.9**15)
    assert groups['backbone.blocks.11.attn.qkv.weight']['lr'] == \
        pytest.approx(0.9)
    # no weight decay on norms, biases and position tables
    assert groups['backbone.pos_embed']['weight_decay'] == 0
    assert groups['backbone.blocks.0.norm1.weight']['weight_decay'] == 0
    assert groups['neck.top_proj.bias']['weight_decay'] == 0
    assert groups['backbone.blocks.0.attn.qkv.weight']['weight_decay'] == \
        0.05


def test_frozen_parameters_are_left_out_and_custom_keys_apply():
    model = _upernet()
    model.backbone.patch_embed.requires_grad_(False)
    groups = build_groups(
        model, 0.9, custom_keys={'decode_head': dict(lr_mult=10.,
                                                     decay_mult=0.)})
    assert not any(n.startswith('backbone.patch_embed') for n in groups)
    assert groups['decode_head.conv_seg.weight']['lr'] == pytest.approx(10.)
    assert groups['decode_head.conv_seg.weight']['weight_decay'] == 0.


def test_group_table_is_logged_once(monkeypatch):
    from mmengine.logging import MMLogger
    messages = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'info',
                        messages.append)
    model = _upernet()
    build_groups(model, 0.9, neck_layer_id=13)
    tables = [m for m in messages if 'layer-wise lr decay' in m]
    assert len(tables) == 1
    lines = tables[0].splitlines()[1:]
    assert lines[0].split() == ['layer', 'lr', 'scale', 'wd', '#', 'modules']
    rows = [line.split(maxsplit=4) for line in lines[1:]]
    # Sorted by layer id; the patch embedding (id 0) first at 0.9 ** 15,
    # with and without weight decay; heads last at scale 1.
    assert rows[0][:3] == ['0', f'{0.9**15:.5g}', '0']
    assert any(r[0] == '0' and r[2] == '0.05' for r in rows)
    assert rows[-1][:2] == ['15', '1']
    assert rows[0][4] == 'backbone.pos_embed, backbone.patch_embed'
    assert [r[4] for r in rows
            if r[0] == '13'] == ['backbone.blocks.10, neck'] * 2
    assert [r[4] for r in rows if r[0] == '1'] == [
        'backbone.stage1.0, backbone.merge1'] * 2
    assert sum(int(r[3]) for r in rows) == sum(
        1 for p in model.parameters() if p.requires_grad)


def test_missing_weight_decay_is_refused():
    constructor = iTPNLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.)),
        dict(layer_decay_rate=0.9))
    with pytest.raises(ValueError, match='weight_decay'):
        constructor(_upernet())


def test_groups_are_plain_dicts_that_torch_compile_traces():
    torch.manual_seed(0)
    model = _Classifier({'embed_dims': 32, 'stem_depths': (1, 1),
                         'depth': 2, 'num_heads': 2})
    model = model.to_empty(device='cpu')
    # As the Runner passes it: a ConfigDict from the config file.
    constructor = iTPNLayerDecayOptimWrapperConstructor(
        ConfigDict(type='OptimWrapper',
                   optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        ConfigDict(layer_decay_rate=0.75))
    optimizer = constructor(model).optimizer
    assert len(optimizer.param_groups) > 4
    assert all(type(g) is dict for g in optimizer.param_groups)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    # A ConfigDict group made dynamo fail inside AdamW.step.
    explained = torch._dynamo.explain(optimizer.step)()
    torch._dynamo.reset()
    assert explained.graph_break_count == 0 and explained.graph_count >= 1
