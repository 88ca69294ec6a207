"""Each rank's progress, kept in the process group's store, so that a
collective that times out can name the rank that stopped."""
import time
from typing import Optional

import torch.distributed as dist
from mmengine.hooks import Hook

from mmitpn.registry import HOOKS

_KEY = 'mmitpn/heartbeat/{}'


def _store():
    # The store the process group was rendezvoused with (torchrun's); the
    # public API does not expose it.
    from torch.distributed import distributed_c10d
    return distributed_c10d._get_default_store()


@HOOKS.register_module()
class RankHeartbeatHook(Hook):
    """Record, after every training iteration, how far this rank got and
    when (one small store write per iteration)."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        self._beat(runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        # The loop counts the iteration after its hooks ran.
        self._beat(runner.iter + 1)

    @staticmethod
    def _beat(iterations_done: int) -> None:
        if dist.is_available() and dist.is_initialized():
            _store().set(
                _KEY.format(dist.get_rank()),
                f'{iterations_done} {time.time():.3f}')


def describe_stopped_ranks() -> Optional[str]:
    """Which rank fell behind, from the heartbeats: e.g. ``rank 1 last
    finished iteration 3, 41 s ago; ranks 0 finished iteration 4``. None
    when there are no heartbeats to read."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    store, now = _store(), time.time()
    beats = {}
    for rank in range(dist.get_world_size()):
        key = _KEY.format(rank)
        if store.check([key]):
            done, when = store.get(key).decode().split()
            beats[rank] = (int(done), float(when))
    if not beats:
        return None
    latest = max(done for done, _ in beats.values())
    behind = sorted(r for r, (done, _) in beats.items() if done < latest)
    silent = [r for r in range(dist.get_world_size()) if r not in beats]
    if not behind and not silent:
        # All at the same iteration: the one heard from longest ago among
        # the others (this rank, which is reporting, is alive; the one
        # stopped may have written its heartbeat last before it stopped).
        others = [r for r in beats if r != dist.get_rank()] or list(beats)
        behind = [min(others, key=lambda r: beats[r][1])]
    parts = [
        f'rank {r} last finished iteration {beats[r][0]}, '
        f'{now - beats[r][1]:.0f} s ago' for r in behind
    ] + [f'rank {r} never reported' for r in silent]
    ahead = sorted(set(beats) - set(behind))
    if ahead:
        parts.append(f'rank{"s" if len(ahead) > 1 else ""} '
                     f'{", ".join(map(str, ahead))} finished iteration '
                     f'{latest}')
    return '; '.join(parts)
