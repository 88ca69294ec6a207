# Mini ablation, detection, "mmdet FPN": the pre-trained backbone with
# mmdet's standard FPN (random; stride-8/16 levels max-pooled) in place of
# the iTPN pyramid, as most detectors use it (paper Table 5).
_base_ = './mask-rcnn_itpn-demo_fashion-mnist-det.py'

model = dict(
    neck=dict(
        _delete_=True,
        type='FPN',
        in_channels={{_base_.backbone_dims}},
        out_channels={{_base_.fpn_dim}},
        num_outs=5))
