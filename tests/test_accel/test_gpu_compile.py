"""The GPU fast path (mmitpn.accel.gpu_compile): which modules it compiles
and how, that a copy compiles its own, and that compiled results match the
plain path. Inductor compiles for the CPU here, with the options a GPU gets
(CUDA graphs are a GPU-only step of 'reduce-overhead'); the tests named
``cuda`` run the same on a GPU (tools/gpu_check.sh runs them)."""
import copy

import pytest
import torch
import torch.nn as nn
from torch._inductor import config as inductor_config

from tiny_models import TINY_HIVIT, tiny_ema_pretrain_cfg

from mmitpn.accel import accelerate
from mmitpn.accel.gpu_compile import (COMPILE_OPTIONS, CompiledHiViT,
                                      CompiledPyramid, compile_options,
                                      swap_compiled)
from mmitpn.models import iTPNHiViT, iTPNPyramid
from mmitpn.registry import MODELS

EAGER = dict(backend='eager')  # dynamo's capture, run by eager kernels
has_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                              reason='needs a CUDA GPU')


@pytest.fixture(autouse=True)
def fresh_dynamo(monkeypatch):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def tiny_backbone(**kwargs):
    return iTPNHiViT(arch=TINY_HIVIT, img_size=32, patch_size=8, **kwargs)


def ema_model(device='cpu'):
    torch.manual_seed(0)
    model = MODELS.build(tiny_ema_pretrain_cfg()).to(device)
    model.train()
    model.init_teacher()
    return model


def test_the_outermost_mmitpn_modules_are_swapped_and_back():
    model = ema_model()
    before = model.state_dict(keep_vars=True)
    assert swap_compiled(model, True) == {'iTPN -> CompiledITPN': 1}
    # The algorithm's compiled loss holds its backbone and pyramid.
    assert type(model.backbone) is iTPNHiViT
    assert type(model.neck) is iTPNPyramid
    assert compile_options(model) == COMPILE_OPTIONS
    after = model.state_dict(keep_vars=True)
    assert list(after) == list(before)
    assert all(after[k] is before[k] for k in before)
    assert swap_compiled(model, True) == {}  # already swapped
    assert swap_compiled(model, False) == {'CompiledITPN -> iTPN': 1}
    assert type(model).__name__ == 'iTPN'

    parts = nn.ModuleDict(dict(
        backbone=tiny_backbone(),
        neck=iTPNPyramid(in_channels=(16, 32, 64), out_channels=32)))
    assert swap_compiled(parts, True) == {
        'iTPNHiViT -> CompiledHiViT': 1, 'iTPNPyramid -> CompiledPyramid': 1}
    assert isinstance(parts.backbone, CompiledHiViT)
    assert isinstance(parts.neck, CompiledPyramid)


def test_detectors_stay_eager():
    # Their batches change shape, and every new grid compiles again.
    for host, compiled in (('mmdet.models.detectors.mask_rcnn', False),
                           ('mmseg.models.segmentors.encoder_decoder', True),
                           ('mmpretrain.models.classifiers.image', True)):
        host_cls = type('Host', (nn.Module, ), {'__module__': host})
        model = host_cls()
        model.backbone = tiny_backbone()
        assert bool(swap_compiled(model, True)) == compiled, host
        assert isinstance(model.backbone, CompiledHiViT) == compiled
    assert COMPILE_OPTIONS == dict(mode='reduce-overhead', dynamic=False)


def test_each_method_has_its_own_compile_cache():
    # One compiled function for every method would share dynamo's
    # recompilation budget (8 entries) between backbone and pyramid.
    parts = nn.ModuleDict(dict(
        backbone=tiny_backbone(),
        neck=iTPNPyramid(in_channels=(16, 32, 64), out_channels=32))).eval()
    swap_compiled(parts, True, options=EAGER)
    with torch.no_grad():
        parts.neck(parts.backbone(torch.randn(1, 3, 32, 32)))
    codes = {iTPNHiViT.forward.__code__, iTPNPyramid.forward.__code__}
    compiled_codes = {
        code for code in codes
        if torch._dynamo.eval_frame._debug_get_cache_entry_list(code)}
    assert compiled_codes == codes


def test_accelerate_compiles_only_models_on_a_gpu():
    model = nn.ModuleDict(dict(backbone=tiny_backbone()))
    counts = accelerate(model, 'on')  # on the CPU: the CPU fast paths
    assert type(model.backbone) is iTPNHiViT
    assert not any('Compiled' in name for name in counts)


def test_a_copy_runs_its_own_weights():
    # mmengine's EMA hooks deep-copy models: the copy must run its own
    # weights, not the original's compiled function.
    backbone = tiny_backbone().eval()
    swap_compiled(backbone, True, options=EAGER)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        backbone(x)  # compiled now
        copied = copy.deepcopy(backbone)
        for param in copied.parameters():
            param.add_(0.5)
        assert compile_options(copied) == EAGER
        swap_compiled(copied, False)
        ref = copied(x)
        swap_compiled(copied, True, options=EAGER)
        out, original = copied(x), backbone(x)
    for r, o, a in zip(ref, out, original):
        torch.testing.assert_close(o, r)
        assert not torch.allclose(a, r)


def apply_fast_path(model, device):
    """The GPU fast path: through the switch on a GPU; on the CPU, where the
    switch gives the CPU fast paths, swapped in directly."""
    if device == 'cuda':
        accelerate(model, 'on')
    else:
        swap_compiled(model, True)


