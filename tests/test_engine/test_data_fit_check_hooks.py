"""The first batch's image size and the heads' num_classes are checked
against the data."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mmitpn.engine.hooks import InputSizeCheckHook, SegNumClassesCheckHook
from mmitpn.engine.hooks import data_fit_check_hooks


def fake_runner(model, dataset=None):
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    return SimpleNamespace(model=model, train_loop=loop, val_loop=loop,
                           test_loop=loop)


def test_input_size_warns_once_naming_the_key(monkeypatch):
    logged = []
    monkeypatch.setattr(data_fit_check_hooks, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    model = nn.Module()
    model.backbone = SimpleNamespace(img_size=(56, 56))
    hook = InputSizeCheckHook()
    batch = dict(inputs=[torch.zeros(3, 28, 28)] * 2)
    hook.before_train_iter(fake_runner(model), 0, batch)
    hook.before_train_iter(fake_runner(model), 1, batch)
    assert len(logged) == 1
    assert '28x28 images' in logged[0]
    assert 'built for 56x56 (model.backbone.img_size)' in logged[0]

    fitting = InputSizeCheckHook()
    model.backbone.img_size = (28, 28)
    fitting.before_train_iter(fake_runner(model), 0, batch)
    assert len(logged) == 1


def test_seg_num_classes_must_match_the_dataset():
    model = nn.Module()
    model.decode_head = nn.Module()
    model.decode_head.num_classes = 2
    model.auxiliary_head = nn.ModuleList([nn.Module()])
    model.auxiliary_head[0].num_classes = 3
    dataset = SimpleNamespace(metainfo=dict(classes=('bg', 'a', 'b')))
    hook = SegNumClassesCheckHook()
    with pytest.raises(ValueError) as err:
        hook.before_train(fake_runner(model, dataset))
    message = str(err.value)
    assert 'model.decode_head.num_classes = 2' in message
    assert 'auxiliary_head' not in message  # that one is right
    assert 'has 3 classes' in message and 'num_classes=3' in message
    model.decode_head.num_classes = 3
    hook.before_test(fake_runner(model, dataset))
