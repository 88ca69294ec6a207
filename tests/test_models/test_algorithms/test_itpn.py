"""Tests of the iTPN pre-training algorithm: MIM, EMA-teacher MFM, CLIP MFM."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import \
    load_state_dict as mmengine_load_state_dict

from tiny_models import TINY_CLIP

from mmitpn.models.necks.itpn_pyramid import Conv3x3Block
from mmitpn.models.utils import build_2d_sincos_pos_embed, random_masking
from mmitpn.registry import MODELS

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TINY = dict(embed_dims=64, stem_depths=(1, 1), depth=4, num_heads=2)
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
DATA_PREPROCESSOR = dict(
    type='mmpretrain.SelfSupDataPreprocessor', mean=MEAN, std=STD,
    to_rgb=True)
NECK = dict(
    type='iTPNPyramid', in_channels=(16, 32, 64), out_channels=32,
    fpn_depth=1)
PIXEL_HEAD = dict(
    type='iTPNPixelHead', in_channels=32, embed_dims=32, depth=1,
    num_heads=2, img_size=64)
MFM_HEAD = dict(type='iTPNMFMHead', in_channels=32, out_channels=(16, 32, 64))


def pixel_cfg(**kwargs):
    cfg = dict(
        type='iTPN',
        backbone=dict(type='iTPNHiViT', arch=TINY, img_size=64),
        neck=NECK,
        head=PIXEL_HEAD,
        data_preprocessor=DATA_PREPROCESSOR)
    cfg.update(kwargs)
    return copy.deepcopy(cfg)


def ema_cfg(**kwargs):
    return pixel_cfg(mfm_head=MFM_HEAD, teacher='ema', **kwargs)


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    """Weights of the tiny random open_clip model, saved as a local file."""
    import open_clip
    folder = tmp_path_factory.mktemp('clip')
    files = {}
    for size in (32, 48):
        kwargs = copy.deepcopy(TINY_CLIP)
        kwargs['vision_cfg']['image_size'] = size
        model = open_clip.create_model('ViT-B-16', **kwargs)
        files[size] = str(folder / f'tiny_clip_{size}.pt')
        torch.save(model.state_dict(), files[size])
    return files


def clip_cfg(checkpoint, image_size=32, **kwargs):
    model_kwargs = copy.deepcopy(TINY_CLIP)
    model_kwargs['vision_cfg']['image_size'] = image_size
    cfg = dict(
        type='iTPN',
        backbone=dict(
            type='iTPNHiViT', arch=TINY, img_size=64, use_mask_token=True,
            use_rel_pos_bias=True, layer_scale_init_value=0.1),
        neck=NECK,
        mfm_head=dict(
            type='iTPNCLIPHead', in_channels=32, embed_dims=64,
            out_channels=24, num_heads=2, layer_scale_init_value=0.1,
            rel_pos_grid=(4, 4)),
        teacher=dict(
            type='CLIPTeacher', model_name='ViT-B-16', checkpoint=checkpoint,
            model_kwargs=model_kwargs),
        data_preprocessor=DATA_PREPROCESSOR)
    cfg.update(kwargs)
    return cfg


def images(batch=2, size=64, seed=0):
    """Normalised images, as the data preprocessor outputs them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=g)


def assert_finite(losses, keys):
    assert set(losses) == set(keys)
    for value in losses.values():
        assert value.dim() == 0 and torch.isfinite(value)


# Pixel MIM ------------------------------------------------------------------


def test_pixel_mim_loss_and_features():
    torch.manual_seed(0)
    model = MODELS.build(pixel_cfg(sincos_pos_embed=True))
    model.init_weights()
    torch.testing.assert_close(model.backbone.pos_embed,
                               build_2d_sincos_pos_embed(64, (4, 4)))
    assert model.backbone.pos_embed.requires_grad

    x = images()
    torch.manual_seed(1)
    losses = model.loss(x)
    assert_finite(losses, ['loss_mim'])
    torch.manual_seed(1)
    assert model.loss(x)['loss_mim'] == losses['loss_mim']  # seeded masks
    torch.manual_seed(1)
    pred, mask = model.reconstruct(x, torch.rand(2, 16))  # the same noise
    assert pred.shape == (2, 16, 768) and mask.sum() == 2 * 12
    torch.testing.assert_close(model.head.loss(pred, x, mask),
                               losses['loss_mim'])

    feats = model(x, mode='tensor')
    assert [tuple(f.shape) for f in feats] == [(2, 32, 16, 16),
                                               (2, 32, 8, 8), (2, 32, 4, 4)]


