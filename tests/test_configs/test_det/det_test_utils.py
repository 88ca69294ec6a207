"""Helpers of the det tests: a synthetic COCO instance set, the tiny det
config pointed at it."""
import json
import os.path as osp

import numpy as np
from mmengine.config import Config
from PIL import Image, ImageDraw

REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
DET_CONFIGS = osp.join(REPO_ROOT, 'configs', 'det')
TINY_DET_CONFIG = osp.join(
    DET_CONFIGS, 'mask-rcnn_itpn-tiny-p16_overfit-60e_tiny-coco-instances.py')
SYNTHETIC_CLASSES = ('square', 'disc')


def write_synthetic_coco(root, num_images=4, size=(96, 128), seed=0):
    """Images with 1-3 filled squares and discs on noise, COCO polygons.

    Returns the annotation file path (``root/annotations/instances.json``,
    images in ``root/images/``).
    """
    rng = np.random.default_rng(seed)
    height, width = size
    (root / 'images').mkdir(parents=True)
    (root / 'annotations').mkdir()
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image = Image.fromarray(
            rng.integers(0, 80, (height, width, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(1, 4)):
            category_id = int(rng.integers(1, 3))
            half = int(rng.integers(10, 20))
            cy = int(rng.integers(half, height - half))
            cx = int(rng.integers(half, width - half))
            if category_id == 1:
                polygon = [cx - half, cy - half, cx + half, cy - half,
                           cx + half, cy + half, cx - half, cy + half]
            else:
                angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
                polygon = np.stack([cx + half * np.cos(angles),
                                    cy + half * np.sin(angles)],
                                   1).ravel().round(1).tolist()
            draw.polygon(polygon, fill=(200, 60, 60) if category_id == 1
                         else (60, 200, 60))
            xs, ys = polygon[0::2], polygon[1::2]
            x0, y0 = min(xs), min(ys)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=category_id, segmentation=[polygon],
                area=float((max(xs) - x0) * (max(ys) - y0)),
                bbox=[x0, y0, max(xs) - x0, max(ys) - y0], iscrowd=0))
        file_name = f'{image_id:03d}.png'
        image.save(root / 'images' / file_name)
        images.append(dict(id=image_id, file_name=file_name, height=height,
                           width=width))
    ann_file = root / 'annotations' / 'instances.json'
    ann_file.write_text(json.dumps(dict(
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=n)
                    for i, n in enumerate(SYNTHETIC_CLASSES)])))
    return str(ann_file)


def tiny_det_cfg(data_root=None):
    """The tiny det config, pointed at ``data_root`` (synthetic classes)."""
    cfg = Config.fromfile(TINY_DET_CONFIG)
    if data_root is not None:
        num_classes = len(SYNTHETIC_CLASSES)
        dataset = dict(data_root=data_root,
                       metainfo=dict(classes=SYNTHETIC_CLASSES))
        ann_file = data_root + cfg.ann_file
        cfg.merge_from_dict({
            'train_dataloader.dataset': dataset,
            'val_dataloader.dataset': dataset,
            'test_dataloader.dataset': dataset,
            'val_evaluator.ann_file': ann_file,
            'test_evaluator.ann_file': ann_file,
            'model.roi_head.bbox_head.num_classes': num_classes,
            'model.roi_head.mask_head.num_classes': num_classes,
        })
    return cfg
