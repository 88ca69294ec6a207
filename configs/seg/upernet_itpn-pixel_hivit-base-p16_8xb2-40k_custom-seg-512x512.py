# UPerNet on your own semantic-segmentation data set, described in
# configs/_base_/datasets/custom-seg_512x512.py: iTPN-B with backbone AND
# pyramid from a pixel pre-training and the ADE20K recipe (AdamW lr 3e-5 for
# 8 x 2 images, layer decay 0.9, 1500 warmup iterations, then poly) over
# 40k iterations; train_cfg.max_iters alone changes the length, the warmup
# and the decay follow. See docs/your_own_data.md.
_base_ = [
    '../_base_/models/upernet_itpn_hivit-base-p16.py',
    '../_base_/datasets/custom-seg_512x512.py',
    '../_base_/schedules/itpn-seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]

# A pre-training checkpoint of mmitpn (configs/pretrain, e.g. the image-folder
# config on your own images) or an official one converted by
# tools/model_converters/official2mmitpn.py. From scratch:
# --cfg-options model.backbone.init_cfg=None model.neck.init_cfg=None.
checkpoint = 'checkpoints/itpn-pixel_hivit-base-p16_1600e_in1k.pth'
num_classes = len(_base_.classes)

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
            type='Pretrained', checkpoint=checkpoint, prefix='neck.')),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))

train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
