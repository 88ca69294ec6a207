"""Tests of the iTPN HiViT backbone (tiny archs, CPU)."""
import os.path as osp
import re

import pytest
import torch
import torch.nn as nn

from mmitpn.models import GlobalAvgPoolNorm, iTPNHiViT, iTPNPyramid
from mmitpn.models.utils import (random_masking, resize_pos_embed,
                                 resize_rel_pos_table)

TINY = dict(embed_dims=64, stem_depths=(1, 2), depth=2, num_heads=2)
PYRAMID = dict(in_channels=(16, 32, 64), out_channels=32, fpn_depth=1)


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(arch=TINY, img_size=64)
    cfg.update(kwargs)
    model = iTPNHiViT(**cfg).eval()
    for blk in model.blocks:  # zero-initialised tables would hide bugs
        if blk.attn.relative_position_bias_table is not None:
            nn.init.normal_(blk.attn.relative_position_bias_table)
    return model


def test_nchw_outputs_non_square_abs_and_rel_pos():
    model = _model(use_rel_pos_bias=True)
    outs = model(torch.randn(2, 3, 80, 112))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 20, 28), (2, 32, 10, 14),
                                              (2, 64, 5, 7)]
    outs = model(torch.randn(1, 3, 320, 480))
    assert [tuple(o.shape[-2:]) for o in outs] == [(80, 120), (40, 60),
                                                   (20, 30)]
    small = _model(patch_size=8, img_size=32, use_rel_pos_bias=True,
                   out_indices=(2, 0))
    outs = small(torch.randn(1, 3, 24, 40))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 3, 5), (1, 16, 12, 20)]
    assert small.patch_embed.proj.kernel_size == (2, 2)


def test_nchw_maps_are_official_layout_of_tokens():
    model = _model()
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        (f1, f2, f3), _ = model.forward_tokens(x)
        m1, m2, m3 = model(x)
    # patch (row 1, col 3) of the 3x5 grid, sub-token (2, 1) at stride 4
    torch.testing.assert_close(m1[0, :, 4 + 2, 12 + 1], f1[0, 8, 2, 1])
    torch.testing.assert_close(m2[0, :, 2 + 1, 6 + 0], f2[0, 8, 1, 0])
    torch.testing.assert_close(m3[0, :, 1, 3], f3[0, 8, 0, 0])


def test_mae_dropping_is_exact_for_stem_stages():
    model = _model(use_rel_pos_bias=True)
    x = torch.randn(2, 3, 64, 96)
    ids_keep, _, _ = random_masking(torch.rand(2, 24), 0.75)
    with torch.no_grad():
        full, _ = model.forward_tokens(x)
        kept, blocks = model.forward_tokens(
            x, ids_keep=ids_keep, return_block_indices=(0, -1))
    for f, k in zip(full[:2], kept[:2]):
        ref = f.gather(1, ids_keep[:, :, None, None, None].expand(
            -1, -1, *f.shape[2:]))
        torch.testing.assert_close(k, ref, rtol=0, atol=1e-6)
    assert kept[2].shape == (2, 6, 1, 1, 64)
    assert [tuple(b.shape) for b in blocks] == [(2, 6, 64), (2, 6, 64)]
    torch.testing.assert_close(blocks[1], kept[2].flatten(1, 3))


def _beit_outputs(model, neck, x, mask):
    with torch.no_grad():
        feats, _ = model.forward_tokens(x, mask=mask)
        return feats + neck(feats)


def test_beit_mask_blocks_masked_pixels_everywhere():
    model = _model(use_mask_token=True, use_rel_pos_bias=True)
    torch.manual_seed(1)
    neck = iTPNPyramid(**PYRAMID).eval()
    x = torch.randn(2, 3, 48, 64)  # 3x4 grid
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, [1, 6, 7]] = True
    ref = _beit_outputs(model, neck, x, mask)

    x_masked = x.clone()
    x_masked[:, :, 16:32, 32:64] = torch.randn(2, 3, 16, 32)  # patches 6, 7
    x_masked[:, :, 0:16, 16:32] = 100.  # patch 1
    for a, b in zip(ref, _beit_outputs(model, neck, x_masked, mask)):
        assert torch.equal(a, b)

    x_visible = x.clone()
    x_visible[:, :, 0:16, 0:16] += 1.  # patch 0
    for a, b in zip(ref, _beit_outputs(model, neck, x_visible, mask)):
        assert not torch.equal(a, b)


