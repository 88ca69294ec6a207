"""UPerNet with iTPN from the ADE20K configs: structure, logits, loading."""
import copy
import functools
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import save_checkpoint
from torch.nn import SyncBatchNorm
from torch.nn.modules.batchnorm import _BatchNorm

from mmitpn.models.utils import resize_pos_embed, resize_rel_pos_table
from mmitpn.registry import MODELS as MMITPN_MODELS
from mmitpn.tools.official_converter import (convert_official_state_dict,
                                             detect_layout)
from official_keys import fake_state_dict, read_key_list

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIGS = {
    'pixel-b': 'upernet_itpn-pixel_hivit-base-p16_8xb2-amp-160k_'
    'ade20k-512x512.py',
    'clip-b': 'upernet_itpn-clip-b_hivit-base-p16_8xb2-amp-160k_'
    'ade20k-512x512.py',
    'pixel-l': 'upernet_itpn-pixel_hivit-large-p16_8xb2-amp-160k_'
    'ade20k-512x512.py',
    'clip-l': 'upernet_itpn-clip-l_hivit-large-p16_8xb2-amp-160k_'
    'ade20k-512x512.py',
}
TINY_CONFIG = 'upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py'
# Official values (reference NOTES §5): level channels, drop path, layer
# scale, layer decay.
EXPECTED = {
    'pixel-b': ([384, 512, 768, 768], 0.1, 0., 0.9),
    'clip-b': ([384, 512, 768, 768], 0.2, 0.1, 0.9),
    'pixel-l': ([448, 640, 1024, 1024], 0.2, 0., 0.95),
    'clip-l': ([448, 640, 1024, 1024], 0.2, 0.1, 0.95),
}


def load_tool(path):
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location(osp.basename(path)[:-3],
                                   osp.join(REPO, path))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'seg', name))


def build_segmentor(model_cfg):
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(model_cfg)


def tiny_cfg(name='pixel-b', embed_dims=64, num_heads=2, stem_depths=(1, 1),
             depth=2, img_size=512, checkpoint=None):
    """The real config with a small backbone and narrow heads (for speed);
    everything else (pyramid options, 150 classes, slide test) as is."""
    cfg = load_config(SEG_CONFIGS[name])
    dims = (embed_dims // 4, embed_dims // 2, embed_dims)
    levels = [32 + c for c in dims] + [32 + embed_dims]
    init = {
        prefix: dict(type='Pretrained', checkpoint=checkpoint, prefix=prefix)
        if checkpoint else None
        for prefix in ('backbone.', 'neck.')
    }
    cfg.merge_from_dict(dict(model=dict(
        backbone=dict(img_size=img_size, init_cfg=init['backbone.']),
        neck=dict(in_channels=dims, out_channels=32,
                  init_cfg=init['neck.']),
        decode_head=dict(in_channels=levels, channels=32),
        auxiliary_head=dict(in_channels=levels[2], channels=16))))
    cfg.model.backbone.arch = dict(embed_dims=embed_dims,
                                   stem_depths=stem_depths, depth=depth,
                                   num_heads=num_heads)
    return cfg


@pytest.mark.parametrize('name', list(SEG_CONFIGS))
def test_ade20k_configs_follow_the_official_recipe(name, monkeypatch):
    levels, drop_path, layer_scale, decay = EXPECTED[name]
    cfg = load_config(SEG_CONFIGS[name])
    model = cfg.model
    assert cfg.default_scope == 'mmseg'
    assert model.type == 'EncoderDecoder'
    assert model.backbone.type == 'mmitpn.iTPNHiViT'
    assert model.backbone.img_size == (512, 512)
    assert model.backbone.use_rel_pos_bias
    assert model.backbone.drop_path_rate == drop_path
    assert model.backbone.layer_scale_init_value == layer_scale
    neck = model.neck
    assert neck.type == 'mmitpn.iTPNPyramid'
    assert (neck.fpn_depth, neck.num_outs, neck.extra_pool,
            neck.concat_inputs) == (2, 4, 'max', True)
    for part, prefix in ((model.backbone, 'backbone.'), (neck, 'neck.')):
        assert part.init_cfg.type == 'Pretrained'
        assert part.init_cfg.prefix == prefix
        assert part.init_cfg.checkpoint == cfg.checkpoint
    assert model.decode_head.type == 'UPerHead'
    assert model.decode_head.in_channels == levels
    assert model.decode_head.channels == 768
    assert model.decode_head.num_classes == 150
    assert model.decode_head.norm_cfg.type == 'SyncBN'
    assert model.auxiliary_head.type == 'FCNHead'
    assert model.auxiliary_head.in_index == 2
    assert model.auxiliary_head.in_channels == levels[2]
    assert model.auxiliary_head.loss_decode.loss_weight == 0.4
    assert model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))

    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper'  # --amp switches it
    assert optim.constructor == 'mmitpn.iTPNLayerDecayOptimWrapperConstructor'
    assert optim.optimizer == dict(
        type='AdamW', lr=3e-5, betas=(0.9, 0.999), weight_decay=0.05,
        fused=True)
    assert optim.paramwise_cfg == dict(
        layer_decay_rate=decay, decay_rescale_depth=12)
    # 1500 warmup iterations, then poly to 0 at the end of the 160k run.
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.warmup, warmup.start_factor) == (
        'mmitpn.LinearWarmupLR', 1500, 1e-6)
    assert (poly.type, poly.warmup, poly.power, poly.eta_min) == (
        'mmitpn.PolyAfterWarmupLR', 1500, 1.0, 0.0)
    assert 'end' not in poly
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    crop = [t for t in cfg.train_pipeline if t.type == 'RandomCrop'][0]
    assert crop.crop_size == (512, 512)
    assert cfg.test_evaluator.type == 'IoUMetric'

    # The heads' input widths are the pyramid's actual output widths.
    monkeypatch.setattr(torch, 'linspace',
                        functools.partial(torch.linspace, device='cpu'))
    with torch.device('meta'):
        segmentor = build_segmentor(model)
    assert list(segmentor.neck.out_channels_per_level) == levels
    depth = {'b': 24, 'l': 40}[name[-1]]
    assert segmentor.backbone.depth == depth


