# iTPN-Base (HiViT) classifier in the official fine-tuning layout:
# stage-3 tokens -> mean -> LayerNorm (official fc_norm) -> Linear.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmitpn.iTPNHiViT',
        arch='base',
        img_size=224,
        patch_size=16,
        use_rel_pos_bias=True,
        out_indices=(2, )),
    neck=dict(type='mmitpn.GlobalAvgPoolNorm', in_channels=512),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
