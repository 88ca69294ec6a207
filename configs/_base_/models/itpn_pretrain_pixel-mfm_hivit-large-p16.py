# iTPN-L, pixel MIM + EMA-teacher MFM: HiViT-L (2-2-40, C=768).
_base_ = './itpn_pretrain_pixel-mfm_hivit-base-p16.py'

model = dict(
    backbone=dict(arch='large'),
    neck=dict(in_channels=(192, 384, 768)),
    mfm_head=dict(out_channels=(192, 384, 768)))
