"""Test doubles for test_dist_train.py, imported by the training processes
through ``custom_imports`` (not collected by pytest)."""
from unittest import mock

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from mmitpn.models.algorithms import iTPN
from mmitpn.registry import HOOKS, MODELS


@MODELS.register_module()
class ProbeSampleKeyediTPN(iTPN):
    """iTPN whose masking noise depends on the sample and iteration only.

    Masks are drawn per sample from one generator per process, so 1 process
    with batch 8 and 2 processes with batch 4 mask the same images
    differently by design. Keying the noise of each image on its dataset
    index and the iteration makes the global batch see the same masks
    however it is split over processes.
    """

    def loss(self, inputs, data_samples=None):
        iteration = MessageHub.get_current_instance().get_info('iter')
        num_patches = (inputs.shape[-2] // self.backbone.patch_size) * (
            inputs.shape[-1] // self.backbone.patch_size)
        noise = torch.stack([
            torch.rand(
                num_patches,
                generator=torch.Generator().manual_seed(
                    1000 * iteration + sample.sample_idx))
            for sample in data_samples
        ]).to(inputs.device)
        # _pixel_loss draws its noise with torch.rand(B, N, device=...).
        with mock.patch('torch.rand', return_value=noise):
            return super().loss(inputs, data_samples)


@HOOKS.register_module()
class ProbeRecorderHook(Hook):
    """Saves this rank's losses and final EMA teacher to the work dir."""

    priority = 'LOWEST'

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append({k: float(v) for k, v in outputs.items()})

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save(
            dict(
                losses=self.losses,
                teacher=model.teacher.state_dict(),
                backbone=model.backbone.state_dict()),
            f'{runner.work_dir}/probe_rank{get_rank()}.pth')
