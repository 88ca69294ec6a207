# ADE20K (150 classes, mmseg's pipeline: resize to (2048, 512) with ratio
# 0.5-2, 512x512 crops, flip, photometric distortion; test at (2048, 512)),
# 2 images per GPU as in the official iTPN runs (8 GPUs: batch 16).
_base_ = 'mmseg::_base_/datasets/ade20k.py'

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = dict(batch_size=1)
