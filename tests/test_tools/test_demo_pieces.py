"""Tests of the demo's pieces: reconstruction pictures, loss curves, the
runner's missing-data path, and (slow) training + resuming the demo config."""
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from mmitpn.models import iTPNPixelHead
from mmitpn.registry import MODELS
from mmitpn.tools.visualization import (COLUMN_TITLES, compose_grid,
                                        find_scalar_logs, load_loss_history,
                                        loss_names, plot_loss_curves,
                                        reconstruction_inputs,
                                        reconstruction_panels,
                                        visualize_reconstruction)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')
MEAN, STD = [72.94] * 3, [90.02] * 3


def _tiny_itpn():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='iTPN',
            backbone=dict(
                type='iTPNHiViT',
                arch=dict(
                    embed_dims=32, stem_depths=(1, 1), depth=1, num_heads=2),
                img_size=16,
                patch_size=4),
            neck=dict(
                type='iTPNPyramid',
                in_channels=(8, 16, 32),
                out_channels=16,
                fpn_depth=1),
            head=dict(
                type='iTPNPixelHead',
                in_channels=16,
                embed_dims=32,
                depth=1,
                num_heads=2,
                patch_size=4,
                img_size=16),
            data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))).eval()


def test_panels_undo_norm_pix_and_patchify():
    head = iTPNPixelHead(
        in_channels=8,
        embed_dims=16,
        depth=0,
        num_heads=2,
        patch_size=4,
        img_size=(8, 12))
    torch.manual_seed(0)
    images = torch.randn(2, 3, 8, 12)
    # Patchified independently of the head: (row, col, channel) in a patch.
    patches = images.reshape(2, 3, 2, 4, 3, 4).permute(0, 2, 4, 3, 5, 1)
    patches = patches.reshape(2, 6, 48)
    # A perfect norm-pix prediction reconstructs the original exactly.
    pred = (patches - patches.mean(-1, keepdim=True)) / (
        patches.var(-1, keepdim=True) + 1e-6)**.5
    mask = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 0, 0, 1, 1, 1]])
    panels = reconstruction_panels(head, images, pred, mask, MEAN, STD)
    assert len(panels) == len(COLUMN_TITLES)
    original, masked, mean_only, recon, pasted = panels
    assert original.shape == (2, 8, 12, 3) and original.dtype == np.uint8
    np.testing.assert_allclose(recon, original, atol=1)
    np.testing.assert_allclose(pasted, original, atol=1)
    # Patch 0 of image 0 (rows 0-3, cols 0-3) is masked, patch 1 visible.
    assert (masked[0, :4, :4] == 128).all()
    np.testing.assert_array_equal(masked[0, :4, 4:8], original[0, :4, 4:8])
    # A masked patch is flat at its true mean; a visible one is the original.
    assert mean_only[0, :4, :4].std() < 1
    np.testing.assert_array_equal(mean_only[0, :4, 4:8], original[0, :4, 4:8])


def test_reconstruction_grid_png(tmp_path):
    model = _tiny_itpn()
    # Image files of another size and channel count, resized on the way in.
    files = []
    for i, shape in enumerate([(20, 30, 3), (16, 16)]):
        files.append(str(tmp_path / f'img{i}.png'))
        mmcv.imwrite(np.random.randint(0, 255, shape, np.uint8), files[-1])
    inputs = reconstruction_inputs(model, files)
    assert inputs.shape == (2, 3, 16, 16)
    out_file = str(tmp_path / 'vis' / 'reconstruction.png')
    stats = visualize_reconstruction(model, inputs, out_file)
    grid = mmcv.imread(out_file)
    cell, pad, header = 112, 4, 24
    assert grid.shape == (header + 2 * (cell + pad) + pad,
                          len(COLUMN_TITLES) * (cell + pad) + pad, 3)
    assert set(stats) == {'loss_mim', 'loss_mim_mean_only'}
    assert all(np.isfinite(v) for v in stats.values())
    # The same seed masks the same patches.
    again = str(tmp_path / 'again.png')
    visualize_reconstruction(model, inputs, again)
    np.testing.assert_array_equal(mmcv.imread(again), grid)


def test_compose_grid_checks_titles():
    with pytest.raises(ValueError, match='column titles'):
        compose_grid([np.zeros((1, 4, 4, 3), np.uint8)], titles=('a', 'b'))


def _write_log(work_dir, timestamp, records):
    vis_dir = osp.join(work_dir, timestamp, 'vis_data')
    os.makedirs(vis_dir)
    with open(osp.join(vis_dir, 'scalars.json'), 'w') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')


