# iTPN-B pre-trained with pixel MIM (1600 epochs) + UPerNet on ADE20K,
# paper Table 4: 53.5 mIoU. Official recipe (reference NOTES §5).
_base_ = [
    '../_base_/models/upernet_itpn_hivit-base-p16.py',
    '../_base_/datasets/ade20k_bs2_512x512.py',
    '../_base_/schedules/itpn-seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]

# An mmitpn pre-training checkpoint (runner checkpoint of configs/pretrain)
# or an official one converted with tools/model_converters/official2mmitpn.py.
# Override with --cfg-options model.backbone.init_cfg.checkpoint=PATH
# model.neck.init_cfg.checkpoint=PATH.
checkpoint = 'checkpoints/itpn-pixel_hivit-base-p16_1600e_in1k.pth'

model = dict(
    backbone=dict(
        drop_path_rate=0.1,
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
