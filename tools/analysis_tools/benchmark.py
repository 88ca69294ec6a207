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
under ``torch.no_grad``. ``--amp`` runs every row under autocast
(``--amp-dtype``, bfloat16 by default; ``--compare-fp32`` keeps the compared
rows in float32), so that rows compare in the same precision.

Compute: the FLOPs of one image's step (forward, and backward in training)
are counted once per model with torch's ``FlopCounterMode`` on the plain
model (matrix products, convolutions and attention); each row prints them
with the achieved TFLOP/s and, on GPUs it knows (or with ``--peak-tflops``),
the model FLOP utilisation (MFU) against the device's dense 16-bit peak.

mmitpn's fast paths (``--accel``, as ``tools/train.py`` switches them: on a
GPU the compiled step of ``mmitpn.accel.gpu_compile``) apply to every row's
mmitpn modules; ``--also-plain`` adds a row of CONFIG with them off, so
that one run shows both. ``--json-out`` writes every row's numbers, which
``tools/gpu_check.sh`` checks against its targets.

The models take turns: every round runs ``--iters`` steps of each model in
the order given, so a slow spell of a shared machine hits all rows of a
round alike. A row's images/s is its median over the rounds and a ratio is
the median of the per-round ratios; the spread over rounds is printed too.

Every worker keeps freed heap memory for reuse as ``tools/train.py`` and
``tools/test.py`` do (``mmitpn.accel.cpu_allocator``); ``--default-malloc``
leaves glibc's defaults in all of them instead.

Proxies of GPU speed that a CPU measures (a GPU step of a small model is
bound by how many operators the host launches, not by arithmetic):

- ``--op-counts``: the operator calls of one step (torch profiler). *Eager*
  calls are the ATen operators dispatched outside compiled graphs, each a
  trip through the dispatcher and, on a GPU, a kernel launch. The operators
  inside compiled graphs (ATen calls such as ``mm`` and the generated
  kernels) are counted apart.
- ``--graph-breaks``: ``torch._dynamo.explain`` of the measured forward and
  loss (``--mode train``) or inference forward (graphs, graph breaks and
  their reasons) and whether ``torch.compile(fullgraph=True)`` captures it,
  as ``--compile fullgraph`` does for the timed steps:

    python tools/analysis_tools/benchmark.py \\
        configs/pretrain/itpn-demo_fashion-mnist.py --mode train \\
        --shape 28 --op-counts --graph-breaks --compile fullgraph
