"""The tiny det config trains through mmengine's Runner (SyncBN reverted on
one CPU process, layer-decay AdamW) and mmdet's CocoMetric evaluates it."""
import pytest
from mmengine.runner import Runner

from det_test_utils import tiny_det_cfg


@pytest.mark.slow
def test_tiny_det_trains_and_reports_bbox_and_segm_map(synthetic_coco,
                                                        tmp_path):
    cfg = tiny_det_cfg(synthetic_coco)
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work'),
        'train_cfg.max_epochs': 2,
        'train_cfg.val_interval': 2,
        'param_scheduler': [dict(type='ConstantLR', factor=1.0)],
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
    })
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50'):
        assert 0. <= metrics[key] <= 1.
    scalars = (tmp_path / 'work').rglob('scalars.json')
    assert any('"loss_mask"' in p.read_text() for p in scalars)
