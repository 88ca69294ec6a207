"""tools/train.py and tools/test.py on the tiny seg config (synthetic set)."""
import ast
import io
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmitpn.datasets.tiny_real_seg import CLASSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    REPO, 'configs', 'seg',
    'upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py')


def _write_synthetic_set(root):
    """Random images whose label is the brighter half: 4 train, 2 val."""
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location(
        'prepare_tiny_real_seg',
        osp.join(REPO, 'tools', 'dataset_converters',
                 'prepare_tiny_real_seg.py'))
    prep = module_from_spec(spec)
    spec.loader.exec_module(prep)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        label = np.full((48, 64), 1, np.uint8)
        label[:, 32:] = 1 + i % len(CLASSES)
        image = rng.integers(0, 100, (48, 64, 3), dtype=np.uint8)
        image[label > 1] += 120
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format='JPEG')
        split = 'validation' if i % 3 == 2 else 'training'
        samples.append(prep.Sample(f'img{i}', buffer.getvalue(), label,
                                   (split, )))
    prep.write_dataset(samples, root)


@pytest.mark.slow
def test_train_then_test_reports_miou(tmp_path):
    data_root = str(tmp_path / 'data')
    _write_synthetic_set(data_root)
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
