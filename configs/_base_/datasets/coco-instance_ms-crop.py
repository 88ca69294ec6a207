# COCO instance segmentation with the official iTPN det training augmentation
# (DETR-style): a random horizontal flip, then either a multi-scale resize
# (short side 480-800 in steps of 32, long side <= 1333) or a resize (short
# side 400/500/600), a random 384-600 crop and the multi-scale resize. Test:
# mmdet's single-scale 1333x800. Images are padded to multiples of 32 by the
# model's data preprocessor.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

multi_scale = [(short, 1333) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scale,
                  keep_ratio=True)],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 1333), (500, 1333), (600, 1333)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scale,
                     keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
