"""The mmcv ops fallback: torchvision's kernels where mmcv has none (forced
here on CPU, where both exist, to compare them), float32 for dtypes mmcv's
kernels do not take."""
import mmcv.ops
import numpy as np
import pytest
import torch
from mmcv.ops import RoIAlign, nms

from mmitpn.compat import apply_compat_patches, mmcv_ops

apply_compat_patches()
batched_nms = mmcv.ops.batched_nms  # as the fix left it


@pytest.fixture
def no_mmcv_kernel(monkeypatch):
    """mmcv reported without CPU kernels: the fallback's torchvision path."""
    monkeypatch.setattr(mmcv_ops, 'mmcv_has_kernel', lambda device: False)


def random_boxes(num, seed=0, classes=3):
    gen = torch.Generator().manual_seed(seed)
    corner = torch.rand(num, 2, generator=gen) * 60
    boxes = torch.cat([corner, corner + 4 + torch.rand(num, 2, generator=gen)
                       * 30], 1)
    return (boxes, torch.rand(num, generator=gen),
            torch.randint(0, classes, (num, ), generator=gen))


def test_fallback_is_installed():
    import sys
    for name in ('mmcv.ops.nms', 'mmcv.ops.roi_align'):
        assert isinstance(sys.modules[name].ext_module,
                          mmcv_ops.KernelFallback)


@pytest.mark.parametrize('offset', [0, 1])
def test_nms_keeps_the_same_boxes(offset, monkeypatch):
    boxes, scores, labels = random_boxes(300)
    ref_dets, ref_keep = nms(boxes, scores, 0.5, offset=offset)
    ref_batched = batched_nms(boxes, scores, labels, dict(iou_threshold=0.6))
    monkeypatch.setattr(mmcv_ops, 'mmcv_has_kernel', lambda device: False)
    dets, keep = nms(boxes, scores, 0.5, offset=offset)
    assert 30 < len(keep) < 300  # overlapping boxes were suppressed
    assert torch.equal(keep, ref_keep) and torch.equal(dets, ref_dets)
    batched = batched_nms(boxes, scores, labels, dict(iou_threshold=0.6))
    assert torch.equal(batched[1], ref_batched[1])
    torch.testing.assert_close(batched[0], ref_batched[0], rtol=0, atol=0)


@pytest.mark.parametrize('aligned,sampling_ratio', [(True, 0), (False, 2)])
def test_roi_align_features_and_gradients(aligned, sampling_ratio,
                                          monkeypatch):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 20, 24, generator=gen, requires_grad=True)
    boxes, _, _ = random_boxes(12, seed=1)
    rois = torch.cat([torch.arange(12)[:, None] % 2, boxes / 3], 1).float()
    layer = RoIAlign((7, 7), spatial_scale=0.5, sampling_ratio=sampling_ratio,
                     aligned=aligned)
    grad = torch.randn(12, 8, 7, 7, generator=gen)
    ref = layer(feats, rois)
    (ref_grad, ) = torch.autograd.grad(ref, feats, grad)
    monkeypatch.setattr(mmcv_ops, 'mmcv_has_kernel', lambda device: False)
    out = layer(feats, rois)
    (out_grad, ) = torch.autograd.grad(out, feats, grad)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_grad, ref_grad, rtol=0, atol=1e-5)


def test_mask_target_roi_align(no_mmcv_kernel):
    from mmdet.structures.mask import BitmapMasks
    rng = np.random.default_rng(0)
    masks = BitmapMasks(rng.random((3, 40, 50)) > 0.5, 40, 50)
    boxes = np.array([[2, 3, 30, 35], [10, 0, 49, 20], [0, 0, 50, 40]],
                     dtype=np.float32)
    inds = np.array([0, 1, 2])
    out = masks.crop_and_resize(boxes, (14, 14), inds, binarize=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mmcv_ops, 'mmcv_has_kernel', lambda device: True)
        ref = masks.crop_and_resize(boxes, (14, 14), inds, binarize=False)
    np.testing.assert_allclose(out.masks, ref.masks, rtol=0, atol=1e-5)


def test_max_pooling_without_kernel_names_the_fix(no_mmcv_kernel):
    layer = RoIAlign((2, 2), pool_mode='max')
    with pytest.raises(RuntimeError, match="pool_mode='avg'"):
        layer(torch.randn(1, 2, 8, 8), torch.tensor([[0., 1, 1, 6, 6]]))


def test_bfloat16_inputs_run_in_float32():
    boxes, scores, labels = random_boxes(200)
    boxes, scores = boxes.bfloat16(), scores.bfloat16()
    dets, keep = batched_nms(boxes, scores, labels, dict(iou_threshold=0.5))
    ref_dets, ref = batched_nms(boxes.float(), scores.float(), labels,
                                dict(iou_threshold=0.5))
    assert torch.equal(keep, ref) and torch.equal(dets, ref_dets)
    # Where mmdet bound it by name, too.
    from mmdet.models.layers import bbox_nms
    assert bbox_nms.batched_nms is batched_nms
    assert batched_nms.mmitpn_float
    feats = torch.randn(1, 4, 16, 16, requires_grad=True)
    rois = torch.tensor([[0., 1, 2, 12, 14], [0, 4, 4, 9, 8]])
    layer = RoIAlign((5, 5), spatial_scale=1.)
    out = layer(feats.bfloat16(), rois)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(feats, rois),
                               rtol=0.02, atol=0.02)
    out.float().sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
