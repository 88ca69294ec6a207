"""Process set-up, config adjustments and error reporting shared by
tools/train.py and tools/test.py."""
import datetime
import fcntl
import os
import os.path as osp
import re
import socket
import sys
import time
from contextlib import contextmanager
from importlib import import_module
from typing import List, Optional

import torch
from mmengine.logging import print_log
from mmengine.registry import RUNNERS, Registry
from mmengine.runner import Runner

import mmitpn
from mmitpn.accel import accelerate, fast_paths_enabled
from mmitpn.accel.cpu_allocator import keep_freed_memory
from mmitpn.compat import apply_compat_patches
from mmitpn.datasets import DataError
from mmitpn.engine.hooks.rank_heartbeat_hook import describe_stopped_ranks
from mmitpn.engine.runner import CheckedRunner
from mmitpn.models.utils.checkpoint_files import CheckpointError
from mmitpn.registry import SCOPE, ScopedRegistry


def prepare_process(cfg) -> None:
    """First steps of a run: say which mmitpn runs (a venv shared by
    several clones must not hide which one), apply mmitpn's mmengine fixes,
    and keep freed memory for reuse when the CPU fast paths are on."""
    print_log(
        f'mmitpn {mmitpn.__version__} from '
        f'{osp.dirname(osp.abspath(mmitpn.__file__))}',
        logger='current')
    apply_compat_patches()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if fast_paths_enabled(device, cfg.get('accel')):
        print_log(keep_freed_memory(), logger='current')


WORK_DIR_LOCK = '.mmitpn-train.lock'


def lock_work_dir(work_dir: str) -> None:
    """Hold ``work_dir`` for this training run until the process ends.

    Two runs in one work dir overwrite each other's checkpoints, prune each
    other's files and point ``last_checkpoint`` at the wrong run. The lock is
    an ``flock`` on ``WORK_DIR/.mmitpn-train.lock``, which the OS releases
    when the process ends however it ends, so a killed run leaves no stale
    lock; the file names the holder for the message. In distributed runs the
    process of global rank 0 holds it.

    Raises:
        SystemExit: Another live process holds the work dir.
    """
    if int(os.environ.get('RANK', '0')) != 0:
        return
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, WORK_DIR_LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 4096).decode(errors='replace').strip()
        os.close(fd)
        raise SystemExit(
            f'work dir {work_dir} is in use by {holder or "another run"}. '
            "Two runs in one work dir overwrite each other's checkpoints: "
            'wait for that run to end, stop it, or pass another --work-dir. '
            '(The lock goes when that process ends, killed or not; on a file '
            f'system without locks, delete {path} once it has.)') from None
    os.ftruncate(fd, 0)
    os.write(fd, (f'run PID {os.getpid()} on host {socket.gethostname()} '
                  f'(started {time.strftime("%Y-%m-%d %H:%M:%S")}: '
                  f'{" ".join(sys.argv)})').encode())
    # The descriptor stays open, and the lock held, until the process ends.


def build_runner(cfg) -> Runner:
    """The config's runner (``runner_type``, else mmitpn's
    :class:`~mmitpn.engine.CheckedRunner`: mmengine's ``Runner`` with checked
    ``load_from``/``resume``), its model switched to the fast paths as the
    ``accel`` switch says."""
    runner = CheckedRunner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    # The fixes of packages that the model's codebase has imported by now
    # (mmcv.ops for mmdet and mmseg).
    apply_compat_patches()
    if isinstance(runner.model, torch.nn.Module):
        swapped = accelerate(runner.model, cfg.get('accel'))
        if cfg.get('compile') and any('-> Compiled' in s for s in swapped):
            raise ValueError(
                'cfg.compile and the GPU fast path (accel on) would both '
                "compile the model; use one: accel='on' alone (mmitpn's "
                'parts compiled, CUDA graphs where shapes are fixed), or '
                "compile=... with accel='off' (or MMITPN_ACCEL=0)")
    else:
        print_log(
            'mmitpn accel: not applied; FlexibleRunner builds the model when '
            'training starts, and its strategies (FSDP, DeepSpeed) run on '
            'GPUs, where the fast paths are off anyway', logger='current')
    return runner


def resolve_work_dir(cfg, config_path, cli_work_dir=None):
    """CLI ``--work-dir`` > ``cfg.work_dir`` > ``work_dirs/<config name>``."""
    if cli_work_dir is not None:
        return cli_work_dir
    if cfg.get('work_dir') is not None:
        return cfg.work_dir
    return osp.join('work_dirs', osp.splitext(osp.basename(config_path))[0])


