"""The tiny COCO builder on stand-in wheels (no download): tiling, masks
from label maps, RLE annotations that pycocotools and mmdet read back."""
import io
import json
import os.path as osp
import sys
import zipfile

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from det_test_utils import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
import prepare_tiny_coco_instances as prep  # noqa: E402


def _tif_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint16)).save(buf, format='TIFF')
    return buf.getvalue()


def _fake_stardist_wheel(path):
    image = np.full((64, 64), 100, np.uint16)
    labels = np.zeros((64, 64), np.uint16)
    labels[2:10, 2:10] = 7     # inside tile (0, 0)
    labels[28:36, 40:44] = 9   # cut by the tile border at row 32
    labels[60:63, 60:62] = 11  # 6 pixels: below min_area
    with zipfile.ZipFile(path, 'w') as wheel:
        wheel.writestr('stardist/data/images/img2d.tif', _tif_bytes(image))
        wheel.writestr('stardist/data/images/mask2d.tif', _tif_bytes(labels))


def test_stardist_tiles_to_coco(tmp_path):
    wheel = str(tmp_path / 'stardist.whl')
    _fake_stardist_wheel(wheel)
    samples = prep.stardist_samples(wheel, tile=32, min_area=8)
    assert [s[0] for s in samples] == [
        f'stardist_nuclei_r{r}c{c}.png' for r in range(2) for c in range(2)]
    assert [len(s[2]) for s in samples] == [1, 1, 0, 1]
    coco = prep.build_coco(samples, str(tmp_path / 'out'))
    ann_file = tmp_path / 'instances.json'
    ann_file.write_text(json.dumps(coco))
    api = COCO(str(ann_file))
    assert api.loadCats(api.getCatIds()) == [
        dict(id=1, name='nucleus', supercategory='object')]
    anns = api.loadAnns(api.getAnnIds())
    # the 8x8 nucleus, and the 8x4 one split into two 4x4 halves
    assert sorted(a['area'] for a in anns) == [16., 16., 64.]
    first = api.loadAnns(api.getAnnIds(imgIds=[1]))[0]
    assert first['bbox'] == [2., 2., 8., 8.]
    assert api.annToMask(first).sum() == 64
    assert Image.open(tmp_path / 'out' / 'images' /
                      'stardist_nuclei_r0c0.png').size == (32, 32)


def test_label_map_to_masks_skips_background_and_slivers():
    labels = np.array([[0, 3, 3], [5, 3, 0], [5, 0, 8]])
    masks = prep.label_map_to_masks(labels, min_area=2)
    assert [int(m.sum()) for m in masks] == [3, 2]
