"""Stops training at the first NaN or Inf loss, before it is checkpointed."""
from typing import Dict

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import find_latest_checkpoint

from mmitpn.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf during training."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term is NaN or Inf.

    Checks every logged loss term (``loss``, ``loss_mim``,
    ``loss_mfm_s8``, ...) after each training iteration. The check runs
    before :class:`~mmengine.hooks.CheckpointHook` (priority ``VERY_LOW``),
    so the diverged weights are never saved and the last checkpoint is the
    last good one; the message names the iteration, the terms and that
    checkpoint. In distributed runs the ranks agree on the verdict (one
    small all-reduce), so all of them stop with the same message instead of
    the healthy ones waiting for the failed one.

    mmdet's ``CheckInvalidLossHook`` does a similar check every 50
    iterations on the total loss only; this one checks every iteration and
    names the term.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Dict[str, torch.Tensor] = None) -> None:
        if not outputs:
            return
        names = list(outputs)
        values = torch.stack([
            torch.as_tensor(outputs[name]).detach().float().reshape(())
            for name in names
        ])
        # Per term: how many ranks saw a NaN or Inf.
        bad = (~torch.isfinite(values)).float()
        world_size = get_world_size()
        if world_size > 1:
            all_reduce(bad, op='sum')
        if not bad.any():
            return
        terms = ', '.join(
            f'{name}={values[i].item()}' + (
                f' (non-finite on {int(bad[i])} of {world_size} ranks)'
                if world_size > 1 else '')
            for i, name in enumerate(names) if bad[i])
        # What `--resume` would continue from.
        last = find_latest_checkpoint(runner.work_dir)
        kept = (f'the last checkpoint, {last}, was saved before it; resume '
                'from it with --resume' if last else
                f'there is no checkpoint in {runner.work_dir} to resume from')
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1}: {terms}. '
            f'Training stopped and this iteration was not checkpointed; '
            f'{kept}. Try a lower learning rate (optim_wrapper.optimizer.'
            'lr), a longer warmup, gradient clipping (optim_wrapper.'
            'clip_grad=dict(max_norm=3.0)), or bfloat16 instead of float16 '
            'mixed precision.')
