"""bfloat16 autocast for training where mmengine's AmpOptimWrapper can't run."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmitpn.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """OptimWrapper that runs forward and loss under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU device, so CPU runs
    (and GPUs where float16 loss scaling is unwanted) use this instead.
    bfloat16 has float32's exponent range, so no loss scaler is needed.
    """

    @contextmanager
    def optim_context(self, model):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(
                device_type=device, dtype=torch.bfloat16):
            yield
