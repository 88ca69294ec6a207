"""Opt-in accelerators: fast paths swapped into a built model, one switch.

mmitpn's model files are plain PyTorch (``nn.Linear``, ``nn.GELU``,
``F.scaled_dot_product_attention``). The fast paths live here and reach a
model only through :func:`accelerate`, which swaps the classes of mmitpn's
modules for subclasses with the same parameters and keys, chosen by the
device of the model:

- on CPUs (measured on the 2-core machines mmitpn was developed on):
  ``nn.Linear`` -> :class:`~.cpu_linear.OneDNNLinear` (oneDNN products),
  ``Mlp`` -> :class:`~.cpu_blocks.FusedGeluMlp` (GELU inside ``fc1``),
  ``Attention`` -> :class:`~.cpu_blocks.CPUMatmulAttention` (bf16
  attention), ``CMLPBlock`` / ``AttentionBlock`` -> chunked MLP residuals
  in inference;
- on GPUs (:mod:`.gpu_compile`): the pre-training forward and loss, and the
  backbone and pyramid, compiled by Inductor (fused LayerNorm, GELU,
  residual and cast kernels), replayed by CUDA graphs where shapes are fixed.

The switch, as timm's ``TIMM_FUSED_ATTN``: the environment variable
``MMITPN_ACCEL`` (``auto``, ``1``/``on``, ``0``/``off``) wins over the config
key ``accel`` (same values, or True/False), which wins over ``'auto'``:
fast paths on for models on the CPU, where they measured faster, and off on
GPUs, where compiling costs minutes at the start of a run and its speed-up
is measured by ``tools/gpu_check.sh`` (set ``accel='on'``). ``tools/train.py``,
``tools/test.py`` and the benchmark apply it; a model built in your own code
stays plain unless you call :func:`accelerate`.

The package also holds the CPU-only runtime parts: glibc malloc tuning
(:mod:`.cpu_allocator`), the bfloat16 autocast optim wrapper and the model
wrapper of distributed runs without a GPU.
"""
import os
from typing import Dict, Optional, Union

import torch.nn as nn
from mmengine.logging import print_log

ENV_VAR = 'MMITPN_ACCEL'
_MODES = {
    'auto': 'auto', 'on': 'on', '1': 'on', 'true': 'on', 'off': 'off',
    '0': 'off', 'false': 'off'
}

Setting = Optional[Union[str, bool]]


def accel_mode(setting: Setting = None) -> str:
    """``'on'``, ``'off'`` or ``'auto'``: ``MMITPN_ACCEL`` if set, else
    ``setting`` (the config key ``accel``), else ``'auto'``."""
    source, value = 'config key accel', setting
    if os.environ.get(ENV_VAR, '').strip():
        source, value = f'environment variable {ENV_VAR}', os.environ[ENV_VAR]
    if value is None:
        return 'auto'
    mode = _MODES.get(str(value).strip().lower())
    if mode is None:
        raise ValueError(f'{source} is {value!r}; use one of auto, on (1, '
                         'true) or off (0, false)')
    return mode


def fast_paths_enabled(device_type: str, setting: Setting = None) -> bool:
    """Whether the switch turns the fast paths on for a model on
    ``device_type`` ('cpu', 'cuda', ...)."""
    mode = accel_mode(setting)
    return mode == 'on' or (mode == 'auto' and device_type == 'cpu')


def _cpu_swaps() -> Dict[type, type]:
    # Imported here so that `import mmitpn.accel` stays light.
    from mmitpn.models.utils.blocks import (Attention, AttentionBlock,
                                            CMLPBlock, Mlp)
    from .cpu_blocks import (ChunkedAttentionBlock, ChunkedCMLPBlock,
                             CPUMatmulAttention, FusedGeluMlp)
    from .cpu_linear import OneDNNLinear
    return {
        nn.Linear: OneDNNLinear,
        Mlp: FusedGeluMlp,
        Attention: CPUMatmulAttention,
        CMLPBlock: ChunkedCMLPBlock,
        AttentionBlock: ChunkedAttentionBlock,
    }


def _mmitpn_descendants(model: nn.Module):
    """Every module inside one of mmitpn's modules (others' layers, e.g.
    mmdet's heads, are left alone)."""
    seen = set()
    for module in model.modules():
        if type(module).__module__.startswith('mmitpn.') and \
                id(module) not in seen:
            for sub in module.modules():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub


def _swap_cpu_paths(model: nn.Module, enabled: bool) -> Dict[str, int]:
    swaps = _cpu_swaps()
    if not enabled:
        swaps = {fast: plain for plain, fast in swaps.items()}
    counts: Dict[str, int] = {}
    # Linear layers first: FusedGeluMlp needs a oneDNN fc1.
    for module in sorted(_mmitpn_descendants(model),
                         key=lambda m: not isinstance(m, nn.Linear)):
        target = swaps.get(type(module))
        if target is None or not getattr(target, 'can_replace',
                                         lambda m: True)(module):
            continue
        name = f'{type(module).__name__} -> {target.__name__}'
        module.__class__ = target
        module.__dict__.pop('_packed_weight', None)
        counts[name] = counts.get(name, 0) + 1
    return counts


def accelerate(model: nn.Module, setting: Setting = None) -> Dict[str, int]:
    """Swap the fast paths of the device of ``model``'s parameters into it
    (in place) when the switch says so, or back to the plain modules when it
    does not. Parameters, buffers and state-dict keys stay the same objects.

    Returns:
        dict: ``{'PlainClass -> FastClass': count}`` of what was swapped
        (empty when nothing was); the log gets the same in one line.
    """
    from .gpu_compile import swap_compiled
    param = next(model.parameters(), None)
    device = param.device.type if param is not None else 'cpu'
    enabled = fast_paths_enabled(device, setting)
    # Only the paths of this device: the other device's go back to plain
    # (a model moved from one to the other keeps no foreign fast path).
    counts = _swap_cpu_paths(model, enabled and device == 'cpu')
    counts.update(swap_compiled(model, enabled and device == 'cuda'))
    state = 'on' if enabled else 'off'
    print_log(
        f'mmitpn accel: fast paths {state} (mode {accel_mode(setting)!r}, '
        f'model on {device}; {ENV_VAR}=0/1/auto or the config key accel '
        'switch them)' + (': ' + ', '.join(
            f'{n} x{c}' for n, c in counts.items()) if counts else ''),
        logger='current')
    return counts
