"""get_flops.py and benchmark.py on tiny configs (numbers, not timings)."""
import io
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
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
        '--iters', '1', '--rounds', '2', '--warmup', '1', '--threads', '1',
        '--compare', f'config:{TINY_CLS}'
    ])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines()
            if 'itpn_hivit-tiny-p16.py ' in line and ' fp32 ' in line]
    assert len(rows) == 2
    # the baseline row's ratios are 1 by definition
    assert rows[0].split()[5:9] == ['1.00x', '(1.00-1.00)',
                                    rows[0].split()[7], '1.00x']
    assert 'ratios are relative to: config:' in out
    # a model config without optim_wrapper trains with plain AdamW
    assert '    optimizer: AdamW\n' in out


def _worker_replies(commands, amp=True):
    proc = subprocess.run([
        sys.executable, osp.join(TOOLS, 'benchmark.py'), TINY_CLS, '--shape',
        '64', '--batch-size', '2', '--iters', '1', '--warmup', '0',
        '--threads', '1', '--worker',
        json.dumps(dict(spec=f'config:{TINY_CLS}', amp=amp, accel='auto'))
    ], input=''.join(c + '\n' for c in commands), capture_output=True,
        text=True, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_benchmark_worker_protocol_and_bf16_difference():
    ready, warm, run, result = _worker_replies(['warmup', 'run', 'finish'])
    assert ready == dict(ready=True) and warm == {}
    assert run['images_per_s'] > 0
    assert result['params_m'] == pytest.approx(5.76, rel=0.01)
    assert 0 < result['max_abs_diff_vs_fp32'] < 0.1 * max(
        result['ref_max_abs'], 1.0)


def test_benchmark_ratios_are_medians_of_per_round_ratios(monkeypatch):
    speeds = {'a': iter([10., 4., 10.]), 'b': iter([20., 12., 10.])}

    class FakeWorker:

        def __init__(self, job, args):
            self.job, self.spec = job, job.spec
            self.proc = subprocess.CompletedProcess([], 0)
            self.proc.poll = lambda: 0

        def ask(self, command):
            if command == 'run':
                return dict(images_per_s=next(speeds[self.spec]))
            if command == 'finish':
                return dict(peak_mib=1., params_m=1., optimizer=None)
            return {}

    monkeypatch.setattr(benchmark, '_WorkerProcess', FakeWorker)
    args = benchmark.parse_args(['unused', '--rounds', '3'])
    base, other = benchmark.measure_all(
        [benchmark.Job('a', False, 'auto'),
         benchmark.Job('b', False, 'auto')], args)
    assert base['ratio'] == 1.
    # per-round ratios 2, 3, 1 -> median 2 (the ratio of the medians would
    # be 12 / 10)
    assert other['images_per_s'] == 12.
    assert (other['ratio'], other['ratio_min'], other['ratio_max']) == (2., 1.,
                                                                        3.)


def test_benchmark_trains_with_the_configs_optimizer():
    pretrain = osp.join(REPO_ROOT, 'configs', 'pretrain',
                        'itpn-demo_fashion-mnist.py')
    args = benchmark.parse_args([pretrain, '--mode', 'train',
                                 '--batch-size', '2', '--shape', '28'])
    runner = benchmark._Runner(f'config:{pretrain}', args, amp=False)
    optimizer = runner.optim_wrapper.optimizer
    assert runner.optimizer_name == 'AdamW fused'
    # the config's constructor: no weight decay on norms and biases, and the
    # frozen EMA teacher is left out
    decays = {p: g['weight_decay'] for g in optimizer.param_groups
              for p in g['params']}
    assert decays[runner.model.backbone.patch_embed.norm.weight] == 0.
    assert decays[runner.model.backbone.patch_embed.proj.weight] == 0.05
    assert not any(p in decays for p in runner.model.teacher.parameters())
    before = runner.model.backbone.patch_embed.proj.weight.clone()
    runner.step()
    assert not torch.equal(before, runner.model.backbone.patch_embed.proj.weight)


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

    def fake_popen(cmd, **kwargs):
        commands.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 0, stdout=io.StringIO('{"ready": true}\n'))

    monkeypatch.setattr(benchmark.subprocess, 'Popen', fake_popen)
    benchmark._WorkerProcess(
        benchmark.Job(f'config:{TINY_CLS}', False, 'auto'), args)
    assert '--compile' in commands[0]


def test_benchmark_rows_share_the_precision_and_show_the_plain_path(
        capsys, tmp_path, monkeypatch):
    # The environment's switch is resolved once; each row's own setting
    # decides in its worker (the plain row stays plain).
    monkeypatch.setenv('MMITPN_ACCEL', 'on')
    out_file = tmp_path / 'rows.json'
    benchmark.main([
        TINY_CLS, '--batch-size', '2', '--shape', '64', '--iters', '1',
        '--rounds', '1', '--warmup', '0', '--threads', '1', '--amp',
        '--also-plain', '--peak-tflops', '0.5', '--json-out',
        str(out_file), '--compare', f'config:{TINY_CLS}'
    ])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line[61:65] in ('bf16', 'fp32')]
    # compared row, CONFIG with the fast paths off, CONFIG as switched
    assert [r[1:3] for r in rows] == [['bf16', 'on'], ['bf16', 'off'],
                                      ['bf16', 'on']]
    saved = json.loads(out_file.read_text())
    assert saved['settings']['amp_dtype'] == 'bf16'
    assert [r['accel'] for r in saved['rows']] == ['on', 'off', 'on']
    for row in saved['rows']:
        achieved = row['gflops_per_image'] * row['images_per_s'] / 1e3
        assert row['mfu'] == pytest.approx(achieved / 0.5)
    assert out.count('MFU ') == 3 and '(--peak-tflops)' in out

    benchmark.main([
        TINY_CLS, '--batch-size', '2', '--shape', '64', '--iters', '1',
        '--rounds', '1', '--warmup', '0', '--threads', '1', '--amp',
        '--compare-fp32', '--compare', f'config:{TINY_CLS}'
    ])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line[61:65] in ('bf16', 'fp32')]
    assert [r[1] for r in rows] == ['fp32', 'bf16']


def test_benchmark_counts_the_flops_of_one_image():
    cfg = Config.fromfile(TINY_CLS)
    _, macs_conv_linear, _ = count_complexity(cfg, 64, 64,
                                              conv_linear_only=True)
    flops = {}
    for mode, batch in (('infer', 1), ('infer', 3), ('train', 2)):
        args = benchmark.parse_args([TINY_CLS, '--mode', mode,
                                     '--batch-size', str(batch), '--shape',
                                     '64'])
        runner = benchmark._Runner(f'config:{TINY_CLS}', args, amp=False)
        flops[mode, batch] = runner.flops_per_image
        assert all(p.grad is None for p in runner.model.parameters())
    # per image, whatever the batch
    assert flops['infer', 1] == flops['infer', 3]
    # two FLOPs per multiply-add, attention on top of the layers
    assert flops['infer', 1] > 2 * macs_conv_linear
    assert flops['infer', 1] < 2 * macs_conv_linear * 1.2
    # backward: the input and the weight gradient of every product (the
    # image needs no gradient)
    assert 2.5 < flops['train', 2] / flops['infer', 1] <= 3.0


def test_mfu_peaks_of_known_gpus():
    args = benchmark.parse_args(['unused', '--device', 'cuda'])
    row = dict(amp=True, device_name='NVIDIA H200')
    assert benchmark.peak_tflops(args, row) == (
        989.4, 'NVIDIA H200 dense 16-bit')
    assert benchmark.peak_tflops(
        args, dict(row, device_name='NVIDIA H100 PCIe'))[0] == 756.
    # float32 rows and unknown devices get no MFU unless told the peak
    assert benchmark.peak_tflops(args, dict(row, amp=False)) == (None, None)
    assert benchmark.peak_tflops(
        args, dict(row, device_name='Some GPU')) == (None, None)


def test_benchmark_refuses_two_compilers_on_a_gpu(monkeypatch):
    monkeypatch.delenv('MMITPN_ACCEL', raising=False)
    with pytest.raises(SystemExit, match='would both compile'):
        benchmark.main([TINY_CLS, '--device', 'cuda', '--accel', 'on',
                        '--compile'])
