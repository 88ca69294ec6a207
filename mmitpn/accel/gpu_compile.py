"""The GPU fast path: mmitpn's parts run as graphs compiled by Inductor.

On a GPU, eager iTPN is bound by the host: a batch-128 EMA-MFM step of
iTPN-B dispatched about 4500 operators (thousands of casts, copies and small
LayerNorm/GELU/residual kernels of the 56x56 and 28x28 stem stages) and the
GPU waited for them. Compiled, the training forward and loss are one graph
(the random masks are drawn on the device inside it; see
``docs/speed_gpu_proxies.md``), Inductor fuses the LayerNorms, GELUs,
residuals and autocast's casts into a few generated kernels, and where the
input shape is fixed (pre-training, classification) CUDA graphs replay the
whole graph with one launch (``mode='reduce-overhead'``).

What is compiled, each time the outermost mmitpn module only:

- mmitpn's pre-training algorithm (:class:`~mmitpn.models.iTPN`): ``loss``
  (forward and loss, teacher included) and ``extract_feat``;
- mmitpn's backbone and pyramid inside mmpretrain classifiers and mmseg
  segmentors (fixed 512x512 crops in training and sliding-window tests):
  their ``forward``.

mmdet detectors stay eager: their batches change shape from one to the
next, and each new shape compiles again, because the position tables are
resized with the official scale factors, which fix the grid in the graph.

The models stay plain PyTorch: :func:`mmitpn.accel.accelerate` swaps a
module's class for one of the subclasses here (same parameters, buffers
and keys) and back. The module keeps its compile options; the compiled
functions are the plain classes' methods, compiled once per options and
called with the module, so a deep copy (mmengine's EMA hooks copy models)
runs its own weights, and each method has its own compile cache (its own
recompilation budget for new input shapes).
"""
import functools
import sys
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmitpn.models.backbones.itpn_hivit import iTPNHiViT
from mmitpn.models.necks.itpn_pyramid import iTPNPyramid

# Input shapes are fixed, so CUDA graphs replay the compiled graph.
COMPILE_OPTIONS = dict(mode='reduce-overhead', dynamic=False)
# Hosts whose batches change shape (see the module doc).
EAGER_HOSTS = ('mmdet.', )

OPTIONS_ATTR = '_mmitpn_compile_options'


def compile_options(module: nn.Module) -> dict:
    """The ``torch.compile`` options a swapped module compiles with."""
    return dict(getattr(module, OPTIONS_ATTR))


@functools.lru_cache(maxsize=None)
def _compiled_function(plain_cls: type, name: str, options: tuple):
    return torch.compile(getattr(plain_cls, name), **dict(options))


def _run_compiled(module: nn.Module, plain_cls: type, name: str, *args,
                  **kwargs):
    """``plain_cls.<name>(module, *args, **kwargs)``, compiled with the
    module's options."""
    options = tuple(sorted(compile_options(module).items()))
    return _compiled_function(plain_cls, name, options)(module, *args,
                                                        **kwargs)


class CompiledHiViT(iTPNHiViT):
    """:class:`iTPNHiViT` whose ``forward`` runs compiled."""

    def forward(self, x):
        return _run_compiled(self, iTPNHiViT, 'forward', x)


class CompiledPyramid(iTPNPyramid):
    """:class:`iTPNPyramid` whose ``forward`` runs compiled."""

    def forward(self, *args, **kwargs):
        return _run_compiled(self, iTPNPyramid, 'forward', *args, **kwargs)


def _compiled_itpn_class(itpn_cls: type) -> type:
    # Made on demand: the algorithm module imports mmpretrain, which a model
    # of another codebase must not pull in.

    class CompiledITPN(itpn_cls):
        """:class:`~mmitpn.models.iTPN` whose ``loss`` (forward and loss)
        and ``extract_feat`` run compiled."""

        def loss(self, inputs, data_samples=None):
            # The data samples carry nothing the loss reads; they stay out
            # of the graph's guards.
            return _run_compiled(self, itpn_cls, 'loss', inputs)

        def extract_feat(self, inputs):
            return _run_compiled(self, itpn_cls, 'extract_feat', inputs)

    CompiledITPN.__module__ = __name__
    return CompiledITPN


@functools.lru_cache(maxsize=None)
def _itpn_swap():
    from mmitpn.models.algorithms.itpn import iTPN
    return iTPN, _compiled_itpn_class(iTPN)


def gpu_swaps() -> Dict[type, type]:
    """``{plain class: compiled subclass}``."""
    swaps = {iTPNHiViT: CompiledHiViT, iTPNPyramid: CompiledPyramid}
    if 'mmitpn.models.algorithms.itpn' in sys.modules:
        plain, compiled = _itpn_swap()
        swaps[plain] = compiled
    return swaps


def _host_module(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _outermost(model: nn.Module, classes) -> list:
    """The modules of ``model`` of one of ``classes`` that are not inside
    another such module (a compiled algorithm compiles its backbone too)."""
    found, inside = [], set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, tuple(classes)):
            found.append(module)
            inside.update(id(m) for m in module.modules())
    return found


def swap_compiled(model: nn.Module, enabled: bool,
                  options: Optional[dict] = None) -> Dict[str, int]:
    """Swap the compiled subclasses into ``model`` (``enabled``) or back.

    Args:
        options: ``torch.compile`` options (default
            :data:`COMPILE_OPTIONS`).

    Returns:
        dict: ``{'PlainClass -> CompiledClass': count}``; empty for mmdet
        models, which stay eager (logged).
    """
    swaps = gpu_swaps()
    host = type(_host_module(model)).__module__
    if enabled and host.startswith(EAGER_HOSTS):
        print_log(
            'mmitpn accel: detectors stay eager on GPUs: their batches '
            'change shape, and each new shape would compile again',
            logger='current')
        enabled = False
    counts: Dict[str, int] = {}
    if enabled:
        targets = [(m, swaps[type(m)])
                   for m in _outermost(model, list(swaps))
                   if type(m) in swaps]
    else:
        back = {fast: plain for plain, fast in swaps.items()}
        targets = [(m, back[type(m)]) for m in model.modules()
                   if type(m) in back]
    for module, target in targets:
        name = f'{type(module).__name__} -> {target.__name__}'
        module.__class__ = target
        if enabled:
            setattr(module, OPTIONS_ATTR, dict(options or COMPILE_OPTIONS))
        else:
            module.__dict__.pop(OPTIONS_ATTR, None)
        counts[name] = counts.get(name, 0) + 1
    return counts
