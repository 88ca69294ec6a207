# RetinaNet (one stage, boxes only) on your own COCO-format data set,
# described in configs/_base_/datasets/custom-coco_detection.py: iTPN-B with
# backbone AND pyramid from a pixel pre-training, mmdet's RetinaNet head on
# the pyramid's five levels (anchor strides from the patch size) and the
# COCO 1x recipe (AdamW, layer decay 0.9, 12 epochs; train_cfg.max_epochs
# alone changes the length). See docs/your_own_data.md.
_base_ = [
    '../_base_/models/retinanet_itpn_hivit-base-p16.py',
    '../_base_/datasets/custom-coco_detection.py',
    '../_base_/schedules/itpn-det_adamw_1x.py',
    '../_base_/det_runtime.py',
]

# As in faster-rcnn_itpn-pixel_hivit-base-p16_1x_custom-coco.py.
pretrained = 'checkpoints/itpn-pixel_hivit-base-p16_1600e_in1k.pth'
num_classes = len(_base_.classes)

model = dict(
    backbone=dict(
        drop_path_rate=0.05,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='neck.')),
    bbox_head=dict(num_classes=num_classes))
