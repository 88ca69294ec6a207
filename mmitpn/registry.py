"""mmitpn's registries: children of mmengine's roots under the scope ``mmitpn``.

Configs of any OpenMMLab codebase can name our modules as ``type='mmitpn.X'``
without ``custom_imports``: mmengine imports ``mmitpn.registry`` for the
``mmitpn`` prefix and each registry imports its modules lazily, in two tiers:

- **core** locations (torch + mmengine only) when the registry is first
  asked for a type: backbone, pyramid, heads, hooks, optimizer parts, lr
  schedulers;
- **adapter** locations, which need another codebase (mmpretrain, mmseg,
  open_clip), only when a type is asked for that the core does not have: a
  detection config never imports mmpretrain or mmseg through mmitpn.

That first request is also when mmitpn applies its mmengine fixes
(:func:`mmitpn.compat.apply_compat_patches`), so ``type='mmitpn.X'`` in
mmdet's, mmseg's or mmpretrain's own tools gets them too.
"""
from importlib import import_module
from typing import Dict, Optional, Sequence

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import \
    PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import Registry

SCOPE = 'mmitpn'


class ScopedRegistry(Registry):
    """A registry of mmitpn's with core and adapter locations (see above)
    whose own types build under the ``mmitpn`` scope.

    mmengine resolves an unprefixed ``type`` in the *caller's* default scope,
    so a module that builds sub-modules (e.g. an algorithm building its neck)
    would look them up in mmdet's or mmseg's registry when used from their
    configs. Types registered here are built in our scope; every other type is
    left to the caller's scope, so users can still nest their codebase's types.

    Args:
        name (str): Registry name.
        parent (Registry): mmengine's root registry of that name.
        locations (Sequence[str]): Core modules, imported on first use.
        adapters (Sequence[str]): Modules needing another codebase, imported
            in order when a type is not found, until it is.
    """

    def __init__(self, name: str, parent: Registry,
                 locations: Sequence[str], adapters: Sequence[str] = ()):
        super().__init__(name, parent=parent, scope=SCOPE,
                         locations=list(locations))
        self.adapters = tuple(adapters)
        self._adapter_errors: Dict[str, ImportError] = {}

    def import_from_location(self) -> None:
        if not self._imported:
            from .compat import apply_compat_patches
            apply_compat_patches()
        super().import_from_location()

    def import_adapters(self, until: Optional[str] = None) -> None:
        """Import the adapter modules, all or until one registers
        ``until``; failed imports are kept for :meth:`get`'s message."""
        for location in self.adapters:
            if until is not None and until in self._module_dict:
                return
            if location in self._adapter_errors:
                continue
            try:
                import_module(location)
            except ImportError as err:
                self._adapter_errors[location] = err

    def find_own(self, name: str) -> Optional[type]:
        """The type registered here as ``name`` (core, then adapters), or
        None."""
        self.import_from_location()
        if name not in self._module_dict:
            self.import_adapters(until=name)
        return self._module_dict.get(name)

    def get(self, key: str):
        obj_cls = super().get(key)
        scope, name = self.split_scope_key(key)
        if obj_cls is not None or scope not in (None, SCOPE):
            return obj_cls
        obj_cls = self.find_own(name)
        if obj_cls is None and self._adapter_errors:
            failed = '; '.join(f'{loc} ({err})'
                               for loc, err in self._adapter_errors.items())
            raise ImportError(
                f'{name!r} is not one of mmitpn\'s core {self.name} types, '
                f'and the mmitpn parts that could register it failed to '
                f'import: {failed}. If {name!r} is one of theirs, install '
                'what they need (pip install mmpretrain / mmsegmentation / '
                'open_clip_torch); otherwise check the spelling.')
        return obj_cls

    def build(self, cfg, *args, **kwargs):
        obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
        if (isinstance(obj_type, str) and '.' not in obj_type
                and '_scope_' not in cfg
                and self.find_own(obj_type) is not None):
            cfg = type(cfg)(cfg)
            cfg['_scope_'] = SCOPE
        return super().build(cfg, *args, **kwargs)


MODELS = ScopedRegistry(
    'model',
    parent=MMENGINE_MODELS,
    locations=['mmitpn.models'],
    adapters=['mmitpn.models.algorithms', 'mmitpn.models.teachers'])
MODEL_WRAPPERS = ScopedRegistry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    locations=['mmitpn.accel.cpu_distributed'])
RUNNERS = ScopedRegistry(
    'runner', parent=MMENGINE_RUNNERS, locations=['mmitpn.engine.runner'])
HOOKS = ScopedRegistry(
    'hook', parent=MMENGINE_HOOKS, locations=['mmitpn.engine.hooks'])
OPTIM_WRAPPER_CONSTRUCTORS = ScopedRegistry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmitpn.engine.optimizers'])
OPTIM_WRAPPERS = ScopedRegistry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    locations=['mmitpn.accel.bf16_optim_wrapper'])
PARAM_SCHEDULERS = ScopedRegistry(
    'parameter scheduler',
    parent=MMENGINE_PARAM_SCHEDULERS,
    locations=['mmitpn.engine.schedulers'])
DATASETS = ScopedRegistry(
    'dataset',
    parent=MMENGINE_DATASETS,
    locations=[],
    adapters=[
        'mmitpn.datasets.fashion_mnist', 'mmitpn.datasets.image_folder',
        'mmitpn.datasets.tiny_real_seg'
    ])
