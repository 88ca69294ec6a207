"""Checks that the data fits the model, made when the data first arrives:
a model built for other images or other classes than the dataset has trains
or evaluates without an error, on numbers that mean nothing."""
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmitpn.registry import HOOKS


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class InputSizeCheckHook(Hook):
    """Warn, at the first training batch, when its images are not the size
    the backbone was built for (``model.backbone.img_size``).

    For pre-training and classification the size is fixed: the masks, the
    position embeddings and the pixel head's patch grid are laid out for
    ``img_size``; other images make the backbone interpolate its position
    embeddings at every step and the masking cover another grid.
    """

    priority = 'LOW'
    _checked = False

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._checked:
            return
        self._checked = True
        backbone = getattr(_unwrap(runner.model), 'backbone', None)
        expected = getattr(backbone, 'img_size', None)
        inputs = (data_batch or {}).get('inputs')
        if expected is None or inputs is None or not len(inputs):
            return
        got = tuple(inputs[0].shape[-2:])
        if got != tuple(expected):
            print_log(
                f'the first training batch has {got[0]}x{got[1]} images, but '
                f'the backbone was built for {expected[0]}x{expected[1]} '
                '(model.backbone.img_size): its position embeddings are '
                'interpolated at every step and the masks and patch grid '
                'are laid out for another size. Set model.backbone.img_size '
                f'(and the head\'s img_size) to {got[0]}, or resize the data '
                'in the pipeline.',
                logger='current', level=30)

    _checked = False


@HOOKS.register_module()
class SegNumClassesCheckHook(Hook):
    """Refuse a segmentor whose decode and auxiliary heads predict another
    number of classes than the dataset's ``metainfo['classes']``.

    Too few classes fail deep in the loss with a CUDA assert or an index
    error; too many train on and report IoU over classes the data never
    has. The check runs when training, validation or testing starts, on
    that stage's dataset. (mmdet has its own ``NumClassCheckHook``.)
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_loop.dataloader.dataset, 'train')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_loop.dataloader.dataset, 'val')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop.dataloader.dataset, 'test')

    @staticmethod
    def _check(runner, dataset, stage: str) -> None:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if not classes:
            return
        model = _unwrap(runner.model)
        heads = []
        for name in ('decode_head', 'auxiliary_head'):
            head = getattr(model, name, None)
            heads += [(f'{name}[{i}]', h) for i, h in enumerate(head)] \
                if isinstance(head, nn.ModuleList) else [(name, head)]
        wrong = [
            f'model.{name}.num_classes = {head.num_classes}'
            for name, head in heads
            if isinstance(getattr(head, 'num_classes', None), int)
            and head.num_classes != len(classes)
        ]
        if wrong:
            raise ValueError(
                f'{", ".join(wrong)}, but the {stage} dataset '
                f'({type(dataset).__name__}) has {len(classes)} classes '
                f'{tuple(classes)[:8]}{" ..." if len(classes) > 8 else ""}. '
                f'Set num_classes={len(classes)} on every head, or give the '
                "dataset the classes the model predicts (metainfo=dict("
                "classes=...)).")