"""
import argparse
import collections
import functools
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
import torch.nn.functional as F

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, REPO_ROOT)
from mmitpn.accel import ENV_VAR as ACCEL_ENV_VAR
from mmitpn.accel import accel_mode, accelerate, fast_paths_enabled
from mmitpn.accel.cpu_allocator import keep_freed_memory
from mmitpn.compat import apply_compat_patches

MIB = 1024 * 1024
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
# Dense tensor-core peaks (TFLOP/s) of 16-bit matrix products, by a part of
# the device name; the first match counts.
GPU_PEAK_TFLOPS_16BIT = (('H100 PCIe', 756.), ('H200', 989.4),
                         ('H100', 989.4), ('A100', 312.), ('L40S', 362.1),
                         ('A10', 125.), ('L4', 121.))
# Profiler ranges that hold the operators of a compiled graph: dynamo's
# region (forward) and AOTAutograd's backward node.
COMPILED_REGIONS = ('Torch-Compiled Region', 'CompiledFunctionBackward')


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
                        help='every row under autocast (--amp-dtype)')
    parser.add_argument('--amp-dtype', choices=sorted(AMP_DTYPES),
                        default='bf16', help='the autocast dtype of --amp')
    parser.add_argument('--also-fp32', action='store_true',
                        help='with --amp, also measure CONFIG in float32 and '
                        'report the output difference')
    parser.add_argument('--compare-fp32', action='store_true',
                        help='with --amp, keep the compared rows in float32')
    parser.add_argument('--also-plain', action='store_true',
                        help="also measure CONFIG with mmitpn's fast paths "
                        'off (--accel off), the row before it')
    parser.add_argument('--compare', nargs='+', default=[],
                        help='models to run beside CONFIG: timm:NAME or '
                        'config:PATH; the first is the baseline of the '
                        'ratios')
    parser.add_argument('--peak-tflops', type=float,
                        help="the device's peak TFLOP/s for MFU (default: "
                        'the dense 16-bit tensor-core peak of known GPUs '
                        'for --amp rows)')
    parser.add_argument('--json-out', help='write the rows to this file')
    parser.add_argument('--compare-cfg-options', nargs='+', default=[],
                        help='KEY=VALUE overrides for compared configs')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='KEY=VALUE overrides for CONFIG (python literals)')
    parser.add_argument('--compile', nargs='?', const='modules',
                        choices=['modules', 'fullgraph'],
                        help='torch.compile every measured model. modules '
                        '(the default): timm models whole, configs each '
                        'top-level submodule, so that loss paths are '
                        'compiled too; fullgraph: the forward and loss of a '
                        'training step (the inference forward with --mode '
                        'infer) as one graph, fullgraph=True, so that a '
                        'graph break stops the run and names itself')
    parser.add_argument('--op-counts', action='store_true',
                        help='count the operator calls of one step of each '
                        'model (eager ATen calls, and those inside compiled '
                        'graphs)')
    parser.add_argument('--graph-breaks', action='store_true',
                        help='report the torch.compile graph breaks of each '
                        "model's forward and loss (train) or forward "
                        '(infer), and whether fullgraph=True captures it')
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


def _is_generated_kernel(name):
    # inductor's C++ kernels appear in the profile when
    # torch._inductor.config.cpp.enable_kernel_profile was set at compile
    # time; Triton kernels carry this prefix.
    return 'cpp_fused_' in name or name.startswith('triton_')


def count_ops(fn):
    """Operator calls of ``fn()``, by name: ``{'eager': Counter, 'compiled':
    Counter}``.

    An ATen operator counts once, at its outermost call (``aten::linear``,
    not also the ``aten::addmm`` it runs). Calls inside a compiled graph,
    and the graph's generated kernels, are counted as ``compiled``; all
    others (Python code, autograd nodes of eager operators, gradient
    accumulation, optimizers) as ``eager``.
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts = dict(eager=collections.Counter(), compiled=collections.Counter())
    for event in prof.events():
        parent = event.cpu_parent
        if event.name.startswith('aten::'):
            if parent is not None and parent.name.startswith('aten::'):
                continue
        elif not _is_generated_kernel(event.name):
            continue
        where = 'eager'
        while parent is not None:
            if parent.name.startswith(COMPILED_REGIONS):
                where = 'compiled'
                break
            parent = parent.cpu_parent
        counts[where][event.name] += 1
    return counts


def explain_graph_breaks(fn, *args):
    """Graph breaks of ``torch.compile(fn)(*args)``, and whether
    ``fullgraph=True`` captures it.

    ``torch._dynamo.explain`` lists the breaks that end a graph; a break
    before the first operator (e.g. a call of a ``torch.compiler.disable``d
    function) ends none, so the verdict comes from a capture with
    ``fullgraph=True`` (run by eager kernels: the backend does not matter).

    Returns:
        dict: ``graphs``, ``breaks``, ``reasons`` (one line each, with the
        user code line that broke the graph) and ``fullgraph``: None when it
        captures, else the first line of its error.
    """
    import torch._dynamo
    explained = torch._dynamo.explain(fn)(*args)
    reasons = []
    for brk in explained.break_reasons:
        reason = brk.reason.strip().splitlines()[0]
        if brk.user_stack:
            frame = brk.user_stack[-1]
            path = frame.filename
            if path.startswith(REPO_ROOT + os.sep):
                path = osp.relpath(path, REPO_ROOT)
            reason += f' (at {path}:{frame.lineno})'
        reasons.append(reason)
    try:
        torch.compile(fn, fullgraph=True, backend='eager')(*args)
        fullgraph = None
    except torch._dynamo.exc.Unsupported as error:
        fullgraph = str(error).strip().splitlines()[0]
    finally:
        torch._dynamo.reset()
    return dict(graphs=explained.graph_count,
                breaks=explained.graph_break_count, reasons=reasons,
                fullgraph=fullgraph)


