# UPerNet on iTPN-B (HiViT 3-3-24, C=512) with the feature pyramid that iTPN
# pre-trains together with the backbone, as the official seg code builds it
# (reference NOTES §5): fpn_depth 2; each pyramid level (256 ch) concatenated
# with the backbone feature of the same stride; a stride-32 level max-pooled
# from stride 16; relative position bias on a 32x32 grid (512 input; tables
# of another grid, e.g. pre-training's 14x14, are resized when loaded).
# LayerNorm eps 1e-5 as in the official det/seg backbones.
_base_ = 'mmseg::_base_/models/upernet_beit.py'

backbone_dims = (128, 256, 512)  # stride 4, 8, 16
fpn_dim = 256
# Strides 4, 8, 16, 32: [384, 512, 768, 768].
level_channels = [fpn_dim + c for c in backbone_dims] + \
    [fpn_dim + backbone_dims[-1]]

model = dict(
    # Inputs whose sides are not multiples of the patch size are padded at
    # test time (the logits are cropped back).
    data_preprocessor=dict(
        size=(512, 512), test_cfg=dict(size_divisor=16)),
    backbone=dict(
        _delete_=True,
        type='mmitpn.iTPNHiViT',
        arch='base',
        img_size=(512, 512),
        patch_size=16,
        drop_path_rate=0.1,
        norm_eps=1e-5,
        use_abs_pos_embed=True,
        use_rel_pos_bias=True,
        layer_scale_init_value=0.,
        out_indices=(0, 1, 2)),
    neck=dict(
        _delete_=True,
        type='mmitpn.iTPNPyramid',
        in_channels=backbone_dims,
        out_channels=fpn_dim,
        fpn_depth=2,
        norm_eps=1e-5,
        num_outs=4,
        extra_pool='max',
        concat_inputs=True),
    decode_head=dict(
        in_channels=level_channels, channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=level_channels[2], num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
