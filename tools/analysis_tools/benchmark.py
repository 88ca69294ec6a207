"""Throughput (images/s) and peak memory of inference or a training step.

Each model runs in its own subprocess so that peak memory is its own. Rows
are compared with a baseline row and the ratios printed, e.g. iTPN-B against
timm's ViT-B on the same shape, threads and batch:

    python tools/analysis_tools/benchmark.py \\
        configs/_base_/models/itpn_hivit-base-p16.py --mode infer \\
        --amp --also-fp32 --compare timm:vit_base_patch16_224

Models are named ``config:PATH`` (any mmitpn / OpenMMLab config, including
``mmpretrain::...`` package configs) or ``timm:NAME``; the positional CONFIG
is ``config:CONFIG``. A training step is forward, backward and the optimizer
step (plus the EMA-teacher update when the model has one); the optimizer is
the one the config's ``optim_wrapper`` builds (its parameter groups, options
and gradient clipping), else ``AdamW(lr=1e-4)``. Inference is a forward pass
under ``torch.no_grad``. ``--amp`` is bfloat16 autocast on CPU and float16
autocast on GPU.

The models take turns: every round runs ``--iters`` steps of each model in
the order given, so a slow spell of a shared machine hits all rows of a
round alike. A row's images/s is its median over the rounds and a ratio is
the median of the per-round ratios; the spread over rounds is printed too.

Every worker keeps freed heap memory for reuse as ``tools/train.py`` and
``tools/test.py`` do (``mmitpn.accel.cpu_allocator``); ``--default-malloc``
leaves glibc's defaults in all of them instead.
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.accel import accel_mode, accelerate
from mmitpn.accel.cpu_allocator import keep_freed_memory
from mmitpn.compat import apply_compat_patches

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
    parser.add_argument('--iters', type=int, default=5,
                        help='steps per model and round')
    parser.add_argument('--rounds', type=int, default=5,
                        help='rounds in which the models take turns')
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
    parser.add_argument('--accel', choices=['auto', 'on', 'off'],
                        default='auto',
                        help="mmitpn's fast paths (mmitpn.accel) in mmitpn "
                        'models, as tools/train.py switches them (config key '
                        'accel; MMITPN_ACCEL wins)')
    parser.add_argument('--default-malloc', action='store_true',
                        help='leave glibc malloc at its defaults in every '
                        'worker instead of the settings of tools/train.py')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _literal(value):
    import ast
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _load_config(path, options):
    from mmengine.config import Config
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
    return cfg


def _build_optim_wrapper(model, cfg, scope):
    """The config's optimizer, or ``AdamW(lr=1e-4)`` without one.

    The wrapper is a plain ``OptimWrapper`` whatever the config names:
    mixed precision is the benchmark's own autocast (``--amp``), and loss
    scaling has no role on CPU.
    """
    from mmengine.optim import OptimWrapper, build_optim_wrapper
    from mmengine.registry import DefaultScope
    if cfg is None or 'optim_wrapper' not in cfg:
        params = [p for p in model.parameters() if p.requires_grad]
        return OptimWrapper(torch.optim.AdamW(params, lr=1e-4))
    wrapper_cfg = cfg.optim_wrapper.copy()
    wrapper_cfg['type'] = 'OptimWrapper'
    for key in ('loss_scale', 'dtype'):
        wrapper_cfg.pop(key, None)
    with DefaultScope.overwrite_default_scope(scope):
        return build_optim_wrapper(model, wrapper_cfg)


def _describe_optimizer(wrapper):
    optimizer = wrapper.optimizer
    name = type(optimizer).__name__
    if optimizer.defaults.get('fused'):
        name += ' fused'
    elif optimizer.defaults.get('foreach'):
        name += ' foreach'
    if getattr(wrapper, 'clip_grad_kwargs', None):
        name += ' +clip'
    return name


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
        from mmengine.registry import (MODELS, DefaultScope,
                                       init_default_scope)
        self.device = torch.device(args.device)
        self.amp = amp
        kind, name = spec.split(':', 1)
        cfg = None
        if kind == 'timm':
            import timm
            self.model = timm.create_model(name)
            self.scope = 'timm'
        elif kind == 'config':
            cfg = _load_config(name, args.cfg_options if name == args.config
                               else args.compare_cfg_options)
            self.scope = cfg.get('default_scope', 'mmpretrain')
            init_default_scope(self.scope)
            with DefaultScope.overwrite_default_scope(self.scope):
                self.model = MODELS.build(cfg.model)
        else:
            raise SystemExit(f'unknown model spec {spec!r}: use timm:NAME '
                             'or config:PATH')
        self.model.to(self.device)
        accelerate(self.model, args.accel)
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
        self.optimizer_name = None
        if self.train:
            self.model.train()
            self.ema_teacher = getattr(self.model, 'teacher_mode',
                                       None) == 'ema'
            if self.ema_teacher:
                self.model.init_teacher()
            self.optim_wrapper = _build_optim_wrapper(self.model, cfg,
                                                      self.scope)
            self.optimizer_name = _describe_optimizer(self.optim_wrapper)
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
        self.optim_wrapper.update_params(loss)
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


class _Worker:
    """Measures one model in this process, on the parent's commands.

    Commands (one per stdin line, one JSON reply per stdout line):
    ``warmup``, ``run`` (``--iters`` timed steps -> images/s) and
    ``finish`` (peak memory, parameters, the bfloat16 output error).
    """

    def __init__(self, spec, args, amp):
        apply_compat_patches()
        if not args.default_malloc:
            keep_freed_memory()
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        self.args = args
        self.runner = _Runner(spec, args, amp)
        # Memory is what the steps add to the built model and its input
        # (activations, gradients, optimizer state), so imports don't count.
        self.base_rss = _rss_bytes()

    def warmup(self):
        for _ in range(self.args.warmup):
            self.runner.step()
        self.runner.sync()
        if self.runner.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        return {}

    def run(self):
        start = time.perf_counter()
        for _ in range(self.args.iters):
            self.runner.step()
        self.runner.sync()
        elapsed = time.perf_counter() - start
        return dict(images_per_s=self.args.iters * self.args.batch_size /
                    elapsed)

    def finish(self):
        runner = self.runner
        if runner.device.type == 'cuda':
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base_rss
        result = dict(
            peak_mib=max(peak, 0) / MIB,
            params_m=sum(p.numel() for p in runner.model.parameters()) / 1e6,
            optimizer=runner.optimizer_name)
        if runner.amp and not runner.train:
            with torch.no_grad():
                low = runner.forward()
                runner.amp = False
                ref = runner.forward()
            low, ref = _first_tensor(low).float(), _first_tensor(ref).float()
            result['max_abs_diff_vs_fp32'] = (low - ref).abs().max().item()
            result['ref_max_abs'] = ref.abs().max().item()
        return result

    def serve(self, replies, commands=sys.stdin):
        print(json.dumps(dict(ready=True)), file=replies, flush=True)
        for line in commands:
            command = line.strip()
            if command not in ('warmup', 'run', 'finish'):
                raise SystemExit(f'unknown worker command {command!r}')
            print(json.dumps(getattr(self, command)()), file=replies,
                  flush=True)
            if command == 'finish':
                return


def _first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


class _WorkerProcess:
    """A model's worker subprocess, driven one command at a time."""

    def __init__(self, spec, args, amp):
        self.spec, self.amp = spec, amp
        cmd = [sys.executable, os.path.abspath(__file__), args.config,
               '--worker', json.dumps(dict(spec=spec, amp=amp))]
        for flag in ('mode', 'batch_size', 'threads', 'device', 'iters',
                     'warmup', 'accel'):
            cmd += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
        cmd += ['--shape'] + [str(s) for s in args.shape]
        for flag in ('compile', 'default_malloc'):
            if getattr(args, flag):
                cmd.append(f'--{flag.replace("_", "-")}')
        for flag in ('cfg_options', 'compare_cfg_options'):
            if getattr(args, flag):
                cmd += [f'--{flag.replace("_", "-")}'] + getattr(args, flag)
        # A file, not a pipe: a chatty worker must not block on a full pipe.
        self.log = tempfile.TemporaryFile('w+')
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self._reply()  # built

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            self.log.seek(0)
            sys.stderr.write(self.log.read()[-4000:])
            raise SystemExit(f'benchmark of {self.spec} failed')
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        reply = self._reply()
        if command == 'finish':
            self.proc.wait()
        return reply


