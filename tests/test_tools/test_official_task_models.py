"""official2mmitpn on trained official det/seg models (mmdet 2.x / mmseg 0.x
state dicts: the official backbone under ``backbone.``, heads beside it)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmitpn.models.utils import relative_position_index
from mmitpn.tools.official_converter import (ConversionError,
                                             convert_official_state_dict,
                                             load_official_state_dict)
from official_keys import to_official

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = dict(embed_dims=64, stem_depths=(1, 1), depth=2, num_heads=2)
DIMS = (16, 32, 64)
FPN_DIM = 32
SEG_GRID = (16, 16)  # 256 input, patch 16
CONVERTER_CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
                         'official2mmitpn.py')


def _config(path):
    return Config.fromfile(osp.join(REPO_ROOT, 'configs', path))


def _build(model_cfg, scope):
    registry = {'mmdet': 'mmdet.registry', 'mmseg': 'mmseg.registry'}[scope]
    models = __import__(registry, fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(model_cfg)


def tiny_detector():
    """Our det recipe's Mask R-CNN with a tiny backbone and narrow heads."""
    cfg = _config(
        'det/mask-rcnn_itpn-tiny-p16_overfit-60e_tiny-coco-instances.py')
    cfg.model.backbone.arch = TINY_ARCH
    cfg.model.neck.in_channels = DIMS
    return _build(cfg.model, 'mmdet')


def tiny_segmentor():
    """Our UPerNet (RPE on, concatenated levels) with a tiny backbone."""
    cfg = _config(
        'seg/upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py')
    model = cfg.model
    model.backbone.arch = TINY_ARCH
    model.neck.update(in_channels=DIMS, out_channels=FPN_DIM)
    levels = [FPN_DIM + c for c in DIMS] + [FPN_DIM + DIMS[-1]]
    model.decode_head.update(in_channels=levels, channels=32)
    model.auxiliary_head.update(in_channels=levels[2], channels=16)
    return _build(model, 'mmseg')


def random_state(model):
    """The model's state dict with every float tensor random, so that any
    swapped or misplaced tensor shows."""
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=gen)
            if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()}


def to_official_trained(state, stem_depths=(1, 1), grid=None):
    """mmitpn det/seg names -> the trained mmdet 2.x / mmseg 0.x model's:
    backbone and pyramid in the official backbone's names under
    ``backbone.`` (plus its RPE index buffer when ``grid`` is given), the
    heads unchanged."""
    ours = {k: v for k, v in state.items()
            if k.startswith(('backbone.', 'neck.'))}
    official = {f'backbone.{k}': v
                for k, v in to_official(ours, stem_depths).items()}
    if grid is not None:
        official['backbone.relative_position_index'] = \
            relative_position_index(grid)
    official.update({k: v for k, v in state.items() if k not in ours})
    return official


@pytest.mark.parametrize('build, grid, kind, heads', [
    (tiny_detector, None, 'mmdet detector', ('rpn_head.', 'roi_head.')),
    (tiny_segmentor, SEG_GRID, 'mmseg segmentor',
     ('decode_head.', 'auxiliary_head.')),
])
def test_trained_model_converts_and_loads_strictly(build, grid, kind, heads):
    model = build()
    state = random_state(model)
    official = to_official_trained(state, grid=grid)
    assert any(k.startswith(heads) for k in official)

    converted, report = convert_official_state_dict(official)
    assert report.task_model == kind
    assert f'trained {kind}' in report.format()
    counts = report.counts()
    num_heads = sum(k.startswith(heads) for k in state)
    assert counts['task_heads']['mapped'] == num_heads
    assert counts['pyramid']['mapped'] == sum(
        k.startswith('neck.') for k in state)
    if grid is not None:  # the index buffer is checked, then dropped
        assert counts['backbone']['checked_dropped'] == 1

    assert set(converted) == set(state)
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_cascade_heads_of_every_stage_convert():
    """Cascade Mask R-CNN (one bbox/mask head per stage), full size, on the
    meta device: names and shapes only."""
    cfg = _config(
        'det/cascade-mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-3x_coco.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.init_cfg = None
    with torch.device('meta'):
        model = _build(cfg.model, 'mmdet')
    state = model.state_dict()
    assert any(k.startswith('roi_head.bbox_head.2.') for k in state)
    converted, report = convert_official_state_dict(
        to_official_trained(state, stem_depths=(3, 3)))
    assert report.task_model == 'mmdet detector'
    assert {k: v.shape for k, v in converted.items()} == {
        k: v.shape for k, v in state.items()}


def test_unknown_keys_of_a_trained_model_are_refused():
    official = to_official_trained(random_state(tiny_detector()))
    extras = {
        'roi_head.semantic_head.conv_logits.weight': torch.zeros(1),
        'rpn_head.rpn_conv.scale': torch.zeros(1),
        'backbone.extra_norm.weight': torch.zeros(1),
        # A bare official key beside the wrapped backbone.
        'absolute_pos_embed': torch.zeros(1, 4, 64),
    }
    with pytest.raises(ConversionError) as err:
        convert_official_state_dict({**official, **extras})
    for key in extras:
        assert key in str(err.value)
    converted, report = convert_official_state_dict({**official, **extras},
                                                    ('unknown', ))
    assert report.counts()['unknown']['dropped'] == len(extras)
    assert not set(extras) & set(converted)


def test_task_heads_can_be_dropped_for_the_backbone_alone():
    state = random_state(tiny_segmentor())
    converted, report = convert_official_state_dict(
        to_official_trained(state, grid=SEG_GRID), ('task_heads', ))
    assert set(converted) == {k for k in state
                              if k.startswith(('backbone.', 'neck.'))}
    assert report.counts()['task_heads']['dropped'] > 0


def test_cli_converts_an_mmdet2_checkpoint(tmp_path, capsys):
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location('official2mmitpn', CONVERTER_CLI)
    cli = module_from_spec(spec)
    spec.loader.exec_module(cli)

    state = random_state(tiny_detector())
    src, dst = tmp_path / 'official_det.pth', tmp_path / 'mmitpn_det.pth'
    # As mmcv 1.x saves a trained model.
    torch.save({'meta': {'epoch': 12, 'CLASSES': ('a', 'b')},
                'state_dict': to_official_trained(state)}, src)
    assert len(load_official_state_dict(str(src))) == len(state)
    assert cli.main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'trained mmdet detector' in out and 'task_heads' in out
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['trained_task_model'] == 'mmdet detector'
    assert set(saved['state_dict']) == set(state)