class _Runner:
    """One model's forward (and training step) on a fixed input."""

    def __init__(self, spec, args, amp, accel=None):
        from mmengine.registry import (MODELS, DefaultScope,
                                       init_default_scope)
        self.device = torch.device(args.device)
        self.amp = amp
        self.amp_dtype = AMP_DTYPES[args.amp_dtype]
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
            if self.scope == 'timm':
                self.targets = torch.arange(args.batch_size).to(self.device)
            else:
                self.targets = _training_inputs(self.model, self.scope,
                                                args.batch_size)
        else:
            self.model.eval()
        # Counted on the plain model: the fast paths' kernels are not all
        # known to the counter.
        self.flops_per_image = self._count_flops()
        accelerate(self.model, args.accel if accel is None else accel)
        if args.compile == 'modules':
            modules = ([self.model] if self.scope == 'timm' else
                       list(self.model.children()))
            for module in modules:
                module.compile()
        if self.train:
            self.optim_wrapper = _build_optim_wrapper(self.model, cfg,
                                                      self.scope)
            self.optimizer_name = _describe_optimizer(self.optim_wrapper)
        # After the swaps: a bound method would keep the plain class's.
        self.plain_measured = self._measured_function()
        self.measured = self.plain_measured
        if args.compile == 'fullgraph':
            self.measured = torch.compile(self.measured, fullgraph=True)

    def _measured_function(self):
        """What ``--compile fullgraph`` compiles and ``--graph-breaks``
        explains: forward and loss of a training step (the loss tensor, or
        the model's dict of loss terms), or the inference forward. It takes
        :meth:`measured_args`."""
        if self.scope == 'timm':
            if self.train:
                return lambda inputs, targets: F.cross_entropy(
                    self.model(inputs), targets)
            return self.model
        if self.train:
            return self.model.loss
        return functools.partial(self.model, mode='tensor')

    def measured_args(self, batch=None):
        inputs = self.inputs[:batch]
        return (inputs, self.targets[:batch]) if self.train else (inputs, )

    def _count_flops(self, batch=2):
        """FLOPs of one image's forward (and backward in training), as
        ``FlopCounterMode`` counts them, on ``batch`` images in float32."""
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.utils.flop_counter import FlopCounterMode
        batch = min(batch, self.inputs.shape[0])
        measured = self._measured_function()
        counter = FlopCounterMode(display=False)
        # Attention as matrix products: the counter knows no fused CPU
        # attention kernel.
        with counter, sdpa_kernel(SDPBackend.MATH):
            if self.train:
                loss = measured(*self.measured_args(batch))
                self._total_loss(loss).backward()
            else:
                with torch.no_grad():
                    measured(*self.measured_args(batch))
        self.model.zero_grad(set_to_none=True)
        return counter.get_total_flops() / batch

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype,
                              enabled=self.amp)

    def forward(self):
        with self._autocast():
            return self.measured(self.inputs)

    def _total_loss(self, loss):
        """The loss tensor, or the sum of the model's dict of loss terms."""
        if isinstance(loss, dict):
            loss, _ = self.model.parse_losses(loss)
        return loss

    def train_step(self):
        with self._autocast():
            loss = self.measured(*self.measured_args())
        self.optim_wrapper.update_params(self._total_loss(loss))
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

    def __init__(self, spec, args, amp, accel=None):
        apply_compat_patches()
        if not args.default_malloc:
            keep_freed_memory()
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        if args.op_counts and args.compile:
            # Profile ranges around inductor's C++ kernels, so that the
            # kernels of compiled graphs are counted too.
            from torch._inductor import config as inductor_config
            inductor_config.cpp.enable_kernel_profile = True
        self.args = args
        self.runner = _Runner(spec, args, amp, accel)
        # Memory is what the steps add to the built model and its input
        # (activations, gradients, optimizer state), so imports don't count.
        self.base_rss = _rss_bytes()

    def warmup(self):
        for _ in range(self.args.warmup):
            self.runner.step()
        self.runner.sync()
        if self.runner.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        self._release_cached_memory()
        return {}

    def _release_cached_memory(self):
        # The workers take turns on one GPU: the cache of a waiting one
        # must not crowd out the one that runs.
        if self.runner.device.type == 'cuda':
            torch.cuda.empty_cache()

    def run(self):
        start = time.perf_counter()
        for _ in range(self.args.iters):
            self.runner.step()
        self.runner.sync()
        elapsed = time.perf_counter() - start
        self._release_cached_memory()
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
            optimizer=runner.optimizer_name,
            gflops_per_image=runner.flops_per_image / 1e9,
            device_name=(torch.cuda.get_device_name(runner.device)
                         if runner.device.type == 'cuda' else 'cpu'))
        if runner.amp and not runner.train:
            with torch.no_grad():
                low = runner.forward()
                runner.amp = False
                ref = runner.forward()
            low, ref = _first_tensor(low).float(), _first_tensor(ref).float()
            result['max_abs_diff_vs_fp32'] = (low - ref).abs().max().item()
            result['ref_max_abs'] = ref.abs().max().item()
            runner.amp = True
        if self.args.op_counts:
            counts = count_ops(runner.step)
            result['op_counts'] = {
                where: dict(total=sum(c.values()), top=c.most_common(5))
                for where, c in counts.items()
            }
        if self.args.graph_breaks:
            # Last: explain resets torch.compile's caches.
            with runner._autocast():
                result['graph_breaks'] = explain_graph_breaks(
                    runner.plain_measured, *runner.measured_args())
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


