"""mmengine checkpoints load on torch >= 2.6 with weights-only loading kept on."""
import io
import os
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmitpn.compat import apply_compat_patches

apply_compat_patches()


class _Pairs(Dataset):

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 4, generator=gen)
        self.y = self.x.sum(1, keepdim=True)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(x=self.x[i], y=self.y[i])


class _Regressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x, y, mode='loss'):
        return dict(loss=((self.fc(x) - y)**2).mean())


def _runner(work_dir, max_iters, resume=False):
    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Pairs(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                             begin=0, end=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=3,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume)


def test_resume_from_mmengine_checkpoint(tmp_path):
    first = _runner(tmp_path, max_iters=3)
    first.train()
    saved = first.model.fc.weight.detach().clone()
    ckpt = tmp_path / 'iter_3.pth'
    assert ckpt.is_file()
    # The default (weights_only=True) path must read the full checkpoint.
    content = torch.load(ckpt)
    assert isinstance(content['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)

    second = _runner(tmp_path, max_iters=6, resume=True)
    second.load_or_resume()
    assert second.iter == 3
    assert torch.equal(second.model.fc.weight, saved)
    assert second.optim_wrapper.optimizer.state_dict()['state'][0]['step'] \
        == 3
    second.train()
    assert second.iter == 6
    assert not torch.equal(second.model.fc.weight, saved)


class _ShellPayload:

    def __reduce__(self):
        return (os.system, ('echo owned',))


class _GetattrPayload:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init_subclass__'))


@pytest.mark.parametrize('payload', [_ShellPayload(), _GetattrPayload()])
def test_code_payload_is_refused(payload):
    buf = io.BytesIO()
    torch.save({'state_dict': {}, 'meta': payload}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf)