@pytest.fixture(scope='module')
def tiny_segmentor():
    torch.manual_seed(0)
    return revert_sync_batchnorm(build_segmentor(tiny_cfg().model)).eval()


def _test_batch(height, width):
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(
        img_shape=(height, width), ori_shape=(height, width)))
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    return dict(inputs=[image], data_samples=[sample])


@pytest.mark.parametrize('height,width,windows', [
    (512, 512, 1),
    (500, 680, 2),  # padded to 512x688 for the patch size, two windows
])
def test_slide_inference_gives_150_class_logits(tiny_segmentor, height,
                                                width, windows, monkeypatch):
    model = tiny_segmentor
    crops = []
    encode_decode = model.encode_decode
    monkeypatch.setattr(
        model, 'encode_decode',
        lambda x, metas: crops.append(tuple(x.shape[-2:])) or
        encode_decode(x, metas))
    with torch.no_grad():
        sample, = model.test_step(_test_batch(height, width))
    assert sample.seg_logits.data.shape == (150, height, width)
    assert sample.pred_sem_seg.data.shape == (1, height, width)
    assert sample.seg_logits.data.isfinite().all()
    assert crops == [(512, 512)] * windows


def test_decode_head_logits_and_levels_non_square(tiny_segmentor):
    x = torch.randn(1, 3, 320, 480)
    with torch.no_grad():
        levels = tiny_segmentor.extract_feat(x)
        logits = tiny_segmentor(x, mode='tensor')
    assert [tuple(f.shape) for f in levels] == [(1, 48, 80, 120),
                                                (1, 64, 40, 60),
                                                (1, 96, 20, 30),
                                                (1, 96, 10, 15)]
    assert logits.shape == (1, 150, 80, 120)


def test_training_losses_reach_backbone_and_neck():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    model = revert_sync_batchnorm(build_segmentor(tiny_cfg().model)).train()
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 96),
                                             pad_shape=(64, 96)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 64, 96)))
        samples.append(sample)
    losses = model.loss(torch.randn(2, 3, 64, 96), samples)
    assert set(losses) >= {'decode.loss_ce', 'aux.loss_ce'}
    total = losses['decode.loss_ce'] + losses['aux.loss_ce']
    # Chance level of a 150-way cross entropy, aux weighted by 0.4.
    assert total.item() == pytest.approx(1.4 * torch.log(
        torch.tensor(150.)).item(), rel=0.3)
    total.backward()
    for part in (model.backbone.blocks[-1], model.neck.out_blocks[0]):
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in part.parameters())


