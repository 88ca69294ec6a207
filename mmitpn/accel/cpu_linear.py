"""``nn.Linear`` whose CPU matrix products run through oneDNN.

PyTorch's CPU ``addmm``/``mm`` for float32 call MKL's ``sgemm``. On iTPN's
shapes (2 threads, AMD EPYC with AVX-512) oneDNN's matmul, which PyTorch
ships for its bfloat16 path and for ``torch.compile``, is 1.1-1.6x faster for
the forward product and for the gradient of the input, and it writes the
bias (and, without autograd, the GELU) itself instead of in separate passes
over the output. The weight gradient takes whichever of the two is faster
for its shape. Under CPU bfloat16 autocast the operands are cast as autocast
would cast them. Results are the same products summed in another order (a
few ulp in float32).

Everything else (GPU, other dtypes, TorchScript, ``torch.jit.trace`` as used
by FLOP counters, ``torch.compile``) takes ``F.linear`` unchanged.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, '_linear_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None


def _onednn_linear(x, weight, bias, activation='none'):
    # 'none' as the post-op algorithm is oneDNN's exact (erf) GELU.
    return _ONEDNN_LINEAR(x, weight, bias, activation, [], 'none')


def _weight_grad(grad_rows: torch.Tensor,
                 x_rows: torch.Tensor) -> torch.Tensor:
    """``grad_rows.t() @ x_rows``, the ``(out, in)`` weight gradient.

    In float32, oneDNN computes this product 1.15-1.7x faster than MKL for
    weights at least 512 long with 3x more inputs than outputs (the MLP's
    ``fc2`` in stage 3 and the decoders); MKL is as fast or faster for the
    other shapes here, and for every bfloat16 shape ``mm`` already calls
    oneDNN. (For 3x more outputs than inputs oneDNN would be faster too, but
    only with the weight's transpose as output, and the copy to the weight's
    layout costs what the product saves.)
    """
    out_features, in_features = grad_rows.shape[1], x_rows.shape[1]
    if (grad_rows.dtype != torch.float32 or out_features < 512
            or in_features < 3 * out_features):
        return grad_rows.t().mm(x_rows)
    return _onednn_linear(grad_rows.t(), x_rows.t(), None)


class _OneDNNLinearFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _onednn_linear(grad_out, weight.t(), None)
        grad_rows = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_weight = _weight_grad(grad_rows,
                                       x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias


def _onednn_dtype(x: torch.Tensor,
                  weight: torch.Tensor) -> Optional[torch.dtype]:
    """The dtype to compute in through oneDNN, or None for ``F.linear``."""
    if (_ONEDNN_LINEAR is None or torch.jit.is_scripting()
            or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or x.device.type != 'cpu' or x.numel() == 0):
        return None
    if torch.is_autocast_enabled('cpu'):
        dtype = torch.get_autocast_dtype('cpu')
        return dtype if dtype == torch.bfloat16 else None
    return x.dtype if x.dtype == weight.dtype == torch.float32 else None


def _needs_grad(*tensors: Optional[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in tensors)


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (same parameters and keys) with oneDNN products on CPU.

    :func:`mmitpn.accel.accelerate` swaps it in for the ``nn.Linear`` layers
    of mmitpn's modules.

    ``forward(x, gelu=True)`` applies the exact GELU after the product;
    without autograd it runs inside oneDNN's product. Under bfloat16
    autocast without autograd (inference), the weight is cast and packed for
    oneDNN once and kept until it changes, instead of being cast on every
    forward (together 8-12 % of iTPN-B's bfloat16 inference on CPU). float32
    weights are used as they are, so inference holds no second float32 copy.
    """

    # (key, packed bfloat16 weight); a class default so that swapping an
    # nn.Linear's class to this one needs no __init__.
    _packed_weight = None

    def _weight_in(self, dtype: torch.dtype, rows: int) -> torch.Tensor:
        weight = self.weight
        if dtype == weight.dtype or _needs_grad(weight):
            self._packed_weight = None
            return weight.to(dtype)
        key = (dtype, weight.data_ptr(), weight._version)
        if self._packed_weight is None or self._packed_weight[0] != key:
            self._packed_weight = (key, torch.ops.mkldnn._reorder_linear_weight(
                weight.detach().to(dtype), rows))
        return self._packed_weight[1]

    def __getstate__(self):
        # oneDNN-packed tensors can be neither deep-copied nor pickled.
        return {**self.__dict__, '_packed_weight': None}

    def forward(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        dtype = _onednn_dtype(x, self.weight)
        if dtype is None:
            self._packed_weight = None
            out = F.linear(x, self.weight, self.bias)
            return F.gelu(out) if gelu else out
        weight = self._weight_in(dtype, x.numel() // x.shape[-1])
        x = x.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        with torch.autocast('cpu', enabled=False):
            if not _needs_grad(x, weight, bias):
                return _onednn_linear(x, weight, bias,
                                      'gelu' if gelu else 'none')
            out = _OneDNNLinearFunction.apply(x, weight, bias)
            return F.gelu(out) if gelu else out
