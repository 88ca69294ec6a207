# Mask R-CNN 1x, iTPN-B pixel pre-training (paper Table 4: 53.0 box / 46.5
# mask AP with the 1600-epoch model). Backbone and pyramid start from the
# pre-training checkpoint: an mmitpn pre-training checkpoint, or an official
# one converted by tools/model_converters/official2mmitpn.py.
_base_ = [
    '../_base_/models/mask-rcnn_itpn_hivit-base-p16.py',
    '../_base_/datasets/coco-instance_ms-crop.py',
    '../_base_/schedules/itpn-det_adamw_1x.py',
    '../_base_/det_runtime.py',
]

pretrained = 'checkpoints/itpn-pixel_hivit-base-p16_1600e_in1k.pth'
model = dict(
    backbone=dict(
        drop_path_rate=0.05,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='neck.')))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
