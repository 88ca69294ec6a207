"""Config adjustments shared by tools/train.py and tools/test.py."""
import os.path as osp

import torch


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


def setup_cpu_distributed(cfg):
    """Run a distributed launch on a machine without GPUs (gloo backend).

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its
    DDP wrapper pins ``device_ids`` to the local rank; both fail without a
    GPU. We join the process group ourselves (the Runner then skips
    ``init_dist``) and wrap the model with ``device_ids=None``.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise SystemExit(
            f'--launcher {cfg.launcher} needs GPUs; on a CPU-only machine '
            'use tools/dist_train.sh (--launcher pytorch, gloo backend).')
    import torch.distributed as dist
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = \
        'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg
