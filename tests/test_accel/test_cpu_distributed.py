"""Distributed runs on CPU processes: the gloo setup and the DDP wrapper that
turns SyncBN (CUDA only) into BatchNorm."""
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODEL_WRAPPERS

from mmitpn.accel.cpu_distributed import CPUDistributedDataParallel
from mmitpn.tools.train_setup import setup_cpu_distributed


@pytest.fixture
def gloo_group(tmp_path, monkeypatch):
    """A one-process gloo group, as tools/dist_train.sh would start."""
    for key, value in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
                           MASTER_ADDR='127.0.0.1').items():
        monkeypatch.setenv(key, value)
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_setup_selects_cpu_wrapper(gloo_group):
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True))
    setup_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='mmitpn.CPUDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True, device_ids=None)
    # A wrapper of the user's own choice is kept, off the GPU.
    cfg = Config(dict(launcher='pytorch',
                      model_wrapper_cfg=dict(type='MyWrapper')))
    setup_cpu_distributed(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MyWrapper', device_ids=None)


def test_wrapper_reverts_sync_bn(gloo_group, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4))
    with torch.no_grad():
        model[1].weight.fill_(2.)
    MMLogger.get_instance('test_cpu_ddp')  # print_log's current logger
    wrapped = MODEL_WRAPPERS.build(
        dict(type='mmitpn.CPUDistributedDataParallel', module=model))
    assert '1 SyncBatchNorm layers (e.g. 1) need CUDA' in \
        capsys.readouterr().out
    assert isinstance(wrapped, CPUDistributedDataParallel)
    bn = wrapped.module[1]
    assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
    assert not isinstance(bn, nn.SyncBatchNorm)
    assert torch.equal(bn.weight, torch.full((4, ), 2.))  # weights kept
    out = wrapped(torch.rand(2, 3, 8, 8))  # SyncBN would refuse CPU input
    assert out.shape == (2, 4, 6, 6)
    # Per-process batch statistics: zero mean per channel.
    torch.testing.assert_close(
        out.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
