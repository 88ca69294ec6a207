# ImageNet-1k fine-tuning data for CLIP pre-trained iTPN (paper Table 10,
# official itpn_clip recipe): the pixel recipe's augmentation with the
# Inception mean/std (0.5, 0.5) that CLIP pre-training fed the student, so
# the padding and erasing colours change with it.
_base_ = './imagenet_bs32_itpn-finetune.py'

bgr_mean = [127.5, 127.5, 127.5]
bgr_std = [127.5, 127.5, 127.5]

data_preprocessor = dict(mean=bgr_mean, std=bgr_std)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[128, 128, 128], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
