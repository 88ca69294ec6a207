"""The CPU fast paths of the blocks: chunked MLP residuals and bfloat16
matmul attention, against the plain blocks."""
import copy

import pytest
import torch

from mmitpn.accel import accelerate
from mmitpn.accel.cpu_blocks import ChunkedAttentionBlock, ChunkedCMLPBlock
from mmitpn.models.utils import AttentionBlock, CMLPBlock


def fast_copy(block):
    fast = copy.deepcopy(block)
    accelerate(fast, 'on')
    return fast


def test_cpu_inference_chunking_keeps_results():
    torch.manual_seed(0)
    # hidden 2048 -> chunks of 512 tokens above 2048 tokens; 2100 tokens ->
    # 5 uneven chunks
    x = torch.randn(1, 2100, 8)
    for plain in (CMLPBlock(8, mlp_ratio=256.),
                  AttentionBlock(8, 2, 256.)):
        fast = fast_copy(plain)
        assert isinstance(fast, (ChunkedCMLPBlock, ChunkedAttentionBlock))
        calls = []
        fast.mlp.register_forward_hook(lambda *args: calls.append(1))
        with torch.no_grad():
            chunked = fast(x)
            ref = plain(x)
        assert len(calls) == 5
        torch.testing.assert_close(chunked, ref, rtol=1e-5, atol=1e-5)
        calls.clear()
        fast(x).sum().backward()  # with autograd: one pass
        assert len(calls) == 1


def _ops(fn):
    with torch.profiler.profile() as prof:
        fn()
    return {event.name for event in prof.events()}


@pytest.mark.parametrize('fast', [False, True], ids=['sdpa', 'matmul'])
@pytest.mark.parametrize('with_bias', [False, True])
def test_bf16_attention_matches_float32_and_trains(with_bias, fast):
    """bfloat16 attention, plain (SDPA) and fast (two matmuls around a
    softmax), against float32 SDPA on the same weights and inputs, kept
    patches included."""
    torch.manual_seed(0)
    grid = (4, 4)
    plain = AttentionBlock(64, 4, rel_pos_grid=grid if with_bias else None)
    if with_bias:
        torch.nn.init.normal_(plain.attn.relative_position_bias_table)
    blk = fast_copy(plain) if fast else copy.deepcopy(plain)
    x = torch.randn(2, 16, 64) * 3
    ids_keep = torch.stack([torch.randperm(16)[:7] for _ in range(2)])
    xk = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, 64))
    for inputs, keep in ((x, None), (xk, ids_keep)):
        with torch.no_grad():
            ref = plain.attn(inputs, grid, keep)
            with torch.autocast('cpu', torch.bfloat16):
                low = blk.attn(inputs, grid, keep)
                ops = _ops(lambda: blk.attn(inputs, grid, keep))
        assert low.dtype == torch.bfloat16
        assert fast != any('scaled_dot_product' in op for op in ops)
        err = (low.float() - ref).abs().max().item()
        # bfloat16 rounding only: a missing scale or bias is O(|ref|)
        assert err < 0.02 * ref.abs().max().item()
    with torch.autocast('cpu', torch.bfloat16):
        blk(x, grid).float().pow(2).mean().backward()
    grads = [p.grad for p in blk.attn.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if with_bias:
        assert blk.attn.relative_position_bias_table.grad.abs().sum() > 0
