# The same recipe from iTPN-B CLIP-B pre-training (paper Table 4: 54.1 / 47.5):
# layer scale 0.1 and a one-block pyramid (fpn_depth 1) as pre-trained. As
# in the official det configs the relative position tables of pre-training
# are not used (they are reported as unused checkpoint tensors); inputs keep
# the ImageNet normalisation.
_base_ = './mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-3x_coco.py'

pretrained = 'checkpoints/itpn-clip-b_hivit-base-p16_800e_in1k.pth'
model = dict(
    backbone=dict(
        layer_scale_init_value=0.1,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(fpn_depth=1, init_cfg=dict(checkpoint=pretrained)))
