# Fashion-MNIST for masked image modelling: the 60,000 training images at
# their native 28x28 (a multiple of 4-pixel patches, so no upsampling, which
# would only add stem tokens), labels unused. Read from Debian's
# dataset-fashion-mnist package; images are served from memory, so there is
# no LoadImageFromFile.
dataset_type = 'mmitpn.FashionMNIST'
data_root = '/usr/share/datasets/fashion-mnist'
img_size = 28

# Mean and std of the training pixels (0.2860 and 0.3530 of 255); the gray
# channel is repeated to RGB, so the three channels share them.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[72.94] * 3,
    std=[90.02] * 3,
    to_rgb=True)

# MAE's augmentation, with a milder crop: a 28-pixel garment cropped to 20%
# of its area would be a few blurry pixels.
train_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=64,
    # From memory the pipeline takes ~15 ms per batch, under 5% of an
    # iteration on 2 CPU cores; 2 worker processes measured no faster there
    # (they compete with the model for the same cores).
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        with_label=False,
        pipeline=train_pipeline))
