# Mask R-CNN 1x, iTPN-L pixel pre-training (paper Table 4: 55.6 / 48.6):
# HiViT-L (2-2-40 blocks, C=768), drop path 0.2 and layer decay 0.95 as the
# official large det config.
_base_ = './mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-1x_coco.py'

pretrained = 'checkpoints/itpn-pixel_hivit-large-p16_1600e_in1k.pth'
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(
        in_channels=(192, 384, 768), init_cfg=dict(checkpoint=pretrained)))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
