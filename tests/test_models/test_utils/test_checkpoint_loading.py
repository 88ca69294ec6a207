"""Checked ``Pretrained`` loading of the iTPN backbone and pyramid."""
import pytest
import torch

from mmitpn.models import iTPNHiViT, iTPNPyramid
from mmitpn.models.utils import checkpoint_loading
from mmitpn.models.utils.checkpoint_loading import (CheckpointError,
                                                    summarize_keys)

TINY = dict(embed_dims=32, stem_depths=(1, 1), depth=2, num_heads=2)


def tiny_backbone(**kwargs):
    kwargs.setdefault('arch', TINY)
    return iTPNHiViT(img_size=32, patch_size=8, **kwargs)


def tiny_pyramid(**kwargs):
    kwargs.setdefault('in_channels', (8, 16, 32))
    kwargs.setdefault('out_channels', 16)
    return iTPNPyramid(**kwargs)


def save_runner_checkpoint(path, backbone, neck):
    """An mmengine-style checkpoint of a pre-training model."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({f'neck.{k}': v for k, v in neck.state_dict().items()})
    state['head.decoder_pred.weight'] = torch.randn(4, 4)
    torch.save(dict(meta=dict(iter=10), state_dict=state), path)
    return str(path)


@pytest.fixture
def pretrain_ckpt(tmp_path):
    torch.manual_seed(0)
    backbone, neck = tiny_backbone(), tiny_pyramid(fpn_depth=2)
    return save_runner_checkpoint(tmp_path / 'pretrain.pth', backbone,
                                  neck), backbone, neck


@pytest.fixture
def logged(monkeypatch):
    lines = []
    monkeypatch.setattr(checkpoint_loading, 'print_log',
                        lambda msg, **kwargs: lines.append(msg))
    return lines


def assert_same_tensors(module, reference, keys=None):
    ref = reference.state_dict()
    for key, value in module.state_dict().items():
        if keys is None or key in keys:
            assert torch.equal(value, ref[key]), key


def test_backbone_and_neck_load_exactly(pretrain_ckpt, logged):
    path, backbone, neck = pretrain_ckpt
    torch.manual_seed(1)
    new_backbone = tiny_backbone(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    new_neck = tiny_pyramid(
        fpn_depth=2,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='neck.'))
    assert not torch.equal(new_backbone.pos_embed, backbone.pos_embed)
    new_backbone.init_weights()
    new_neck.init_weights()
    assert_same_tensors(new_backbone, backbone)
    assert_same_tensors(new_neck, neck)

    report = new_neck.pretrained_report
    assert report.total == len(neck.state_dict())
    assert report.missing == [] and report.unused == []
    assert f'iTPNPyramid: loaded {report.total}/{report.total} tensors ' \
        f"from {path!r} (prefix 'neck.')" in logged


def test_pyramid_of_another_depth_is_refused_naming_fpn_depth(
        pretrain_ckpt):
    path = pretrain_ckpt[0]  # its pyramid has fpn_depth=2
    cfg = dict(type='Pretrained', checkpoint=path, prefix='neck.')
    shallow = tiny_pyramid(fpn_depth=1, init_cfg=cfg)
    before = {k: v.clone() for k, v in shallow.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        shallow.init_weights()
    message = str(err.value)
    assert 'fpn_depth: 2 in the checkpoint, 1 here' in message
    assert 'no place in the model: fuse_s8.*.norm.weight' in message
    # Nothing was loaded: the module is as it was built.
    for key, value in shallow.state_dict().items():
        assert torch.equal(value, before[key]), key

    deep = tiny_pyramid(fpn_depth=3, init_cfg=cfg)
    with pytest.raises(CheckpointError) as err:
        deep.init_weights()
    message = str(err.value)
    assert 'fpn_depth: 2 in the checkpoint, 3 here' in message
    assert 'not in the checkpoint: fuse_s8.*.norm.weight' in message
    assert 'allow_missing' in message


def test_allow_missing_lets_named_tensors_keep_their_init(
        pretrain_ckpt, logged):
    path, _, neck = pretrain_ckpt
    deep = tiny_pyramid(
        fpn_depth=3,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='neck.',
                      allow_missing=['fuse_s8.2.*', 'fuse_s4.2.*']))
    deep.init_weights()
    report = deep.pretrained_report
    assert sorted({'.'.join(k.split('.')[:2]) for k in report.missing}) == [
        'fuse_s4.2', 'fuse_s8.2']
    assert_same_tensors(deep, neck, keys=report.loaded)
    assert any('keep their initialisation (allowed): fuse_s8.*.norm' in line
               for line in logged)

    # A pattern that does not cover all of them is not enough.
    partly = tiny_pyramid(
        fpn_depth=3,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='neck.',
                      allow_missing=['fuse_s8.2.*']))
    with pytest.raises(CheckpointError, match='fuse_s4'):
        partly.init_weights()


def test_backbone_of_another_patch_size_is_refused_naming_it(pretrain_ckpt):
    path = pretrain_ckpt[0]  # patch_size 8
    other = iTPNHiViT(
        arch=TINY, img_size=32, patch_size=16,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    with pytest.raises(CheckpointError,
                       match='patch_size: 8 in the checkpoint, 16 here'):
        other.init_weights()


def test_deeper_checkpoint_backbone_is_refused_naming_depth(tmp_path):
    deep = tiny_backbone(arch=dict(TINY, depth=3))
    path = str(tmp_path / 'deep.pth')
    torch.save({'state_dict': deep.state_dict()}, path)
    shallow = tiny_backbone(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError,
                       match='arch.depth: 3 in the checkpoint, 2 here'):
        shallow.init_weights()


def test_strict_refuses_unused_tensors(tmp_path):
    source = tiny_backbone(use_mask_token=True)
    path = str(tmp_path / 'masked.pth')
    torch.save({'state_dict': source.state_dict()}, path)
    cfg = dict(type='Pretrained', checkpoint=path)
    lenient = tiny_backbone(init_cfg=cfg)
    lenient.init_weights()  # the mask tokens are reported unused
    assert sorted(lenient.pretrained_report.unused) == [
        'mask_token', 'stem_mask_token']
    strict = tiny_backbone(init_cfg=dict(cfg, strict=True))
    with pytest.raises(CheckpointError, match='strict: 2 checkpoint tensors'):
        strict.init_weights()


def test_other_width_names_mismatched_keys(pretrain_ckpt):
    path = pretrain_ckpt[0]
    wide = tiny_pyramid(
        out_channels=24,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='neck.'))
    with pytest.raises(CheckpointError) as err:
        wide.init_weights()
    message = str(err.value)
    assert 'out_channels: 16 in the checkpoint, 24 here' in message
    assert 'lateral_s8.weight: (16, 16) in the checkpoint, (24, 16) here' \
        in message

    other_arch = tiny_backbone(
        arch=dict(TINY, embed_dims=64),
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    with pytest.raises(CheckpointError, match='patch_embed.proj.weight'):
        other_arch.init_weights()


def test_no_tensor_under_prefix_fails(pretrain_ckpt):
    path = pretrain_ckpt[0]
    backbone = tiny_backbone(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='encoder.'))
    with pytest.raises(CheckpointError) as err:
        backbone.init_weights()
    assert 'no tensor' in str(err.value)
    assert 'backbone.' in str(err.value)  # names the prefixes it has


def test_official_layout_points_to_converter(tmp_path):
    official = {
        'model': {
            'patch_embed.proj.weight': torch.zeros(8, 3, 2, 2),
            'blocks.0.mlp.fc1.weight': torch.zeros(24, 8)
        }
    }
    torch.save(official, tmp_path / 'official.pth')
    backbone = tiny_backbone(init_cfg=dict(
        type='Pretrained',
        checkpoint=str(tmp_path / 'official.pth'),
        prefix='backbone.'))
    with pytest.raises(CheckpointError, match='official2mmitpn'):
        backbone.init_weights()


def test_missing_and_corrupted_files(tmp_path):
    missing = str(tmp_path / 'nowhere.pth')
    backbone = tiny_backbone(
        init_cfg=dict(type='Pretrained', checkpoint=missing))
    with pytest.raises(CheckpointError, match='not found') as err:
        backbone.init_weights()
    assert missing in str(err.value)

    good = tmp_path / 'good.pth'
    torch.save({'state_dict': tiny_backbone().state_dict()}, good)
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(good.read_bytes()[:200])
    backbone = tiny_backbone(
        init_cfg=dict(type='Pretrained', checkpoint=str(broken)))
    with pytest.raises(CheckpointError, match='is truncated'):
        backbone.init_weights()


def test_position_tables_are_resized_on_load(tmp_path):
    small = tiny_backbone(use_rel_pos_bias=True)
    torch.save({'backbone.' + k: v for k, v in small.state_dict().items()},
               tmp_path / 'small.pth')
    large = iTPNHiViT(
        arch=TINY,
        img_size=48,
        patch_size=8,
        use_rel_pos_bias=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint=str(tmp_path / 'small.pth'),
            prefix='backbone.'))
    large.init_weights()
    assert large.pos_embed.shape == (1, 36, 32)
    table = large.blocks[0].attn.relative_position_bias_table
    assert table.shape == (11 * 11, 2)
    assert large.pretrained_report.missing == []
    assert_same_tensors(large, small, keys=['patch_embed.proj.weight'])


def test_bad_init_cfg_is_refused():
    backbone = tiny_backbone(
        init_cfg=dict(type='Pretrained', checkpoint='x.pth', prefx='a.'))
    with pytest.raises(ValueError, match='prefx'):
        backbone.init_weights()


def test_summarize_keys_groups_block_indices():
    keys = ['blocks.0.attn.w', 'blocks.1.attn.w', 'pos_embed']
    assert summarize_keys(keys) == 'blocks.*.attn.w (x2), pos_embed'
