"""tools/dist_train.sh with 2 CPU processes (gloo) trains like 1 process
with the whole batch, and keeps the EMA teacher identical on both ranks."""
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from fashion_mnist_utils import write_idx

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')
GLOBAL_BATCH = 8
MAX_ITERS = 4
# Relative tolerance of losses and weights: the 2-process run sums and
# averages the same numbers in another order (per-rank means, then the
# gradient all-reduce), so they agree to float32 rounding (measured: 2e-7
# on losses, 4e-7 absolute on weights after 4 AdamW steps at lr 1.5e-3).
RTOL = 1e-5

# Deterministic apart from the split: no augmentation (the pipeline draws
# crops and flips per process), no drop path/dropout (the demo has none),
# a fixed sampler seed (with seed=None mmengine draws it per run), and
# masks keyed on sample and iteration (dist_probe.ProbeSampleKeyediTPN).
CONFIG = f"""
_base_ = {DEMO_CONFIG!r}
custom_imports = dict(imports=['dist_probe'], allow_failed_imports=False)
model = dict(type='mmitpn.ProbeSampleKeyediTPN')
train_dataloader = dict(
    sampler=dict(seed=0),
    dataset=dict(indices=32, pipeline=[dict(type='PackInputs')]))
train_cfg = dict(max_iters={MAX_ITERS})
# The full lr from the first step (no warmup), so that the weights move.
param_scheduler = None
custom_hooks = [
    dict(type='mmitpn.EMATeacherHook', momentum=0.9),
    dict(type='mmitpn.ProbeRecorderHook'),
]
default_hooks = dict(checkpoint=dict(interval={MAX_ITERS}))
"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(command, work_dir):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([REPO, osp.dirname(__file__)]),
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1',
        OMP_WAIT_POLICY='PASSIVE')
    result = subprocess.run(
        [*command, '--work-dir', str(work_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    from mmitpn.datasets.fashion_mnist import FashionMNIST
    try:
        FashionMNIST.check_files(splits=('train', ))
    except FileNotFoundError as err:
        pytest.skip(str(err))
    config = tmp_path / 'probe_config.py'
    config.write_text(CONFIG)

    _run([
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'),
        str(config), '--cfg-options',
        f'train_dataloader.batch_size={GLOBAL_BATCH}'
    ], tmp_path / 'one')
    _run([
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'),
        str(config), '2', '--cfg-options',
        f'train_dataloader.batch_size={GLOBAL_BATCH // 2}'
    ], tmp_path / 'two')

    one = torch.load(tmp_path / 'one' / 'probe_rank0.pth')
    ranks = [torch.load(tmp_path / 'two' / f'probe_rank{r}.pth')
             for r in (0, 1)]
    assert len(one['losses']) == MAX_ITERS
    for it in range(MAX_ITERS):
        for term, value in one['losses'][it].items():
            # Each rank's loss is the mean over its half of the batch.
            halves = [r['losses'][it][term] for r in ranks]
            assert sum(halves) / 2 == pytest.approx(value, rel=RTOL), (
                it, term, halves, value)
        # The halves are different images: a real split, not a copy.
        assert ranks[0]['losses'][it]['loss_mim'] != \
            ranks[1]['losses'][it]['loss_mim']

    for name, value in ranks[0]['teacher'].items():
        # Bit-identical on both ranks: DDP keeps the students in sync and
        # each rank applies the same EMA update.
        assert torch.equal(ranks[1]['teacher'][name], value), name
        torch.testing.assert_close(
            value, one['teacher'][name], rtol=RTOL, atol=1e-6)
    for name, value in ranks[0]['backbone'].items():
        torch.testing.assert_close(
            value, one['backbone'][name], rtol=RTOL, atol=1e-6)
    # The teacher moved away from its initial copy of the student.
    assert not torch.equal(ranks[0]['teacher']['module.pos_embed'],
                           ranks[0]['backbone']['pos_embed'])


def _rank_pid(rank):
    """The pid of this user's training process of global ``rank``."""
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                cmdline = f.read()
            with open(f'/proc/{entry}/environ', 'rb') as f:
                environ = f.read().split(b'\0')
        except OSError:
            continue
        if b'tools/train.py' in cmdline and f'RANK={rank}'.encode() in \
                environ:
            return int(entry)
    raise AssertionError(f'no process of rank {rank}')


@pytest.mark.slow
def test_a_stopped_rank_ends_the_run_within_the_timeout(tmp_path):
    """``kill -STOP`` of rank 1: rank 0 gives up after the process-group
    timeout, names rank 1, and the whole job ends."""
    import signal
    import time
    root = tmp_path / 'data'
    root.mkdir()
    rng = np.random.default_rng(0)
    write_idx(str(root), 'train', rng.integers(0, 256, (64, 28, 28)),
              rng.integers(0, 10, 64))
    timeout = 15
    env = dict(os.environ, PYTHONPATH=REPO, PORT=str(_free_port()),
               OMP_NUM_THREADS='1')
    job = subprocess.Popen(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), DEMO_CONFIG, '2',
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'train_dataloader.dataset.data_root={root}',
         'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False',
         f'env_cfg.dist_cfg.timeout={timeout}',
         'default_hooks.logger.interval=1'],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    output = []
    stopped = None
    try:
        for line in job.stdout:
            output.append(line)
            if re.search(r'Iter\(train\) \[\s*2/', line):
                pid = _rank_pid(1)
                os.kill(pid, signal.SIGSTOP)
                stopped = time.time()
                break
        assert stopped is not None, ''.join(output)[-4000:]
        rest, _ = job.communicate(timeout=timeout + 120)
        ended = time.time() - stopped
    finally:
        if job.poll() is None:
            job.kill()
        if stopped is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # torchrun ended it, as it should
                pass
    output = ''.join(output) + rest
    assert job.returncode != 0
    # The timeout, then torchrun's grace period for the stopped process.
    assert ended < timeout + 90, ended
    assert 'rank 0: a collective operation waited longer than the ' \
        f'process-group timeout ({timeout} s' in output, output[-4000:]
    assert 'rank 1 last finished iteration' in output
