"""iTPNPixelHead: shapes on any grid, position tables, MAE loss."""
import pytest
import torch

from mmitpn.models.heads import iTPNPixelHead
from mmitpn.models.utils import build_2d_sincos_pos_embed, random_masking
from mmitpn.registry import MODELS

TINY = dict(in_channels=16, embed_dims=32, depth=1, num_heads=2,
            patch_size=8, img_size=32)


def _levels(batch, kept, channels=16):
    """Visible-patch pyramid levels at strides p/4, p/2, p (finest first)."""
    return [torch.randn(batch, kept, s, s, channels) for s in (4, 2, 1)]


def test_forward_on_a_non_square_grid_other_than_the_built_one():
    head = MODELS.build(dict(type='iTPNPixelHead', **TINY)).eval()
    grid = (3, 5)
    ids_keep, ids_restore, mask = random_masking(torch.rand(2, 15), 0.6)
    pred = head(_levels(2, ids_keep.shape[1]), ids_restore, grid)
    assert pred.shape == (2, 15, 8 * 8 * 3)
    loss = head.loss(pred, torch.randn(2, 3, 24, 40), mask)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_masked_patches_see_only_mask_token_and_position():
    head = iTPNPixelHead(**TINY).eval()
    ids_keep, ids_restore, mask = random_masking(torch.rand(1, 16), 0.75)
    feats = _levels(1, 4)
    # The decoder input of masked patches does not depend on the features.
    captured = []
    hook = head.blocks[0].register_forward_pre_hook(
        lambda m, args: captured.append(args[0]))
    head(feats, ids_restore, (4, 4))
    head(_levels(1, 4), ids_restore, (4, 4))
    hook.remove()
    masked = mask[0].bool()
    assert torch.equal(captured[0][0, masked], captured[1][0, masked])
    assert not torch.allclose(captured[0][0, ~masked], captured[1][0, ~masked])
    expected = 3 * head.mask_token[0, 0] + head.pos_embed[0, masked]
    torch.testing.assert_close(captured[0][0, masked], expected)


def test_position_table():
    head = iTPNPixelHead(**TINY)
    assert 'pos_embed' not in head.state_dict()
    torch.testing.assert_close(head.position_table((3, 5)),
                               build_2d_sincos_pos_embed(32, (3, 5)))

    persistent = iTPNPixelHead(**TINY, persistent_pos_embed=True)
    assert persistent.state_dict()['pos_embed'].shape == (1, 16, 32)
    assert persistent.position_table((3, 5)).shape == (1, 15, 32)


def test_levels_in_the_wrong_order_are_refused():
    head = iTPNPixelHead(**TINY)
    _, ids_restore, _ = random_masking(torch.rand(1, 16), 0.75)
    with pytest.raises(ValueError, match='increasing stride'):
        head(_levels(1, 4)[::-1], ids_restore, (4, 4))


def test_patchify_order_and_norm_pix_loss():
    head = iTPNPixelHead(**TINY)
    images = torch.randn(2, 3, 16, 24)
    patches = head.patchify(images)
    assert patches.shape == (2, 6, 8 * 8 * 3)
    # Patch 4 is row 1, col 1; values ordered (p, q, c).
    torch.testing.assert_close(
        patches[1, 4], images[1, :, 8:16, 8:16].permute(1, 2, 0).flatten())

    pred = torch.randn(2, 6, 192)
    mask = torch.tensor([[1., 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0]])
    target = (patches - patches.mean(-1, keepdim=True)) / (
        patches.var(-1, keepdim=True) + 1e-6)**.5
    expected = ((pred - target)**2).mean(-1)[mask.bool()].mean()
    torch.testing.assert_close(head.loss(pred, images, mask), expected)
    # Visible patches do not count.
    pred[~mask.bool()] += 10
    torch.testing.assert_close(head.loss(pred, images, mask), expected)
