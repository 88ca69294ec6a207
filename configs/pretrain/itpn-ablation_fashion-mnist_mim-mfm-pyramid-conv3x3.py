# Mini ablation (docs/mini_ablation.md), "3x3 conv" row: integral + EMA-MFM
# (the demo config) with every C-MLP block of the pyramid replaced by a
# block whose first layer is a 3x3 conv (paper Table 6).
_base_ = './itpn-demo_fashion-mnist.py'

model = dict(neck=dict(fusion_block='conv3x3'))
