# Fashion-MNIST classification: the 60,000 labelled training images at their
# native 28x28 with 2-pixel padded random crops and flips; evaluation on the
# 10,000 test images as they are. Read from Debian's dataset-fashion-mnist
# package into memory (no LoadImageFromFile).
dataset_type = 'mmitpn.FashionMNIST'
data_root = '/usr/share/datasets/fashion-mnist'

# Mean and std of the training pixels, as in the demo pre-training.
data_preprocessor = dict(
    num_classes=10, mean=[72.94] * 3, std=[90.02] * 3, to_rgb=True)

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    # Served from memory: worker processes would only compete with the
    # model for the CPU cores.
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
