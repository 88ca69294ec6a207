# UPerNet on iTPN-L (HiViT 2-2-40, C=768): the iTPN-B model with the large
# backbone; pyramid levels have [448, 640, 1024, 1024] channels.
_base_ = './upernet_itpn_hivit-base-p16.py'

backbone_dims = (192, 384, 768)
fpn_dim = 256
level_channels = [fpn_dim + c for c in backbone_dims] + [fpn_dim + 768]

model = dict(
    backbone=dict(arch='large'),
    neck=dict(in_channels=backbone_dims),
    decode_head=dict(in_channels=level_channels),
    auxiliary_head=dict(in_channels=level_channels[2]))
