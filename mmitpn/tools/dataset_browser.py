"""Drawing what a config's data pipeline hands the model, with the
ground truth, by the config's own visualizer (the back end of
``tools/analysis_tools/browse_dataset.py``): mmpretrain's
``UniversalVisualizer`` (labels), mmdet's ``DetLocalVisualizer`` (boxes and
masks), mmseg's ``SegLocalVisualizer`` (label maps)."""
import os.path as osp
from typing import Iterator, Optional

from mmengine.registry import DATASETS, VISUALIZERS, init_default_scope

from mmitpn.compat import apply_compat_patches
from mmitpn.tools.result_drawing import CLS_DRAW_SHORT_EDGE

PHASES = ('train', 'val', 'test')


def _instances_for_drawing(instances) -> None:
    """mmdet's pipelines pack boxes as box objects and masks as
    ``BitmapMasks``/``PolygonMasks``; its visualizer draws tensors and
    boolean arrays."""
    from mmdet.structures.bbox import BaseBoxes
    from mmdet.models.utils import mask2ndarray
    if isinstance(instances.get('bboxes'), BaseBoxes):
        instances.bboxes = instances.bboxes.tensor
    if instances.get('masks') is not None:
        instances.masks = mask2ndarray(instances.masks).astype(bool)


def browse_dataset(cfg,
                   phase: str = 'train',
                   output_dir: Optional[str] = None,
                   show: bool = False,
                   show_number: Optional[int] = None,
                   wait_time: float = 2.) -> Iterator[str]:
    """Draw the first ``show_number`` items of the ``phase`` set after its
    pipeline (random transforms applied as in a run).

    Yields:
        str: The name of each drawn item, ``<index>_<image file stem>`` or
        ``<index>`` (in-memory images); its drawing is
        ``output_dir/<name>.png`` when ``output_dir`` is given.
    """
    if phase not in PHASES:
        raise ValueError(f'phase must be one of {PHASES}, got {phase!r}')
    loader = cfg.get(f'{phase}_dataloader')
    if not loader:
        raise ValueError(f'the config has no {phase}_dataloader; choose '
                         f'--phase among the ones it has')
    apply_compat_patches()
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    dataset = DATASETS.build(loader.dataset)
    visualizer = VISUALIZERS.build(
        dict(cfg.visualizer, name='browse_dataset', vis_backends=None))
    visualizer.dataset_meta = dataset.metainfo
    number = len(dataset) if show_number is None else min(
        show_number, len(dataset))
    for index in range(number):
        item = dataset[index]
        # OpenMMLab pipelines keep the BGR order of LoadImageFromFile (the
        # data preprocessor converts); the visualizers draw RGB.
        image = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()
        sample = item['data_samples']
        if 'gt_instances' in sample:
            _instances_for_drawing(sample.gt_instances)
        name = (f'{index}_{osp.splitext(osp.basename(sample.img_path))[0]}'
                if 'img_path' in sample else str(index))
        out_file = osp.join(output_dir, f'{name}.png') if output_dir else None
        if hasattr(visualizer, 'visualize_cls'):
            visualizer.visualize_cls(
                image,
                sample,
                draw_pred=False,
                show=show,
                wait_time=wait_time,
                out_file=out_file,
                name=name,
                resize=CLS_DRAW_SHORT_EDGE)
        else:
            visualizer.add_datasample(
                name,
                image,
                sample,
                draw_pred=False,
                show=show,
                wait_time=wait_time,
                out_file=out_file)
        yield name
