"""When and how mmitpn's mmengine fixes are applied: explicitly, once,
logged, version-guarded, with an opt-out. Each case runs in a fresh
interpreter because the fixes are process-wide."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

PROBE = '''
import sys
sys.path.insert(0, {repo!r})
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.hooks import CheckpointHook
originals = (LocalBackend.put, CheckpointHook._save_checkpoint_with_step)


def patched():
    return [LocalBackend.put is not originals[0],
            CheckpointHook._save_checkpoint_with_step is not originals[1]]
'''


def run(body, **env):
    script = PROBE.format(repo=REPO) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                          env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_import_changes_nothing_apply_changes_and_logs_once():
    out = run('''
        import mmitpn, mmitpn.models, mmitpn.engine
        print('after import', patched())
        from mmitpn.compat import apply_compat_patches
        done = apply_compat_patches()
        print('after apply', patched(), sorted(done))
        print('again', apply_compat_patches())
    ''', MMITPN_NO_COMPAT='')
    assert 'after import [False, False]' in out
    assert ("after apply [True, True] ['atomic_checkpoint_writes', "
            "'prune_checkpoints_after_saving', 'weights_only_checkpoints']"
            in out)
    assert 'again {}' in out
    assert out.count('mmitpn compat patches:') == 1
    assert 'atomic_checkpoint_writes applied (a kill during' in out


def test_a_config_asking_for_an_mmitpn_type_applies_them():
    out = run('''
        from mmengine.registry import MODELS, init_default_scope
        init_default_scope('mmdet')
        neck = MODELS.build(dict(type='mmitpn.iTPNPyramid',
                                 in_channels=(16, 32, 64), out_channels=32))
        print(type(neck).__name__, patched())
    ''', MMITPN_NO_COMPAT='')
    assert 'iTPNPyramid [True, True]' in out


def test_the_mmcv_fix_waits_until_mmcv_ops_is_imported():
    out = run('''
        import sys
        from mmitpn.compat import apply_compat_patches
        print('first', sorted(apply_compat_patches()))
        print('mmcv.ops imported:', 'mmcv.ops' in sys.modules)
        import mmcv.ops
        print('then', sorted(apply_compat_patches()))
        print(type(sys.modules['mmcv.ops.roi_align'].ext_module).__name__)
    ''', MMITPN_NO_COMPAT='')
    assert "first ['atomic_checkpoint_writes', " in out
    assert 'mmcv.ops imported: False' in out
    assert "then ['mmcv_ops_fallback']\nKernelFallback" in out


def test_opt_out_and_version_guard():
    out = run('''
        from mmitpn.compat import apply_compat_patches
        print(apply_compat_patches(), patched())
    ''', MMITPN_NO_COMPAT='atomic_checkpoint_writes')
    assert "'atomic_checkpoint_writes': 'skipped (MMITPN_NO_COMPAT)'" in out
    assert '[False, True]' in out
    out = run('''
        from mmitpn.compat import apply_compat_patches
        apply_compat_patches()
        print('final', patched())
    ''', MMITPN_NO_COMPAT='1')
    assert out.count('skipped (MMITPN_NO_COMPAT)') == 5
    assert 'final [False, False]' in out
    out = run('''
        import mmengine
        mmengine.__version__ = '0.11.2'
        from mmitpn.compat import apply_compat_patches
        apply_compat_patches()
        print('final', patched())
    ''', MMITPN_NO_COMPAT='')
    assert 'WARNING' in out
    assert ('skipped: written for mmengine >=0.10.0,<0.11.0, found 0.11.2'
            in out)
    assert 'final [False, False]' in out
    out = subprocess.run(
        [sys.executable, '-c', PROBE.format(repo=REPO) +
         'from mmitpn.compat import apply_compat_patches\n'
         'apply_compat_patches()'],
        env=dict(os.environ, MMITPN_NO_COMPAT='atomic'), capture_output=True,
        text=True, timeout=300)
    assert out.returncode != 0
    assert "MMITPN_NO_COMPAT names unknown patches ['atomic']" in out.stderr
