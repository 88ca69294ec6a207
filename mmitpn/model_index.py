"""mmitpn's model index, and its place in each codebase's look-up by name.

``model-index.yml`` (OpenMMLab's format) imports one ``metafile.yml`` per
config family; every config of ``configs/`` is a model there, named by its
file stem, with the paper's results, parameters, FLOPs and, for the official
releases, where the weights are and how to convert them. ``Weights`` are
never URLs: a model loads weights only from what the caller passes
(``pretrained=PATH``, ``weights=PATH``), so nothing is downloaded.

:func:`register_model_index` (run by ``import mmitpn``) makes the models
known to the look-ups of the codebase their configs run in, as soon as that
look-up is imported (mmitpn imports none of them):

- **mmpretrain** (``configs/pretrain``, ``configs/cls``): ``ModelHub``, so
  ``get_model``, ``list_models``, ``inference_model`` and the inferencers
  take the names. mmpretrain's index has two pre-training names that are
  also ours (``itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e_in1k`` and
  ``itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-800e_in1k``); after
  ``import mmitpn`` they name mmitpn's configs, and the log says so.
- **mmdet / mmseg** (``configs/det``, ``configs/seg``): mmengine's
  ``BaseInferencer`` looks names up only in the index of its scope's
  package; it is extended to look in mmitpn's index first, so
  ``DetInferencer(NAME)`` and ``MMSegInferencer(NAME)`` find ours, and
  ``list_models`` lists them.

The index is read from ``mmitpn/.mim`` of an installed package (``pip
install .`` puts ``configs/``, ``tools/`` and ``model-index.yml`` there, as
OpenMMLab packages do for ``mim``), else from the checkout this package lies
in (editable or in-tree use).
"""
import importlib.util
import logging
import os.path as osp
import re
import sys
from functools import lru_cache
from typing import Callable, Dict, List, NamedTuple, Optional

INDEX_FILE = 'model-index.yml'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))

# The codebase whose registries and tools serve each config family (the
# configs' ``default_scope``).
FAMILY_CODEBASES = {
    'pretrain': 'mmpretrain',
    'cls': 'mmpretrain',
    'det': 'mmdet',
    'seg': 'mmseg',
}
# How a user loads a model of each codebase by name.
NAME_LOOKUPS = {
    'mmpretrain': "mmpretrain's get_model / ImageClassificationInferencer",
    'mmdet': "mmdet's DetInferencer",
    'mmseg': "mmseg's MMSegInferencer",
}


class IndexedModel(NamedTuple):
    """One model of the index: its name, codebase, config file and the
    weights the index names (None: pass a local path)."""
    name: str
    codebase: str
    config: str
    weights: Optional[str]


def index_root() -> str:
    """The folder holding ``model-index.yml`` and ``configs/``."""
    candidates = (osp.join(PACKAGE_DIR, '.mim'), osp.dirname(PACKAGE_DIR))
    for root in candidates:
        if (osp.isfile(osp.join(root, INDEX_FILE))
                and osp.isdir(osp.join(root, 'configs'))):
            return root
    raise FileNotFoundError(
        f"mmitpn's model index is missing: neither {candidates[0]} (an "
        f'installed package) nor {candidates[1]} (a checkout) holds '
        f'{INDEX_FILE} and configs/. Install mmitpn from its repository '
        '(pip install .), which ships them in mmitpn/.mim, or use it from '
        'a checkout.')


def metafiles(root: Optional[str] = None) -> List[str]:
    """Paths of the metafiles ``model-index.yml`` imports."""
    import yaml
    root = root or index_root()
    with open(osp.join(root, INDEX_FILE), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    return [osp.join(root, path) for path in index['Import']]


def family_codebase(metafile: str) -> str:
    """The codebase of a metafile's models, from its family folder."""
    family = osp.basename(osp.dirname(metafile))
    if family not in FAMILY_CODEBASES:
        raise ValueError(
            f'{metafile} is not in a config family folder: model-index.yml '
            f'may import configs/{{{",".join(FAMILY_CODEBASES)}}}/'
            'metafile.yml only')
    return FAMILY_CODEBASES[family]


@lru_cache(maxsize=None)
def load_models() -> Dict[str, IndexedModel]:
    """Every model of the index by lower-case name."""
    import yaml
    root = index_root()
    models = {}
    for metafile in metafiles(root):
        codebase = family_codebase(metafile)
        with open(metafile, encoding='utf-8') as f:
            entries = yaml.safe_load(f)['Models']
        for entry in entries:
            models[entry['Name'].lower()] = IndexedModel(
                entry['Name'], codebase, osp.join(root, entry['Config']),
                entry.get('Weights'))
    return models


def find_model(name: str) -> Optional[IndexedModel]:
    """The model of that name (any case), or None."""
    return load_models().get(name.lower())


def _log(message: str) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=logging.INFO)


