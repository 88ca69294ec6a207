"""The layering: the model core needs torch and mmengine only, and each
adapter only its own codebase.

Each check runs in a fresh interpreter in which the named packages cannot be
imported (a finder at the front of ``sys.meta_path`` refuses them), as on a
machine where they are missing or broken (e.g. mmcv-lite without ops).
"""
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np

from fashion_mnist_utils import write_idx

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

BLOCKER = '''
import sys


class RefuseImports:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + '.') for n in self.names):
            raise ModuleNotFoundError(f'{{name}} is blocked by the test',
                                      name=name)
        return None


sys.meta_path.insert(0, RefuseImports({blocked!r}))
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
'''


def run_blocked(blocked, body):
    script = BLOCKER.format(blocked=list(blocked), repo=REPO,
                            tests=osp.join(REPO, 'tests'))
    script += textwrap.dedent(body)
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_blocker_refuses_what_it_names():
    out = run_blocked(['mmdet'], '''
        try:
            import mmdet
        except ModuleNotFoundError as err:
            print('refused:', err)
    ''')
    assert 'refused: mmdet is blocked by the test' in out


def test_backbone_and_pyramid_without_other_codebases():
    out = run_blocked(['mmpretrain', 'mmdet', 'mmseg', 'mmcv.ops'], '''
        import torch
        import mmitpn.models.backbones
        import mmitpn.models.necks
        from mmitpn.registry import MODELS
        backbone = MODELS.build(dict(type='iTPNHiViT', arch='base'))
        neck = MODELS.build(dict(type='iTPNPyramid',
                                 in_channels=backbone.dims,
                                 out_channels=256, num_outs=5))
        with torch.no_grad():
            outs = neck(backbone(torch.randn(1, 3, 64, 64)))
        print([tuple(o.shape) for o in outs])
        print(sum(p.numel() for p in backbone.parameters()))
        print(sorted(m for m in ('mmpretrain', 'mmdet', 'mmseg', 'mmcv.ops')
                     if m in sys.modules))
    ''')
    shapes, params, loaded = out.strip().splitlines()[-3:]
    assert shapes == ('[(1, 256, 16, 16), (1, 256, 8, 8), (1, 256, 4, 4), '
                      '(1, 256, 2, 2), (1, 256, 1, 1)]')
    assert 75e6 < int(params) < 90e6  # iTPN-B (paper Table 1: 79 M)
    assert loaded == '[]'


def test_pretraining_and_fashion_mnist_without_det_seg(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(str(tmp_path), 'train',
              rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              np.arange(4))
    out = run_blocked(['mmdet', 'mmseg', 'mmcv.ops'], f'''
        import torch
        from mmengine.registry import init_default_scope
        from mmitpn.registry import DATASETS, MODELS
        from tiny_models import tiny_ema_pretrain_cfg
        init_default_scope('mmpretrain')
        model = MODELS.build(tiny_ema_pretrain_cfg(img_size=32,
                                                   patch_size=8))
        model.init_teacher()
        losses = model.loss(torch.randn(2, 3, 32, 32))
        print(sorted(losses), all(torch.isfinite(v) for v in losses.values()))
        dataset = DATASETS.build(dict(
            type='mmitpn.FashionMNIST', data_root={str(tmp_path)!r},
            split='train', pipeline=[]))
        print(len(dataset), dataset[0]['img'].shape)
        print(sorted(m for m in ('mmdet', 'mmseg', 'mmcv.ops')
                     if m in sys.modules))
    ''')
    losses, data, loaded = out.strip().splitlines()[-3:]
    assert losses == ("['loss_mfm_s16', 'loss_mfm_s4', 'loss_mfm_s8', "
                      "'loss_mim'] True")
    assert data == '4 (28, 28, 3)'
    assert loaded == '[]'


def test_missing_adapter_codebase_is_named():
    out = run_blocked(['mmpretrain'], '''
        from mmitpn.registry import MODELS
        try:
            MODELS.build(dict(type='iTPN', backbone=dict(type='iTPNHiViT')))
        except ImportError as err:
            print(err)
    ''')
    assert "'iTPN' is not one of mmitpn's core model types" in out
    assert 'mmitpn.models.algorithms (mmpretrain is blocked' in out
