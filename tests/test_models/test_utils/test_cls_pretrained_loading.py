"""Pre-trained backbones loading into the classification configs'
classifiers (init_cfg Pretrained, prefix 'backbone.')."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmitpn.models import iTPNHiViT
from mmitpn.models.utils import resize_pos_embed, resize_rel_pos_table
from mmitpn.models.utils import CheckpointError

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CLS = osp.join(REPO, 'configs', 'cls')
TINY_ARCH = dict(embed_dims=32, stem_depths=(1, 1), depth=2, num_heads=2)


def _build(config, checkpoint, **backbone):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(CLS, config))
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.update(backbone)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    channels = cfg.model.backbone.arch['embed_dims'] if isinstance(
        cfg.model.backbone.arch, dict) else None
    if channels is not None:
        cfg.model.neck.in_channels = cfg.model.head.in_channels = channels
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def _save(state_dict, path):
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    return path


def _demo_pretrain_state_dict():
    """A (randomly initialised) demo pre-training model's weights."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pretrain', 'itpn-demo_fashion-mnist.py'))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.state_dict()


def test_demo_checkpoint_loads_into_finetune_classifier(tmp_path):
    state = _demo_pretrain_state_dict()
    path = _save(state, str(tmp_path / 'pretrain.pth'))
    model = _build('itpn-demo_fashion-mnist_finetune.py', path)
    loaded = 0
    for name, param in model.backbone.state_dict().items():
        key = 'backbone.' + name
        if key in state:
            torch.testing.assert_close(param, state[key], rtol=0, atol=0)
            loaded += 1
        else:
            # Fine-tuning adds relative position bias, which pixel
            # pre-training has not: those tables start at zero.
            assert 'relative_position_bias_table' in name, name
            assert not param.any()
    assert loaded == len(
        [k for k in state if k.startswith('backbone.')
         and 'mask_token' not in k])
    # Neck and head are new (the pre-training neck is the pyramid).
    assert model.head.fc.weight.shape == (10, 128)
    assert torch.equal(model.neck.norm.weight, torch.ones(128))


def test_224_checkpoint_loads_into_384_model_with_resized_tables(tmp_path):
    torch.manual_seed(0)
    source = iTPNHiViT(arch=TINY_ARCH, img_size=224, use_rel_pos_bias=True)
    with torch.no_grad():
        for block in source.blocks:
            block.attn.relative_position_bias_table.normal_()
    path = _save({f'backbone.{k}': v
                  for k, v in source.state_dict().items()},
                 str(tmp_path / 'b224.pth'))
    model = _build('itpn-pixel_hivit-base-p16_32xb32-coslr-100e_in1k-384px.py',
                   path, arch=TINY_ARCH)
    backbone = model.backbone
    assert backbone.patch_grid == (24, 24)
    assert backbone.pos_embed.shape == (1, 24 * 24, 32)
    torch.testing.assert_close(
        backbone.pos_embed.data,
        resize_pos_embed(source.pos_embed.data, (14, 14), (24, 24)))
    for src, dst in zip(source.blocks, backbone.blocks):
        table = dst.attn.relative_position_bias_table
        assert table.shape == (47 * 47, 2)
        torch.testing.assert_close(
            table.data,
            resize_rel_pos_table(src.attn.relative_position_bias_table.data,
                                 (14, 14), (24, 24)))
    # Everything else is copied as it is.
    torch.testing.assert_close(backbone.blocks[1].mlp.fc1.weight,
                               source.blocks[1].mlp.fc1.weight)
    logits = model(torch.randn(1, 3, 384, 384), mode='tensor')
    assert logits.shape == (1, 1000)


def test_load_is_reported(tmp_path):
    path = _save(_demo_pretrain_state_dict(), str(tmp_path / 'pre.pth'))
    model = _build('itpn-demo_fashion-mnist_finetune.py', path)
    report = model.backbone.pretrained_report
    assert report.checkpoint == path and report.prefix == 'backbone.'
    # Only the relative-position tables, new in fine-tuning, are missing.
    assert report.missing and all('relative_position_bias_table' in k
                                  for k in report.missing)
    assert len(report.missing) == 4  # one per attention block


def test_checkpoint_of_another_arch_fails_naming_the_keys(tmp_path):
    other = iTPNHiViT(arch=dict(TINY_ARCH, embed_dims=64), img_size=28,
                      patch_size=4)
    path = _save({f'backbone.{k}': v for k, v in other.state_dict().items()},
                 str(tmp_path / 'other.pth'))
    with pytest.raises(CheckpointError) as err:
        _build('itpn-demo_fashion-mnist_finetune.py', path)
    message = str(err.value)
    assert 'arch.embed_dims: 64 in the checkpoint, 128 here' in message
    assert 'patch_embed.proj.weight: (16, 3, 1, 1) in the checkpoint' \
        in message


@pytest.mark.parametrize('keys', ['unprefixed', 'official'])
def test_checkpoint_without_backbone_keys_fails(tmp_path, keys):
    state = _demo_pretrain_state_dict()
    if keys == 'unprefixed':  # e.g. a bare backbone saved without 'backbone.'
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
    else:  # an official checkpoint that was not converted
        state = {'patch_embed.proj.weight': state[
            'backbone.patch_embed.proj.weight'], 'blocks.0.mlp.fc1.weight':
                 state['backbone.stage1.0.mlp.fc1.weight']}
    path = _save(state, str(tmp_path / 'nobackbone.pth'))
    with pytest.raises(CheckpointError, match='no tensor of .* matches'):
        _build('itpn-demo_fashion-mnist_finetune.py', path)
