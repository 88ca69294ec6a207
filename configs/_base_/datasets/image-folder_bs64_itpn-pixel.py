# Any folder of unlabeled images (searched recursively; jpg, png, bmp, tif,
# ...), with the pixel pre-training pipeline. Point `data_root` at your
# folder, e.g. --cfg-options train_dataloader.dataset.data_root=/my/images
# (mmitpn.ImageFolder is mmpretrain's CustomDataset with clear errors for a
# missing or empty folder).
_base_ = './imagenet_bs512_itpn-pixel.py'

data_root = 'data/images/'

train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='mmitpn.ImageFolder',
        data_root=data_root,
        with_label=False,
        pipeline={{_base_.train_pipeline}}))
