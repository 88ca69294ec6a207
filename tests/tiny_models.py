"""Tiny model settings shared by tests of several folders."""
import copy

# A 64-wide HiViT: stage widths 16, 32, 64.
TINY_HIVIT = dict(embed_dims=64, stem_depths=(1, 1), depth=2, num_heads=2)

# A tiny open_clip ViT: 32 px, 8 px patches -> 4x4 tokens of width 24.
TINY_CLIP = dict(
    embed_dim=24,
    vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8,
                    head_width=16),
    text_cfg=dict(context_length=8, vocab_size=50, width=16, heads=2,
                  layers=1))


def tiny_ema_pretrain_cfg(img_size=32, patch_size=8):
    """Pixel MIM + EMA-MFM pre-training of a :data:`TINY_HIVIT`."""
    dims = (16, 32, 64)
    return copy.deepcopy(
        dict(
            type='iTPN',
            backbone=dict(type='iTPNHiViT', arch=TINY_HIVIT,
                          img_size=img_size, patch_size=patch_size),
            neck=dict(type='iTPNPyramid', in_channels=dims, out_channels=32,
                      fpn_depth=1),
            head=dict(type='iTPNPixelHead', in_channels=32, embed_dims=32,
                      depth=1, num_heads=2, img_size=img_size,
                      patch_size=patch_size),
            mfm_head=dict(type='iTPNMFMHead', in_channels=32,
                          out_channels=dims),
            teacher='ema'))
