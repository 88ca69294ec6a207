"""NonFiniteLossHook stops at the first NaN/Inf loss term, before saving."""
import math

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmitpn  # noqa: F401
from mmitpn.engine import NonFiniteLossError, NonFiniteLossHook


class _Points(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return dict(x=torch.full((4, ), float(i)))


class _DivergingModel(BaseModel):
    """Two loss terms like iTPN's; ``loss_mfm_s8`` turns ``bad`` from the
    ``diverge_at``-th forward on."""

    def __init__(self, diverge_at, bad):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.diverge_at = diverge_at
        self.bad = bad
        self.calls = 0

    def forward(self, x, mode='loss'):
        self.calls += 1
        out = self.fc(x).mean()
        mfm = out * 0. + self.bad if self.calls >= self.diverge_at else out
        return dict(loss_mim=out**2, loss_mfm_s8=mfm.abs())


def _train(work_dir, model):
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Points(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            check_loss=dict(type='mmitpn.NonFiniteLossHook')),
        randomness=dict(seed=0))
    runner.train()


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_stops_naming_iteration_and_term_and_keeps_last_good(tmp_path, bad):
    # Diverges at iteration 6, which is also a checkpoint iteration.
    with pytest.raises(NonFiniteLossError) as err:
        _train(tmp_path, _DivergingModel(diverge_at=6, bad=bad))
    message = str(err.value)
    assert 'iteration 6:' in message
    assert f'loss_mfm_s8={bad}' in message
    assert 'loss_mim' not in message  # finite terms are not blamed
    assert str(tmp_path / 'iter_4.pth') in message
    assert 'clip_grad' in message

    assert not (tmp_path / 'iter_6.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_4.pth')
    last_good = torch.load(tmp_path / 'iter_4.pth')
    assert last_good['meta']['iter'] == 4
    assert all(
        torch.isfinite(v).all() for v in last_good['state_dict'].values())


def test_before_any_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError,
                       match='iteration 1:.*there is no checkpoint in'):
        _train(tmp_path, _DivergingModel(diverge_at=1, bad=math.nan))


def test_finite_losses_pass():
    hook = NonFiniteLossHook()
    hook.after_train_iter(
        None, 0, outputs=dict(loss=torch.tensor(1.), loss_mim=torch.tensor(
            0.5)))