@pytest.mark.parametrize('name', ['pixel-b', 'clip-l'])
def test_layer_decay_from_config(name):
    """Patch embedding at rate**13 (12-layer rescaling), every block below
    1, pyramid and heads at the full lr."""
    decay = EXPECTED[name][3]
    cfg = tiny_cfg(name)
    model = build_segmentor(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    scales = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            scales[id(p)] = group['lr'] / 3e-5
    named = {n: scales[id(p)] for n, p in model.named_parameters()}
    assert named['backbone.patch_embed.proj.weight'] == pytest.approx(
        decay**13)
    assert named['backbone.blocks.1.mlp.fc1.weight'] == pytest.approx(
        decay**(13 / model.backbone.num_layers))
    assert all(s < 1 for n, s in named.items() if n.startswith('backbone.'))
    assert all(s == pytest.approx(1.) for n, s in named.items()
               if not n.startswith('backbone.'))


TINY_ARCH = dict(embed_dims=64, stem_depths=(1, 1), depth=2, num_heads=2)


def _random_values(state):
    torch.manual_seed(1)
    return {k: torch.randn_like(v) if v.is_floating_point() else v
            for k, v in state.items()}


def _pixel_pretraining_state():
    """A tiny pixel pre-training model (no relative position bias, as the
    official pixel pre-training), 64 px input: 4x4 patch grid."""
    return MMITPN_MODELS.build(dict(
        type='iTPN',
        backbone=dict(type='iTPNHiViT', arch=TINY_ARCH, img_size=64),
        neck=dict(type='iTPNPyramid', in_channels=(16, 32, 64),
                  out_channels=32, fpn_depth=2),
        head=dict(type='iTPNPixelHead', in_channels=32, embed_dims=32,
                  depth=1, num_heads=2, img_size=64))).state_dict()


def _clip_pretraining_state():
    """The parts of a tiny CLIP pre-training model that matter here: a
    backbone with relative position bias, layer scale and mask tokens, a
    pyramid with fpn_depth 1, and head weights."""
    backbone = MMITPN_MODELS.build(dict(
        type='iTPNHiViT', arch=TINY_ARCH, img_size=64, use_rel_pos_bias=True,
        layer_scale_init_value=0.1, use_mask_token=True))
    neck = MMITPN_MODELS.build(dict(
        type='iTPNPyramid', in_channels=(16, 32, 64), out_channels=32,
        fpn_depth=1))
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({f'neck.{k}': v for k, v in neck.state_dict().items()})
    state['mfm_head.lm_head.weight'] = torch.zeros(8, 32)
    return state


@pytest.mark.parametrize('kind', ['pixel', 'clip'])
def test_backbone_and_neck_load_from_pretraining_checkpoint(tmp_path, kind):
    """A runner checkpoint of pre-training fills backbone and pyramid
    (tensors equal, position tables resized to the 512-input grid); the
    loading report names what stayed at its initialisation."""
    path = str(tmp_path / 'pretrain.pth')
    state = _random_values(_pixel_pretraining_state() if kind == 'pixel'
                           else _clip_pretraining_state())
    save_checkpoint({'state_dict': state, 'meta': dict(iter=1)}, path)
    name = 'pixel-b' if kind == 'pixel' else 'clip-b'
    model = build_segmentor(tiny_cfg(name, checkpoint=path).model)
    model.init_weights()
    loaded = model.state_dict()

    for part in ('backbone', 'neck'):
        ours = {k for k in loaded if k.startswith(part + '.')}
        given = {k for k in state if k.startswith(part + '.')}
        report = getattr(model, part).pretrained_report
        assert report.checkpoint == path and report.prefix == part + '.'
        assert {f'{part}.{k}' for k in report.loaded} == ours & given
        assert {f'{part}.{k}' for k in report.missing} == ours - given
        assert {f'{part}.{k}' for k in report.unused} == given - ours
        for key in ours & given:
            value = state[key]
            if key.endswith('pos_embed'):  # 4x4 grid -> 32x32 (512 input)
                value = resize_pos_embed(value, (4, 4), (32, 32))
            elif key.endswith('relative_position_bias_table'):
                assert value.shape == (7 * 7, 2)
                value = resize_rel_pos_table(value, (4, 4), (32, 32))
                assert value.shape == (63 * 63, 2)
            assert torch.equal(loaded[key], value), key

    backbone = model.backbone.pretrained_report
    neck = model.neck.pretrained_report
    if kind == 'pixel':
        # Pixel pre-training has no relative position tables.
        assert sorted(backbone.missing) == [
            f'blocks.{i}.attn.relative_position_bias_table' for i in (0, 1)]
        assert not backbone.unused and not neck.missing and not neck.unused
    else:
        assert not backbone.missing
        assert sorted(backbone.unused) == ['mask_token', 'stem_mask_token']
        # fpn_depth 1 in pre-training, 2 in seg.
        assert {k.split('.')[0] + '.' + k.split('.')[1]
                for k in neck.missing} == {'fuse_s8.1', 'fuse_s4.1'}
        assert not neck.unused


def test_checkpoint_of_another_width_is_refused(tmp_path):
    from mmitpn.models.utils import CheckpointError
    path = str(tmp_path / 'pretrain.pth')
    save_checkpoint({'state_dict': _pixel_pretraining_state()}, path)
    cfg = tiny_cfg(embed_dims=128, checkpoint=path)
    model = build_segmentor(cfg.model)
    with pytest.raises(CheckpointError, match='other shapes'):
        model.init_weights()


def _tiny_official_seg_state_dict(key_file):
    """The official seg backbone's keys (all widths as released) with the
    first block of each stem stage and two attention blocks, random
    values."""
    shapes = read_key_list(key_file)
    layout = detect_layout(shapes)
    keep = [layout.stage1[0], layout.merge1, layout.stage2[0],
            layout.merge2] + layout.attention[:2]
    renumber = {old: new for new, old in enumerate(keep)}
    tiny = {}
    for key, shape in shapes.items():
        m = re.fullmatch(r'blocks\.(\d+)\.(.+)', key)
        if m is None:
            tiny[key] = shape
        elif int(m.group(1)) in renumber:
            tiny[f'blocks.{renumber[int(m.group(1))]}.{m.group(2)}'] = shape
    torch.manual_seed(2)
    official = fake_state_dict(tiny)
    return {k: torch.randn(v.shape) if v.is_floating_point() else v
            for k, v in official.items()}


@pytest.mark.parametrize('key_file,name', [
    ('keys_seg_pixel_base.txt', 'pixel-b'),
    ('keys_seg_clip_large.txt', 'clip-l'),
])
def test_official_seg_checkpoint_converts_and_loads(official_ref_dir,
                                                    tmp_path, key_file,
                                                    name):
    convert = load_tool('tools/model_converters/official2mmitpn.py').main
    official = _tiny_official_seg_state_dict(
        osp.join(official_ref_dir, 'keys', key_file))
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mmitpn.pth')
    torch.save({'model': official}, src)
    assert convert([src, dst]) == 0
    converted, _ = convert_official_state_dict(official)

    embed_dims = official['absolute_pos_embed'].shape[-1]
    table = official['blocks.4.attn.relative_position_bias_table']
    assert table.shape[0] == 63 * 63  # the official 512-input grid
    # Built for 256 input: 16x16 grid, so the 63x63 tables get resized.
    cfg = tiny_cfg(name, embed_dims=embed_dims, num_heads=table.shape[1],
                   stem_depths=(1, 1), depth=2, img_size=256, checkpoint=dst)
    cfg.model.neck.out_channels = 256
    dims = (embed_dims // 4, embed_dims // 2, embed_dims)
    cfg.model.decode_head.in_channels = [256 + c for c in dims] + [
        256 + embed_dims]
    cfg.model.auxiliary_head.in_channels = 256 + embed_dims
    model = build_segmentor(cfg.model)
    model.init_weights()
    loaded = model.state_dict()

    ours = {k for k in loaded if k.startswith(('backbone.', 'neck.'))}
    assert set(converted) == ours
    for part in (model.backbone, model.neck):
        report = part.pretrained_report
        assert report.loaded and not report.missing and not report.unused
    for key, value in converted.items():
        if key == 'backbone.pos_embed':  # official 14x14 table
            value = resize_pos_embed(value, (14, 14), (16, 16))
        elif key.endswith('relative_position_bias_table'):
            value = resize_rel_pos_table(value, (32, 32), (16, 16))
            assert value.shape[0] == 31 * 31
        assert torch.equal(loaded[key], value), key
    # Layer scale of the CLIP models comes through.
    if name == 'clip-l':
        assert torch.equal(loaded['backbone.blocks.0.gamma1'],
                           official['blocks.4.gamma_1'])


def test_tiny_config_matches_the_dataset():
    from mmitpn.datasets.tiny_real_seg import CLASSES
    cfg = load_config(TINY_CONFIG)
    assert cfg.model.decode_head.num_classes == len(CLASSES)
    assert cfg.model.auxiliary_head.num_classes == len(CLASSES)
    assert cfg.train_dataloader.dataset.type == 'mmitpn.TinyRealSegDataset'
    model = revert_sync_batchnorm(build_segmentor(cfg.model)).eval()
    assert list(model.neck.out_channels_per_level) == \
        cfg.model.decode_head.in_channels
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 256, 256), mode='tensor')
    assert logits.shape == (1, len(CLASSES), 64, 64)


def test_sync_bn_config_trains_without_distributed(tmp_path):
    """The heads keep the official SyncBN; mmengine's runner turns it into
    BN outside distributed runs, so CPU training works."""
    from mmengine.runner import Runner
    cfg = tiny_cfg()
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    runner_cfg = copy.deepcopy(cfg)
    runner_cfg.work_dir = str(tmp_path)
    runner_cfg.train_dataloader = None
    runner_cfg.val_dataloader = runner_cfg.test_dataloader = None
    runner_cfg.train_cfg = runner_cfg.val_cfg = runner_cfg.test_cfg = None
    runner_cfg.optim_wrapper = runner_cfg.param_scheduler = None
    runner_cfg.val_evaluator = runner_cfg.test_evaluator = None
    runner = Runner.from_cfg(runner_cfg)
    norms = [m for m in runner.model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(isinstance(m, SyncBatchNorm) for m in norms)
