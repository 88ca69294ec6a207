# Mini ablation, detection, "pyramid random": the pre-trained backbone with
# the same pyramid module left at its random initialisation (paper Table 5,
# iPT backbone only).
_base_ = './mask-rcnn_itpn-demo_fashion-mnist-det.py'

model = dict(neck=dict(init_cfg=None))
