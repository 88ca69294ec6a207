# Linear probing of iTPN-B pre-trained with a CLIP teacher (paper Table 3):
# the pixel probe with the CLIP backbone's settings (relative position bias,
# layer scale, as pre-trained) and its Inception mean/std.
_base_ = './itpn-pixel_hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

pretrained = 'work_dirs/itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-800e_in1k/epoch_800.pth'  # noqa: E501

model = dict(
    backbone=dict(
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        init_cfg=dict(checkpoint=pretrained)))

data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3)
