# iTPN-L/16 pre-trained by MFM with a CLIP-B/16 teacher on ImageNet-1k
# (Table 9). 8 GPUs x 256 images = batch 2048. The teacher weights are a
# local file: set model.teacher.checkpoint.
_base_ = [
    '../_base_/models/itpn_pretrain_clip-b_hivit-large-p16.py',
    '../_base_/datasets/imagenet_bs256_itpn-clip.py',
    '../_base_/schedules/itpn_pretrain_clip_adamw.py',
    '../_base_/pretrain_runtime.py',
]
