"""Tests of the iTPN pyramid neck and the classification neck."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmitpn.models import GlobalAvgPoolNorm, iTPNHiViT, iTPNPyramid
from mmitpn.models.utils import random_masking, tokens_to_nchw

TINY = dict(embed_dims=64, stem_depths=(1, 1), depth=1, num_heads=2)


def _setup(**neck_kwargs):
    torch.manual_seed(0)
    backbone = iTPNHiViT(TINY, img_size=64).eval()
    cfg = dict(in_channels=(16, 32, 64), out_channels=32, fpn_depth=2)
    cfg.update(neck_kwargs)
    return backbone, iTPNPyramid(**cfg).eval()


def test_keys():
    _, neck = _setup()
    prefixes = {k.split('.')[0] for k in neck.state_dict()}
    assert prefixes == {
        'top_proj', 'lateral_s8', 'upsample_s8', 'fuse_s8', 'lateral_s4',
        'upsample_s4', 'fuse_s4', 'out_blocks'
    }
    assert neck.upsample_s8.proj.in_features == 64
    assert neck.upsample_s8.proj.out_features == 4 * 32
    assert neck.lateral_s8.bias is None and neck.lateral_s4.bias is None
    assert len(neck.fuse_s8) == len(neck.fuse_s4) == 2
    assert len(neck.out_blocks) == 3
    same = iTPNPyramid((16, 32, 64), out_channels=64)
    assert isinstance(same.top_proj, nn.Identity)


def test_token_and_nchw_modes_agree():
    backbone, neck = _setup()
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        tokens, _ = backbone.forward_tokens(x)
        token_outs = neck(tokens)
        map_outs = neck(backbone(x))
    assert [tuple(t.shape) for t in token_outs] == [(2, 15, 4, 4, 32),
                                                    (2, 15, 2, 2, 32),
                                                    (2, 15, 1, 1, 32)]
    assert [tuple(m.shape) for m in map_outs] == [(2, 32, 12, 20),
                                                  (2, 32, 6, 10),
                                                  (2, 32, 3, 5)]
    for t, m in zip(token_outs, map_outs):
        torch.testing.assert_close(tokens_to_nchw(t, (3, 5)), m)


def test_runs_on_mae_kept_tokens_only():
    backbone, neck = _setup()
    x = torch.randn(2, 3, 64, 64)
    ids_keep, _, _ = random_masking(torch.rand(2, 16), 0.75)
    with torch.no_grad():
        outs = neck(backbone.forward_tokens(x, ids_keep=ids_keep)[0])
    assert [tuple(o.shape) for o in outs] == [(2, 4, 4, 4, 32),
                                              (2, 4, 2, 2, 32),
                                              (2, 4, 1, 1, 32)]


def test_top_down_formula():
    backbone, neck = _setup(fpn_depth=1)
    with torch.no_grad():
        (f1, f2, f3), _ = backbone.forward_tokens(torch.randn(1, 3, 32, 32))
        p4, p8, p16 = neck((f1, f2, f3))
        t8 = neck.fuse_s8(neck.upsample_s8(f3) + neck.lateral_s8(f2))
        t4 = neck.fuse_s4(neck.upsample_s4(t8) + neck.lateral_s4(f1))
        torch.testing.assert_close(p16, neck.out_blocks[2](neck.top_proj(f3)))
        torch.testing.assert_close(p8, neck.out_blocks[1](t8))
        torch.testing.assert_close(p4, neck.out_blocks[0](t4))


@pytest.mark.parametrize('extra_pool,pool', [('avg', F.avg_pool2d),
                                             ('max', F.max_pool2d)])
def test_extra_levels(extra_pool, pool):
    backbone, neck = _setup(num_outs=5, extra_pool=extra_pool)
    with torch.no_grad():
        outs = neck(backbone(torch.randn(1, 3, 80, 112)))
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 20, 28), (32, 10, 14),
                                                  (32, 5, 7), (32, 2, 3),
                                                  (32, 1, 1)]
    torch.testing.assert_close(outs[3], pool(outs[2], 2, 2))
    torch.testing.assert_close(outs[4], pool(outs[3], 2, 2))
    assert neck.out_channels_per_level == (32, ) * 5


def test_concat_inputs_like_official_seg():
    backbone, neck = _setup(num_outs=4, extra_pool='max', concat_inputs=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = backbone(x)
        outs = neck(feats)
    assert neck.out_channels_per_level == (48, 64, 96, 96)
    assert [o.shape[1] for o in outs] == [48, 64, 96, 96]
    for o, f in zip(outs, feats):
        assert torch.equal(o[:, 32:], f)


def test_bad_arguments():
    with pytest.raises(ValueError, match='num_outs'):
        iTPNPyramid(num_outs=6)
    with pytest.raises(ValueError, match='extra_pool'):
        iTPNPyramid(extra_pool='bilinear')
    with pytest.raises(ValueError, match='in_channels'):
        iTPNPyramid(in_channels=(128, 256))
    backbone, neck = _setup(num_outs=5)
    tokens, _ = backbone.forward_tokens(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='NCHW'):
        neck(tokens)


def test_global_avg_pool_norm():
    torch.manual_seed(0)
    neck = GlobalAvgPoolNorm(8)
    nn.init.normal_(neck.norm.weight)
    maps = (torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 5))
    (out, ) = neck(maps)
    ref = F.layer_norm(maps[1].mean((2, 3)), (8, ), neck.norm.weight,
                       neck.norm.bias, 1e-6)
    torch.testing.assert_close(out, ref)
    assert set(neck.state_dict()) == {'norm.weight', 'norm.bias'}
