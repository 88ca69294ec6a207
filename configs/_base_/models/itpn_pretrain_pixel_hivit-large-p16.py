# iTPN-L, pixel MIM: HiViT-L (2-2-40, C=768), otherwise as iTPN-B.
_base_ = './itpn_pretrain_pixel_hivit-base-p16.py'

model = dict(
    backbone=dict(arch='large'),
    neck=dict(in_channels=(192, 384, 768)))
