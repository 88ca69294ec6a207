# iTPN-L pre-trained with a CLIP-L/14 teacher (300 epochs) + UPerNet on
# ADE20K, paper Table 4: 57.7 mIoU. Official recipe (reference NOTES §5):
# drop path 0.2, layer scale 0.1, layer decay 0.95. CLIP pre-training has
# fpn_depth 1, so neck.fuse_s8.1 and neck.fuse_s4.1 start from scratch.
_base_ = [
    '../_base_/models/upernet_itpn_hivit-large-p16.py',
    '../_base_/datasets/ade20k_bs2_512x512.py',
    '../_base_/schedules/itpn-seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]

# See the pixel iTPN-B config for how to point these at your checkpoint.
checkpoint = 'checkpoints/itpn-clip-l_hivit-large-p16_300e_in1k.pth'

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
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