def test_beit_mask_replaces_tokens():
    model = _model(use_mask_token=True, use_abs_pos_embed=False)
    x = torch.randn(1, 3, 32, 32)
    mask = torch.tensor([[True, False, False, True]])
    with torch.no_grad():
        (f1, _, _), _ = model.forward_tokens(x, mask=mask)
        # the stage-1 block sees stem_mask_token at every sub-token
        stem = model.stem_mask_token.expand(1, 1, 4, 4, 16)
        torch.testing.assert_close(f1[:, 0:1], model.stage1[0](stem))


def test_two_archs_in_one_process():
    a = _model(use_rel_pos_bias=True, img_size=64)
    b = _model(arch=dict(TINY, embed_dims=32, depth=1), img_size=96,
               use_rel_pos_bias=True)
    x = torch.randn(1, 3, 64, 96)
    for _ in range(2):
        assert a(x)[2].shape == (1, 64, 4, 6)
        assert b(x)[2].shape == (1, 32, 4, 6)
    zoo = iTPNHiViT('tiny', img_size=32, out_indices=(2, ))
    assert zoo(torch.randn(1, 3, 32, 32))[0].shape == (1, 192, 2, 2)


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3])
def test_frozen_stages(frozen_stages):
    model = _model(frozen_stages=frozen_stages, use_mask_token=True,
                   use_rel_pos_bias=True)
    model.train()
    groups = [('patch_embed', 'stem_mask_token'), ('stage1', 'merge1'),
              ('stage2', 'merge2'), ('blocks', 'pos_embed', 'mask_token')]
    frozen_prefixes = tuple(p for g in groups[:frozen_stages + 1] for p in g)
    for name, param in model.named_parameters():
        frozen = name.split('.')[0] in frozen_prefixes
        assert param.requires_grad != frozen, name
    for name, module in model.named_modules():
        if name:
            frozen = name.split('.')[0] in frozen_prefixes
            assert module.training != frozen, name


def test_with_cp_matches_plain_gradients():
    plain = _model(use_rel_pos_bias=True)
    cp = _model(use_rel_pos_bias=True, with_cp=True)
    x = torch.randn(2, 3, 32, 48)
    grads = []
    for model in (plain, cp):
        model.train()
        model.zero_grad()
        sum(o.square().mean() for o in model(x)).backward()
        grads.append([p.grad for p in model.parameters()])
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2)


def _parse_official_table(path, section):
    rows, active = [], False
    for line in open(path):
        if line.startswith('====='):
            active = line.strip() == f'===== {section}'
        elif active and line.strip().startswith('('):
            name, layer_id, scale = re.match(
                r"\s*\('([^']+)', (\d+), ([0-9.e-]+),", line).groups()
            rows.append((name, int(layer_id), float(scale)))
    return rows


def _official_to_ours(name, s1, s2):
    if name == 'absolute_pos_embed':
        return 'backbone.pos_embed'
    if name == 'patch_embed':
        return 'backbone.patch_embed.'
    if name == 'fc_norm':
        return 'neck.norm.'
    if name == 'head':
        return 'head.fc.'
    k = int(name.split('.')[1])
    if k < s1:
        return f'backbone.stage1.{k}.'
    if k == s1:
        return 'backbone.merge1.'
    if k <= s1 + s2:
        return f'backbone.stage2.{k - s1 - 1}.'
    if k == s1 + s2 + 1:
        return 'backbone.merge2.'
    return f'backbone.blocks.{k - s1 - s2 - 2}.'