class Job(collections.namedtuple('Job', 'spec amp accel')):
    """A row: the model, whether under autocast, mmitpn's fast paths."""


class _WorkerProcess:
    """A model's worker subprocess, driven one command at a time."""

    def __init__(self, job, args):
        self.job = job
        cmd = [sys.executable, os.path.abspath(__file__), args.config,
               '--worker', json.dumps(job._asdict())]
        for flag in ('mode', 'batch_size', 'threads', 'device', 'iters',
                     'warmup', 'amp_dtype'):
            cmd += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
        cmd += ['--shape'] + [str(s) for s in args.shape]
        if args.compile:
            cmd += ['--compile', args.compile]
        for flag in ('default_malloc', 'op_counts', 'graph_breaks'):
            if getattr(args, flag):
                cmd.append(f'--{flag.replace("_", "-")}')
        for flag in ('cfg_options', 'compare_cfg_options'):
            if getattr(args, flag):
                cmd += [f'--{flag.replace("_", "-")}'] + getattr(args, flag)
        # A file, not a pipe: a chatty worker must not block on a full pipe.
        self.log = tempfile.TemporaryFile('w+')
        # The row's resolved switch, not the environment's, decides there.
        env = {k: v for k, v in os.environ.items() if k != ACCEL_ENV_VAR}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env)
        self._reply()  # built

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            self.log.seek(0)
            sys.stderr.write(self.log.read()[-4000:])
            raise SystemExit(f'benchmark of {self.job.spec} failed')
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        reply = self._reply()
        if command == 'finish':
            self.proc.wait()
        return reply


def measure_all(jobs, args):
    """Measure the :class:`Job` rows in turn; one result dict per job."""
    workers = []
    try:
        for job in jobs:
            workers.append(_WorkerProcess(job, args))
        for worker in workers:
            worker.ask('warmup')
        rounds = [[worker.ask('run')['images_per_s'] for worker in workers]
                  for _ in range(args.rounds)]
        results = []
        for i, worker in enumerate(workers):
            per_round = [r[i] for r in rounds]
            ratios = [r[i] / r[0] for r in rounds]
            results.append(
                dict(**worker.job._asdict(), mode=args.mode,
                     images_per_s=statistics.median(per_round),
                     images_per_s_rounds=per_round,
                     ratio=statistics.median(ratios), ratio_min=min(ratios),
                     ratio_max=max(ratios), **worker.ask('finish')))
        return results
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()


def _print_op_counts(counts, base_counts, mode):
    eager, compiled = counts['eager'], counts['compiled']
    base_eager = base_counts['eager']['total']
    ratio = (f' ({eager["total"] / base_eager:.2f}x the first row\'s)'
             if base_eager else '')
    unit = 'training step' if mode == 'train' else 'inference'
    print(f'    operator calls per {unit}: {eager["total"]} eager{ratio}, '
          f'{compiled["total"]} inside compiled graphs')
    for where, c in (('eager', eager), ('compiled', compiled)):
        if c['top']:
            # Generated kernels are named after all the operators they fuse.
            print(f'      most frequent {where}: ' + ', '.join(
                f'{name if len(name) <= 48 else name[:45] + "..."} x{n}'
                for name, n in c['top']))


def _print_graph_breaks(report, mode):
    what = 'forward+loss' if mode == 'train' else 'forward'
    print(f'    graph breaks of the {what}: {report["breaks"]} in '
          f'{report["graphs"]} graph(s); fullgraph=True ' +
          ('captures it' if report['fullgraph'] is None else
           f'fails: {report["fullgraph"]}'))
    for reason in report['reasons']:
        print(f'      {reason}')