def measure_all(jobs, args):
    """Measure ``(spec, amp)`` jobs in turn; one result dict per job."""
    workers = []
    try:
        for spec, amp in jobs:
            workers.append(_WorkerProcess(spec, args, amp))
        for worker in workers:
            worker.ask('warmup')
        rounds = [[worker.ask('run')['images_per_s'] for worker in workers]
                  for _ in range(args.rounds)]
        results = []
        for i, worker in enumerate(workers):
            per_round = [r[i] for r in rounds]
            ratios = [r[i] / r[0] for r in rounds]
            results.append(
                dict(spec=worker.spec, amp=worker.amp, mode=args.mode,
                     images_per_s=statistics.median(per_round),
                     images_per_s_rounds=per_round,
                     ratio=statistics.median(ratios), ratio_min=min(ratios),
                     ratio_max=max(ratios), **worker.ask('finish')))
        return results
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        # Replies own stdout; whatever else prints (including native code)
        # goes to stderr.
        replies = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        _Worker(job['spec'], args, job['amp']).serve(replies=replies)
        return
    # Resolved once (MMITPN_ACCEL wins), so that the header says what ran.
    args.accel = accel_mode(args.accel)
    main_spec = f'config:{args.config}'
    jobs = [(spec, False) for spec in args.compare]
    if args.amp and args.also_fp32:
        jobs.append((main_spec, False))
    jobs.append((main_spec, args.amp))
    results = measure_all(jobs, args)

    height, width = (args.shape * 2)[:2]
    print(f'\n{args.mode}: batch {args.batch_size}, {height}x{width}, '
          f'{args.threads} threads, {args.device}, {args.rounds} rounds of '
          f'{args.iters} iters' + (', torch.compile' if args.compile else '')
          + (', glibc malloc defaults' if args.default_malloc else '')
          + f', mmitpn accel {args.accel}')
    base = results[0]
    print(f'{"model":60s} {"prec":5s} {"params":>8s} {"img/s":>8s} '
          f'{"ratio":>6s} {"(range)":>13s} {"peak MiB":>9s} '
          f'{"mem ratio":>9s}')
    for res in results:
        prec = ('bf16' if args.device == 'cpu' else 'fp16') if res['amp'] \
            else 'fp32'
        spread = f'({res["ratio_min"]:.2f}-{res["ratio_max"]:.2f})'
        print(f'{res["spec"][-60:]:60s} {prec:5s} {res["params_m"]:7.2f}M '
              f'{res["images_per_s"]:8.2f} {res["ratio"]:5.2f}x '
              f'{spread:>13s} {res["peak_mib"]:9.1f} '
              f'{res["peak_mib"] / max(base["peak_mib"], 1e-9):8.2f}x')
        if res['optimizer']:
            print(f'    optimizer: {res["optimizer"]}')
        if 'max_abs_diff_vs_fp32' in res:
            print(f'    output max |amp - fp32| = '
                  f'{res["max_abs_diff_vs_fp32"]:.4g} (fp32 max |out| = '
                  f'{res["ref_max_abs"]:.4g})')
    print(f'ratios are relative to: {base["spec"]} '
          f'({"amp" if base["amp"] else "fp32"}); img/s and ratios are '
          f'medians over rounds, (range) the ratio\'s spread')


if __name__ == '__main__':
    main()
