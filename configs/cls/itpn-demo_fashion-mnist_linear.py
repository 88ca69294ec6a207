# Linear probing of the demo's pre-trained tiny iTPN on Fashion-MNIST: the
# ImageNet probe (frozen backbone, mean-pooled stage-3 features through a
# parameter-free BatchNorm, linear classifier, LARS, cosine schedule) on the
# demo's data; evaluation on the 10,000 test images.
_base_ = './itpn-demo_fashion-mnist_finetune.py'

model = dict(
    backbone=dict(
        # The features as pre-trained: no relative position bias (the demo
        # pre-training has none), no drop path.
        use_rel_pos_bias=False,
        drop_path_rate=0.,
        frozen_stages=3),
    neck=dict(norm_cfg=dict(type='BN1d', affine=False, eps=1e-6)),
    head=dict(
        loss=dict(_delete_=True, type='CrossEntropyLoss'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.01)))

# Only the head trains; the backbone costs one forward pass per image, so
# big batches are cheap.
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.1 * 256 / 256, weight_decay=0.,
                   momentum=0.9))
auto_scale_lr = dict(base_batch_size=256)
