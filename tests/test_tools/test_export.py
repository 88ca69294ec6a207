"""tools/deployment/export.py: the demo classifier and the demo detector's
backbone + pyramid exported with torch.export and to ONNX, run back and
compared with PyTorch."""
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mmitpn.models.utils.pos_embed import _cached_relative_position_index
from mmitpn.tools.model_export import ExportedPart
from tool_test_utils import (CLS_CONFIG, DET_CONFIG, build_config_model,
                             load_tool, save_model_checkpoint)

CLASSES = tuple(f'class{i}' for i in range(10))


@pytest.fixture(scope='module')
def export_tool():
    return load_tool('deployment', 'export.py')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp('export_ckpts')
    return dict(
        cls=save_model_checkpoint(CLS_CONFIG, folder / 'cls.pth', CLASSES),
        det=save_model_checkpoint(DET_CONFIG, folder / 'det.pth'))


def test_classifier_to_onnx_matches_pytorch(export_tool, checkpoints,
                                            tmp_path):
    out = str(tmp_path / 'cls.onnx')
    errors = export_tool.main([
        CLS_CONFIG, checkpoints['cls'], '--part', 'classifier', '--format',
        'onnx', '--out', out
    ])
    assert list(errors) == ['logits']
    diff, scale = errors['logits']
    assert diff < 1e-4 and scale > 0.1

    # Any batch size; the logits of the model with the checkpoint's weights
    # (built here independently of the tool).
    model = build_config_model(CLS_CONFIG).eval()
    images = torch.randn(
        5, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images, mode='tensor').numpy()
    session = onnxruntime.InferenceSession(
        out, providers=['CPUExecutionProvider'])
    (logits, ) = session.run(None, {'inputs': images.numpy()})
    assert logits.shape == (5, 10)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)

    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta['mean']) == pytest.approx([72.94] * 3)
    assert json.loads(meta['std']) == pytest.approx([90.02] * 3)
    assert json.loads(meta['classes']) == list(CLASSES)
    assert meta['part'] == 'classifier'


@pytest.mark.parametrize('fmt', ['onnx', 'torch-export'])
def test_detector_features_export_per_pyramid_level(export_tool, checkpoints,
                                                    tmp_path, fmt):
    out = str(tmp_path / ('det.onnx' if fmt == 'onnx' else 'det.pt2'))
    errors = export_tool.main([
        DET_CONFIG, checkpoints['det'], '--part', 'backbone', '--format', fmt,
        '--out', out, '--shape', '56', '56'
    ])
    # the five pyramid levels Mask R-CNN reads (strides 1 to 16 of a 4x4
    # patch embedding)
    assert list(errors) == [f'feat{i}' for i in range(5)]
    assert all(diff < 1e-4 and scale > 0 for diff, scale in errors.values())

    images = torch.randn(2, 3, 56, 56)
    if fmt == 'onnx':
        session = onnxruntime.InferenceSession(
            out, providers=['CPUExecutionProvider'])
        feats = session.run(None, {'inputs': images.numpy()})
    else:
        extra = {'mmitpn_export.json': ''}
        program = torch.export.load(out, extra_files=extra)
        meta = json.loads(extra['mmitpn_export.json'])
        assert meta['outputs'] == 'feat0, feat1, feat2, feat3, feat4'
        assert 'classes' not in meta  # the checkpoint has no dataset_meta
        with torch.no_grad():
            feats = program.module()(images)
    assert [tuple(f.shape) for f in feats] == [(2, 64, s, s)
                                               for s in (56, 28, 14, 7, 3)]


def test_eager_forward_after_an_export_stays_eager():
    # The relative position index is cached per grid; one made while
    # torch.export traces is a fake tensor and must not be kept.
    _cached_relative_position_index.cache_clear()
    model = build_config_model(CLS_CONFIG).eval()
    images = torch.randn(2, 3, 28, 28)
    torch.export.export(ExportedPart(model, 'classifier'), (images, ))
    with torch.no_grad():
        logits = model(images, mode='tensor')
    assert type(logits) is torch.Tensor and logits.shape == (2, 10)


def test_part_the_model_has_not_is_refused(export_tool, checkpoints, tmp_path):
    with pytest.raises(
            SystemExit, match='ImageClassifier.*MaskRCNN.*--part backbone'):
        export_tool.main([
            DET_CONFIG, checkpoints['det'], '--part', 'classifier', '--format',
            'onnx', '--out',
            str(tmp_path / 'x.onnx')
        ])
    with pytest.raises(SystemExit, match='does not fit'):
        export_tool.main([
            CLS_CONFIG, checkpoints['det'], '--part', 'classifier', '--format',
            'onnx', '--out',
            str(tmp_path / 'x.onnx')
        ])
    with pytest.raises(SystemExit):  # argparse: a .pt2 file for ONNX
        export_tool.parse_args([
            CLS_CONFIG, 'ckpt', '--part', 'classifier', '--format', 'onnx',
            '--out', 'model.pt2'
        ])


def test_difference_above_atol_fails(export_tool, monkeypatch, capsys,
                                     tmp_path):
    monkeypatch.setattr(export_tool, 'export_and_check',
                        lambda *args: dict(logits=(3e-4, 2.)))
    with pytest.raises(SystemExit, match='up to 0.0003, more than --atol'):
        export_tool.main([
            CLS_CONFIG, 'ckpt', '--part', 'classifier', '--format', 'onnx',
            '--out',
            str(tmp_path / 'model.onnx')
        ])
    assert 'logits: max abs difference from PyTorch 0.0003' in \
        capsys.readouterr().out
