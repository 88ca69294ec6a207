"""get_flops.py and benchmark.py on tiny configs (numbers, not timings)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO_ROOT, 'tools', 'analysis_tools')
TINY_CLS = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                    'itpn_hivit-tiny-p16.py')
sys.path.insert(0, TOOLS)

import benchmark  # noqa: E402
from get_flops import count_complexity  # noqa: E402


def test_flops_conventions_differ_by_attention_and_norms():
    cfg = Config.fromfile(TINY_CLS)
    params, macs_all, unsupported_all = count_complexity(cfg, 64, 96)
    _, macs_conv_linear, unsupported = count_complexity(
        cfg, 64, 96, conv_linear_only=True)
    assert params == pytest.approx(5.76e6, rel=0.01)
    # attention (12 blocks, 3 heads, 24 tokens of 64 dims) and norms only
    # count in the default convention
    attention = 12 * 3 * 24 * 24 * (64 + 64)
    assert macs_all - macs_conv_linear > attention
    # attention is counted by default and left out by the mmdet convention
    assert 'aten::scaled_dot_product_attention' not in unsupported_all
    assert 'aten::scaled_dot_product_attention' in unsupported


def test_benchmark_reports_each_row_and_ratios(capsys):
    benchmark.main([
        TINY_CLS, '--mode', 'train', '--batch-size', '2', '--shape', '64',
        '--iters', '1', '--warmup', '1', '--threads', '1', '--compare',
        f'config:{TINY_CLS}'
    ])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines()
            if 'itpn_hivit-tiny-p16.py ' in line and ' fp32 ' in line]
    assert len(rows) == 2
    # the baseline row's ratios are 1 by definition
    assert rows[0].split()[4:7:2] == ['1.00x', '1.00x']
    assert 'ratios are relative to: config:' in out


def test_benchmark_worker_measures_bf16_difference():
    proc = subprocess.run([
        sys.executable, osp.join(TOOLS, 'benchmark.py'), TINY_CLS, '--shape',
        '64', '--batch-size', '2', '--iters', '1', '--warmup', '0',
        '--threads', '1', '--worker',
        json.dumps(dict(spec=f'config:{TINY_CLS}', amp=True))
    ], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['images_per_s'] > 0
    assert 0 < result['max_abs_diff_vs_fp32'] < 0.1 * max(
        result['ref_max_abs'], 1.0)


def test_benchmark_compile_covers_every_submodule_and_reaches_workers(
        monkeypatch):
    args = benchmark.parse_args([
        TINY_CLS, '--compile', '--mode', 'train', '--batch-size', '2',
        '--shape', '64'
    ])
    runner = benchmark._Runner(f'config:{TINY_CLS}', args, amp=False)
    # loss paths call the submodules, not the classifier itself
    assert [name for name, m in runner.model.named_children()
            if m._compiled_call_impl is None] == []

    commands = []
    monkeypatch.setattr(
        benchmark.subprocess, 'run', lambda cmd, **kwargs: commands.append(
            cmd) or subprocess.CompletedProcess(cmd, 0, '{}', ''))
    benchmark.run_isolated(f'config:{TINY_CLS}', args, amp=False)
    assert '--compile' in commands[0]
