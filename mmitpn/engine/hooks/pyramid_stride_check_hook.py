"""Stops a run whose detector heads expect other strides than the iTPN
pyramid's levels have."""
from typing import List

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmitpn.models.backbones import iTPNHiViT
from mmitpn.models.utils.strides import pyramid_strides
from mmitpn.registry import HOOKS


def head_stride_mismatches(model) -> List[str]:
    """What in ``model`` assumes other strides than its pyramid gives.

    The pyramid levels of an :class:`~mmitpn.models.iTPNHiViT` backbone
    (all three stages out) are at :func:`pyramid_strides` of its patch size;
    anchor and point generators (``prior_generator.strides``, configured as
    ``anchor_generator.strides``) and RoI extractors (``featmap_strides``)
    must list the strides of the levels they get, in order. Models with
    another backbone, other stages out or a neck that skips levels
    (``start_level``) are not checked.

    Returns:
        list[str]: One line per module that disagrees; empty if all agree.
    """
    backbone = getattr(model, 'backbone', None)
    neck = getattr(model, 'neck', None)
    if (not isinstance(backbone, iTPNHiViT)
            or tuple(backbone.out_indices) != (0, 1, 2)
            or not isinstance(getattr(neck, 'num_outs', None), int)
            or getattr(neck, 'start_level', 0) != 0):
        return []
    expected = pyramid_strides(backbone.patch_size, neck.num_outs)
    found = []
    for name, module in model.named_modules():
        generator = getattr(module, 'prior_generator', None)
        if generator is not None and hasattr(generator, 'strides'):
            # mmdet keeps (w, h) pairs.
            found.append((f'{name}.anchor_generator.strides',
                          [max(s) for s in generator.strides]))
        strides = getattr(module, 'featmap_strides', None)
        if strides is not None:
            found.append((f'{name}.featmap_strides', list(strides)))
    return [
        f'model.{key} = {strides}, but its levels are at '
        f'{expected[:len(strides)]}' for key, strides in found
        if strides != expected[:len(strides)]
    ]


@HOOKS.register_module()
class PyramidStrideCheckHook(Hook):
    """Refuse to train or test a detector whose anchor generators or RoI
    extractors assume other feature strides than its iTPN pyramid has.

    The strides follow the backbone's ``patch_size`` (4 gives 1, 2, 4, 8,
    16 instead of 4 ... 64); mmdet takes the heads' strides as given, so with
    stale ones it trains without an error, on anchors and RoIs that do not
    match the feature maps. See :func:`head_stride_mismatches` for what is
    checked.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        mismatches = head_stride_mismatches(model)
        if mismatches:
            raise ValueError(
                'the detector heads assume other strides than the iTPN '
                f'pyramid has (backbone patch_size {model.backbone.patch_size}'
                f', {model.neck.num_outs} levels):\n  ' +
                '\n  '.join(mismatches) +
                '\nDerive them from the patch size in the config: after its '
                '`_base_` line, `from mmitpn.models.utils.strides import '
                'pyramid_strides`, then e.g. `strides = pyramid_strides('
                'patch_size)` for anchor_generator.strides and `strides[:4]` '
                'for the RoI extractors\' featmap_strides '
                '(docs/your_own_data.md#strides-follow-the-patch-size).')
