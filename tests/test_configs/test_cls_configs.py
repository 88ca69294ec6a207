"""Every classification config builds: model, optimizer, pipelines, and a
training step of a tiny stand-in through its data preprocessor and loss."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'cls', '*.py')))
TINY_ARCH = dict(embed_dims=32, stem_depths=(1, 1), depth=2, num_heads=2)


def _name(path):
    return osp.splitext(osp.basename(path))[0]


def _load(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    return cfg


def _groups_by_name(model, optim_wrapper):
    by_param = {
        id(p): g
        for g in optim_wrapper.optimizer.param_groups for p in g['params']
    }
    return {
        name: by_param[id(p)]
        for name, p in model.named_parameters() if id(p) in by_param
    }


def test_every_config_is_covered():
    names = {_name(p) for p in CLS_CONFIGS}
    for arch in ('base', 'large'):
        for sup in ('pixel', 'clip'):
            assert any(n.startswith(f'itpn-{sup}_hivit-{arch}') and 'coslr'
                       in n and 'linear' not in n for n in names), (sup, arch)
    assert any('linear' in n for n in names)
    assert any(n.endswith('384px') for n in names)


@pytest.mark.parametrize('path', CLS_CONFIGS, ids=_name)
def test_config_builds_model_and_optimizer(path):
    """Full-size model on the meta device; its optimizer from the config."""
    from mmpretrain.registry import MODELS
    cfg = _load(path)
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    backbone = cfg.model.backbone
    if 'demo' not in path:
        assert backbone.use_rel_pos_bias == ('linear' not in path
                                             or 'clip' in path)
    init = backbone.get('init_cfg')
    if 'scratch' in path:
        assert init is None
    else:
        assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    assert 'auto_scale_lr' in cfg

    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = _groups_by_name(model, wrapper)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if 'linear' in path:
        assert wrapper.optimizer.__class__.__name__ == 'LARS'
        assert trainable == {'head.fc.weight', 'head.fc.bias'}
        assert not list(model.neck.parameters())  # affine-free BatchNorm
        return
    assert set(groups) == trainable
    base_lr = cfg.optim_wrapper.optimizer.lr
    head_lr = groups['head.fc.weight']['lr']
    stem_lr = groups['backbone.patch_embed.proj.weight']['lr']
    assert head_lr == pytest.approx(base_lr)
    assert groups['backbone.pos_embed']['weight_decay'] == 0
    if 'scratch' in path:
        assert stem_lr == pytest.approx(base_lr)
    elif 'demo' in path:
        assert stem_lr == pytest.approx(base_lr * 0.75**7)
    else:
        # Official renormalisation to 12 layers: patch_embed gets ld ** 13.
        rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
        assert stem_lr == pytest.approx(base_lr * rate**13)
        # The schedule ends every group at min_lr times its layer scale.
        cosine = cfg.param_scheduler[-1]
        assert 'eta_min' not in cosine and 0 < cosine.eta_min_ratio < 0.01


def _tiny(cfg, img_size):
    """The config's classifier with a tiny backbone and no checkpoint."""
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.backbone.update(arch=TINY_ARCH, img_size=img_size,
                              init_cfg=None)
    model_cfg.neck.in_channels = model_cfg.head.in_channels = 32
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('path', [
    p for p in CLS_CONFIGS if 'demo' not in p
], ids=_name)
def test_train_step_through_pipeline_and_batch_augments(path):
    """The config's train pipeline on a decoded image, its data
    preprocessor (mixup / cutmix), loss and optimizer, on a tiny model."""
    from mmengine.dataset import Compose, default_collate
    from mmpretrain.registry import TRANSFORMS
    cfg = _load(path)
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[0].type == 'LoadImageFromFile'
    transforms = Compose([TRANSFORMS.build(t) for t in pipeline[1:]])
    rng = np.random.default_rng(0)
    samples = [
        transforms(dict(img=rng.integers(0, 255, (300, 260, 3), np.uint8),
                        gt_label=label, img_shape=(300, 260),
                        ori_shape=(300, 260))) for label in (3, 7)
    ]
    img_size = cfg.model.backbone.get('img_size', 224)
    assert samples[0]['inputs'].shape == (3, img_size, img_size)

    model = _tiny(cfg, img_size)
    augments = model.data_preprocessor.batch_augments
    if 'linear' in path:
        assert augments is None
    else:
        # Mixup 0.8 or CutMix 1.0, equally likely.
        assert [(type(a).__name__, a.alpha) for a in augments.augments
                ] == [('Mixup', 0.8), ('CutMix', 1.0)]
        assert augments.probs is None
    mixed = 0
    for _ in range(8):
        batch = model.data_preprocessor(
            default_collate(samples), training=True)
        if augments is None:
            assert [int(s.gt_label) for s in batch['data_samples']] == [3, 7]
            break
        # Soft targets mixing the two labels.
        scores = torch.stack([s.gt_score for s in batch['data_samples']])
        assert scores.shape == (2, 1000)
        assert torch.allclose(scores.sum(-1), torch.ones(2))
        assert torch.allclose(scores[:, 3] + scores[:, 7], torch.ones(2))
        mixed += int((scores[:, 3] > 0.01).all())
    assert augments is None or mixed > 0
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = model.head.fc.weight.detach().clone()
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert torch.isfinite(losses['loss'])
    wrapper.update_params(losses['loss'])
    assert not torch.equal(before, model.head.fc.weight)


@pytest.mark.parametrize('path', [
    p for p in CLS_CONFIGS if 'in1k' in p
], ids=_name)
def test_test_pipeline_center_crops_at_model_size(path):
    from mmengine.dataset import Compose
    from mmpretrain.registry import TRANSFORMS
    cfg = _load(path)
    pipeline = cfg.test_dataloader.dataset.pipeline
    transforms = Compose([TRANSFORMS.build(t) for t in pipeline[1:]])
    img = np.zeros((500, 700, 3), np.uint8)
    out = transforms(dict(img=img, img_shape=img.shape[:2],
                          ori_shape=img.shape[:2]))
    size = cfg.model.backbone.get('img_size', 224)
    assert out['inputs'].shape == (3, size, size)
    # Official evaluation: short side to size / 0.875 before the crop.
    assert pipeline[1].scale == int(size / 0.875)


@pytest.mark.parametrize('name', [
    'itpn-demo_fashion-mnist_finetune', 'itpn-demo_fashion-mnist_linear'
])
def test_demo_config_trains_on_fashion_mnist_samples(name):
    """Labelled Fashion-MNIST samples through the config's pipelines, data
    preprocessor and loss (the demo model is small enough to build)."""
    from mmengine.dataset import default_collate
    from mmpretrain.registry import DATASETS, MODELS

    from mmitpn.datasets.fashion_mnist import FashionMNIST
    try:
        FashionMNIST.check_files()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    cfg = _load(osp.join(REPO, 'configs', 'cls', f'{name}.py'))
    raw = FashionMNIST(split='test', indices=4)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        dataset = DATASETS.build(dict(loader.dataset, indices=4))
        samples = [dataset[i] for i in range(4)]
        assert samples[0]['inputs'].shape == (3, 28, 28)
    assert [int(s['data_samples'].gt_label) for s in samples
            ] == [int(raw[i]['gt_label']) for i in range(4)]

    cfg.model.backbone.init_cfg = None
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    batch = model.data_preprocessor(default_collate(samples), training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0
