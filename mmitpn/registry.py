"""mmitpn's registries: children of mmengine's roots under the scope ``mmitpn``.

Configs of any OpenMMLab codebase can name our modules as ``type='mmitpn.X'``
without ``custom_imports``: mmengine imports ``mmitpn.registry`` for the
``mmitpn`` prefix and the ``locations`` below register the classes lazily.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

SCOPE = 'mmitpn'


class ScopedRegistry(Registry):
    """A registry whose own types build under the ``mmitpn`` scope.

    mmengine resolves an unprefixed ``type`` in the *caller's* default scope,
    so a module that builds sub-modules (e.g. an algorithm building its neck)
    would look them up in mmdet's or mmseg's registry when used from their
    configs. Types registered here are built in our scope; every other type is
    left to the caller's scope, so users can still nest their codebase's types.
    """

    def build(self, cfg, *args, **kwargs):
        # Register our modules first, or the check below misses them.
        self.import_from_location()
        obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
        if (isinstance(obj_type, str) and '.' not in obj_type
                and '_scope_' not in cfg and obj_type in self._module_dict):
            cfg = type(cfg)(cfg)
            cfg['_scope_'] = SCOPE
        return super().build(cfg, *args, **kwargs)


MODELS = ScopedRegistry(
    'model', parent=MMENGINE_MODELS, scope=SCOPE, locations=['mmitpn.models'])
MODEL_WRAPPERS = ScopedRegistry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE,
    locations=['mmitpn.engine'])
HOOKS = ScopedRegistry(
    'hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['mmitpn.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = ScopedRegistry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE,
    locations=['mmitpn.engine'])
OPTIM_WRAPPERS = ScopedRegistry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
    locations=['mmitpn.engine'])
DATASETS = ScopedRegistry(
    'dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
    locations=['mmitpn.datasets'])
TRANSFORMS = ScopedRegistry(
    'transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
    locations=['mmitpn.datasets'])
