"""A pre-training run killed with SIGKILL resumes with ``--resume`` and
continues exactly as the uninterrupted run (losses, weights, EMA teacher,
optimizer and scheduler state)."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmitpn.tools.visualization import find_scalar_logs, load_loss_history

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')
MAX_ITERS = 12
# 64 images in batches of 16: the loader restarts (a new epoch, a new
# shuffle) every 4 iterations, so the replay on resume crosses epochs.
SHRINK = [
    'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=16',
    f'train_cfg.max_iters={MAX_ITERS}', 'default_hooks.logger.interval=1',
    'log_processor.window_size=1', 'default_hooks.checkpoint.interval=4',
    'default_hooks.checkpoint.max_keep_ckpts=3'
]
LOSS_TERMS = {'loss', 'loss_mim', 'loss_mfm_s4', 'loss_mfm_s8', 'loss_mfm_s16'}


def _start(work_dir, *extra):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_WAIT_POLICY='PASSIVE')
    return subprocess.Popen(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'), DEMO_CONFIG, '--work-dir',
            str(work_dir), *extra, '--cfg-options', *SHRINK
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)


def _finish(proc):
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]


def _losses(log_file):
    """``{iteration: {term: value}}`` of one run's scalar log."""
    out = {}
    for term, (steps, values) in load_loss_history([log_file]).items():
        for step, value in zip(steps.tolist(), values.tolist()):
            out.setdefault(step, {})[term] = value
    return out


def _logged_iters(work_dir):
    logs = find_scalar_logs(str(work_dir))
    try:
        return max(_losses(logs[-1]), default=0) if logs else 0
    except ValueError:  # caught a line half written
        return 0


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    from mmitpn.datasets.fashion_mnist import FashionMNIST
    try:
        FashionMNIST.check_files(splits=('train', ))
    except FileNotFoundError as err:
        pytest.skip(str(err))

    reference_dir, killed_dir = tmp_path / 'reference', tmp_path / 'killed'
    _finish(_start(reference_dir))
    reference = _losses(find_scalar_logs(str(reference_dir))[0])
    assert sorted(reference) == list(range(1, MAX_ITERS + 1))
    assert set(reference[1]) == LOSS_TERMS

    # Kill once iteration 5 is logged (iter_4.pth is written), before the
    # end of the run.
    proc = _start(killed_dir)
    deadline = time.time() + 300
    while _logged_iters(killed_dir) < 5 and proc.poll() is None:
        assert time.time() < deadline, 'the run never reached iteration 5'
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _logged_iters(killed_dir)
    assert 5 <= killed_at < MAX_ITERS
    with open(killed_dir / 'last_checkpoint') as f:
        resumed_from = int(osp.basename(f.read()).split('_')[1][:-4])
    assert resumed_from in (4, 8) and resumed_from <= killed_at

    _finish(_start(killed_dir, '--resume'))
    first_run, resumed_run = find_scalar_logs(str(killed_dir))
    resumed = _losses(resumed_run)
    # The resumed run starts right after its checkpoint ...
    assert sorted(resumed) == list(range(resumed_from + 1, MAX_ITERS + 1))
    # ... and every loss term equals the uninterrupted run's, exactly: the
    # same data (sampler and replayed augmentation), the same masks
    # (IterationSeedHook), weights, optimizer, lr schedule and EMA teacher.
    for it, terms in resumed.items():
        assert terms == reference[it], f'iteration {it}'
    # The killed run had logged the same losses before its kill.
    for it, terms in _losses(first_run).items():
        assert terms == reference[it], f'iteration {it}'

    final = torch.load(killed_dir / f'iter_{MAX_ITERS}.pth')
    expected = torch.load(reference_dir / f'iter_{MAX_ITERS}.pth')
    assert any(k.startswith('teacher.') for k in final['state_dict'])
    for key, value in expected['state_dict'].items():
        assert torch.equal(final['state_dict'][key], value), key
    for index, state in expected['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(final['optimizer']['state'][index][name],
                               value), (index, name)
    assert final['param_schedulers'] == expected['param_schedulers']
