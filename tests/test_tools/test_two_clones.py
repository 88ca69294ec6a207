"""Two clones sharing one environment each run their own code: the tools
put their own repository first on ``sys.path``, whatever is installed or on
``PYTHONPATH``."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fashion_mnist_utils import write_idx

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join('configs', 'pretrain', 'itpn-demo_fashion-mnist.py')


def train_one_iteration(clone, data_root, work_dir, pythonpath):
    env = dict(os.environ, PYTHONPATH=pythonpath, OMP_WAIT_POLICY='PASSIVE')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(clone, 'tools', 'train.py'),
            osp.join(clone, CONFIG), '--work-dir',
            str(work_dir), '--cfg-options',
            f'train_dataloader.dataset.data_root={data_root}',
            'train_dataloader.batch_size=4', 'train_cfg.max_iters=1',
            'default_hooks.logger.interval=1'
        ],
        cwd=str(work_dir.parent), env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_each_clone_runs_its_own_code(tmp_path):
    clone = tmp_path / 'other_clone'
    for folder in ('mmitpn', 'tools', 'configs'):
        shutil.copytree(osp.join(REPO, folder), clone / folder,
                        ignore=shutil.ignore_patterns('__pycache__'))
    version = clone / 'mmitpn' / 'version.py'
    version.write_text(version.read_text().replace(
        "__version__ = '", "__version__ = '9.9.9+other.", 1))
    data = tmp_path / 'data'
    data.mkdir()
    rng = np.random.default_rng(0)
    write_idx(str(data), 'train',
              rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
              np.arange(8) % 10)

    # Each clone's tool, with the *other* clone on PYTHONPATH.
    log = train_one_iteration(str(clone), data, tmp_path / 'run_clone',
                              pythonpath=REPO)
    assert f"from {clone / 'mmitpn'}" in log
    assert 'mmitpn 9.9.9+other.' in log
    log = train_one_iteration(REPO, data, tmp_path / 'run_repo',
                              pythonpath=str(clone))
    assert f"from {osp.join(REPO, 'mmitpn')}" in log
    assert '9.9.9+other' not in log
