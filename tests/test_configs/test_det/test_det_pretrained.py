"""A detector built from a det config starts from a pre-training checkpoint:
backbone and pyramid tensors equal the checkpoint's, and the detector's
stride 4/8/16 features equal those of the pre-training backbone + pyramid."""
import json
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from mmitpn.models.utils import tokens_to_nchw
from mmitpn.models.utils import CheckpointError, read_checkpoint
from det_test_utils import REPO_ROOT, tiny_det_cfg

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'model_converters'))
import official2mmitpn  # noqa: E402
from check_official_parity import backbone_kwargs, pyramid_kwargs  # noqa

PRETRAIN_DEMO = osp.join(REPO_ROOT, 'configs', 'pretrain',
                         'itpn-demo_fashion-mnist.py')


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """The demo's tiny iTPN pre-training model (same widths as the tiny
    det config) at patch size 16, saved as a runner checkpoint."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(PRETRAIN_DEMO)
    cfg.merge_from_dict({
        'model.backbone.patch_size': 16,
        'model.backbone.img_size': 224,
        'model.head.patch_size': 16,
        'model.head.img_size': 224,
    })
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.eval()
    # pre-trained-looking values, not the init the detector would also get
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = str(tmp_path_factory.mktemp('ckpt') / 'itpn_tiny_pretrain.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model, path


def build_detector(checkpoint):
    from mmdet.registry import MODELS
    cfg = tiny_det_cfg()  # trains from scratch: init_cfg None
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    cfg.model.neck.init_cfg = dict(
        type='Pretrained', checkpoint=checkpoint, prefix='neck.')
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    return detector.eval()


def test_backbone_and_pyramid_tensors_equal_the_checkpoint(pretrained):
    _, path = pretrained
    state = torch.load(path, map_location='cpu')['state_dict']
    detector = build_detector(path)
    for prefix, module in (('backbone.', detector.backbone),
                           ('neck.', detector.neck)):
        own = module.state_dict()
        assert len(own) > 10
        for name, tensor in own.items():
            assert torch.equal(tensor, state[prefix + name]), prefix + name
        # the checked loader's report: every tensor of the module loaded
        report = module.pretrained_report
        assert (report.checkpoint, report.prefix) == (path, prefix)
        assert sorted(report.loaded) == sorted(own) and not report.missing
    # the heads are the detector's own: nothing of the pixel decoder leaks in
    assert not any(k.startswith('head.') for k in detector.state_dict())


def test_config_asking_for_a_pretrained_neck_fails_when_none_loads(
        pretrained, tmp_path):
    """A checkpoint without the pyramid (e.g. a classifier's) must not leave
    the detector's neck silently random."""
    _, path = pretrained
    state = torch.load(path, map_location='cpu')['state_dict']
    no_neck = str(tmp_path / 'backbone_only.pth')
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if k.startswith('backbone.')}}, no_neck)
    with pytest.raises(CheckpointError, match="prefix 'neck.'"):
        build_detector(no_neck)


def test_detector_features_equal_pretraining_pyramid(pretrained):
    model, path = pretrained
    detector = build_detector(path)
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        det_feats = detector.extract_feat(image)
        stages, _ = model.backbone.forward_tokens(image)
        pyramid = model.neck.forward_tokens(*stages)
    grid = (64 // 16, 96 // 16)
    assert len(det_feats) == 5
    for level, (det, tokens) in enumerate(zip(det_feats, pyramid)):
        stride = 4 * 2**level
        assert det.shape == (1, 64, 64 // stride, 96 // stride)
        torch.testing.assert_close(det, tokens_to_nchw(tokens, grid),
                                   rtol=1e-5, atol=1e-5)
    # the RPN's stride-32/64 levels: parameter-free 2x2 average pooling
    torch.testing.assert_close(det_feats[3], F.avg_pool2d(det_feats[2], 2))
    torch.testing.assert_close(det_feats[4], F.avg_pool2d(det_feats[3], 2))


@pytest.mark.parametrize('fixture', ['det_pixel', 'pretrain_pixel'])
def test_official_checkpoint_converts_and_loads(official_ref_dir, tmp_path,
                                                fixture):
    """Official det and pre-training checkpoints (small fixtures of the
    official classes), converted by the converter tool, fill backbone and
    pyramid through the config's init_cfg prefixes; the det one then gives
    the official stride 4/8/16 maps."""
    folder = osp.join(official_ref_dir, 'fixtures', fixture)
    with open(osp.join(folder, 'meta.json')) as f:
        meta = json.load(f)
    converted = str(tmp_path / f'{fixture}_mmitpn.pth')
    official2mmitpn.main([osp.join(folder, 'official.pth'), converted])

    from mmdet.registry import MODELS
    cfg = tiny_det_cfg()
    cfg.model.backbone.update(
        backbone_kwargs(meta, (0, 1, 2)),
        init_cfg=dict(type='Pretrained', checkpoint=converted,
                      prefix='backbone.'))
    cfg.model.neck.update(
        pyramid_kwargs(meta, num_outs=5),
        init_cfg=dict(type='Pretrained', checkpoint=converted,
                      prefix='neck.'))
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    detector.eval()
    state = read_checkpoint(converted).state_dict
    for prefix, module in (('backbone.', detector.backbone),
                           ('neck.', detector.neck)):
        report = module.pretrained_report
        assert report.loaded and not report.missing and not report.unused
        for name, tensor in module.state_dict().items():
            assert torch.equal(tensor, state[prefix + name]), prefix + name
    if fixture == 'det_pixel':
        tensors = torch.load(osp.join(folder, 'tensors.pt'),
                             map_location='cpu')
        with torch.no_grad():
            feats = detector.extract_feat(tensors['input'].float())
        for ours, expected in zip(feats[:3], tensors['features'][:3]):
            torch.testing.assert_close(ours, expected.float(), rtol=1e-4,
                                       atol=1e-4)
