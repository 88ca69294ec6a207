"""``mmcv_ops_fallback``: mmcv's NMS and RoIAlign where mmcv has no kernel.

mmdet's RPN and ``multiclass_nms`` call ``mmcv.ops.batched_nms`` (so
``nms``), its RoI extractors ``mmcv.ops.RoIAlign`` and its mask targets
``mmcv.ops.roi_align``. An mmcv built without CUDA (``make env`` on a
machine whose CUDA toolkit does not match torch's) raises for CUDA tensors
there, and its CPU kernels take float32/float64 only, so under bfloat16
autocast the RPN stops with "expected scalar type Float but found BFloat16".

The fix stands in for the compiled extension module that ``mmcv.ops.nms``
and ``mmcv.ops.roi_align`` call (nothing else changes in mmcv's Python code):

- a tensor on a device mmcv has no kernel for goes to torchvision's kernel
  (``torchvision.ops.nms``; ``roi_align`` with the same scale, sampling ratio
  and ``aligned``, forward and backward);
- inputs of a dtype mmcv's kernel does not take are computed in float32 and
  the results written back in the caller's dtype;
- everything else goes to mmcv's own kernels, unchanged.

``batched_nms`` also gets float32 boxes and scores: it separates classes by
adding ``class * (max coordinate + 1)`` to the boxes, which in bfloat16
(8 significant bits) moves the corners of a 256-pixel image's boxes by up to
4 pixels. It is replaced wherever it was imported (mmdet binds it by name).

``max`` RoI pooling has no torchvision kernel: it raises, naming the fix.
"""
import functools
import sys
from importlib import import_module

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)
# The dtypes mmcv 2.1's kernels are compiled for, by device type.
KERNEL_DTYPES = {
    'cpu': (torch.float32, torch.float64),
    'cuda': (torch.float16, torch.float32, torch.float64),
}


@functools.lru_cache(maxsize=None)
def mmcv_has_kernel(device_type: str) -> bool:
    """Whether the installed mmcv has compiled kernels for ``device_type``."""
    if device_type == 'cuda':
        from mmcv.ops import get_compiling_cuda_version
        return get_compiling_cuda_version() not in ('', 'not available')
    return device_type in KERNEL_DTYPES


def _kernel_takes(*tensors: torch.Tensor) -> bool:
    dtypes = KERNEL_DTYPES.get(tensors[0].device.type, ())
    return all(t.dtype == tensors[0].dtype and t.dtype in dtypes
               for t in tensors if t.numel())


class KernelFallback:
    """Stands in for mmcv's ``ext_module``; attributes other than the ones
    below are mmcv's."""

    def __init__(self, ext_module):
        self.ext_module = ext_module

    def __getattr__(self, name):
        return getattr(self.ext_module, name)

    def nms(self, bboxes, scores, iou_threshold, offset):
        """Indices of the kept boxes, by decreasing score."""
        if not mmcv_has_kernel(bboxes.device.type):
            import torchvision
            boxes = bboxes.float()
            if offset:  # mmcv's legacy (x2 - x1 + 1) widths
                boxes = torch.cat([boxes[:, :2], boxes[:, 2:] + offset], 1)
            return torchvision.ops.nms(boxes, scores.float(), iou_threshold)
        if not _kernel_takes(bboxes, scores):
            bboxes, scores = bboxes.float(), scores.float()
        return self.ext_module.nms(
            bboxes, scores, iou_threshold=iou_threshold, offset=offset)

    def roi_align_forward(self, input, rois, output, argmax_y, argmax_x,
                          **kwargs):
        """Writes the pooled features into ``output`` (and, for max
        pooling, the arg-max positions into ``argmax_y``/``argmax_x``)."""
        if not mmcv_has_kernel(input.device.type):
            _check_avg_pooling(kwargs['pool_mode'], input.device)
            import torchvision
            output.copy_(
                torchvision.ops.roi_align(
                    input.float(), rois.float(),
                    (kwargs['aligned_height'], kwargs['aligned_width']),
                    kwargs['spatial_scale'], kwargs['sampling_ratio'],
                    kwargs['aligned']))
        elif _kernel_takes(input, rois, output):
            self.ext_module.roi_align_forward(input, rois, output, argmax_y,
                                              argmax_x, **kwargs)
        else:
            outs = [t.float() for t in (output, argmax_y, argmax_x)]
            self.ext_module.roi_align_forward(input.float(), rois.float(),
                                              *outs, **kwargs)
            for dst, src in zip((output, argmax_y, argmax_x), outs):
                dst.copy_(src)

    def roi_align_backward(self, grad_output, rois, argmax_y, argmax_x,
                           grad_input, **kwargs):
        """Writes the gradient of the features into ``grad_input``."""
        if not mmcv_has_kernel(grad_output.device.type):
            _check_avg_pooling(kwargs['pool_mode'], grad_output.device)
            batch, channels, height, width = grad_input.shape
            grad_input.copy_(
                torch.ops.torchvision._roi_align_backward(
                    grad_output.float(), rois.float(),
                    kwargs['spatial_scale'], kwargs['aligned_height'],
                    kwargs['aligned_width'], batch, channels, height, width,
                    kwargs['sampling_ratio'], kwargs['aligned']))
        elif _kernel_takes(grad_output, rois, grad_input):
            self.ext_module.roi_align_backward(grad_output, rois, argmax_y,
                                               argmax_x, grad_input, **kwargs)
        else:
            grad = grad_input.float()
            self.ext_module.roi_align_backward(grad_output.float(),
                                               rois.float(), argmax_y.float(),
                                               argmax_x.float(), grad,
                                               **kwargs)
            grad_input.copy_(grad)


def _check_avg_pooling(pool_mode: int, device: torch.device) -> None:
    if pool_mode == 0:  # mmcv's code for 'max'
        raise RuntimeError(
            f"RoIAlign with pool_mode='max' on {device}: this mmcv has no "
            f"{device.type} kernels and torchvision's roi_align averages "
            "only. Use pool_mode='avg' (mmdet's default) or build mmcv with "
            f'{device.type} ops (see tools/setup_env.sh).')


def float_batched_nms(batched_nms):
    """``batched_nms`` on float32 boxes and scores (see the module doc)."""

    @functools.wraps(batched_nms)
    def run(boxes, scores, idxs, nms_cfg, class_agnostic=False):
        if boxes.dtype in HALF_DTYPES or scores.dtype in HALF_DTYPES:
            boxes, scores = boxes.float(), scores.float()
        return batched_nms(boxes, scores, idxs, nms_cfg, class_agnostic)

    run.mmitpn_float = True
    return run


def install_kernel_fallback() -> None:
    """Put :class:`KernelFallback` in front of the extension module of
    ``mmcv.ops.nms`` and ``mmcv.ops.roi_align``, and
    :func:`float_batched_nms` wherever mmcv's ``batched_nms`` is bound."""
    # By module name: mmcv.ops re-exports functions under the same names.
    nms_module = import_module('mmcv.ops.nms')
    for module in (nms_module, import_module('mmcv.ops.roi_align')):
        if not isinstance(module.ext_module, KernelFallback):
            module.ext_module = KernelFallback(module.ext_module)
    original = nms_module.batched_nms
    if getattr(original, 'mmitpn_float', False):
        return
    wrapped = float_batched_nms(original)
    for module in list(sys.modules.values()):
        if getattr(module, 'batched_nms', None) is original:
            module.batched_nms = wrapped
