"""The accelerator switch: fast paths swapped into a built model, plain
paths untouched, the same results."""
import copy
import glob
import io
import os.path as osp
import re

import pytest
import torch
import torch.nn as nn

from tiny_models import TINY_HIVIT, tiny_ema_pretrain_cfg

from mmitpn.accel import accel_mode, accelerate, cpu_blocks, fast_paths_enabled
from mmitpn.accel.cpu_blocks import FusedGeluMlp
from mmitpn.accel.cpu_linear import _ONEDNN_LINEAR, OneDNNLinear
from mmitpn.models import iTPNHiViT, iTPNPyramid
from mmitpn.models.utils import Attention, AttentionBlock, CMLPBlock, Mlp
from mmitpn.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
needs_onednn = pytest.mark.skipif(
    _ONEDNN_LINEAR is None, reason='this torch build has no oneDNN')


def backbone_and_pyramid():
    torch.manual_seed(0)
    return nn.ModuleDict(
        dict(
            backbone=iTPNHiViT(arch=TINY_HIVIT, img_size=32, patch_size=8,
                               use_rel_pos_bias=True,
                               layer_scale_init_value=0.1),
            neck=iTPNPyramid(in_channels=(16, 32, 64), out_channels=32)))


def features(model, x):
    return model['neck'](model['backbone'](x))


def test_switch_resolution(monkeypatch):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    assert accel_mode() == 'auto' and accel_mode(None) == 'auto'
    assert accel_mode(True) == 'on' and accel_mode('0') == 'off'
    assert fast_paths_enabled('cpu') and not fast_paths_enabled('cuda')
    assert fast_paths_enabled('cuda', 'on')
    assert not fast_paths_enabled('cpu', False)
    monkeypatch.setenv('MMITPN_ACCEL', 'off')
    assert not fast_paths_enabled('cpu', 'on')  # the variable wins
    monkeypatch.setenv('MMITPN_ACCEL', 'fast')
    with pytest.raises(ValueError, match='environment variable MMITPN_ACCEL'):
        accel_mode('on')
    monkeypatch.delenv('MMITPN_ACCEL')
    with pytest.raises(ValueError, match="config key accel is 'yes'"):
        accel_mode('yes')


def test_swap_keeps_parameters_and_keys_and_swaps_back(monkeypatch):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    model = backbone_and_pyramid()
    before = model.state_dict(keep_vars=True)
    counts = accelerate(model, 'on')
    assert counts['Mlp -> FusedGeluMlp'] == 2 + 2 + 2 * 2 + 3
    assert counts['Attention -> CPUMatmulAttention'] == 2
    assert counts['AttentionBlock -> ChunkedAttentionBlock'] == 2
    assert counts['CMLPBlock -> ChunkedCMLPBlock'] == 2 + 2 * 2 + 3
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is OneDNNLinear for m in linears)
    after = model.state_dict(keep_vars=True)
    assert list(after) == list(before)
    assert all(after[k] is before[k] for k in before)
    assert {'backbone.blocks.0.gamma1', 'neck.fuse_s8.0.mlp.fc1.weight'} <= \
        set(after)

    back = accelerate(model, 'off')
    assert sum(back.values()) == sum(counts.values())
    plain = (nn.Linear, Mlp, Attention, AttentionBlock, CMLPBlock)
    assert not any(
        type(m).__module__.startswith('mmitpn.accel') for m in model.modules())
    assert any(type(m) in plain for m in model.modules())
    assert not any('_packed_weight' in vars(m) for m in model.modules())


def test_auto_leaves_gpu_models_and_foreign_layers_alone(monkeypatch):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    head = nn.Linear(32, 10)
    model = nn.Sequential(iTPNPyramid(in_channels=(16, 32, 64),
                                      out_channels=32), head)
    accelerate(model, 'auto')  # on: the model is on the CPU
    assert type(head) is nn.Linear  # not inside an mmitpn module
    assert type(model[0].lateral_s8) is OneDNNLinear
    model.to('meta')  # any non-CPU device
    accelerate(model, 'auto')
    assert type(model[0].lateral_s8) is nn.Linear