def test_no_pyramid_baseline_feeds_stage3_only():
    head = dict(PIXEL_HEAD, in_channels=64, num_levels=1)
    model = MODELS.build(pixel_cfg(use_pyramid=False, head=head))
    assert model.neck is None
    assert_finite(model.loss(images()), ['loss_mim'])
    assert [f.shape[1] for f in model.extract_feat(images())] == [16, 32, 64]


def test_conv_fusion_variant_runs():
    neck = dict(NECK, fusion_block='conv3x3')
    model = MODELS.build(ema_cfg(neck=neck))
    model.init_teacher()
    losses = model.loss(images())
    assert_finite(losses,
                  ['loss_mim', 'loss_mfm_s4', 'loss_mfm_s8', 'loss_mfm_s16'])
    sum(losses.values()).backward()
    assert model.neck.fuse_s4[0].conv.weight.grad.abs().sum() > 0


def test_conv_block_sees_zeros_at_dropped_patches():
    torch.manual_seed(0)
    block = Conv3x3Block(8, mlp_ratio=2.)
    grid = (3, 4)
    full = torch.randn(2, 12, 2, 2, 8)
    ids_keep, _, mask = random_masking(torch.rand(2, 12), 0.5)
    kept = full.gather(1, ids_keep[:, :, None, None, None].expand(
        -1, -1, 2, 2, 8))
    out = block(kept, grid, ids_keep)
    # The LayerNorm of a zero token is its bias, zero at init: the same as
    # the full map with the dropped patches zeroed.
    zeroed = full * (1 - mask)[:, :, None, None, None]
    ref = block(zeroed, grid).gather(
        1, ids_keep[:, :, None, None, None].expand(-1, -1, 2, 2, 8))
    torch.testing.assert_close(out, ref)
    # On full NCHW maps the neck is a plain 3x3-conv pyramid.
    neck = MODELS.build(dict(NECK, fusion_block='conv3x3'))
    maps = (torch.randn(1, 16, 12, 16), torch.randn(1, 32, 6, 8),
            torch.randn(1, 64, 3, 4))
    assert [o.shape[-2:] for o in neck(maps)] == [(12, 16), (6, 8), (3, 4)]


# EMA-teacher MFM ------------------------------------------------------------


def test_ema_mfm_losses_gradients_and_frozen_teacher():
    torch.manual_seed(0)
    model = MODELS.build(ema_cfg())
    model.init_teacher()
    model.train()
    assert not model.teacher.training and model.backbone.training
    assert all(not p.requires_grad for p in model.teacher.parameters())

    losses = model.loss(images())
    assert_finite(losses,
                  ['loss_mim', 'loss_mfm_s4', 'loss_mfm_s8', 'loss_mfm_s16'])
    sum(losses.values()).backward()
    for predictor in model.mfm_head.predictors:  # every stage is supervised
        assert predictor.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())

    # The default optimizer constructor lists the frozen teacher, but
    # AdamW (with weight decay) must leave it untouched.
    before = copy.deepcopy(model.teacher.state_dict())
    optim = build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-2,
                                   weight_decay=0.5)))
    optim.step()
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_mfm_loss_weight_and_targets():
    model = MODELS.build(ema_cfg())
    model.init_teacher()
    ids_keep, _, _ = random_masking(torch.rand(2, 16), 0.75)
    x = images()
    masked = model._ema_targets(x, ids_keep)
    model.teacher_input = 'full'
    full = model._ema_targets(x, ids_keep)
    # Stages 1-2 never cross patches; stage 3 attends to the whole image.
    torch.testing.assert_close(full[0], masked[0])
    torch.testing.assert_close(full[1], masked[1])
    assert not torch.allclose(full[2], masked[2])
    # Targets are the online backbone's own features right after init.
    online, _ = model.backbone.forward_tokens(x, ids_keep=ids_keep)
    torch.testing.assert_close(online[2], masked[2])

    head = model.mfm_head
    preds = tuple(torch.zeros_like(t) for t in masked)
    ref = torch.nn.functional.layer_norm(masked[0], (16, ))
    expected = 0.3 * torch.nn.functional.smooth_l1_loss(
        torch.zeros_like(ref), ref)
    torch.testing.assert_close(head.loss(preds, masked)['loss_mfm_s4'],
                               expected)