@pytest.mark.parametrize('arch,section,decay', [
    ('base', 'cls_base_ld0.60', 0.60),
    ('large', 'cls_large_ld0.55', 0.55),
])
def test_layer_depth_matches_official_table(official_ref_dir, arch, section,
                                            decay):
    with torch.device('meta'):
        backbone = iTPNHiViT(arch, use_rel_pos_bias=True)
    s1, s2 = backbone.stem_depths
    names = ['backbone.' + n for n, _ in backbone.named_parameters()]
    names += ['neck.norm.weight', 'neck.norm.bias', 'head.fc.weight']
    rows = _parse_official_table(
        osp.join(official_ref_dir, 'layer_decay_tables.txt'), section)
    assert rows
    num_layers = backbone.num_layers
    assert num_layers == {'base': 31, 'large': 45}[arch]
    covered = set()
    for official, layer_id, _ in rows:
        prefix = _official_to_ours(official, s1, s2)
        matched = [n for n in names if n.startswith(prefix)]
        assert matched, official
        for n in matched:
            assert backbone.get_layer_depth(n, 'backbone.') == (layer_id,
                                                                num_layers), n
        covered.update(matched)
    assert covered == set(names)
    # the official lr scale, renormalised to a 12-layer ViT
    ld = decay**(13 / num_layers)
    for official, layer_id, scale in rows:
        assert round(ld**(num_layers - layer_id), 5) == scale, official


def _classifier_params(arch):
    with torch.device('meta'):
        backbone = iTPNHiViT(arch, use_rel_pos_bias=True)
        C = backbone.embed_dims
        cls = nn.ModuleList(
            [backbone, GlobalAvgPoolNorm(C),
             nn.Linear(C, 1000)])
    return sum(p.numel() for p in cls.parameters())


def test_param_counts_match_official():
    # official totals (NOTES 1.6, param_counts.json): 78.558 M / 288.494 M
    assert _classifier_params('base') == 78557992
    assert _classifier_params('large') == 288493576


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='base'):
        iTPNHiViT('huge')
    with pytest.raises(ValueError, match='num_heads'):
        iTPNHiViT(dict(embed_dims=64, stem_depths=(1, 1), depth=1))
    with pytest.raises(ValueError, match='225'):
        iTPNHiViT(TINY, img_size=225)
    with pytest.raises(ValueError, match='out_indices'):
        iTPNHiViT(TINY, img_size=64, out_indices=(3, ))
    with pytest.raises(ValueError, match='inner_patches'):
        iTPNHiViT(TINY, img_size=64, inner_patches=2)
    model = _model(use_mask_token=True)
    with pytest.raises(ValueError, match='100x96.*16'):
        model(torch.randn(1, 3, 100, 96))
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match='exclusive'):
        model.forward_tokens(
            x, ids_keep=torch.zeros(1, 1, dtype=torch.long),
            mask=torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='use_mask_token'):
        _model().forward_tokens(x, mask=torch.zeros(1, 4, dtype=torch.bool))
    m = iTPNHiViT(TINY, img_size=64, out_indices=[2, 0])
    assert m.out_indices == (2, 0)
    assert iTPNHiViT.__init__.__defaults__ is not None and all(
        not isinstance(d, (list, dict, set))
        for d in iTPNHiViT.__init__.__defaults__)


def test_load_resizes_position_tables_of_other_sizes():
    src = _model(use_rel_pos_bias=True, img_size=96)  # 6x6 grid
    dst = _model(use_rel_pos_bias=True, img_size=64)  # 4x4 grid
    state = src.state_dict()
    dst.load_state_dict(state, strict=True)
    torch.testing.assert_close(
        dst.pos_embed, resize_pos_embed(src.pos_embed, (6, 6), (4, 4)))
    torch.testing.assert_close(
        dst.blocks[1].attn.relative_position_bias_table,
        resize_rel_pos_table(src.blocks[1].attn.relative_position_bias_table,
                             (6, 6), (4, 4)))
    assert dst(torch.randn(1, 3, 64, 64))[2].shape == (1, 64, 4, 4)
