# iTPN-B pre-trained with a CLIP-B/16 teacher (800 epochs) + UPerNet on
# ADE20K, paper Table 4: 54.7 mIoU. Official recipe (reference NOTES §5):
# drop path 0.2, layer scale 0.1. CLIP pre-training has fpn_depth 1, so the
# second fusion blocks (neck.fuse_s8.1, neck.fuse_s4.1) start from scratch.
_base_ = [
    '../_base_/models/upernet_itpn_hivit-base-p16.py',
    '../_base_/datasets/ade20k_bs2_512x512.py',
    '../_base_/schedules/itpn-seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]

# See the pixel iTPN-B config for how to point these at your checkpoint.
checkpoint = 'checkpoints/itpn-clip-b_hivit-base-p16_800e_in1k.pth'

model = dict(
    backbone=dict(
        drop_path_rate=0.2,
        layer_scale_init_value=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint=checkpoint,
            prefix='neck.',
            allow_missing=['fuse_s8.1.*', 'fuse_s4.1.*'])))
