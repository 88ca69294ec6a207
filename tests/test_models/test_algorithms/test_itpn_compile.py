"""iTPN pre-training under torch.compile: the forward and loss and the
backbone + pyramid inference are each captured as one graph
(``fullgraph=True``), compiled results equal eager ones, and the EMA teacher
is updated by foreach calls with mmengine's values."""
import copy

import pytest
import torch
from mmengine.model import ExponentialMovingAverage

from tiny_models import TINY_HIVIT, tiny_ema_pretrain_cfg

from mmitpn.registry import MODELS


def ema_model():
    torch.manual_seed(0)
    model = MODELS.build(tiny_ema_pretrain_cfg())
    model.train()
    model.init_teacher()
    return model


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_ema_update_equals_mmengine_per_tensor_loop():
    model = ema_model()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    reference = copy.deepcopy(model.teacher)
    reference.momentum = 1 - 0.9
    # mmengine's own loop of lerp_ calls, on a copy of the same teacher
    ExponentialMovingAverage.update_parameters(reference, model.backbone)
    model.update_teacher(0.9)
    state, expected = model.teacher.state_dict(), reference.state_dict()
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert int(state['steps']) == 2
    # the update moved every tensor (the online weights were perturbed)
    initial = ema_model().teacher.state_dict()
    assert all(not torch.equal(state[k], initial[k]) for k in state
               if k.startswith('module.'))


def test_ema_teacher_knows_on_the_host_whether_it_was_initialised():
    model = MODELS.build(tiny_ema_pretrain_cfg())
    assert not model.teacher.initialized
    with pytest.raises(RuntimeError, match='init_teacher'):
        model.update_teacher()
    with pytest.raises(RuntimeError, match='EMATeacherHook'):
        model.loss(torch.randn(2, 3, 32, 32))
    model.init_teacher()
    assert model.teacher.initialized and int(model.teacher.steps) == 1
    # A state dict carries it: a loaded teacher that was initialised is
    # used as is, an uninitialised one still refuses to run.
    loaded = MODELS.build(tiny_ema_pretrain_cfg())
    loaded.load_state_dict(model.state_dict())
    assert loaded.teacher.initialized
    loaded.load_state_dict(MODELS.build(tiny_ema_pretrain_cfg()).state_dict())
    assert not loaded.teacher.initialized


def _loss_and_grads(model, loss_fn, x):
    torch.manual_seed(1)  # the same masks
    losses = loss_fn(x)
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    return losses, grads


def test_forward_and_loss_compile_as_one_graph_with_eager_results():
    plain = ema_model()
    fast = copy.deepcopy(plain)
    x = torch.randn(2, 3, 32, 32)
    # aot_eager: dynamo's capture and AOTAutograd's forward and backward
    # graphs, run by eager kernels, so the results are exactly eager's.
    compiled = torch.compile(fast.loss, fullgraph=True, backend='aot_eager')
    ref_losses, ref_grads = _loss_and_grads(plain, plain.loss, x)
    losses, grads = _loss_and_grads(fast, compiled, x)
    assert list(losses) == [
        'loss_mim', 'loss_mfm_s4', 'loss_mfm_s8', 'loss_mfm_s16'
    ]
    for key, value in ref_losses.items():
        assert torch.equal(losses[key], value), key
    # every trainable tensor gets its gradient, and only those
    assert grads.keys() == ref_grads.keys() and len(grads) == sum(
        p.requires_grad for p in plain.parameters())
    for name, grad in ref_grads.items():
        assert torch.equal(grads[name], grad), name


def test_backbone_and_pyramid_inference_compile_as_one_graph():
    torch.manual_seed(0)
    backbone = MODELS.build(
        dict(type='iTPNHiViT', arch=TINY_HIVIT, img_size=32, patch_size=8,
             use_rel_pos_bias=True, layer_scale_init_value=0.1)).eval()
    neck = MODELS.build(
        dict(type='iTPNPyramid', in_channels=(16, 32, 64), out_channels=32,
             num_outs=5)).eval()

    def features(x):
        return neck(backbone(x))

    compiled = torch.compile(features, fullgraph=True, backend='aot_eager')
    # Another grid than the construction one, as in detection: the
    # position tables are resized inside the graph.
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        ref, out = features(x), compiled(x)
    assert [o.shape[-2:] for o in out] == [(24, 32), (12, 16), (6, 8),
                                           (3, 4), (1, 2)]
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-6)
