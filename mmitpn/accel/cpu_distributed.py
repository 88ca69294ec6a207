"""The model wrapper of distributed runs on CPU-only machines (gloo)."""
import logging

from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

from mmitpn.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` for processes without a GPU.

    ``device_ids`` is None (the module stays on the CPU), and SyncBatchNorm
    layers, which run on CUDA only, become BatchNorm with per-process
    statistics, as mmengine does for single-process runs; a warning says so.
    Detection and segmentation configs use SyncBN in their heads, so
    ``tools/dist_train.sh`` can run them on CPUs (for tests and debugging:
    the statistics differ from a GPU run's).
    ``tools/train.py`` selects this wrapper on CPU-only machines.
    """

    def __init__(self, module, **kwargs):
        kwargs['device_ids'] = None
        sync_bns = [
            name for name, m in module.named_modules()
            if isinstance(m, _BatchNorm) and 'Sync' in type(m).__name__
        ]
        if sync_bns:
            print_log(
                f'{len(sync_bns)} SyncBatchNorm layers (e.g. '
                f'{sync_bns[0]}) need CUDA; on CPU processes they become '
                'BatchNorm layers with per-process statistics.',
                logger='current',
                level=logging.WARNING)
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, **kwargs)