def test_uninitialised_ema_teacher_is_refused():
    model = MODELS.build(ema_cfg())
    with pytest.raises(RuntimeError, match='EMATeacherHook'):
        model.loss(images())


def test_state_dict_restores_teacher():
    torch.manual_seed(0)
    model = MODELS.build(ema_cfg())
    model.init_teacher()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.)
    model.update_teacher(0.9)
    state = model.state_dict()
    assert int(state['teacher.steps']) == 2

    other = MODELS.build(ema_cfg())
    other.load_state_dict(state, strict=True)
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(other.teacher.state_dict()[key], value)


# CLIP-teacher MFM -----------------------------------------------------------


def test_clip_mfm_losses_and_gradients(clip_file):
    torch.manual_seed(0)
    model = MODELS.build(clip_cfg(clip_file[32]))
    model.train()
    assert not model.teacher.training
    losses = model.loss(images())
    assert_finite(losses, ['loss_mfm', 'loss_mfm_aux'])
    sum(losses.values()).backward()
    assert model.mfm_head.aux_blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.backbone.stem_mask_token.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    # The tap of the early-stage branch: block int(0.75 * depth).
    assert model.mfm_head.aux_block_index(model.backbone.depth) == 3


def test_clip_student_is_leak_free(clip_file):
    torch.manual_seed(0)
    model = MODELS.build(clip_cfg(clip_file[32])).eval()
    x = images(batch=1)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [5, 6, 9]] = True
    with torch.no_grad():
        ref = model.predict_teacher_features(x, mask)
        changed = x.clone()
        changed[:, :, 16:32, 16:32] += 5.  # patch 5 (row 1, col 1), masked
        out = model.predict_teacher_features(changed, mask)
        changed[:, :, 0:16, 0:16] += 5.  # patch 0, visible
        visible = model.predict_teacher_features(changed, mask)
    assert len(ref) == 2
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    assert not torch.allclose(visible[0], ref[0])


