# iTPN-L/16 with a CLIP-B/16 teacher: HiViT-L (2-2-40, C=768), drop path 0.2.
_base_ = './itpn_pretrain_clip-b_hivit-base-p16.py'

model = dict(
    backbone=dict(arch='large', drop_path_rate=0.2),
    neck=dict(in_channels=(192, 384, 768)),
    mfm_head=dict(embed_dims=768, num_heads=12, aux_drop_path_rate=0.2))
