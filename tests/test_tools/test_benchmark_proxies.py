"""The CPU proxies of GPU speed that benchmark.py prints: operator calls per
step (eager and inside compiled graphs) and graph breaks."""
import functools
import os.path as osp
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
DEMO = osp.join(REPO_ROOT, 'configs', 'pretrain', 'itpn-demo_fashion-mnist.py')

import benchmark  # noqa: E402

# Eager operator calls of one EMA-MFM training step of the demo config
# (batch 2, 28x28, float32, fused AdamW, mmitpn accel off), counted by
# benchmark.count_ops on the code before the EMA teacher's foreach update
# and host-side initialisation flag: mmengine's per-tensor EMA loop and a
# read of the step counter in every forward and update.
DEMO_STEP_OPS_BEFORE = 1407


@pytest.fixture(autouse=True)
def fresh_dynamo(monkeypatch):
    monkeypatch.setenv('MMITPN_ACCEL', 'off')
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_count_ops_counts_outermost_calls_and_compiled_graphs_apart():
    x, w = torch.randn(4, 8), torch.randn(3, 8)

    def f(x, w):
        return torch.nn.functional.linear(x, w).relu().sum()

    counts = benchmark.count_ops(lambda: f(x, w))
    # linear counts once, not also the addmm/matmul it runs
    assert counts['eager'] == {'aten::linear': 1, 'aten::relu': 1,
                               'aten::sum': 1}
    assert not counts['compiled']

    compiled = torch.compile(f, fullgraph=True, backend='aot_eager')
    compiled(x, w)
    counts = benchmark.count_ops(lambda: compiled(x, w))
    assert sum(counts['eager'].values()) == 0
    assert counts['compiled']['aten::relu'] == 1


def test_explain_names_each_break_and_its_line():

    def breaks_once(x):
        scale = x.sum().item()
        return x * scale

    report = benchmark.explain_graph_breaks(breaks_once, torch.ones(3))
    assert report['graphs'] == 2 and report['breaks'] == 1
    (reason, ) = report['reasons']
    assert 'item()' in reason
    assert 'tests/test_tools/test_benchmark_proxies.py:' in reason

    @torch.compiler.disable
    def host_side():
        return 2.

    def skips_first(x):
        return x * host_side()

    # A break before the first operator ends no graph, so explain lists
    # none; the capture with fullgraph=True still fails.
    report = benchmark.explain_graph_breaks(skips_first, torch.ones(3))
    assert report['breaks'] == 0
    assert 'disable' in report['fullgraph']


def _demo_runner(*options):
    args = benchmark.parse_args([
        DEMO, '--mode', 'train', '--batch-size', '2', '--shape', '28',
        '--threads', '2', *options
    ])
    return benchmark._Runner(f'config:{DEMO}', args, amp=False)


def test_ema_mfm_step_eager_ops_and_graph_breaks(monkeypatch):
    plain = _demo_runner()
    plain.step()
    eager = benchmark.count_ops(plain.step)['eager']
    # The teacher update: one foreach call and the step counter.
    update = benchmark.count_ops(plain.model.update_teacher)['eager']
    assert update == {'aten::_foreach_lerp_': 1, 'aten::add_': 1}
    assert sum(eager.values()) <= DEMO_STEP_OPS_BEFORE - 100
    # forward + loss of the step capture as one graph
    with plain._autocast():
        report = benchmark.explain_graph_breaks(plain.plain_measured,
                                                *plain.measured_args())
    assert (report['graphs'], report['breaks'], report['fullgraph']) == (1, 0,
                                                                      None)

    # --compile fullgraph, with a backend that compiles in seconds; what
    # stays eager (gradient accumulation, optimizer, EMA update) does not
    # depend on the backend.
    monkeypatch.setattr(
        torch, 'compile',
        functools.partial(torch.compile, backend='aot_eager'))
    fast = _demo_runner('--compile', 'fullgraph')
    fast.step()
    counts = benchmark.count_ops(fast.step)
    eager_fast = sum(counts['eager'].values())
    assert eager_fast <= DEMO_STEP_OPS_BEFORE // 3
    # measured: 211 (the per-parameter gradient hand-over of autograd and
    # two fused-AdamW calls per parameter group stay)
    assert counts['eager']['aten::_fused_adamw_'] == len(
        fast.optim_wrapper.optimizer.param_groups)
    assert sum(counts['compiled'].values()) > sum(eager.values()) / 2


def test_benchmark_prints_the_proxies(capsys):
    benchmark.main([
        DEMO, '--mode', 'train', '--batch-size', '2', '--shape', '28',
        '--iters', '1', '--rounds', '1', '--warmup', '1', '--threads', '1',
        '--op-counts', '--graph-breaks'
    ])
    out = capsys.readouterr().out
    (line, ) = [l for l in out.splitlines()
                if 'operator calls per training step' in l]
    eager = int(line.split(':')[1].split()[0])
    assert 0 < eager <= DEMO_STEP_OPS_BEFORE - 100
    assert line.endswith('0 inside compiled graphs')
    assert 'most frequent eager: aten::' in out
    assert ('graph breaks of the forward+loss: 0 in 1 graph(s); '
            'fullgraph=True captures it') in out
