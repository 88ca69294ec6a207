# iTPN-B pre-trained by pixel MIM + EMA-teacher MFM on any folder of
# unlabeled images (set train_dataloader.dataset.data_root). The lr is given
# for batch 4096; run with `--auto-scale-lr` to scale it to 8 x 64 images, or
# accumulate gradients with optim_wrapper.accumulative_counts.
_base_ = [
    '../_base_/models/itpn_pretrain_pixel-mfm_hivit-base-p16.py',
    '../_base_/datasets/image-folder_bs64_itpn-pixel.py',
    '../_base_/schedules/itpn_pretrain_pixel_adamw.py',
    '../_base_/pretrain_runtime.py',
]
