# Cascade Mask R-CNN 3x (not in the paper) from iTPN-L CLIP-L pre-training:
# layer scale 0.1, a one-block pyramid and relative position bias, as pre-
# trained. The official CLIP-L det backbone replaces the bias tables by
# randomly initialised ViTDet decomposed tables; here the pre-trained tables
# are kept and resized to each input's patch grid at run time.
_base_ = './cascade-mask-rcnn_itpn-pixel_hivit-large-p16_ms-crop-3x_coco.py'

pretrained = 'checkpoints/itpn-clip-l_hivit-large-p16_300e_in1k.pth'
model = dict(
    backbone=dict(
        layer_scale_init_value=0.1,
        use_rel_pos_bias=True,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(fpn_depth=1, init_cfg=dict(checkpoint=pretrained)))
