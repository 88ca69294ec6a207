"""mmitpn modules build as ``type='mmitpn.X'`` from every codebase's scope."""
import pytest
import torch
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope

from mmitpn.registry import MODELS

TINY_NECK = dict(in_channels=(16, 32, 64), out_channels=32, fpn_depth=1)


def _scope_registry(scope):
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS as registry
    elif scope == 'mmdet':
        from mmdet.registry import MODELS as registry
    else:
        from mmseg.registry import MODELS as registry
    return registry


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_build_mmitpn_type_from_foreign_scope(scope):
    registry = _scope_registry(scope)
    with DefaultScope.overwrite_default_scope(scope):
        neck = registry.build(dict(type='mmitpn.iTPNPyramid', **TINY_NECK))
    assert type(neck).__name__ == 'iTPNPyramid'
    feats = (torch.rand(1, 16, 16, 16), torch.rand(1, 32, 8, 8),
             torch.rand(1, 64, 4, 4))
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(1, 32, 16, 16), (1, 32, 8, 8),
                                               (1, 32, 4, 4)]


class _NestedProbe(BaseModule):
    """Builds one mmitpn type and one type of the caller's codebase."""

    def __init__(self, neck, foreign):
        super().__init__()
        self.neck = MODELS.build(neck)
        self.foreign = MODELS.build(foreign)


FOREIGN_TYPES = {
    'mmpretrain': dict(type='LinearClsHead', num_classes=3, in_channels=8),
    'mmdet': dict(type='ChannelMapper', in_channels=[8], out_channels=4),
    'mmseg': dict(type='FCNHead', in_channels=8, channels=4, num_classes=3),
}


@pytest.fixture
def nested_probe():
    MODELS.register_module(name='_NestedProbe', module=_NestedProbe,
                           force=True)
    yield
    MODELS._module_dict.pop('_NestedProbe')


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_nested_build_resolves_both_scopes(scope, nested_probe):
    """Unprefixed nested types: ours build in mmitpn, the rest in the caller's
    scope (mmengine alone would look both up in the caller's registry)."""
    registry = _scope_registry(scope)
    cfg = dict(type='mmitpn._NestedProbe', neck=dict(type='iTPNPyramid',
                                                     **TINY_NECK),
               foreign=FOREIGN_TYPES[scope])
    with DefaultScope.overwrite_default_scope(scope):
        probe = registry.build(cfg)
    assert type(probe.neck).__name__ == 'iTPNPyramid'
    assert type(probe.foreign).__name__ == FOREIGN_TYPES[scope]['type']
    assert type(probe.foreign).__module__.startswith(scope)