# mmpretrain ---------------------------------------------------------------


def _register_with_model_hub(hub) -> None:
    """Registers the mmpretrain families with ``ModelHub``, in place of
    mmpretrain's own entries of the same names."""
    root = index_root()
    shadowed = sorted(
        model.name for key, model in load_models().items()
        if model.codebase == 'mmpretrain'
        and hub._models_dict.pop(key, None) is not None)
    for metafile in metafiles(root):
        if family_codebase(metafile) == 'mmpretrain':
            hub.register_model_index(metafile, config_prefix=root)
    if shadowed:
        _log(f"mmitpn's configs now answer to the names {shadowed}, which "
             "mmpretrain's own index also has (mmpretrain's configs stay "
             'usable by path)')


def _join_model_hub(model_module) -> None:
    """mmpretrain registers its own index on the first look-up; ours is
    registered right after it, so the two never collide."""
    hub = model_module.ModelHub
    register_own = hub._register_mmpretrain_models
    done = []

    def register_mmpretrain_then_mmitpn():
        register_own()
        if not done:
            done.append(True)
            _register_with_model_hub(hub)

    hub._register_mmpretrain_models = staticmethod(
        register_mmpretrain_then_mmitpn)


# mmengine's inferencers (mmdet, mmseg) ------------------------------------


def _join_inferencer_lookup(infer_module) -> None:
    """``BaseInferencer`` resolves names in its scope package's index only;
    mmitpn's index is asked first."""
    from mmengine.config import Config

    base = infer_module.BaseInferencer
    load_from_scope_index = base._load_model_from_metafile
    list_scope_models = base.list_models

    def _load_model_from_metafile(self, model: str):
        found = find_model(model)
        if found is None:
            return load_from_scope_index(self, model)
        if found.codebase != self.scope:
            raise ValueError(
                f'{found.name!r} is an mmitpn {found.codebase} model; this '
                f'inferencer runs {self.scope!r} models. Load it with '
                f'{NAME_LOOKUPS[found.codebase]}.')
        return Config.fromfile(found.config), found.weights

    def list_models(scope: Optional[str] = None, patterns: str = r'.*'):
        names = list_scope_models(scope, patterns)
        ours = [
            model.name for model in load_models().values()
            if model.codebase == scope and re.match(patterns, model.name)
        ]
        if ours:
            _log(''.join(f'model_name: {name} (mmitpn)\n' for name in ours))
        return names + ours

    base._load_model_from_metafile = _load_model_from_metafile
    base.list_models = staticmethod(list_models)


# Registration when each look-up is imported --------------------------------

# module -> how mmitpn's models join the look-up it defines.
LOOKUP_MODULES: Dict[str, Callable] = {
    'mmpretrain.apis.model': _join_model_hub,
    'mmengine.infer.infer': _join_inferencer_lookup,
}
_joined = set()


def _join(name: str, module) -> None:
    if name not in _joined:
        _joined.add(name)
        LOOKUP_MODULES[name](module)


class _JoinAfterImport:
    """A ``sys.meta_path`` finder that lets the normal finders load a
    look-up module and joins it right after the module has run, then leaves
    ``sys.meta_path`` once every look-up is joined."""

    def __init__(self):
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if (self._finding or fullname not in LOOKUP_MODULES
                or fullname in _joined):
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_join(module):
            exec_module(module)
            _join(fullname, module)
            if _joined.issuperset(LOOKUP_MODULES) and self in sys.meta_path:
                sys.meta_path.remove(self)

        spec.loader.exec_module = exec_then_join
        return spec


def register_model_index() -> None:
    """Join mmitpn's models to every look-up: now if its module is already
    imported, else right after it is. Reads no index until a look-up asks."""
    for name in LOOKUP_MODULES:
        if name in sys.modules:
            _join(name, sys.modules[name])
    if not _joined.issuperset(LOOKUP_MODULES) and not any(
            isinstance(finder, _JoinAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _JoinAfterImport())
