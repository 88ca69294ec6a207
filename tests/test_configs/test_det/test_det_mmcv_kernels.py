"""Mask R-CNN where mmcv has no kernels (torchvision's run instead, forced
here on CPU) and under --amp (bfloat16 autocast on CPU), train step and
predict."""
import torch
from mmengine.dataset import pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from det_test_utils import tiny_det_cfg

from mmitpn.compat import apply_compat_patches, mmcv_ops
from mmitpn.tools.train_setup import enable_amp


def build(data_root, amp=False):
    import mmcv.ops  # noqa: F401  (the fix applies once it is imported)
    from mmdet.registry import DATASETS, MODELS
    apply_compat_patches()
    cfg = tiny_det_cfg(data_root)
    if amp:
        enable_amp(cfg)
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, wrapper, pseudo_collate([dataset[0], dataset[1]])


def train_step_and_predict(model, wrapper, batch):
    model.train()
    losses = model.train_step(batch, wrapper)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= \
        set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad(), wrapper.optim_context(model):
        results = model.test_step(batch)
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape[1] == 4
        assert pred.masks.shape[0] == len(pred.bboxes) == len(pred.scores)
    return results


def test_train_and_predict_with_torchvision_kernels(synthetic_coco,
                                                    monkeypatch):
    import torchvision
    calls = []
    for name in ('nms', 'roi_align'):
        original = getattr(torchvision.ops, name)
        monkeypatch.setattr(
            torchvision.ops, name,
            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(
                *a, **k))
    monkeypatch.setattr(mmcv_ops, 'mmcv_has_kernel', lambda device: False)
    train_step_and_predict(*build(synthetic_coco))
    # The RPN and the box head suppress, RoI features and mask targets pool.
    assert calls.count('nms') >= 2 and calls.count('roi_align') >= 3


def test_train_and_predict_under_amp(synthetic_coco):
    model, wrapper, batch = build(synthetic_coco, amp=True)
    assert type(wrapper).__name__ == 'BF16AutocastOptimWrapper'
    results = train_step_and_predict(model, wrapper, batch)
    assert any(len(r.pred_instances.bboxes) for r in results)