def enable_amp(cfg):
    """Switch the config's optimizer wrapper to mixed precision in place.

    float16 with dynamic loss scaling on GPUs (mmengine's AmpOptimWrapper);
    bfloat16 autocast on CPU-only machines, where AmpOptimWrapper can't run.
    """
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') in ('AmpOptimWrapper',
                                               'mmitpn.BF16AutocastOptimWrapper'):
        return
    if wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError(
            f'--amp cannot wrap optim_wrapper.type={wrapper.type!r}; set the '
            'mixed-precision wrapper in the config instead.')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'mmitpn.BF16AutocastOptimWrapper'


# A rank that waits this long in a collective on CPU (gloo) gives up, and the
# job ends (env_cfg.dist_cfg.timeout overrides; GPUs keep NCCL's watchdog).
CPU_DIST_TIMEOUT_S = 300


def setup_cpu_distributed(cfg):
    """Run a distributed launch on a machine without GPUs (gloo backend).

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its
    DDP wrapper pins ``device_ids`` to the local rank; both fail without a
    GPU. We join the process group ourselves (the Runner then skips
    ``init_dist``) and wrap the model with ``device_ids=None``. A
    collective that waits longer than ``env_cfg.dist_cfg.timeout`` seconds
    (default :data:`CPU_DIST_TIMEOUT_S`) fails instead of hanging.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise SystemExit(
            f'--launcher {cfg.launcher} needs GPUs; on a CPU-only machine '
            'use tools/dist_train.sh (--launcher pytorch, gloo backend).')
    import torch.distributed as dist
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    dist_cfg.setdefault('timeout', CPU_DIST_TIMEOUT_S)
    cfg.env_cfg = dict(env_cfg, dist_cfg=dist_cfg)
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo',
            timeout=datetime.timedelta(seconds=dist_cfg['timeout']))
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper_cfg.get('type', 'MMDistributedDataParallel') == \
            'MMDistributedDataParallel':
        # Also turns SyncBN (CUDA only) into BN.
        wrapper_cfg['type'] = 'mmitpn.CPUDistributedDataParallel'
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg


# Codebases whose registries a config of this project can draw from.
CODEBASE_SCOPES = ('mmitpn', 'mmpretrain', 'mmdet', 'mmseg')
# What each task family's configs set as default_scope.
_SCOPE_ADVICE = ("default_scope is 'mmpretrain' for pre-training and "
                 "classification, 'mmdet' for detection, 'mmseg' for "
                 'segmentation')
_REGISTRY_MISS = re.compile(
    r'`?([\w.]+)`? is not in the (?:(\w+)::)?([\w ]+?) registry')


class ConfigScopeError(KeyError):
    """A config names a type that its scope's registry does not hold."""

    def __str__(self):
        # KeyError's own str() would show the message as a quoted repr.
        return self.args[0]


def _scopes_registering(type_name: str, registry_name: str) -> List[str]:
    """The codebases in CODEBASE_SCOPES that register ``type_name`` in
    their registry called ``registry_name`` (e.g. 'model', 'dataset')."""
    import mmengine.registry as mmengine_registry
    roots = [
        r for r in vars(mmengine_registry).values()
        if isinstance(r, Registry) and r.parent is None
        and r.name == registry_name
    ]
    found = []
    for scope in CODEBASE_SCOPES:
        try:
            import_module(f'{scope}.registry')
        except ImportError:
            continue
        for root in roots:
            registry = root.children.get(scope)
            if registry is None:
                continue
            if isinstance(registry, ScopedRegistry):  # mmitpn's: lazy parts
                here = registry.find_own(type_name) is not None
            else:
                registry.import_from_location()
                here = type_name in registry.module_dict
            if here:
                found.append(scope)
                break
    return found


