"""tools/train.py and tools/test.py on the tiny seg config (synthetic set)."""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest

from tool_test_utils import write_synthetic_seg_set

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    REPO, 'configs', 'seg',
    'upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py')


@pytest.mark.slow
def test_train_then_test_reports_miou(tmp_path):
    data_root = str(tmp_path / 'data')
    write_synthetic_seg_set(data_root)
    work_dir = str(tmp_path / 'work')
    options = [
        '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=2'
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    train = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG,
         '--work-dir', work_dir, *options],
        cwd=REPO, env=env, capture_output=True, text=True)
    assert train.returncode == 0, train.stderr[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))

    test = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'), CONFIG,
         osp.join(work_dir, 'iter_2.pth'), '--work-dir', work_dir,
         *options],
        cwd=REPO, env=env, capture_output=True, text=True)
    assert test.returncode == 0, test.stderr[-3000:]
    metrics = ast.literal_eval(test.stdout.strip().splitlines()[-1])
    assert set(metrics) >= {'aAcc', 'mIoU', 'mAcc'}
    assert 0 <= metrics['mIoU'] <= 100
