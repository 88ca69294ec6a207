"""mmitpn installed as a package (``pip install .``): ``mim train``,
``mim test`` and ``mim run`` find its configs and tools in ``mmitpn/.mim``,
and the model index is read from there.

The working tree is copied and installed with ``--no-deps
--no-build-isolation --no-index`` into a folder put on ``PYTHONPATH``, so
nothing is downloaded and the shared environment is left alone; every
command runs outside the checkout, so only the installed copy is seen.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fashion_mnist_utils import write_idx

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = 'itpn-demo_fashion-mnist_finetune'
MIM = osp.join(osp.dirname(sys.executable), 'mim')


def copy_working_tree(dst):
    """The files pip would see: tracked and untracked, not ignored."""
    files = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
        cwd=REPO, capture_output=True, text=True, check=True).stdout
    for path in files.splitlines():
        src = osp.join(REPO, path)
        if osp.isfile(src):  # not deleted in the working tree
            os.makedirs(osp.dirname(osp.join(dst, path)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, path))


@pytest.mark.slow
def test_mim_train_test_run_on_the_installed_package(tmp_path):
    if not osp.isfile(MIM):
        pytest.skip('openmim is not installed (pip install openmim)')
    copy_working_tree(str(tmp_path / 'src'))
    site = str(tmp_path / 'site')
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--no-deps',
        '--no-build-isolation', '--no-index', '--quiet', '--target', site,
        str(tmp_path / 'src')
    ], check=True, capture_output=True, cwd=str(tmp_path))
    mim_dir = osp.join(site, 'mmitpn', '.mim')
    assert sorted(os.listdir(mim_dir)) == [
        'configs', 'model-index.yml', 'tools'
    ]
    assert osp.isfile(osp.join(mim_dir, 'tools', 'train.py'))

    data = tmp_path / 'data'
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, num in (('train', 32), ('t10k', 16)):
        write_idx(str(data), split,
                  rng.integers(0, 256, (num, 28, 28), dtype=np.uint8),
                  rng.integers(0, 10, num))
    env = dict(os.environ, PYTHONPATH=site)

    def run(*args):
        proc = subprocess.run(args, cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    data_options = [
        f'{loader}.dataset.data_root={data}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + [
        f'{loader}.batch_size=8'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    work_dir = tmp_path / 'work'
    out = run(MIM, 'train', 'mmitpn', f'{DEMO}.py', '--work-dir',
              str(work_dir), '--cfg-options', 'model.backbone.init_cfg=None',
              'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
              'default_hooks.checkpoint.interval=2', *data_options)
    config = osp.join(mim_dir, 'configs', 'cls', f'{DEMO}.py')
    assert f'will use {config} instead' in out
    assert f"{osp.join(mim_dir, 'tools', 'train.py')} {config}" in out
    assert 'Training finished successfully' in out
    checkpoint = str(work_dir / 'iter_2.pth')
    assert osp.isfile(checkpoint)
    val_top1 = [line for line in out.splitlines() if 'Iter(val) [2/2]' in line]

    out = run(MIM, 'test', 'mmitpn', f'{DEMO}.py', '--checkpoint', checkpoint,
              '--work-dir', str(tmp_path / 'test'), '--cfg-options',
              *data_options)
    assert f"{osp.join(mim_dir, 'tools', 'test.py')} {config}" in out
    test_top1 = [
        line for line in out.splitlines() if 'Iter(test) [2/2]' in line
    ]
    # The same weights on the same 16 images as the validation at the end
    # of training.
    metric = val_top1[0].split('accuracy/top1:')[1].split()[0]
    assert f'accuracy/top1: {metric}' in test_top1[0]

    out = run(MIM, 'run', 'mmitpn', 'benchmark', config, '--batch-size', '2',
              '--shape', '28', '--iters', '1', '--rounds', '1', '--warmup',
              '0', '--threads', '1')
    benchmark = osp.join(mim_dir, 'tools', 'analysis_tools', 'benchmark.py')
    assert f'Use the script {benchmark} for command benchmark' in out
    # precision, fast paths, the demo classifier's parameters
    assert re.search(r'fp32\s+on\s+0\.88M', out), out[-2000:]

    # The installed package reads its index from .mim.
    out = run(sys.executable, '-c', f'''
import mmitpn
from mmitpn import model_index
from mmpretrain import get_model
print(model_index.index_root())
model = get_model({DEMO!r}, pretrained={checkpoint!r})
print(model._config.filename)
''')
    lines = out.splitlines()
    assert mim_dir in lines and config in lines
