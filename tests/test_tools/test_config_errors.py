"""Configs that mix codebase scopes, or resume from a lost checkpoint, fail
with a message naming the problem and the fix."""
import os.path as osp
import runpy
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmitpn.tools.train_setup import (ConfigScopeError,
                                      registry_errors_explained,
                                      resolve_auto_resume)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')


def _build_in_scope(scope, model_cfg):
    from mmengine.registry import MODELS
    cfg = Config(dict(default_scope=scope))
    with DefaultScope.overwrite_default_scope(scope):
        with registry_errors_explained(cfg):
            MODELS.build(model_cfg)


def test_unprefixed_mmitpn_type_in_mmdet_config():
    with pytest.raises(ConfigScopeError) as err:
        _build_in_scope('mmdet', dict(type='iTPNHiViT', arch='tiny'))
    message = str(err.value)
    assert "'iTPNHiViT' is not in the mmdet::model registry" in message
    assert "default_scope is 'mmdet'" in message
    assert "iTPNHiViT is mmitpn's: write type='mmitpn.iTPNHiViT' " \
        '(mmpretrain also has a different iTPNHiViT)' in message
    assert isinstance(err.value, KeyError)  # still what mmengine raised


def test_mmdet_detector_nested_in_mmpretrain_config():
    # The prefixed detector builds, but its unprefixed neck is looked up in
    # the default scope (mmpretrain), which has no FPN.
    detector = dict(
        type='mmdet.RetinaNet',
        backbone=dict(type='mmitpn.iTPNHiViT', arch='tiny', img_size=64),
        neck=dict(type='FPN', in_channels=[48, 96, 192], out_channels=32,
                  num_outs=3),
        bbox_head=dict(type='RetinaHead', num_classes=2, in_channels=32))
    with pytest.raises(ConfigScopeError) as err:
        _build_in_scope('mmpretrain', detector)
    message = str(err.value)
    assert "'FPN' is not in the mmpretrain::model registry" in message
    assert "type='mmdet.FPN'" in message
    assert "_scope_='mmdet'" in message


def test_misspelt_type():
    with pytest.raises(ConfigScopeError, match='iTPNHiVit is registered in '
                       'none of mmitpn, mmpretrain, mmdet, mmseg: check the '
                       'spelling'):
        _build_in_scope('mmpretrain', dict(type='mmitpn.iTPNHiVit'))


def test_other_key_errors_pass_unchanged():
    with pytest.raises(KeyError) as err:
        with registry_errors_explained(Config(dict())):
            {}['img']
    assert type(err.value) is KeyError


def test_train_tool_explains_mixed_scope(tmp_path, monkeypatch):
    # The demo config (default_scope mmpretrain) with a detector type.
    monkeypatch.setattr(sys, 'argv', [
        'train.py', DEMO_CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', 'model.type=MaskRCNN'
    ])
    with pytest.raises(ConfigScopeError) as err:
        runpy.run_path(osp.join(REPO, 'tools', 'train.py'),
                       run_name='__main__')
    message = str(err.value)
    assert "'MaskRCNN' is not in the mmpretrain::model registry" in message
    assert "write type='mmdet.MaskRCNN'" in message


def test_auto_resume_record_of_missing_checkpoint(tmp_path):
    assert resolve_auto_resume(str(tmp_path)) is None  # nothing to resume
    (tmp_path / 'iter_2.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    with pytest.raises(SystemExit) as err:
        resolve_auto_resume(str(tmp_path))
    message = str(err.value)
    assert 'iter_4.pth' in message and 'does not exist' in message
    assert 'iter_2.pth' in message and '--resume PATH' in message
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    assert resolve_auto_resume(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
