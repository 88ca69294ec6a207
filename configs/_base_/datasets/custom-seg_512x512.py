# Your own semantic-segmentation data set in mmseg's custom layout (mmseg's
# BaseSegDataset and IoUMetric), with mmseg's ADE20K pipeline: resize to
# (2048, 512) with ratio 0.5-2, 512x512 crops, flip, photometric distortion;
# test at (2048, 512). This is the one place that describes the data: set the
# block below (or copy this file and the model config for each data set of
# yours); the models on it take their number of classes from `classes`.
# See docs/your_own_data.md.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

# --- your data --------------------------------------------------------------
data_root = 'data/custom_seg/'
# Class i labels the pixels of value i in the label maps (single-channel
# PNGs); pixels of value 255 are ignored in the loss and the metric.
classes = ('background', 'foreground')
# Images NAME + img_suffix and label maps NAME + seg_map_suffix, paired by
# NAME, in these folders under data_root.
img_suffix = '.jpg'
seg_map_suffix = '.png'
train_img_dir = 'img_dir/train'
train_ann_dir = 'ann_dir/train'
val_img_dir = 'img_dir/val'
val_ann_dir = 'ann_dir/val'
# -----------------------------------------------------------------------------

dataset_type = 'BaseSegDataset'
# mmseg's ADE20K pipelines, with the label maps read as they are (for
# ADE20K they shift every label down by one, dropping its class 0, "other").
train_pipeline = [
    dict(t, reduce_zero_label=False) if t['type'] == 'LoadAnnotations' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, reduce_zero_label=False) if t['type'] == 'LoadAnnotations' else t
    for t in _base_.test_pipeline
]
custom_seg = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=dict(classes=classes),
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        _delete_=True,
        data_prefix=dict(img_path=train_img_dir, seg_map_path=train_ann_dir),
        pipeline=train_pipeline,
        **custom_seg))
val_dataloader = dict(
    batch_size=1,
    dataset=dict(
        _delete_=True,
        data_prefix=dict(img_path=val_img_dir, seg_map_path=val_ann_dir),
        pipeline=test_pipeline,
        **custom_seg))
test_dataloader = val_dataloader