def _loss_and_grads(model, x, dtype, steps=1):
    # CUDA graphs: the first step warms up, the second records, the third
    # replays.
    for _ in range(steps):
        model.zero_grad()
        torch.manual_seed(1)  # the same masks
        with torch.autocast(x.device.type, dtype=dtype,
                            enabled=dtype != torch.float32):
            losses = model.loss(x)
        sum(losses.values()).backward()
    grads = {n: p.grad.float() for n, p in model.named_parameters()
             if p.grad is not None}
    return {k: v.detach().float() for k, v in losses.items()}, grads


def _relative_errors(grads, ref_grads):
    return {
        name: ((grads[name] - ref).abs().max() /
               ref.abs().max().clamp_min(1e-12)).item()
        for name, ref in ref_grads.items()
    }


def check_bf16_training_parity(device):
    """Loss and gradients of the compiled step against eager, both in
    bfloat16 autocast, and against float32: the compiled step is as close to
    float32 as eager bfloat16 is."""
    plain = ema_model(device)
    fast = copy.deepcopy(plain)
    apply_fast_path(fast, device)
    assert type(fast).__name__ == 'CompiledITPN'
    x = torch.randn(2, 3, 32, 32, device=device)
    # Inductor draws the masking noise from torch's generator, as eager.
    with inductor_config.patch(fallback_random=True):
        losses, grads = _loss_and_grads(fast, x, torch.bfloat16,
                                        steps=3 if device == 'cuda' else 1)
    ref_losses, ref_grads = _loss_and_grads(plain, x, torch.bfloat16)
    _, fp32_grads = _loss_and_grads(plain, x, torch.float32)
    assert list(losses) == [
        'loss_mim', 'loss_mfm_s4', 'loss_mfm_s8', 'loss_mfm_s16'
    ]
    for key, value in ref_losses.items():
        torch.testing.assert_close(losses[key], value, rtol=2e-3, atol=1e-4)
    assert grads.keys() == ref_grads.keys() and len(grads) > 50
    vs_eager = _relative_errors(grads, ref_grads)
    assert max(vs_eager.values()) < 0.05, max(vs_eager, key=vs_eager.get)
    compiled_vs_fp32 = max(_relative_errors(grads, fp32_grads).values())
    eager_vs_fp32 = max(_relative_errors(ref_grads, fp32_grads).values())
    assert compiled_vs_fp32 < 1.5 * eager_vs_fp32 + 1e-3
    return vs_eager


def tiny_classifier():
    """An mmpretrain ImageClassifier around a tiny iTPN backbone, in the
    fine-tuning configs' layout."""
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    return MMPRETRAIN_MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='mmitpn.iTPNHiViT', arch=TINY_HIVIT,
                           img_size=32, patch_size=8, use_rel_pos_bias=True,
                           out_indices=(2, )),
             neck=dict(type='mmitpn.GlobalAvgPoolNorm', in_channels=64),
             head=dict(type='LinearClsHead', num_classes=10,
                       in_channels=64)))


def check_inference_parity(device):
    """Classifier logits and backbone + pyramid features, compiled against
    eager (float32)."""
    torch.manual_seed(0)
    plain = nn.ModuleDict(dict(
        classifier=tiny_classifier(),
        backbone=tiny_backbone(use_rel_pos_bias=True,
                               layer_scale_init_value=0.1),
        neck=iTPNPyramid(in_channels=(16, 32, 64), out_channels=32,
                         num_outs=4))).to(device).eval()
    fast = copy.deepcopy(plain)
    apply_fast_path(fast, device)
    assert isinstance(fast.classifier.backbone, CompiledHiViT)
    assert isinstance(fast.backbone, CompiledHiViT)
    x = torch.randn(2, 3, 32, 32, device=device)
    with torch.no_grad():
        ref = [plain.classifier(x, mode='tensor')]
        ref += plain.neck(plain.backbone(x))
        for _ in range(3):  # CUDA graphs warm up, record, replay
            out = [fast.classifier(x, mode='tensor')]
            out += fast.neck(fast.backbone(x))
    assert out[0].shape == (2, 10) and len(out) == 1 + 4
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_pretraining_step_matches_eager_in_bf16():
    check_bf16_training_parity('cpu')


@pytest.mark.slow
def test_compiled_inference_matches_eager():
    check_inference_parity('cpu')


@has_cuda
def test_cuda_compiled_pretraining_step_matches_eager_in_bf16():
    check_bf16_training_parity('cuda')


@has_cuda
def test_cuda_compiled_inference_matches_eager():
    check_inference_parity('cuda')


def test_cfg_compile_beside_the_gpu_fast_path_is_refused(monkeypatch):
    from types import SimpleNamespace

    from mmengine.config import Config

    from mmitpn.tools import train_setup

    # What accelerate reports for a pre-training model on a GPU.
    monkeypatch.setattr(train_setup, 'accelerate',
                        lambda model, setting: {'iTPN -> CompiledITPN': 1})
    monkeypatch.setattr(train_setup.CheckedRunner, 'from_cfg',
                        lambda cfg: SimpleNamespace(model=nn.Linear(1, 1)))
    with pytest.raises(ValueError, match="cfg.compile and the GPU fast path"):
        train_setup.build_runner(Config(dict(compile=True, accel='on')))
    assert train_setup.build_runner(Config(dict(accel='on'))).model
