"""Checkpoints are written all or nothing (temporary file, then rename)."""
import os

import pytest
import torch
import torch.nn as nn
from mmengine.fileio import get_file_backend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmitpn.compat import apply_compat_patches, checkpoints

apply_compat_patches()


class _Points(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return dict(x=torch.full((4, ), float(i)))


class _Model(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.fc(x).pow(2).mean())


def _runner(work_dir, max_keep_ckpts, resume=False):
    return Runner(
        model=_Model(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Points(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-2)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False, max_keep_ckpts=max_keep_ckpts)),
        randomness=dict(seed=0),
        resume=resume)


def _crash_when_renaming_to(monkeypatch, name):
    """Let the write of ``name`` die after its bytes are on disk but before
    the rename: the moment a kill would leave a partial file behind with a
    plain ``open(path, 'wb')``."""
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == name:
            raise OSError('simulated crash while writing ' + name)
        real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, 'replace', replace)


# max_keep_ckpts=1: mmengine removes the old checkpoint before writing the
# new one; the old one must survive the failed write.
@pytest.mark.parametrize('max_keep_ckpts', [1, 3])
def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch,
                                                max_keep_ckpts):
    _crash_when_renaming_to(monkeypatch, 'iter_4.pth')
    runner = _runner(tmp_path, max_keep_ckpts)
    with pytest.raises(OSError, match='simulated crash'):
        runner.train()
    # Besides the log folder and config dump of the run, no partial file.
    assert sorted(
        name for name in os.listdir(tmp_path)
        if not name.startswith(runner.timestamp)) == [
            'iter_2.pth', 'last_checkpoint'
        ]
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_2.pth')
    previous = torch.load(tmp_path / 'iter_2.pth')
    assert previous['meta']['iter'] == 2

    # The run resumes from it.
    monkeypatch.undo()
    resumed = _runner(tmp_path, max_keep_ckpts, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert (tmp_path / 'iter_4.pth').is_file()
    assert (tmp_path / 'iter_2.pth').exists() == (max_keep_ckpts > 1)


def test_outdated_checkpoints_removed_after_saving(tmp_path):
    runner = _runner(tmp_path, max_keep_ckpts=1)
    runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth']


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / 'sub' / 'file.bin'
    backend = get_file_backend(str(path))
    backend.put(b'old content', str(path))
    backend.put(b'new', str(path))
    assert path.read_bytes() == b'new'
    backend.put_text('text', str(path))
    assert path.read_text() == 'text'
    assert os.listdir(path.parent) == ['file.bin']  # no temporary left


def test_atomic_write_failure_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'file.bin'
    path.write_bytes(b'old content')

    def failing_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(checkpoints.os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='disk full'):
        checkpoints.atomic_write(b'new content', path)
    assert path.read_bytes() == b'old content'
    assert os.listdir(tmp_path) == ['file.bin']


def test_disk_full_names_the_file_and_the_space(tmp_path, monkeypatch):
    import errno
    from mmitpn.compat.checkpoints import atomic_write
    target = tmp_path / 'iter_6.pth'
    target.write_bytes(b'old')

    def full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(OSError) as err:
        atomic_write(b'x' * 1000, str(target))
    message = str(err.value)
    assert str(target) in message
    assert 'needs 1000 bytes' in message and 'are free' in message
    assert target.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_6.pth']
