"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, offline.

mmpretrain's own ``FashionMNIST`` downloads the archives at run time and
reads them back through torch; this one reads the gzipped IDX files that the
Debian package installs (or any folder holding them) and never touches the
network, so the demo and the tests run on machines without internet.
"""
import gzip
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmitpn.registry import DATASETS
from . import DataError

# IDX magic numbers: 0x0000080D, uint8 data (0x08) with D dimensions.
_IMAGES_MAGIC = 0x0803
_LABELS_MAGIC = 0x0801


def _read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Read a gzipped uint8 IDX file; the header is the big-endian int32
    magic number followed by one int32 size per dimension."""
    fix = ('Reinstall or download the file again (Debian: apt-get install '
           '--reinstall dataset-fashion-mnist)')
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as err:  # not gzip, or cut short
        raise DataError(f'cannot read {path}: it is not a complete gzip '
                         f'file ({type(err).__name__}: {err}). {fix}.') \
            from err
    ndim = expected_magic & 0xFF
    header = 4 * (1 + ndim)
    # A truncated download or a swapped images/labels file would otherwise
    # surface later as a confusing reshape error.
    magic, *shape = (
        map(int, np.frombuffer(data[:header], '>i4'))
        if len(data) >= header else (None, ))
    if magic != expected_magic or len(data) - header != np.prod(shape):
        raise DataError(
            f'{path} is not a valid IDX file of {ndim} dimension(s) with '
            f'magic number {expected_magic:#x} ({len(data)} bytes, header '
            f'{data[:header].hex()}): truncated, or an images file swapped '
            f'with a labels file. {fix}.')
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_idx_images(path: str) -> np.ndarray:
    """Read a gzipped IDX3 image file (16-byte header) into a ``(N, rows,
    cols)`` uint8 array."""
    return _read_idx(path, _IMAGES_MAGIC)


def read_idx_labels(path: str) -> np.ndarray:
    """Read a gzipped IDX1 label file (8-byte header) into a ``(N, )``
    int64 array."""
    return _read_idx(path, _LABELS_MAGIC).astype(np.int64)


@DATASETS.register_module()
class FashionMNIST(BaseDataset):
    """Fashion-MNIST (Zalando): 28x28 grayscale product photos, 10 classes.

    All images of the split are decoded once into memory; each data info
    holds the image under ``img`` as a ``(28, 28, 3)`` uint8 array (the
    gray channel repeated, so RGB pipelines and data preprocessors apply
    unchanged) and, with ``with_label``, its class index under ``gt_label``.
    No ``LoadImageFromFile`` is needed in the pipeline.

    Args:
        data_root (str): Folder holding ``{train,t10k}-images-idx3-ubyte.gz``
            and ``{train,t10k}-labels-idx1-ubyte.gz``. Defaults to where the
            Debian package ``dataset-fashion-mnist`` installs them.
        split (str): ``'train'`` (60,000 images) or ``'test'`` (10,000).
        with_label (bool): Add ``gt_label``. Self-supervised pre-training
            does not need the labels, and then their file is not read.
        metainfo (dict, optional): Overrides ``METAINFO``.
        **kwargs: Other :class:`mmpretrain.datasets.BaseDataset` arguments,
            e.g. ``pipeline``, ``indices`` (an int keeps the first images,
            a sequence the listed ones) for quick runs, ``test_mode``.
    """

    METAINFO = {
        'classes': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                    'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
    }
    DEFAULT_ROOT = '/usr/share/datasets/fashion-mnist'
    # The file name prefix of each split, as distributed by Zalando.
    _SPLIT_PREFIX = {'train': 'train', 'test': 't10k'}

    def __init__(self,
                 data_root: str = DEFAULT_ROOT,
                 split: str = 'train',
                 with_label: bool = True,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in self._SPLIT_PREFIX:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split = split
        self.with_label = with_label
        super().__init__(
            ann_file='', metainfo=metainfo, data_root=data_root, **kwargs)

    @classmethod
    def split_files(cls, data_root: str, split: str) -> Tuple[str, str]:
        """Paths of the image and label files of a split."""
        prefix = cls._SPLIT_PREFIX[split]
        return (osp.join(data_root, f'{prefix}-images-idx3-ubyte.gz'),
                osp.join(data_root, f'{prefix}-labels-idx1-ubyte.gz'))

    @classmethod
    def check_files(cls,
                    data_root: str = DEFAULT_ROOT,
                    splits: Sequence[str] = ('train', 'test'),
                    with_label: bool = True) -> None:
        """Raise FileNotFoundError, saying how to get them, unless the files
        of ``splits`` are in ``data_root``."""
        files = [
            f for split in splits
            for f in cls.split_files(data_root, split)[:2 if with_label else 1]
        ]
        missing = [f for f in files if not osp.isfile(f)]
        if missing:
            raise FileNotFoundError(
                f'Fashion-MNIST files not found: {", ".join(missing)}. '
                'Install them with `sudo apt-get install '
                'dataset-fashion-mnist` (or `make env`), or point '
                '`data_root` at a folder holding the four files '
                '{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.')

    def load_data_list(self) -> List[dict]:
        self.check_files(self.data_root, (self.split, ), self.with_label)
        image_file, label_file = self.split_files(self.data_root, self.split)
        images = read_idx_images(image_file)
        if not self.with_label:
            return [{'img': img} for img in images]
        labels = read_idx_labels(label_file)
        if len(labels) != len(images):
            raise ValueError(f'{label_file} holds {len(labels)} labels for '
                             f'{len(images)} images in {image_file}')
        return [{
            'img': img,
            'gt_label': int(label)
        } for img, label in zip(images, labels)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        # Kept grayscale in memory (a third of the RGB size, also in the
        # serialized buffer that dataloader workers share); made RGB here.
        info['img'] = np.repeat(info['img'][..., None], 3, axis=2)
        return info

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}', f'Data root: \t{self.data_root}']
