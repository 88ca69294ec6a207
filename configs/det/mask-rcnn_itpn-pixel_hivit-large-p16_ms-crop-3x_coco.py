# Mask R-CNN 3x, iTPN-L pixel pre-training (not in the paper): HiViT-L
# (2-2-40 blocks, C=768) with layer decay 0.95.
_base_ = './mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-3x_coco.py'

pretrained = 'checkpoints/itpn-pixel_hivit-large-p16_1600e_in1k.pth'
model = dict(
    backbone=dict(arch='large', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(
        in_channels=(192, 384, 768), init_cfg=dict(checkpoint=pretrained)))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
