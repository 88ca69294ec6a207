# Linear probing of iTPN-B pre-trained with pixel supervision on ImageNet-1k
# (paper Table 3): the whole backbone frozen (frozen_stages=3, kept in eval
# mode), mean-pooled stage-3 features through a parameter-free BatchNorm
# (as MAE's probe) into a linear classifier; LARS, total batch 16384
# (8 GPUs x 2048), base lr 0.1, 90 epochs.
_base_ = [
    '../_base_/models/itpn_hivit-base-p16.py',
    '../_base_/datasets/imagenet_bs2048_itpn-linear.py',
    '../_base_/schedules/itpn_linear_lars.py',
    '../_base_/cls_runtime.py',
]

# The probe sees the features as pre-trained: no relative position bias
# (pixel pre-training has none), no drop path.
pretrained = 'work_dirs/itpn-pixel_hivit-base-p16_8xb512-amp-coslr-1600e_in1k/epoch_1600.pth'  # noqa: E501

model = dict(
    backbone=dict(
        use_rel_pos_bias=False,
        frozen_stages=3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint=pretrained,
            prefix='backbone.',
            # Pixel pre-training has no relative position tables: these
            # start at zero (no bias), as in the official fine-tuning.
            allow_missing=['blocks.*.attn.relative_position_bias_table'])),
    neck=dict(norm_cfg=dict(type='BN1d', affine=False, eps=1e-6)),
    head=dict(init_cfg=dict(type='TruncNormal', layer='Linear', std=0.01)))
