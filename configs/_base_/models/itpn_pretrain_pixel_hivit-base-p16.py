# iTPN-B, pixel MIM: the released official recipe. HiViT-B (3-3-24, C=512),
# the feature pyramid (fpn_depth 2, 256 ch, C-MLP fusion) and an 8-block
# 512-d pixel decoder fed by all pyramid levels; 75% MAE-style random
# masking; norm-pixel MSE on masked patches. The position embedding starts
# as 2-D sin-cos and is trained; no relative position bias, no drop path.
model = dict(
    type='mmitpn.iTPN',
    backbone=dict(
        type='iTPNHiViT',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.,
        use_abs_pos_embed=True,
        use_rel_pos_bias=False),
    neck=dict(
        type='iTPNPyramid',
        in_channels=(128, 256, 512),
        out_channels=256,
        fpn_depth=2,
        fusion_block='cmlp'),  # 'conv3x3': the Table 6 ablation
    head=dict(
        type='iTPNPixelHead',
        in_channels=256,
        num_levels=3,
        embed_dims=512,
        depth=8,
        num_heads=16,
        patch_size=16,
        img_size=224,
        norm_pix=True),
    use_pyramid=True,  # False (with head.num_levels=1, in_channels=512): MAE
    mask_ratio=0.75,
    sincos_pos_embed=True)