def test_only_exact_gelu_mlps_are_fused(monkeypatch):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    model = nn.ModuleList([
        CMLPBlock(8, mlp_layer=lambda d, h, drop: Mlp(
            d, h, act_layer=lambda: nn.GELU(approximate='tanh'))),
        CMLPBlock(8)
    ])

    class OwnLinear(nn.Linear):
        """A user's linear layer, which the accelerator leaves alone."""

    model.append(CMLPBlock(8))
    model[2].mlp.fc1 = OwnLinear(8, 32)
    accelerate(model, 'on')
    assert type(model[0].mlp) is Mlp and type(model[1].mlp) is FusedGeluMlp
    assert type(model[0].mlp.fc1) is OneDNNLinear
    # No oneDNN fc1 to fuse the GELU into.
    assert type(model[2].mlp) is Mlp and type(model[2].mlp.fc1) is OwnLinear
    x = torch.randn(2, 8)
    torch.testing.assert_close(model[2](x),
                               x + model[2].mlp(model[2].norm(x)))


@needs_onednn
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_fast_inference_matches_plain(monkeypatch, dtype):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    # Small enough chunks that the stem stages run chunked here.
    monkeypatch.setattr(cpu_blocks, '_CHUNK_MIN', 1000)
    monkeypatch.setattr(cpu_blocks, '_CHUNK_ELEMS', 500)
    plain = backbone_and_pyramid().eval()
    fast = copy.deepcopy(plain)
    accelerate(fast, 'on')
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), torch.autocast('cpu', dtype, enabled=dtype !=
                                         torch.float32):
        ref, out = features(plain, x), features(fast, x)
        again = features(fast, x)  # with the cached bf16 weights
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(
        rtol=0.05, atol=0.05)
    for r, o, a in zip(ref, out, again):
        assert o.dtype == r.dtype
        torch.testing.assert_close(o.float(), r.float(), **tol)
        torch.testing.assert_close(a, o, rtol=0, atol=0)
    # The packed weights neither stop a deep copy nor a save.
    torch.save(copy.deepcopy(fast), io.BytesIO())


@needs_onednn
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_fast_pretraining_loss_and_gradients_match_plain(monkeypatch, dtype):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    torch.manual_seed(0)
    plain = MODELS.build(tiny_ema_pretrain_cfg())
    plain.init_teacher()
    fast = copy.deepcopy(plain)
    accelerate(fast, 'on')
    x = torch.randn(4, 3, 32, 32)
    results = []
    for model in (plain, fast):
        torch.manual_seed(1)  # the same masks
        with torch.autocast('cpu', dtype, enabled=dtype != torch.float32):
            losses = model.loss(x)
        sum(losses.values()).backward()
        results.append((losses, {
            n: p.grad.float()
            for n, p in model.named_parameters() if p.grad is not None
        }))
    (ref_losses, ref_grads), (losses, grads) = results
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(
        rtol=0.05, atol=2e-3)
    for k in ref_losses:
        torch.testing.assert_close(losses[k].float(), ref_losses[k].float(),
                                   **tol)
    assert grads.keys() == ref_grads.keys() and len(grads) > 50
    for name in ref_grads:
        scale = ref_grads[name].abs().max().clamp_min(1e-8)
        err = (grads[name] - ref_grads[name]).abs().max() / scale
        assert err < (1e-3 if dtype == torch.float32 else 0.1), name


def test_no_accelerator_code_in_the_model_core():
    pattern = re.compile(r'onednn|mkldnn|mallopt|cpu_allocator|mmitpn\.accel',
                         re.IGNORECASE)
    hits = [
        f'{osp.relpath(path, REPO)}:{i + 1}'
        for path in glob.glob(osp.join(REPO, 'mmitpn', 'models', '**',
                                       '*.py'), recursive=True)
        for i, line in enumerate(open(path, encoding='utf-8'))
        if pattern.search(line)
    ]
    assert hits == []