def test_clip_teacher_targets_and_input_range(clip_file):
    model = MODELS.build(clip_cfg(clip_file[32]))
    raw = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    data = model.data_preprocessor(
        dict(inputs=raw[:, [2, 1, 0]], data_samples=None))  # BGR loaded
    unit = model._unit_range_rgb(data['inputs'])
    torch.testing.assert_close(unit, raw.float() / 255.)

    teacher = model.teacher
    targets = teacher(unit)
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    clip_in = (unit - torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    teacher.visual.output_tokens = True
    _, tokens = teacher.visual(clip_in)  # after ln_post, without CLS
    torch.testing.assert_close(targets, tokens @ teacher.visual.proj)
    assert targets.shape == (2, 16, 24)


def test_clip_teacher_not_in_checkpoints(clip_file):
    model = MODELS.build(clip_cfg(clip_file[32]))
    state = model.state_dict()
    assert not any(k.startswith('teacher.') for k in state)
    weights = copy.deepcopy(model.teacher.visual.state_dict())
    other = MODELS.build(clip_cfg(clip_file[32]))
    other.load_state_dict(state, strict=True)
    mmengine_load_state_dict(other, state, strict=True)  # Runner's loader
    # A checkpoint holding teacher weights does not replace the teacher.
    state['teacher.visual.proj'] = torch.zeros_like(weights['proj'])
    other.load_state_dict(state, strict=False)
    torch.testing.assert_close(other.teacher.visual.proj, weights['proj'])


def test_clip_teacher_grid_differs_from_patch_grid(clip_file):
    model = MODELS.build(clip_cfg(clip_file[48], image_size=48))
    assert model.teacher.grid_size == (6, 6)
    mask = model.block_mask(2, (4, 4))
    preds = model.predict_teacher_features(images(), mask)
    assert [tuple(p.shape) for p in preds] == [(2, 36, 24)] * 2
    assert_finite(model.loss(images()), ['loss_mfm', 'loss_mfm_aux'])


def test_clip_teacher_errors(clip_file, tmp_path):
    missing = str(tmp_path / 'nowhere.bin')
    with pytest.raises(FileNotFoundError, match='model.teacher.checkpoint'):
        MODELS.build(clip_cfg(missing))
    cfg = clip_cfg(clip_file[32])
    cfg['mfm_head']['out_channels'] = 32
    with pytest.raises(ValueError, match='teacher width'):
        MODELS.build(cfg)
    cfg = clip_cfg(clip_file[32], head=PIXEL_HEAD)
    with pytest.raises(ValueError, match='head=None'):
        MODELS.build(cfg)


def test_clip_loss_compiles_around_the_host_side_block_masks(clip_file):
    # Dynamo crashed tracing BEiT's mask sampling (Python's random); it is
    # left to eager Python and the rest of the loss is compiled.
    model = MODELS.build(clip_cfg(clip_file[32]))
    model.train()
    torch._dynamo.reset()
    compiled = torch.compile(model.loss, backend='aot_eager')
    torch.manual_seed(3)
    ref = model.loss(images())
    torch.manual_seed(3)  # the same masks
    losses = compiled(images())
    torch._dynamo.reset()
    assert losses.keys() == ref.keys()
    for key, value in ref.items():
        torch.testing.assert_close(losses[key], value, rtol=1e-5, atol=1e-6)


def test_block_mask_counts():
    model = MODELS.build(pixel_cfg())
    torch.manual_seed(0)
    counts = model.block_mask(16, (14, 14)).sum(1)
    assert counts.max() <= 75 and counts.float().mean() > 65
    counts = model.block_mask(4, (28, 28)).sum(1)  # scaled by 784 / 196
    assert counts.max() <= 300 and counts.min() > 200


# Configs --------------------------------------------------------------------


def test_configs_build_under_mmpretrain_scope():
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pretrain',
                 'itpn-pixel-mfm_hivit-base-p16_8xb512-amp-coslr-400e_'
                 'in1k.py'))
    assert cfg.default_scope == 'mmpretrain'
    model_cfg = cfg.model
    model_cfg.data_preprocessor = cfg.data_preprocessor
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            torch.device('meta'):
        model = MMPRETRAIN_MODELS.build(model_cfg)
    assert type(model).__module__ == 'mmitpn.models.algorithms.itpn'
    assert model.teacher_mode == 'ema' and model.backbone.depth == 24
    assert [h.type for h in cfg.custom_hooks] == ['mmitpn.EMATeacherHook']
    neck_keys = {k.split('.')[0] for k in model.state_dict()}
    assert neck_keys == {'backbone', 'neck', 'head', 'mfm_head', 'teacher'}


RECIPES = sorted(
    name for name in os.listdir(osp.join(REPO, 'configs', 'pretrain'))
    if name.startswith(('itpn-pixel', 'itpn-clip')))


@pytest.mark.parametrize('name', RECIPES)
def test_pretrain_recipe_configs_parse(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'pretrain', name))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.type == 'mmitpn.iTPN'
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # --amp switches it
    assert 'base_batch_size' in cfg.auto_scale_lr
    if cfg.model.get('teacher') == 'ema':
        assert cfg.custom_hooks[0].type == 'mmitpn.EMATeacherHook'


def test_fsdp_demo_config_keeps_the_teacher_on_matching_shards():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pretrain',
                 'itpn-demo_fashion-mnist_fsdp.py'))
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == 'FSDPStrategy'
    assert cfg.strategy.model_wrapper.use_orig_params
    assert cfg.strategy.state_dict_cfg == 'full'
    assert cfg.model.teacher == 'ema'
    assert cfg.custom_hooks[0].type == 'mmitpn.EMATeacherHook'


@pytest.mark.parametrize('ratio', [0., 1., 1.2])
def test_mask_ratio_outside_zero_one_is_refused(ratio):
    with pytest.raises(ValueError,
                       match='strictly between 0 and 1.*loss is NaN'):
        MODELS.build(pixel_cfg(mask_ratio=ratio))