def test_loss_curves_from_scalar_logs(tmp_path):
    work_dir = str(tmp_path)
    first = [
        dict(
            lr=1e-3,
            loss=2. - i / 10,
            loss_mim=1. - i / 20,
            loss_mfm_s4=.5,
            time=.2,
            iter=i,
            step=i) for i in (10, 20, 30)
    ]
    # A resumed run logs step 30 again and goes on; non-loss records too.
    resumed = [
        dict(loss=0.5, loss_mim=0.3, loss_mfm_s4=0.2, iter=i, step=i)
        for i in (30, 40)
    ] + [dict(accuracy=1., step=1)]
    _write_log(work_dir, '20240101_000000', first)
    _write_log(work_dir, '20240102_000000', resumed)
    logs = find_scalar_logs(work_dir)
    assert [osp.basename(osp.dirname(osp.dirname(f)))
            for f in logs] == ['20240101_000000', '20240102_000000']
    history = load_loss_history(logs)
    assert loss_names(history) == ['loss', 'loss_mfm_s4', 'loss_mim']
    assert loss_names(dict.fromkeys(['loss_s16', 'loss_s8', 'loss'
                                     ])) == ['loss', 'loss_s8', 'loss_s16']
    steps, values = history['loss']
    assert steps.tolist() == [10, 20, 30, 40]
    np.testing.assert_allclose(values, [1., 0., 0.5, 0.5])
    assert load_loss_history(logs[:1])['loss'][1][-1] == pytest.approx(-1.)

    out_file = plot_loss_curves(history, str(tmp_path / 'curves.png'))
    png = mmcv.imread(out_file)
    # One panel of 3.6 x 3.2 inches at 100 dpi per term.
    assert png.shape == (320, 3 * 360, 3)
    with pytest.raises(ValueError, match='no loss terms'):
        plot_loss_curves({}, str(tmp_path / 'none.png'))


def test_run_demo_without_data(tmp_path, monkeypatch, capsys):
    # In-process: a subprocess would spend seconds importing torch again.
    spec = importlib.util.spec_from_file_location(
        'run_demo', osp.join(REPO, 'tools', 'run_demo.py'))
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)
    work_dir = tmp_path / 'wd'
    monkeypatch.setattr(sys, 'argv', [
        'run_demo.py', '--data-root',
        str(tmp_path), '--work-dir',
        str(work_dir)
    ])
    assert run_demo.main() == 1
    err = capsys.readouterr().err
    assert 'train-images-idx3-ubyte.gz' in err
    assert 'sudo apt-get install dataset-fashion-mnist' in err
    assert not work_dir.exists()


@pytest.mark.slow
def test_train_and_resume_demo_config(tmp_path):
    """A few iterations of the real demo config, then a resumed run."""
    from mmitpn.datasets.fashion_mnist import FashionMNIST
    try:
        FashionMNIST.check_files(splits=('train', ))
    except FileNotFoundError as err:
        pytest.skip(str(err))
    work_dir = str(tmp_path)
    shrink = [
        'train_dataloader.dataset.indices=48', 'train_dataloader.batch_size=8',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2'
    ]

    # As tools/run_demo.py does: no spinning OpenMP threads on shared cores.
    env = dict(os.environ)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

    def train(max_iters, *extra):
        subprocess.run([
            sys.executable,
            osp.join(REPO, 'tools',
                     'train.py'), DEMO_CONFIG, '--work-dir', work_dir, *extra,
            '--cfg-options', *shrink, f'train_cfg.max_iters={max_iters}'
        ],
                       check=True,
                       cwd=REPO,
                       env=env,
                       capture_output=True)

    train(4)
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    train(6, '--resume')
    first_run, resumed_run = find_scalar_logs(work_dir)
    # The resumed run starts after iteration 4, from its checkpoint.
    assert load_loss_history([first_run])['loss'][0].tolist() == [1, 2, 3, 4]
    history = load_loss_history([resumed_run])
    assert history['loss'][0].tolist() == [5, 6]
    assert {'loss_mim', 'loss_mfm_s4', 'loss_mfm_s8',
            'loss_mfm_s16'} <= set(history)
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
    # max_keep_ckpts=2 of the demo config: the oldest one is gone.
    assert sorted(
        osp.basename(f) for f in glob.glob(osp.join(work_dir, '*.pth'))) == [
            'iter_4.pth', 'iter_6.pth'
        ]
    # The resumed run's log (timestamped folders sort chronologically).
    with open(sorted(glob.glob(osp.join(work_dir, '*', '*.log')))[-1]) as f:
        log = f.read()
    assert 'keeping the teacher of the loaded checkpoint' in log
