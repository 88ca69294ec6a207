# iTPN-L pre-trained by pixel MIM on ImageNet-1k (Table 7). 8 GPUs x 512
# images = batch 4096.
_base_ = [
    '../_base_/models/itpn_pretrain_pixel_hivit-large-p16.py',
    '../_base_/datasets/imagenet_bs512_itpn-pixel.py',
    '../_base_/schedules/itpn_pretrain_pixel_adamw.py',
    '../_base_/pretrain_runtime.py',
]
