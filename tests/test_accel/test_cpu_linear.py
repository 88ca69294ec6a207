"""``OneDNNLinear``: oneDNN products on CPU, same results as nn.Linear."""
import copy
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmitpn.accel.cpu_linear import _ONEDNN_LINEAR, OneDNNLinear

pytestmark = pytest.mark.skipif(
    _ONEDNN_LINEAR is None, reason='this torch build has no oneDNN')


def _pair(in_features, out_features, seed=0):
    torch.manual_seed(seed)
    ours = OneDNNLinear(in_features, out_features)
    ref = nn.Linear(in_features, out_features)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _ops(fn):
    with torch.profiler.profile() as prof:
        fn()
    return {event.name for event in prof.events()}


# (512, 2048) and (128, 384) take MKL's mm for the weight gradient,
# (2048, 512) oneDNN's product.
@pytest.mark.parametrize('in_features,out_features',
                         [(512, 2048), (2048, 512), (128, 384)])
@pytest.mark.parametrize('gelu', [False, True])
def test_float32_forward_and_gradients_match_nn_linear(
        in_features, out_features, gelu):
    ours, ref = _pair(in_features, out_features)
    x = torch.randn(2, 3, 50, in_features)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_ref = ours(x_ours, gelu=gelu), ref(x_ref)
    if gelu:
        y_ref = F.gelu(y_ref)
    grad = torch.randn_like(y_ref)
    y_ours.backward(grad)
    y_ref.backward(grad)
    assert y_ours.shape == y_ref.shape == (2, 3, 50, out_features)
    torch.testing.assert_close(y_ours, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad,
                               rtol=1e-5, atol=5e-4)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-5,
                               atol=5e-4)
    assert ours.weight.grad.is_contiguous()
    # The products really went through oneDNN.
    assert 'mkldnn::_linear_pointwise' in _ops(
        lambda: ours(x_ours).sum().backward())


def test_no_grad_fuses_exact_gelu_and_frozen_weights_keep_input_grad():
    ours, ref = _pair(256, 768)
    x = torch.randn(4, 49, 256)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, gelu=True), F.gelu(ref(x)),
                                   rtol=1e-5, atol=1e-5)
    ours.requires_grad_(False)
    x = x.requires_grad_()
    ours(x, gelu=True).sum().backward()
    expected = torch.autograd.grad(F.gelu(ref(x)).sum(), x)[0]
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_autocast_matches_autocast_nn_linear_and_trains():
    ours, ref = _pair(512, 1536)
    x = torch.randn(8, 49, 512)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y_ours, y_ref = ours(x), ref(x)
    assert y_ours.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y_ours.float(), y_ref.float(), rtol=1e-2,
                               atol=1e-2)
    y_ours.float().square().mean().backward()
    y_ref.float().square().mean().backward()
    assert ours.weight.grad.dtype == torch.float32
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad,
                               rtol=2e-2, atol=2e-3)


def test_bfloat16_inference_weight_is_packed_once_and_follows_updates():
    ours, ref = _pair(128, 384)
    x = torch.randn(3, 128)

    def run(module):
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            return module(x).float()

    first = run(ours)
    packed = ours._packed_weight[1]
    run(ours)
    assert ours._packed_weight[1] is packed
    torch.testing.assert_close(first, run(ref), rtol=0, atol=0)
    # An in-place update (optimizer, EMA, load_state_dict) repacks.
    with torch.no_grad():
        ours.weight.mul_(2.)
        ref.weight.mul_(2.)
    torch.testing.assert_close(run(ours), run(ref), rtol=0, atol=0)
    assert ours._packed_weight[1] is not packed
    # The packed tensor can't be copied or pickled; copies drop it.
    assert copy.deepcopy(ours)._packed_weight is None
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=False)._packed_weight is None


def test_traced_and_float64_inputs_use_plain_linear():
    ours, ref = _pair(64, 32)
    x = torch.randn(5, 64)
    traced = torch.jit.trace(ours, (x, ))
    assert 'aten::linear' in str(traced.graph)
    assert 'mkldnn' not in str(traced.graph)
    torch.testing.assert_close(traced(x), ref(x))
    ours.double()
    ref.double()
    x64 = x.double()
    assert 'mkldnn::_linear_pointwise' not in _ops(lambda: ours(x64))
    torch.testing.assert_close(ours(x64), ref(x64), rtol=0, atol=0)
