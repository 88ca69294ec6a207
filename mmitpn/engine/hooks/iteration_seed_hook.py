"""Per-iteration seeding of the model's random draws, for exact resumes."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmitpn.registry import HOOKS


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Draw each training iteration's model randomness from its own seed.

    mmengine restores model, optimizer, schedulers, message hub and the
    sampler on ``--resume``, and an iteration-based loop replays the data
    loader up to the resumed iteration, so the data (order and augmentation)
    comes back. The random generators' states are not restored, so the
    masks (and drop paths) after a resume would differ from those of an
    uninterrupted run.

    This hook separates the two streams: before each iteration it puts the
    data-side states of torch, numpy and ``random`` aside and seeds all
    three from ``(seed, rank, iteration)``; after the iteration it puts the
    data-side states back. The model's draws at iteration ``t`` are then a
    function of ``(seed, rank, t)`` only, and the data stream is consumed by
    data loading only, which the loader replay reproduces. A resumed run
    thus continues with the same masks and losses as an uninterrupted one,
    with nothing extra in the checkpoint. Ranks draw different masks.

    Add it with ``default_hooks.iteration_seed = dict(type=
    'mmitpn.IterationSeedHook')`` (pre-training runtime base).
    """

    # Above NORMAL, so that no other hook draws from the model-side seed
    # before the model does (EMATeacherHook, loggers, checkpointing).
    priority = 'ABOVE_NORMAL'

    def __init__(self):
        self._data_states = None

    @staticmethod
    def iteration_seed(seed: int, rank: int, iteration: int) -> int:
        """A 64-bit seed mixed from the three numbers (numpy SeedSequence:
        neighbouring iterations and ranks get unrelated streams)."""
        words = np.random.SeedSequence([seed, rank, iteration]).generate_state(
            2, dtype=np.uint32)
        return int(words[0]) << 32 | int(words[1])

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._data_states = (torch.get_rng_state(), np.random.get_state(),
                             random.getstate())
        seed = self.iteration_seed(runner.seed % 2**32, get_rank(),
                                   runner.iter)
        torch.manual_seed(seed)  # also seeds every CUDA device
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        torch_state, numpy_state, python_state = self._data_states
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        random.setstate(python_state)
