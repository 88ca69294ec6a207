# Your own data set in COCO format, boxes only (mmdet's CocoDataset and
# CocoMetric, with mmdet's COCO pipeline: 1333x800 resize, random flip).
# This is the one place that describes the data: set the block below (or
# copy this file and the model config for each data set of yours); the
# models on it take their number of classes from `classes`, and the
# instance-segmentation variant (custom-coco_instance.py) reads the same
# block. See docs/your_own_data.md.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

# --- your data --------------------------------------------------------------
data_root = 'data/custom_coco/'
# The category names of the annotation files, in the order of their
# `categories` list (mmdet numbers the classes in that order, whatever the
# order here); every annotated category must be listed.
classes = ('object', )
train_ann_file = 'annotations/train.json'
val_ann_file = 'annotations/val.json'
# Folders the files' `file_name`s are relative to (under data_root).
train_img_dir = 'images/'
val_img_dir = 'images/'
# -----------------------------------------------------------------------------

metainfo = dict(classes=classes)
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann_file,
        data_prefix=dict(img=train_img_dir)))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann_file,
        data_prefix=dict(img=val_img_dir)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator
