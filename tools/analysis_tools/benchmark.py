"""Throughput (images/s) and peak memory of inference or a training step.

Each model runs in its own subprocess so that peak memory is its own. Rows
are compared with a baseline row and the ratios printed, e.g. iTPN-B against
timm's ViT-B on the same shape, threads and batch:

    python tools/analysis_tools/benchmark.py \\
        configs/_base_/models/itpn_hivit-base-p16.py --mode infer \\
        --amp --also-fp32 --compare timm:vit_base_patch16_224

Models are named ``config:PATH`` (any mmitpn / OpenMMLab config, including
``mmpretrain::...`` package configs) or ``timm:NAME``; the positional CONFIG
is ``config:CONFIG``. A training step is forward, backward and an AdamW step
(plus the EMA-teacher update when the model has one); inference is a forward
pass under ``torch.no_grad``. ``--amp`` is bfloat16 autocast on CPU and
float16 autocast on GPU.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

MIB = 1024 * 1024


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark models')
    parser.add_argument('config', help='the mmitpn config to measure')
    parser.add_argument('--mode', choices=['infer', 'train'], default='infer')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input H W, or one number for square inputs')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch intra-op threads (CPU)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision for CONFIG (bf16 on CPU)')
    parser.add_argument('--also-fp32', action='store_true',
                        help='with --amp, also measure CONFIG in float32 and '
                        'report the output difference')
    parser.add_argument('--compare', nargs='+', default=[],
                        help='models to run beside CONFIG (float32): '
                        'timm:NAME or config:PATH; the first is the baseline '
                        'of the ratios')
    parser.add_argument('--compare-cfg-options', nargs='+', default=[],
                        help='KEY=VALUE overrides for compared configs')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='KEY=VALUE overrides for CONFIG (python literals)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile every measured model (timm: the '
                        'whole model; configs: each top-level submodule, so '
                        'that loss paths are compiled too)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _literal(value):
    import ast
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _build_config_model(path, options):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope, init_default_scope

    import mmitpn  # noqa: F401
    if '::' in path:  # a package's config, e.g. mmpretrain::itpn/...
        from mmengine.hub import get_config
        cfg = get_config(path)
    else:
        cfg = Config.fromfile(path)
    for option in options:
        # Assignment, not merging: an override may change a value's type
        # (e.g. an arch name to an arch dict).
        keys, value = option.split('=', 1)
        *parents, last = keys.split('.')
        node = cfg
        for key in parents:
            node = node[key]
        node[last] = _literal(value)
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
    return model, scope


def _training_inputs(model, scope, batch, num_classes=1000):
    """Labels the model's loss needs; self-supervised losses need none."""
    if scope == 'mmpretrain':
        from mmpretrain.models.selfsup import BaseSelfSupervisor
        from mmpretrain.structures import DataSample
        if isinstance(model, BaseSelfSupervisor):
            return [DataSample() for _ in range(batch)]
        return [DataSample().set_gt_label(i % num_classes)
                for i in range(batch)]
    raise SystemExit(f'--mode train supports mmpretrain-scope configs '
                     f'(classifiers, pre-training), not {scope}')


class _Runner:
    """One model's forward (and training step) on a fixed input."""

    def __init__(self, spec, args, amp):
        self.device = torch.device(args.device)
        self.amp = amp
        kind, name = spec.split(':', 1)
        if kind == 'timm':
            import timm
            self.model = timm.create_model(name)
            self.scope = 'timm'
        elif kind == 'config':
            options = (args.cfg_options if name == args.config
                       else args.compare_cfg_options)
            self.model, self.scope = _build_config_model(name, options)
        else:
            raise SystemExit(f'unknown model spec {spec!r}: use timm:NAME '
                             'or config:PATH')
        self.model.to(self.device)
        if args.compile:
            modules = ([self.model] if self.scope == 'timm' else
                       list(self.model.children()))
            for module in modules:
                module.compile()
        height, width = (args.shape * 2)[:2]
        gen = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(args.batch_size, 3, height, width,
                                  generator=gen).to(self.device)
        self.train = args.mode == 'train'
        if self.train:
            self.model.train()
            self.ema_teacher = getattr(self.model, 'teacher_mode',
                                       None) == 'ema'
            if self.ema_teacher:
                self.model.init_teacher()
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(params, lr=1e-4)
            if self.scope == 'timm':
                self.labels = torch.arange(args.batch_size).to(self.device)
            else:
                self.data_samples = _training_inputs(
                    self.model, self.scope, args.batch_size)
        else:
            self.model.eval()

    def _autocast(self):
        dtype = torch.bfloat16 if self.device.type == 'cpu' else torch.float16
        return torch.autocast(self.device.type, dtype=dtype,
                              enabled=self.amp)

    def forward(self):
        with self._autocast():
            if self.scope == 'timm':
                return self.model(self.inputs)
            return self.model(self.inputs, mode='tensor')

    def train_step(self):
        with self._autocast():
            if self.scope == 'timm':
                loss = torch.nn.functional.cross_entropy(
                    self.model(self.inputs), self.labels)
            else:
                losses = self.model.loss(self.inputs, self.data_samples)
                loss, _ = self.model.parse_losses(losses)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema_teacher:
            self.model.update_teacher()

    def step(self):
        if self.train:
            self.train_step()
        else:
            with torch.no_grad():
                self.forward()

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()


def _rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def measure(spec, args, amp):
    """Images/s and the peak memory the steps need beyond the built model."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runner = _Runner(spec, args, amp)
    # Memory is what the steps add to the built model and its input
    # (activations, gradients, optimizer state), so imports don't count.
    base_rss = _rss_bytes()
    for _ in range(args.warmup):
        runner.step()
    runner.sync()
    if runner.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.iters):
        runner.step()
    runner.sync()
    elapsed = time.perf_counter() - start
    if runner.device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
    result = dict(spec=spec, amp=amp, mode=args.mode,
                  images_per_s=args.iters * args.batch_size / elapsed,
                  peak_mib=max(peak, 0) / MIB,
                  params_m=sum(p.numel() for p in runner.model.parameters())
                  / 1e6)
    if amp and not runner.train:
        with torch.no_grad():
            low = runner.forward()
            runner.amp = False
            ref = runner.forward()
        low, ref = _first_tensor(low).float(), _first_tensor(ref).float()
        result['max_abs_diff_vs_fp32'] = (low - ref).abs().max().item()
        result['ref_max_abs'] = ref.abs().max().item()
    return result


def _first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def run_isolated(spec, args, amp):
    cmd = [sys.executable, os.path.abspath(__file__), args.config,
           '--worker', json.dumps(dict(spec=spec, amp=amp))]
    for flag in ('mode', 'batch_size', 'threads', 'device', 'iters',
                 'warmup'):
        cmd += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
    cmd += ['--shape'] + [str(s) for s in args.shape]
    if args.compile:
        cmd.append('--compile')
    for flag in ('cfg_options', 'compare_cfg_options'):
        if getattr(args, flag):
            cmd += [f'--{flag.replace("_", "-")}'] + getattr(args, flag)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f'benchmark of {spec} failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(measure(job['spec'], args, job['amp'])))
        return
    main_spec = f'config:{args.config}'
    jobs = [(spec, False) for spec in args.compare]
    if args.amp and args.also_fp32:
        jobs.append((main_spec, False))
    jobs.append((main_spec, args.amp))
    results = [run_isolated(spec, args, amp) for spec, amp in jobs]

    height, width = (args.shape * 2)[:2]
    print(f'\n{args.mode}: batch {args.batch_size}, {height}x{width}, '
          f'{args.threads} threads, {args.device}, {args.iters} iters'
          + (', torch.compile' if args.compile else ''))
    base = results[0]
    print(f'{"model":60s} {"prec":5s} {"params":>8s} {"img/s":>8s} '
          f'{"ratio":>6s} {"peak MiB":>9s} {"mem ratio":>9s}')
    for res in results:
        prec = ('bf16' if args.device == 'cpu' else 'fp16') if res['amp'] \
            else 'fp32'
        print(f'{res["spec"][-60:]:60s} {prec:5s} {res["params_m"]:7.2f}M '
              f'{res["images_per_s"]:8.2f} '
              f'{res["images_per_s"] / base["images_per_s"]:5.2f}x '
              f'{res["peak_mib"]:9.1f} '
              f'{res["peak_mib"] / max(base["peak_mib"], 1e-9):8.2f}x')
        if 'max_abs_diff_vs_fp32' in res:
            print(f'    output max |amp - fp32| = '
                  f'{res["max_abs_diff_vs_fp32"]:.4g} (fp32 max |out| = '
                  f'{res["ref_max_abs"]:.4g})')
    print(f'ratios are relative to: {base["spec"]} '
          f'({"amp" if base["amp"] else "fp32"})')


if __name__ == '__main__':
    main()
