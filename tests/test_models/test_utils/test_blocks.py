"""Unit tests of the iTPN building blocks and position utilities."""
import pytest
import torch
import torch.nn.functional as F

from mmitpn.models.utils import (AttentionBlock, CMLPBlock, PatchMerge,
                                 PatchSplit, build_2d_sincos_pos_embed,
                                 nchw_to_tokens, random_masking,
                                 relative_position_index, resize_pos_embed,
                                 resize_rel_pos_table, tokens_to_nchw)


def test_patch_merge_official_order():
    torch.manual_seed(0)
    merge = PatchMerge(3)
    x = torch.randn(2, 5, 4, 4, 3)
    # official: cat of [0::2,0::2], [1::2,0::2], [0::2,1::2], [1::2,1::2]
    ref = torch.cat([
        x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :],
        x[..., 1::2, 1::2, :]
    ], dim=-1)
    ref = merge.reduction(merge.norm(ref))
    torch.testing.assert_close(merge(x), ref, rtol=0, atol=1e-6)
    assert merge(x).shape == (2, 5, 2, 2, 6)
    assert set(merge.state_dict()) == {
        'norm.weight', 'norm.bias', 'reduction.weight'
    }


def test_patch_split_official_order():
    torch.manual_seed(0)
    split = PatchSplit(6, 4)
    x = torch.randn(2, 3, 2, 2, 6)
    y = split(x)
    assert y.shape == (2, 3, 4, 4, 4)
    z = split.proj(split.norm(x))  # (..., 4 * out): group r * 2 + c
    for r in range(2):
        for c in range(2):
            g = r * 2 + c
            torch.testing.assert_close(
                y[:, :, r::2, c::2], z[..., g * 4:(g + 1) * 4])


def test_cmlp_block_is_per_token_and_keys():
    torch.manual_seed(0)
    blk = CMLPBlock(8, 3., layer_scale_init_value=0.1)
    assert set(blk.state_dict()) == {
        'gamma', 'norm.weight', 'norm.bias', 'mlp.fc1.weight', 'mlp.fc1.bias',
        'mlp.fc2.weight', 'mlp.fc2.bias'
    }
    assert blk.mlp.fc1.out_features == 24
    x = torch.randn(2, 3, 4, 4, 8)
    y = blk(x)
    x2 = x.clone()
    x2[0, 1, 2, 3] += 1.
    changed = (blk(x2) != y).any(-1)
    assert changed.sum() == 1 and changed[0, 1, 2, 3]
    assert 'gamma' not in CMLPBlock(8).state_dict()


def test_attention_block_keys_and_no_index_in_state_dict():
    blk = AttentionBlock(16, 2, rel_pos_grid=(3, 4),
                         layer_scale_init_value=0.1)
    keys = set(blk.state_dict())
    assert 'attn.relative_position_bias_table' in keys
    assert {'gamma1', 'gamma2', 'attn.qkv.bias', 'norm1.weight'} <= keys
    assert not any('index' in k for k in keys)
    assert blk.attn.relative_position_bias_table.shape == (5 * 7, 2)
    assert (blk.attn.relative_position_bias_table == 0).all()
    assert 'attn.relative_position_bias_table' not in AttentionBlock(
        16, 2).state_dict()


def _reference_attention(blk, x, bias):
    B, L, C = x.shape
    q, k, v = blk.attn.qkv(blk.norm1(x)).reshape(B, L, 3, 2, -1).permute(
        2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1)) * (C // 2)**-0.5 + bias
    y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, L, C)
    x = x + blk.attn.proj(y)
    return x + blk.mlp(blk.norm2(x))


def test_attention_rel_pos_bias_matches_reference_and_gather():
    torch.manual_seed(0)
    grid = (3, 4)
    blk = AttentionBlock(16, 2, rel_pos_grid=grid).eval()
    torch.nn.init.normal_(blk.attn.relative_position_bias_table)
    table = blk.attn.relative_position_bias_table
    x = torch.randn(2, 12, 16)
    # Swin bias by explicit offsets
    coords = [(i // 4, i % 4) for i in range(12)]
    ref = torch.empty(2, 12, 12)
    for a, (ra, ca) in enumerate(coords):
        for b, (rb, cb) in enumerate(coords):
            ref[:, a, b] = table[(ra - rb + 2) * 7 + (ca - cb + 3)]
    bias = blk.attn.rel_pos_bias(grid)
    torch.testing.assert_close(bias, ref[None])
    with torch.no_grad():
        torch.testing.assert_close(blk(x), _reference_attention(blk, x, ref))

    ids_keep = torch.stack([torch.randperm(12)[:5] for _ in range(2)])
    kept = blk.attn.rel_pos_bias(grid, ids_keep)
    assert kept.shape == (2, 2, 5, 5)
    for n in range(2):
        i = ids_keep[n]
        torch.testing.assert_close(kept[n], ref[:, i][:, :, i])
    xk = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, 16))
    with torch.no_grad():
        y = blk(xk, grid, ids_keep)
        for n in range(2):
            i = ids_keep[n]
            torch.testing.assert_close(
                y[n:n + 1],
                _reference_attention(blk, xk[n:n + 1], ref[:, i][:, :, i]))


def test_rel_pos_table_resized_for_other_grid():
    torch.manual_seed(0)
    blk = AttentionBlock(16, 2, rel_pos_grid=(3, 3)).eval()
    torch.nn.init.normal_(blk.attn.relative_position_bias_table)
    bias = blk.attn.rel_pos_bias((4, 6))
    assert bias.shape == (1, 2, 24, 24)
    table = resize_rel_pos_table(blk.attn.relative_position_bias_table,
                                 (3, 3), (4, 6))
    assert table.shape == (7 * 11, 2)
    assert blk(torch.randn(1, 24, 16), (4, 6)).shape == (1, 24, 16)
    index = relative_position_index((4, 6))
    assert index.shape == (24, 24) and index.max() == 7 * 11 - 1
    # cached: the same object per grid and device
    assert relative_position_index((4, 6)) is index


