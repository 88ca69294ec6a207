"""The image-folder pre-training dataset: finds images recursively and says
how to fix a missing or empty folder."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmitpn.datasets.image_folder import ImageFolder
from mmitpn.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(REPO, 'configs', '_base_', 'datasets',
                'image-folder_bs64_itpn-pixel.py')


def _dataset_cfg(data_root):
    cfg = Config.fromfile(BASE).train_dataloader.dataset
    cfg.data_root = str(data_root)
    return cfg


def _build(data_root):
    init_default_scope('mmpretrain')
    return DATASETS.build(_dataset_cfg(data_root))


def test_finds_images_recursively(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    for name in ('x.png', 'a/y.jpg', 'a/b/z.png'):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / 'notes.txt').write_text('not an image')
    dataset = _build(tmp_path)
    assert isinstance(dataset, ImageFolder)
    assert sorted(
        osp.relpath(dataset.get_data_info(i)['img_path'], tmp_path)
        for i in range(len(dataset))) == ['a/b/z.png', 'a/y.jpg', 'x.png']
    assert dataset[0]['inputs'].shape == (3, 224, 224)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        _build(tmp_path / 'nowhere')
    message = str(err.value)
    assert f"image folder not found: '{tmp_path / 'nowhere'}" in message
    assert '--cfg-options train_dataloader.dataset.data_root=' in message


def test_folder_without_images(tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError) as err:
        _build(tmp_path)
    message = str(err.value)
    assert f"no images in '{tmp_path}" in message
    assert '.jpg' in message and '.png' in message
    assert '--cfg-options train_dataloader.dataset.data_root=' in message


def test_unreadable_image_stops_naming_it_or_is_skipped(tmp_path):
    for name in ('a.png', 'b.png'):
        Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(
            tmp_path / name)
    broken = tmp_path / 'c.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)  # cut short
    dataset = _build(tmp_path)
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)['img_path'] == str(broken))
    with pytest.raises(ValueError) as err:
        dataset[index]
    message = str(err.value)
    assert f'cannot read or decode the image {broken}' in message
    assert 'train_dataloader.dataset.skip_unreadable=True' in message

    cfg = _dataset_cfg(tmp_path)
    cfg.skip_unreadable = True
    dataset = DATASETS.build(cfg)
    # mmengine replaces the skipped sample by another, readable one.
    sample = dataset[index]
    assert sample['inputs'].shape == (3, 224, 224)
    assert dataset.unreadable == [str(broken)]
