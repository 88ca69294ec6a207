"""tools/dataset_converters/prepare_fashion_mnist_det.py: canvases of
Fashion-MNIST items with COCO boxes and masks from the items' own pixels."""
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from fashion_mnist_utils import write_idx

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
import prepare_fashion_mnist_det as prep  # noqa: E402

THRESHOLD = 10


def _items(num, seed):
    """28x28 items: a bright rectangle (the garment) with a dark, below-
    threshold speck beside it; labels cycle through the 10 classes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((num, 28, 28), np.uint8)
    for image in images:
        top, left = rng.integers(0, 10, 2)
        height, width = rng.integers(8, 18, 2)
        image[top:top + height, left:left + width] = rng.integers(
            THRESHOLD + 1, 256, (height, width))
        image[27, 27] = THRESHOLD  # not part of the item
    return images, np.arange(num) % 10


@pytest.fixture
def fashion_root(tmp_path):
    for prefix, seed in (('train', 0), ('t10k', 1)):
        write_idx(str(tmp_path), prefix, *_items(40, seed))
    return str(tmp_path)


def test_canvases_hold_whole_disjoint_items(fashion_root, tmp_path):
    out = tmp_path / 'det'
    prep.main([
        '--data-root', fashion_root, '--out-dir',
        str(out), '--num-train', '8', '--num-val', '4', '--canvas', '56',
        '--threshold',
        str(THRESHOLD)
    ])
    for split, num_images in (('train', 8), ('val', 4)):
        coco = COCO(str(out / 'annotations' / f'instances_{split}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(
            prep.FashionMNIST.METAINFO['classes'])
        assert len(coco.getImgIds()) == num_images
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            pixels = np.array(Image.open(out / 'images' / info['file_name']))
            assert pixels.shape == (56, 56)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert 1 <= len(anns) <= 3
            covered = np.zeros((56, 56), int)
            for ann in anns:
                mask = coco.annToMask(ann).astype(bool)
                covered += mask
                # the mask is exactly the item's bright pixels: a whole
                # rectangle, its box the mask's tight box
                assert (pixels[mask] > THRESHOLD).all()
                rows = np.flatnonzero(mask.any(1))
                cols = np.flatnonzero(mask.any(0))
                assert ann['bbox'] == [
                    cols[0], rows[0], cols[-1] - cols[0] + 1,
                    rows[-1] - rows[0] + 1
                ]
                assert mask.sum() == ann['area'] == (
                    ann['bbox'][2] * ann['bbox'][3])
                assert 1 <= ann['category_id'] <= 10
            assert covered.max() == 1  # no two items overlap
            # nothing bright outside the items; the dark specks stay out
            assert (pixels[covered == 0] <= THRESHOLD).all()


def test_same_seed_same_files_and_splits_use_their_own_items(
        fashion_root, tmp_path):
    args = ['--data-root', fashion_root, '--num-train', '5', '--num-val', '5']
    for name in ('a', 'b'):
        prep.main(args + ['--out-dir', str(tmp_path / name)])
    for split in ('train', 'val'):
        for image_id in range(1, 6):
            files = [
                tmp_path / name / 'images' / split / f'{image_id:06d}.png'
                for name in ('a', 'b')
            ]
            assert files[0].read_bytes() == files[1].read_bytes()
    train = np.array(Image.open(tmp_path / 'a/images/train/000001.png'))
    val = np.array(Image.open(tmp_path / 'a/images/val/000001.png'))
    assert not np.array_equal(train, val)


def test_running_out_of_items_says_what_to_change(fashion_root, tmp_path):
    with pytest.raises(ValueError, match='ran out.*--num-train'):
        prep.main([
            '--data-root', fashion_root, '--out-dir',
            str(tmp_path / 'det'), '--num-train', '100'
        ])
