"""tools/test.py --show-dir: each codebase's visualization hook draws the
test images with ground truth and predictions into the folder."""
import mmcv
import pytest
from mmengine.config import Config

from mmitpn.tools.result_drawing import enable_result_drawing
from tool_test_utils import (CLS_CONFIG, DET_CONFIG, SEG_CONFIG,
                             det_data_options, load_tool,
                             save_model_checkpoint, write_fashion_mnist_det,
                             write_synthetic_seg_set)


@pytest.fixture(scope='module')
def test_tool():
    return load_tool('test.py')


def _drawn(folder):
    return {p.name: mmcv.imread(str(p)) for p in sorted(folder.iterdir())}


def test_classification_draws_every_sample(test_tool, tmp_path):
    ckpt = save_model_checkpoint(CLS_CONFIG, tmp_path / 'cls.pth')
    test_tool.main([
        CLS_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--show-dir', 'vis', '--cfg-options',
        'test_dataloader.dataset.indices=5', 'test_dataloader.batch_size=2',
        f'visualizer.name=cls-{tmp_path.name}'
    ])
    drawn = _drawn(tmp_path / 'work' / 'vis')
    # one picture per test sample, named by its index, the one of the last,
    # smaller batch too (mmpretrain alone would draw it over 2_0.png)
    assert sorted(drawn) == [f'{i}_0.png' for i in range(5)]
    assert (drawn['2_0.png'] != drawn['4_0.png']).any()
    for image in drawn.values():
        # the 28-pixel images are drawn at 224 pixels, with the labels
        # written in white on the dark background
        assert image.shape == (224, 224, 3)
        assert (image[:30] == 255).any()


def test_detection_draws_ground_truth_beside_predictions(test_tool, tmp_path):
    data_root = write_fashion_mnist_det(tmp_path / 'data', num_val=3)
    ckpt = save_model_checkpoint(DET_CONFIG, tmp_path / 'det.pth')
    show_dir = tmp_path / 'vis'  # absolute: used as it is
    test_tool.main([
        DET_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--show-dir',
        str(show_dir), '--cfg-options', *det_data_options(data_root),
        # Runners built in one second would share their visualizer (named
        # by the time stamp), a pytest-only situation.
        f'visualizer.name=det-{tmp_path.name}'
    ])
    drawn = _drawn(show_dir)
    assert sorted(drawn) == ['000001.png', '000002.png', '000003.png']
    for name, image in drawn.items():
        canvas = mmcv.imread(str(tmp_path / 'data' / 'images' / 'val' / name))
        # ground truth (left) and predictions (right) on the 56x56 canvas
        assert image.shape == (56, 112, 3)
        # the ground-truth half has the boxes and masks drawn over it
        assert (image[:, :56] != canvas).any()


@pytest.mark.slow
def test_segmentation_draws_through_the_visualizer(test_tool, tmp_path):
    data_root = str(tmp_path / 'data')
    write_synthetic_seg_set(data_root)
    ckpt = save_model_checkpoint(SEG_CONFIG, tmp_path / 'seg.pth')
    test_tool.main([
        SEG_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--show-dir', 'vis', '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'visualizer.name=seg-{tmp_path.name}'
    ])
    # mmseg's layout under the visualizer's save_dir; no training images
    # were needed (the config's training set does not exist here)
    drawn = _drawn(tmp_path / 'work' / 'vis' / 'vis_data' / 'vis_image')
    assert sorted(drawn) == ['test_img2.jpg_0.png', 'test_img5.jpg_0.png']
    for image in drawn.values():
        # ground truth and prediction side by side at the image size
        assert image.shape == (48, 128, 3)


def test_hook_settings_per_codebase(tmp_path):
    cfg = Config.fromfile(CLS_CONFIG)
    cfg.work_dir = str(tmp_path)
    assert 'visualization' not in cfg.default_hooks
    assert enable_result_drawing(
        cfg, 'vis', interval=3) == str(tmp_path / 'vis')
    assert cfg.default_hooks.visualization == dict(
        type='VisualizationHook',
        enable=True,
        show=False,
        wait_time=2.,
        interval=3,
        out_dir=str(tmp_path / 'vis'),
        resize=224)

    cfg = Config.fromfile(DET_CONFIG)
    cfg.work_dir = str(tmp_path)
    assert enable_result_drawing(cfg, show=True) is None
    hook = cfg.default_hooks.visualization
    assert (hook.type, hook.draw, hook.show,
            hook.test_out_dir) == ('DetVisualizationHook', True, True, None)

    del cfg.default_hooks['visualization']
    with pytest.raises(ValueError, match="type='DetVisualizationHook'"):
        enable_result_drawing(cfg, 'vis')
    cfg.default_scope = 'mmengine'
    with pytest.raises(ValueError, match="'mmengine'"):
        enable_result_drawing(cfg, 'vis')
    # nothing asked, nothing changed
    assert enable_result_drawing(cfg) is None
