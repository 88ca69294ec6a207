# Table 5 ablation (iPT yes, pyramid not loaded; paper: 51.5 vs 52.1 box AP
# with the 400-epoch pixel model): the pre-trained iTPN-B backbone with
# mmdet's standard FPN, randomly initialised, in place of the pre-trained
# pyramid; its stride-32/64 levels are max-pooled. The other row, the
# pre-trained pyramid, is the 1x config with this checkpoint.
_base_ = './mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-1x_coco.py'

pretrained = 'checkpoints/itpn-pixel_hivit-base-p16_400e_in1k.pth'
model = dict(
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    neck=dict(
        _delete_=True,
        type='FPN',
        in_channels=[128, 256, 512],
        out_channels=256,
        num_outs=5))