def peak_tflops(args, res):
    """The peak TFLOP/s that a row's MFU is taken against, with its source,
    or ``(None, None)``."""
    if args.peak_tflops:
        return args.peak_tflops, '--peak-tflops'
    if not res['amp'] or args.device == 'cpu':
        return None, None
    for part, peak in GPU_PEAK_TFLOPS_16BIT:
        if part in res['device_name']:
            return peak, f'{res["device_name"]} dense 16-bit'
    return None, None


def _precision(args, res):
    return args.amp_dtype if res['amp'] else 'fp32'


def _print_compute(args, res):
    achieved = res['gflops_per_image'] * res['images_per_s'] / 1e3
    line = (f'    compute: {res["gflops_per_image"]:.2f} GFLOP per image '
            f'({"forward+backward" if args.mode == "train" else "forward"})'
            f', {achieved:.3g} TFLOP/s')
    peak, source = peak_tflops(args, res)
    if peak:
        res['mfu'] = achieved / peak
        line += f', MFU {100 * res["mfu"]:.1f} % of {peak:g} ({source})'
    print(line)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        # Replies own stdout; whatever else prints (including native code)
        # goes to stderr.
        replies = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        _Worker(job['spec'], args, job['amp'],
                job['accel']).serve(replies=replies)
        return
    # Resolved once (MMITPN_ACCEL wins), so that the header says what ran;
    # every row gets 'on' or 'off'.
    args.accel = accel_mode(args.accel)
    fast = 'on' if fast_paths_enabled(
        torch.device(args.device).type, args.accel) else 'off'
    if args.compile and fast == 'on' and args.device.startswith('cuda'):
        raise SystemExit(
            "--compile and mmitpn's GPU fast path (--accel on) would both "
            'compile the models; use one (--accel off with --compile)')
    main_spec = f'config:{args.config}'
    compared_amp = args.amp and not args.compare_fp32
    jobs = [Job(spec, compared_amp, fast) for spec in args.compare]
    if args.amp and args.also_fp32:
        jobs.append(Job(main_spec, False, fast))
    if args.also_plain:
        jobs.append(Job(main_spec, args.amp, 'off'))
    jobs.append(Job(main_spec, args.amp, fast))
    results = measure_all(jobs, args)

    height, width = (args.shape * 2)[:2]
    print(f'\n{args.mode}: batch {args.batch_size}, {height}x{width}, '
          f'{args.threads} threads, {args.device}, {args.rounds} rounds of '
          f'{args.iters} iters' +
          (f', torch.compile ({args.compile})' if args.compile else '')
          + (', glibc malloc defaults' if args.default_malloc else '')
          + f', mmitpn accel {args.accel}')
    base = results[0]
    print(f'{"model":60s} {"prec":5s} {"accel":5s} {"params":>8s} '
          f'{"img/s":>8s} {"ratio":>6s} {"(range)":>13s} {"peak MiB":>9s} '
          f'{"mem ratio":>9s}')
    for res in results:
        spread = f'({res["ratio_min"]:.2f}-{res["ratio_max"]:.2f})'
        print(f'{res["spec"][-60:]:60s} {_precision(args, res):5s} '
              f'{res["accel"]:5s} {res["params_m"]:7.2f}M '
              f'{res["images_per_s"]:8.2f} {res["ratio"]:5.2f}x '
              f'{spread:>13s} {res["peak_mib"]:9.1f} '
              f'{res["peak_mib"] / max(base["peak_mib"], 1e-9):8.2f}x')
        if res['optimizer']:
            print(f'    optimizer: {res["optimizer"]}')
        _print_compute(args, res)
        if 'max_abs_diff_vs_fp32' in res:
            print(f'    output max |amp - fp32| = '
                  f'{res["max_abs_diff_vs_fp32"]:.4g} (fp32 max |out| = '
                  f'{res["ref_max_abs"]:.4g})')
        if 'op_counts' in res:
            _print_op_counts(res['op_counts'], base['op_counts'], args.mode)
        if 'graph_breaks' in res:
            _print_graph_breaks(res['graph_breaks'], args.mode)
    print(f'ratios are relative to: {base["spec"]} '
          f'({_precision(args, base)}); img/s and ratios are '
          f'medians over rounds, (range) the ratio\'s spread')
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(dict(settings=dict(
                mode=args.mode, batch_size=args.batch_size,
                shape=[height, width], device=args.device,
                amp_dtype=args.amp_dtype if args.amp else None,
                compile=args.compile), rows=results), f, indent=1)


if __name__ == '__main__':
    main()
