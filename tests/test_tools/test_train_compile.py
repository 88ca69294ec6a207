"""``compile`` in the config (mmengine's ``cfg.compile``) trains every config
family through ``tools/train.py``: pre-training, classification, detection
and segmentation. ``aot_eager`` traces with dynamo and AOTAutograd as
Inductor would, without its minutes of C++ compilation on 2 cores."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from fashion_mnist_utils import write_idx
from tool_test_utils import (DET_CONFIG, FASHION_MNIST, SEG_CONFIG,
                             write_fashion_mnist_det, write_synthetic_seg_set)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
LOADER = ['train_dataloader.num_workers=0',
          'train_dataloader.persistent_workers=False']


def fashion_mnist_options(root):
    root.mkdir()
    rng = np.random.default_rng(0)
    write_idx(str(root), 'train', rng.integers(0, 256, (16, 28, 28)),
              rng.integers(0, 10, 16))
    return [f'train_dataloader.dataset.data_root={root}',
            'train_dataloader.batch_size=4', *LOADER, *NO_VAL]


def det_options(root):
    if not osp.isdir(FASHION_MNIST):
        pytest.skip(f'no Fashion-MNIST at {FASHION_MNIST}')
    data_root = write_fashion_mnist_det(root)
    # From scratch: the config starts from the demo pre-training's output.
    return [f'train_dataloader.dataset.data_root={data_root}',
            'train_dataloader.batch_size=2', 'model.backbone.init_cfg=None',
            'model.neck.init_cfg=None', *LOADER, *NO_VAL]


def seg_options(root):
    write_synthetic_seg_set(str(root))
    return [f'train_dataloader.dataset.data_root={root}', *LOADER, *NO_VAL]


FAMILIES = {
    'pretrain': ('configs/pretrain/itpn-demo_fashion-mnist.py',
                 fashion_mnist_options),
    'cls': ('configs/cls/itpn-demo_fashion-mnist_scratch.py',
            fashion_mnist_options),
    'det': (DET_CONFIG, det_options),
    'seg': (SEG_CONFIG, seg_options),
}


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_config_compile_trains(tmp_path, family):
    config, data_options = FAMILIES[family]
    work_dir = tmp_path / 'work'
    run = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         osp.join(REPO, config), '--work-dir', str(work_dir),
         '--cfg-options', 'compile.backend=aot_eager',
         'train_cfg.max_iters=2', 'train_cfg.type=IterBasedTrainLoop',
         'default_hooks.checkpoint.interval=2',
         'default_hooks.checkpoint.by_epoch=False',
         'default_hooks.logger.interval=1', 'log_processor.by_epoch=False',
         *data_options(tmp_path / 'data')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'Model has been "compiled"' in log
    assert 'Iter(train) [2/2]' in log
    assert (work_dir / 'iter_2.pth').is_file()
