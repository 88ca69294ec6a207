"""Tests of EMATeacherHook: the EMA formula, its schedule, and resuming."""
import copy
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmitpn.engine import EMATeacherHook
from mmitpn.registry import MODELS

TINY = dict(embed_dims=32, stem_depths=(1, 1), depth=2, num_heads=2)
MODEL = dict(
    type='mmitpn.iTPN',
    backbone=dict(type='iTPNHiViT', arch=TINY, img_size=32),
    neck=dict(type='iTPNPyramid', in_channels=(8, 16, 32), out_channels=16,
              fpn_depth=1),
    head=dict(type='iTPNPixelHead', in_channels=16, embed_dims=16, depth=1,
              num_heads=2, img_size=32),
    mfm_head=dict(type='iTPNMFMHead', in_channels=16,
                  out_channels=(8, 16, 32)),
    teacher='ema',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[128.] * 3,
                           std=[64.] * 3, to_rgb=True))


def build_model():
    cfg = copy.deepcopy(MODEL)
    cfg['data_preprocessor']['type'] = 'mmpretrain.SelfSupDataPreprocessor'
    return MODELS.build(cfg)


def fake_runner(model, iteration=0, max_iters=10):
    return SimpleNamespace(model=model, iter=iteration, max_iters=max_iters,
                           logger=logging.getLogger('test'))


def snapshot(module):
    return {k: v.clone() for k, v in module.named_parameters()}


def test_update_matches_formula():
    torch.manual_seed(0)
    model = build_model()
    hook = EMATeacherHook(momentum=0.9)
    hook.before_train(fake_runner(model))
    for name, p in model.teacher.module.named_parameters():
        torch.testing.assert_close(p, dict(
            model.backbone.named_parameters())[name])

    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    old, online = snapshot(model.teacher.module), snapshot(model.backbone)
    hook.after_train_iter(fake_runner(model), batch_idx=0)
    for name, p in model.teacher.module.named_parameters():
        torch.testing.assert_close(p, 0.9 * old[name] + 0.1 * online[name])


def test_update_interval():
    model = build_model()
    hook = EMATeacherHook(momentum=0.5, update_interval=2)
    hook.before_train(fake_runner(model))
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.)
    old = snapshot(model.teacher.module)
    hook.after_train_iter(fake_runner(model, iteration=0), batch_idx=0)
    for name, p in model.teacher.module.named_parameters():
        torch.testing.assert_close(p, old[name])  # 1st iteration: no update
    hook.after_train_iter(fake_runner(model, iteration=1), batch_idx=1)
    assert any(not torch.equal(p, old[name])
               for name, p in model.teacher.module.named_parameters())


def test_cosine_schedule_and_arguments():
    hook = EMATeacherHook(momentum=0.996, end_momentum=1.0)
    assert hook.momentum_at(0.) == pytest.approx(0.996)
    assert hook.momentum_at(0.5) == pytest.approx(0.998)
    assert hook.momentum_at(1.) == pytest.approx(1.0)
    assert EMATeacherHook(momentum=0.99).momentum_at(0.7) == 0.99
    with pytest.raises(ValueError):
        EMATeacherHook(momentum=1.5)
    with pytest.raises(ValueError):
        EMATeacherHook(update_interval=0)


class RandomImages(Dataset):
    """Random uint8 images with empty data samples."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        from mmpretrain.structures import DataSample
        g = torch.Generator().manual_seed(index)
        image = torch.randint(0, 256, (3, 32, 32), generator=g,
                              dtype=torch.uint8)
        return dict(inputs=image, data_samples=DataSample())


def make_runner(work_dir, max_iters, resume=False, load_from=None):
    return Runner(
        model=copy.deepcopy(MODEL),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=RandomImages(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        custom_hooks=[dict(type='mmitpn.EMATeacherHook', momentum=0.9)],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=100)),
        default_scope='mmpretrain',
        resume=resume,
        load_from=load_from,
        randomness=dict(seed=0),
        experiment_name=f'ema_{max_iters}_{resume}_{load_from is None}')


def test_runner_checkpoint_restores_teacher(tmp_path):
    runner = make_runner(tmp_path, max_iters=2)
    runner.train()
    teacher = {k: v.clone() for k, v in runner.model.teacher.state_dict()
               .items()}
    assert int(teacher['steps']) == 3  # init copy + 2 updates
    online = dict(runner.model.backbone.named_parameters())
    assert any(not torch.equal(teacher[f'module.{k}'], p)
               for k, p in online.items())

    # Resuming keeps the saved teacher (no re-init from the backbone).
    ckpt = str(tmp_path / 'iter_2.pth')
    resumed = make_runner(tmp_path, max_iters=2, resume=True, load_from=ckpt)
    resumed.train()
    for key, value in resumed.model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher[key])

    # A checkpoint without a teacher (pixel MIM only): the teacher is
    # initialised from the loaded backbone.
    state = torch.load(ckpt, weights_only=False)
    state['state_dict'] = {
        k: v for k, v in state['state_dict'].items()
        if not k.startswith('teacher.')
    }
    plain = str(tmp_path / 'no_teacher.pth')
    torch.save(state, plain)
    loaded = make_runner(tmp_path, max_iters=0, load_from=plain)
    loaded.train()
    for name, p in loaded.model.backbone.named_parameters():
        torch.testing.assert_close(
            loaded.model.teacher.module.get_parameter(name), p)
