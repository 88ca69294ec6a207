"""Tests of the offline Fashion-MNIST dataset (Debian IDX files)."""
import gzip
import os.path as osp

import numpy as np
import pytest

from fashion_mnist_utils import write_idx

from mmitpn.datasets.fashion_mnist import (FashionMNIST, read_idx_images,
                                           read_idx_labels)
from mmitpn.registry import DATASETS

DEBIAN_ROOT = FashionMNIST.DEFAULT_ROOT
needs_debian_files = pytest.mark.skipif(
    not osp.isfile(osp.join(DEBIAN_ROOT, 't10k-images-idx3-ubyte.gz')),
    reason=f'Fashion-MNIST not installed in {DEBIAN_ROOT} '
    '(apt-get install dataset-fashion-mnist)')


@pytest.fixture
def tiny_root(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 0, 9, 1, 7])
    write_idx(str(tmp_path), 't10k', images, labels)
    return str(tmp_path), images, labels


def test_tiny_idx_parses_identically(tiny_root):
    root, images, labels = tiny_root
    ds = FashionMNIST(data_root=root, split='test')
    assert len(ds) == 5
    for i in range(5):
        info = ds[i]
        assert info['img'].shape == (28, 28, 3)
        assert info['img'].dtype == np.uint8
        # The gray channel is repeated, not converted.
        for c in range(3):
            np.testing.assert_array_equal(info['img'][..., c], images[i])
        assert info['gt_label'] == labels[i]
    assert ds.get_cat_ids(2) == [9]


def test_without_labels_and_subset(tiny_root):
    root, images, _ = tiny_root
    ds = FashionMNIST(
        data_root=root, split='test', with_label=False, indices=[4, 1])
    assert len(ds) == 2
    assert 'gt_label' not in ds[0]
    np.testing.assert_array_equal(ds[0]['img'][..., 0], images[4])
    assert len(FashionMNIST(data_root=root, split='test', indices=3)) == 3


@pytest.mark.parametrize('folder', ['empty', 'missing'])
def test_missing_files_message(tmp_path, folder):
    root = tmp_path if folder == 'empty' else tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(data_root=str(root), split='train')
    msg = str(err.value)
    assert 'train-images-idx3-ubyte.gz' in msg
    assert '`sudo apt-get install dataset-fashion-mnist` (or `make env`)' \
        in msg
    assert 'point `data_root` at a folder holding the four files' in msg


def test_rejects_bad_split_and_corrupt_file(tiny_root, tmp_path):
    root, _, _ = tiny_root
    with pytest.raises(ValueError, match='split'):
        FashionMNIST(data_root=root, split='val')
    bad = osp.join(str(tmp_path), 'bad.gz')
    with gzip.open(bad, 'wb') as f:
        f.write(np.array([2049, 3], '>i4').tobytes() + b'\x00\x01\x02')
    # A label file where an image file is expected.
    with pytest.raises(ValueError, match='not a valid IDX file'):
        read_idx_images(bad)
    assert read_idx_labels(bad).tolist() == [0, 1, 2]


@needs_debian_files
def test_real_files():
    # Built through the registry with the prefix, as configs name it.
    test = DATASETS.build(dict(type='mmitpn.FashionMNIST', split='test'))
    assert len(test) == 10000
    assert test.metainfo['classes'][0] == 'T-shirt/top'
    assert len(test.metainfo['classes']) == 10
    labels = test.get_gt_labels()
    # The test split is balanced: 1000 images per class.
    assert np.bincount(labels).tolist() == [1000] * 10
    # The first test image is an ankle boot (class 9), as documented.
    assert labels[0] == 9
    img = test[0]['img']
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert img.max() > 200 and img.min() == 0

    train = FashionMNIST(split='train', with_label=False, indices=100)
    assert len(train) == 100
    assert train[0]['img'].shape == (28, 28, 3)


@pytest.mark.parametrize('damage', ['truncated', 'not gzip', 'wrong size'])
def test_damaged_files_name_the_file_and_the_fix(tmp_path, damage):
    rng = np.random.default_rng(0)
    write_idx(str(tmp_path), 'train', rng.integers(0, 256, (4, 28, 28)),
              rng.integers(0, 10, 4))
    path = tmp_path / 'train-images-idx3-ubyte.gz'
    data = path.read_bytes()
    if damage == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif damage == 'not gzip':
        path.write_bytes(b'<html>404</html>')
    else:
        with gzip.open(path, 'wb') as f:
            f.write(gzip.decompress(data)[:-28])
    with pytest.raises(ValueError) as err:
        read_idx_images(str(path))
    message = str(err.value)
    assert str(path) in message
    assert 'dataset-fashion-mnist' in message
