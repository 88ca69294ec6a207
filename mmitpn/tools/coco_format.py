"""Writing instance annotations in COCO format (for the dataset converters
under ``tools/dataset_converters``)."""
import numpy as np
from pycocotools import mask as mask_utils


def coco_instance_annotation(mask: np.ndarray, ann_id: int, image_id: int,
                             category_id: int) -> dict:
    """A COCO annotation of a binary ``(H, W)`` mask: compressed RLE, area
    and the mask's tight box."""
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
