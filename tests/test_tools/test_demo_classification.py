"""The demo's classification step: fine-tuning vs from scratch, both with
tools/train.py and tools/test.py, on a few Fashion-MNIST images."""
import glob
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_compare_with_scratch(tmp_path):
    from mmpretrain.registry import MODELS

    from mmitpn.datasets.fashion_mnist import FashionMNIST
    try:
        FashionMNIST.check_files()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    spec = importlib.util.spec_from_file_location(
        'run_demo', osp.join(REPO, 'tools', 'run_demo.py'))
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)

    # A demo pre-training checkpoint (random weights: only the plumbing is
    # under test here).
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pretrain', 'itpn-demo_fashion-mnist.py'))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    pretrain = MODELS.build(cfg.model)
    pretrain.init_weights()
    checkpoint = str(tmp_path / 'pretrain.pth')
    torch.save({'state_dict': pretrain.state_dict(), 'meta': {}}, checkpoint)

    shrink = [
        'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=8',
        'val_dataloader.dataset.indices=40',
        'test_dataloader.dataset.indices=40', 'train_cfg.max_iters=3',
        'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3'
    ]
    work_dir = str(tmp_path / 'demo')
    results = run_demo.compare_with_scratch(
        checkpoint, work_dir, cfg_options=shrink)
    assert set(results) == {'finetune', 'scratch'}
    for name, metrics in results.items():
        assert 0 <= metrics['accuracy/top1'] <= metrics['accuracy/top5'] <= 100
        assert metrics['checkpoint'] == osp.join(work_dir, name,
                                                 'iter_3.pth')
    # The fine-tuning run started from the checkpoint, the other did not.
    logs = {}
    for name in results:
        log_file = sorted(glob.glob(osp.join(work_dir, name, '*', '*.log')))[0]
        with open(log_file) as f:
            logs[name] = f.read()
    assert checkpoint in logs['finetune']
    assert checkpoint not in logs['scratch']
