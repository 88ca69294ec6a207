"""One training run per work dir: a second one stops at start, naming the
first; a killed run leaves no lock behind."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HOLD = ('import sys, time; sys.path.insert(0, {repo!r}); '
        'from mmitpn.tools.train_setup import lock_work_dir; '
        'lock_work_dir({work_dir!r}); print("locked", flush=True); '
        'time.sleep(600)')


def hold(work_dir):
    """A process holding ``work_dir``, as a training run does."""
    proc = subprocess.Popen(
        [sys.executable, '-c', HOLD.format(repo=REPO, work_dir=work_dir)],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def train(work_dir, *extra):
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         osp.join(REPO, 'configs', 'pretrain', 'itpn-demo_fashion-mnist.py'),
         '--work-dir', work_dir, *extra],
        capture_output=True, text=True, timeout=300, cwd=REPO)


def test_second_run_stops_naming_the_first_and_killed_runs_leave_no_lock(
        tmp_path):
    work_dir = str(tmp_path / 'work')
    first = hold(work_dir)
    try:
        start = time.time()
        second = train(work_dir)
        assert second.returncode != 0
        assert time.time() - start < 120  # at start, before any training
        message = second.stderr + second.stdout
        assert f'work dir {work_dir} is in use by run PID {first.pid} on ' \
            f'host {os.uname().nodename}' in message
        assert 'pass another --work-dir' in message
        assert not any(f.endswith('.pth') for f in os.listdir(work_dir))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed holder's lock is gone with it.
    hold(work_dir).kill()


def test_other_ranks_of_a_distributed_run_do_not_take_the_lock(
        tmp_path, monkeypatch):
    from mmitpn.tools.train_setup import WORK_DIR_LOCK, lock_work_dir
    monkeypatch.setenv('RANK', '1')
    lock_work_dir(str(tmp_path))
    assert not (tmp_path / WORK_DIR_LOCK).exists()
    monkeypatch.setenv('RANK', '0')
    first = hold(str(tmp_path))
    try:
        with pytest.raises(SystemExit, match=f'run PID {first.pid}'):
            lock_work_dir(str(tmp_path))
    finally:
        first.kill()
        first.wait()
