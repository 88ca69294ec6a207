# ImageNet-1k linear-probing data (MAE's convention, which the paper
# follows): RandomResizedCrop 224 and flip only, no batch augments; the
# fine-tuning evaluation (short side 256, center crop 224). ImageNet
# mean/std; CLIP pre-trained models override it with theirs.
_base_ = './imagenet_bs32_itpn-finetune.py'

data_preprocessor = dict(to_onehot=False, batch_augments=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=2048, dataset=dict(pipeline=train_pipeline))
