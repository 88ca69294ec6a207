"""A detector whose heads predict another number of classes than the
dataset has is stopped when training starts (mmdet's NumClassCheckHook,
part of the det runtime), instead of failing later with an IndexError."""
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'det',
                  'mask-rcnn_itpn-demo_fashion-mnist-det.py')

pytest.importorskip('mmdet')


def test_num_classes_smaller_than_the_dataset_stops_training():
    from mmdet.registry import HOOKS, MODELS
    cfg = Config.fromfile(CONFIG)
    assert dict(type='NumClassCheckHook') in cfg.custom_hooks
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    classes = cfg.train_dataloader.dataset.metainfo['classes']
    hook = HOOKS.build(dict(type='NumClassCheckHook'))

    def runner(classes):
        dataset = SimpleNamespace(metainfo=dict(classes=classes))
        return SimpleNamespace(
            model=model, train_dataloader=SimpleNamespace(dataset=dataset))

    hook.before_train_epoch(runner(classes))  # the config's own classes fit
    with pytest.raises(AssertionError) as err:
        hook.before_train_epoch(runner(tuple(classes) + ('extra', )))
    assert f'does not matches the length of `classes` {len(classes) + 1}' \
        in str(err.value)
