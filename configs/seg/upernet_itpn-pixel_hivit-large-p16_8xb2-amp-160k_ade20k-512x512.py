# iTPN-L pre-trained with pixel MIM (1600 epochs) + UPerNet on ADE20K,
# paper Table 4: 56.1 mIoU. Official recipe (reference NOTES §5): drop path
# 0.2, layer decay 0.95.
_base_ = [
    '../_base_/models/upernet_itpn_hivit-large-p16.py',
    '../_base_/datasets/ade20k_bs2_512x512.py',
    '../_base_/schedules/itpn-seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]

# See the pixel iTPN-B config for how to point these at your checkpoint.
checkpoint = 'checkpoints/itpn-pixel_hivit-large-p16_1600e_in1k.pth'

model = dict(
    backbone=dict(
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint=checkpoint,
            prefix='backbone.',
            # Pixel pre-training has no relative position tables: these
            # start at zero (no bias), as in the official fine-tuning.
            allow_missing=['blocks.*.attn.relative_position_bias_table'])),
    neck=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='neck.')))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
