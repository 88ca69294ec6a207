"""Compose an instance-segmentation set in COCO format from Fashion-MNIST.

Each image is a black canvas (56x56 by default) holding 1-3 Fashion-MNIST
items at their native scale at random places. An item's instance mask is its
own pixels (gray value above ``--threshold``) and its box is the mask's
tight box; items are placed so that their boxes do not overlap, so every
mask is whole. The category is the item's Fashion-MNIST class. Training
images take their items from the 60,000 training images, validation images
from the 10,000 test images, each item used at most once, so no garment
appears in both splits. The same ``--seed`` gives the same files::

    OUT_DIR/images/{train,val}/000001.png ...
    OUT_DIR/annotations/instances_{train,val}.json

Reads Debian's ``dataset-fashion-mnist`` (or any folder with the IDX files);
used by the mini ablation (docs/mini_ablation.md)::

    python tools/dataset_converters/prepare_fashion_mnist_det.py \
        [--out-dir data/fashion_mnist_det] [--num-train 3000 --num-val 500]
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Iterator, List, Tuple

import numpy as np
from PIL import Image

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.datasets.fashion_mnist import (FashionMNIST, read_idx_images,
                                           read_idx_labels)
from mmitpn.tools.coco_format import coco_instance_annotation

# Attempts at a free place for an item before the canvas is taken as full.
PLACEMENT_TRIES = 50


def item_crops(images: np.ndarray, labels: np.ndarray, threshold: int,
               min_area: int, rng: np.random.Generator
               ) -> Iterator[Tuple[np.ndarray, np.ndarray, int]]:
    """(pixels, mask, label) of each item in random order, cropped to the
    tight box of its mask; items with fewer than ``min_area`` mask pixels
    are left out."""
    for index in rng.permutation(len(images)):
        mask = images[index] > threshold
        if mask.sum() < min_area:
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        yield images[index][window], mask[window], int(labels[index])


def compose_canvas(items: Iterator, num_items: int, canvas_size: int,
                   rng: np.random.Generator
                   ) -> Tuple[np.ndarray, List[Tuple[np.ndarray, int]]]:
    """A canvas with up to ``num_items`` items from ``items`` at random,
    non-overlapping places; returns the image and ``[(mask, label)]`` with
    full-canvas masks. Raises StopIteration when ``items`` runs out."""
    canvas = np.zeros((canvas_size, canvas_size), np.uint8)
    taken = np.zeros_like(canvas, dtype=bool)
    instances = []
    for _ in range(num_items):
        pixels, mask, label = next(items)
        height, width = mask.shape
        for _ in range(PLACEMENT_TRIES):
            top = rng.integers(0, canvas_size - height + 1)
            left = rng.integers(0, canvas_size - width + 1)
            window = (slice(top, top + height), slice(left, left + width))
            if not taken[window].any():
                break
        else:
            break
        canvas[window] = pixels
        taken[window] = True
        full_mask = np.zeros_like(taken)
        full_mask[window] = mask
        instances.append((full_mask, label))
    return canvas, instances


def build_split(images: np.ndarray, labels: np.ndarray, num_images: int,
                out_dir: str, split: str, args,
                rng: np.random.Generator) -> dict:
    """Write ``num_images`` canvases of a split and return its COCO dict."""
    image_dir = osp.join(out_dir, 'images', split)
    os.makedirs(image_dir, exist_ok=True)
    items = item_crops(images, labels, args.threshold, args.min_area, rng)
    coco_images, annotations = [], []
    for image_id in range(1, num_images + 1):
        num_items = int(rng.integers(args.items[0], args.items[1] + 1))
        try:
            canvas, instances = compose_canvas(items, num_items, args.canvas,
                                               rng)
        except StopIteration:
            raise ValueError(
                f'the {len(images)} Fashion-MNIST images of the {split} '
                f'split ran out after {image_id - 1} canvases; ask for '
                'fewer (--num-train/--num-val) or fewer items per canvas'
            ) from None
        file_name = f'{split}/{image_id:06d}.png'
        Image.fromarray(canvas).save(osp.join(out_dir, 'images', file_name))
        coco_images.append(
            dict(id=image_id, file_name=file_name, height=args.canvas,
                 width=args.canvas))
        for mask, label in instances:
            # COCO category ids start at 1
            annotations.append(
                coco_instance_annotation(mask, len(annotations) + 1,
                                         image_id, label + 1))
    return dict(
        images=coco_images,
        annotations=annotations,
        categories=[
            dict(id=i, name=name, supercategory='fashion')
            for i, name in enumerate(FashionMNIST.METAINFO['classes'], 1)
        ])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data-root',
        default=FashionMNIST.DEFAULT_ROOT,
        help='folder with the Fashion-MNIST IDX files')
    parser.add_argument('--out-dir', default='data/fashion_mnist_det')
    parser.add_argument('--canvas', type=int, default=56,
                        help='canvas side in pixels (items are 28x28)')
    parser.add_argument('--num-train', type=int, default=3000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument(
        '--items',
        type=int,
        nargs=2,
        default=(1, 3),
        metavar=('MIN', 'MAX'),
        help='items per canvas (fewer when no free place is found)')
    parser.add_argument(
        '--threshold',
        type=int,
        default=10,
        help='gray value above which a pixel belongs to the item')
    parser.add_argument('--min-area', type=int, default=20,
                        help='leave out items with fewer mask pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.canvas < 28:
        parser.error('--canvas must be at least 28 (the item size)')
    if not 1 <= args.items[0] <= args.items[1]:
        parser.error('--items needs 1 <= MIN <= MAX')
    return args


def main(argv=None):
    args = parse_args(argv)
    FashionMNIST.check_files(args.data_root)
    rng = np.random.default_rng(args.seed)
    ann_dir = osp.join(args.out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    for split, source, num_images in (('train', 'train', args.num_train),
                                      ('val', 'test', args.num_val)):
        image_file, label_file = FashionMNIST.split_files(
            args.data_root, source)
        coco = build_split(
            read_idx_images(image_file), read_idx_labels(label_file),
            num_images, args.out_dir, split, args, rng)
        ann_file = osp.join(ann_dir, f'instances_{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(coco, f)
        print(f'{split}: {len(coco["images"])} images, '
              f'{len(coco["annotations"])} instances -> {ann_file}')


if __name__ == '__main__':
    main()