def explain_registry_miss(error: KeyError,
                          default_scope: Optional[str]) -> Optional[str]:
    """A message for mmengine's "X is not in the S::R registry" KeyError
    saying where X is registered and how to name it; None for other
    KeyErrors."""
    match = _REGISTRY_MISS.search(str(error))
    if match is None:
        return None
    type_name, scope, registry_name = match.groups()
    name = type_name.split('.')[-1]
    where = f'{scope}::{registry_name}' if scope else registry_name
    homes = _scopes_registering(name, registry_name)
    if SCOPE in homes:
        # mmpretrain, for one, has its own iTPN classes, with other
        # arguments and weights than this project's.
        others = [h for h in homes if h != SCOPE]
        found = (f"{name} is mmitpn's: write type='{SCOPE}.{name}'" + (
            f' ({" and ".join(others)} also has a different {name})'
            if others else '') + '.')
    elif homes:
        found = (f'{name} is registered in {", ".join(homes)}: write '
                 + ' or '.join(f"type='{s}.{name}'" for s in homes) + '.')
    else:
        found = (f'{name} is registered in none of '
                 f'{", ".join(CODEBASE_SCOPES)}: check the spelling.')
    return (
        f'type {type_name!r} is not in the {where} registry; the config\'s '
        f'default_scope is {default_scope!r}, so unprefixed types are looked '
        f'up in that codebase. {found} mmitpn\'s own modules are named with '
        "the mmitpn. prefix from any config (type='mmitpn.iTPNHiViT'); "
        "another codebase's types with theirs (type='mmdet.RetinaHead'). A "
        'type nested inside another codebase\'s model (a head inside '
        "type='mmdet.MaskRCNN') resolves in the default scope: set "
        'default_scope to that codebase, or add _scope_=\'mmdet\' to the '
        f'outer dict. Usually {_SCOPE_ADVICE}.')


@contextmanager
def registry_errors_explained(cfg):
    """Re-raise mmengine's registry-miss KeyErrors raised inside the block
    as :class:`ConfigScopeError` naming the fix (see explain_registry_miss).
    """
    try:
        yield
    except KeyError as error:
        message = explain_registry_miss(error, cfg.get('default_scope'))
        if message is None:
            raise
        raise ConfigScopeError(message) from error


@contextmanager
def input_errors_reported():
    """End the process with the message alone (exit code 1) for a bad input
    whose error names the problem and the fix: a checkpoint that is
    unreadable or does not fit the model, a damaged data file."""
    try:
        yield
    except (CheckpointError, DataError) as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from err


def watch_distributed_ranks(cfg) -> None:
    """In a distributed run, have every rank record its progress
    (:class:`~mmitpn.engine.hooks.RankHeartbeatHook`) so that a timeout can
    name the rank that stopped (see :func:`stopped_ranks_reported`)."""
    if cfg.launcher != 'none':
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='mmitpn.RankHeartbeatHook')]


@contextmanager
def stopped_ranks_reported(cfg):
    """End a rank whose collective timed out with a message naming the rank
    that stopped (exit code 1), instead of a gloo traceback."""
    try:
        yield
    except RuntimeError as err:
        import torch.distributed as dist
        if not (dist.is_available() and dist.is_initialized()
                and 'timed out' in str(err).lower()):
            raise
        timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg')
                   or {}).get('timeout')
        stopped = describe_stopped_ranks() or 'no rank reported progress'
        raise SystemExit(
            f'rank {dist.get_rank()}: a collective operation waited longer '
            f'than the process-group timeout ({timeout} s, '
            f'env_cfg.dist_cfg.timeout) and gave up: {stopped}. That process '
            'stopped responding (suspended, swapping, stuck in data loading '
            'or its host gone); the job ends. If a rank legitimately works '
            'alone longer than that, raise the timeout, e.g. --cfg-options '
            'env_cfg.dist_cfg.timeout=1800.') from err


def resolve_auto_resume(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (no path) continues from, or None to
    start afresh when ``work_dir`` has no ``last_checkpoint`` record.

    mmengine reads the record too, but fails with a bare "can not be found"
    when the checkpoint it names is gone (deleted or moved); this names the
    record, the checkpoints that are there and how to pick one.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        last = f.read().strip()
    if last and osp.isfile(last):
        return last
    present = sorted(
        (f for f in os.listdir(work_dir) if f.endswith('.pth')),
        key=lambda f: osp.getmtime(osp.join(work_dir, f)))
    raise SystemExit(
        f'cannot resume: {record} names the checkpoint {last!r}, which does '
        f'not exist. Checkpoints in {work_dir}: '
        f'{", ".join(present) if present else "none"}. Resume from one with '
        '--resume PATH, or remove the record (or use another --work-dir) to '
        'train from scratch.')


# The default hooks mmengine's Runner registers itself; `None` removes them.
_MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                           'param_scheduler', 'checkpoint')


def drop_switched_off_hooks(cfg):
    """Let ``default_hooks.NAME=None`` switch off any default hook.

    mmengine accepts ``None`` only for its own default hooks and fails with
    a bare AssertionError on others, such as the pre-training runtime's
    ``check_loss`` and ``iteration_seed``; those entries are removed here.
    """
    hooks = cfg.get('default_hooks')
    if not hooks:
        return
    for name in [
            n for n, hook in hooks.items()
            if hook is None and n not in _MMENGINE_DEFAULT_HOOKS
    ]:
        hooks.pop(name)