def test_resize_pos_embed_official_numerics():
    torch.manual_seed(0)
    pos = torch.randn(1, 14 * 14, 8)
    assert resize_pos_embed(pos, (14, 14), (14, 14)) is pos
    out = resize_pos_embed(pos, (14, 14), (10, 7))
    assert out.shape == (1, 70, 8)
    # the official interpolate_pos_encoding: scale (dst + 0.1) / 14
    ref = F.interpolate(
        pos.reshape(1, 14, 14, 8).permute(0, 3, 1, 2),
        scale_factor=(10.1 / 14, 7.1 / 14),
        mode='bicubic').permute(0, 2, 3, 1).reshape(1, -1, 8)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    forced = resize_pos_embed(pos, (14, 14), (14, 14), force=True)
    assert forced.shape == pos.shape and not torch.equal(forced, pos)


def test_sincos_matches_mae_convention():
    table = build_2d_sincos_pos_embed(16, (3, 5))
    assert table.shape == (1, 15, 16)
    # token (row 2, col 4): first half encodes the column, second the row
    tok = table[0, 2 * 5 + 4]
    omega = 1. / 10000**(torch.arange(4, dtype=torch.float64) / 4)
    ref = torch.cat([(4 * omega).sin(), (4 * omega).cos(),
                     (2 * omega).sin(), (2 * omega).cos()]).float()
    torch.testing.assert_close(tok, ref)


def test_random_masking_mae_convention():
    noise = torch.rand(3, 20)
    ids_keep, ids_restore, mask = random_masking(noise, 0.75)
    assert ids_keep.shape == (3, 5)
    assert torch.equal(ids_keep, noise.argsort(1)[:, :5])
    assert (mask.sum(1) == 15).all()
    assert (mask.gather(1, ids_keep) == 0).all()
    seq = torch.cat([ids_keep, noise.argsort(1)[:, 5:]], 1)
    assert torch.equal(seq.gather(1, ids_restore),
                       torch.arange(20).expand(3, -1))


def test_layout_round_trip():
    x = torch.randn(2, 6, 4, 4, 3)
    maps = tokens_to_nchw(x, (2, 3))
    assert maps.shape == (2, 3, 8, 12)
    # patch (1, 2) sub-token (3, 0) sits at pixel (1 * 4 + 3, 2 * 4 + 0)
    torch.testing.assert_close(maps[:, :, 7, 8], x[:, 5, 3, 0])
    assert torch.equal(nchw_to_tokens(maps, (2, 3)), x)
    with pytest.raises(ValueError):
        tokens_to_nchw(x[:, :5], (2, 3))


def test_switched_off_layer_scale_and_drop_path_are_identities():
    blk = AttentionBlock(16, 2)
    assert isinstance(blk.ls1, torch.nn.Identity)
    assert isinstance(blk.ls2, torch.nn.Identity)
    assert isinstance(blk.drop_path, torch.nn.Identity)
    on = AttentionBlock(16, 2, drop_path=0.1, layer_scale_init_value=0.5)
    assert type(on.drop_path).__name__ == 'DropPath'
    torch.testing.assert_close(on.ls1.gamma, torch.full((16, ), 0.5))
    assert isinstance(CMLPBlock(8).ls, torch.nn.Identity)


def test_switched_off_dropouts_are_identities():
    from mmitpn.models import iTPNHiViT
    off = iTPNHiViT(arch='nano', img_size=28, patch_size=4)
    dropouts = [m for m in off.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [] and isinstance(off.pos_drop, torch.nn.Identity)
    on = AttentionBlock(16, 2, proj_drop=0.1)
    assert on.attn.proj_drop.p == 0.1 and on.mlp.drop.p == 0.1
    assert isinstance(AttentionBlock(16, 2).mlp.drop, torch.nn.Identity)


def test_layer_scales_load_and_save_under_their_flat_keys():
    torch.manual_seed(0)
    src = AttentionBlock(16, 2, layer_scale_init_value=0.1)
    state = src.state_dict()
    state['gamma1'] = torch.arange(16.)
    dst = AttentionBlock(16, 2, layer_scale_init_value=0.1)
    dst.load_state_dict(state, strict=True)
    torch.testing.assert_close(dst.ls1.gamma, torch.arange(16.))
    assert dst.state_dict().keys() == src.state_dict().keys()
    # Nested, as in a backbone: the prefix is kept.
    outer = torch.nn.ModuleDict(dict(blk=dst))
    assert {'blk.gamma1', 'blk.gamma2'} <= set(outer.state_dict())
    assert not any('ls1' in k for k in outer.state_dict())


def test_mlp_layer_is_injectable():

    class ReluMlp(torch.nn.Module):

        def __init__(self, dim, hidden, drop=0.):
            super().__init__()
            self.fc1 = torch.nn.Linear(dim, hidden)
            self.fc2 = torch.nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))

    blk = CMLPBlock(8, 2., mlp_layer=ReluMlp)
    assert isinstance(blk.mlp, ReluMlp) and blk.mlp.fc1.out_features == 16
    x = torch.randn(3, 8)
    torch.testing.assert_close(
        blk(x), x + blk.mlp.fc2(F.relu(blk.mlp.fc1(blk.norm(x)))))
