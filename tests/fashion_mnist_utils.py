"""Helpers of the Fashion-MNIST tests."""
import gzip
import os.path as osp

import numpy as np


def write_idx(root, prefix, images, labels):
    """Write gzipped IDX image and label files by the format spec,
    independently of the reader."""
    num, rows, cols = images.shape
    header = np.array([2051, num, rows, cols], '>i4').tobytes()
    with gzip.open(osp.join(root, f'{prefix}-images-idx3-ubyte.gz'),
                   'wb') as f:
        f.write(header + images.astype(np.uint8).tobytes())
    header = np.array([2049, num], '>i4').tobytes()
    with gzip.open(osp.join(root, f'{prefix}-labels-idx1-ubyte.gz'),
                   'wb') as f:
        f.write(header + labels.astype(np.uint8).tobytes())
