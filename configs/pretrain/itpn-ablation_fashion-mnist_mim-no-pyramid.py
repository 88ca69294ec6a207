# Mini ablation (docs/mini_ablation.md), "no pyramid" row: the MAE-style
# baseline on the same backbone and budget. The pixel decoder gets only the
# stage-3 output; no pyramid is trained, so a detector built on this
# checkpoint starts from a random neck.
_base_ = './itpn-ablation_fashion-mnist_mim-pyramid.py'

model = dict(
    use_pyramid=False,
    neck=None,
    # stage-3 width of the demo backbone (backbone_dims[-1])
    head=dict(in_channels=128, num_levels=1))
