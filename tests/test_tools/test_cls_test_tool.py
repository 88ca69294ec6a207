"""tools/test.py on a converted official classifier: the config's
evaluator reports top-1/top-5 that follow from the official logits."""
import ast
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS
from tool_test_utils import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIG = osp.join(REPO, 'configs', 'cls',
                      'itpn-pixel_hivit-base-p16_32xb32-coslr-100e_in1k.py')
# Each fixture image is tested three times, labelled with the class its
# official logits rank 1st, 3rd and 8th: top-1 hits once, top-5 twice.
LABEL_RANKS = (0, 2, 7)


@DATASETS.register_module(force=True)
class LabelledTensorsForTest(BaseDataset):
    """Float images ``(N, 3, H, W)`` and labels from a ``.pt`` file."""

    def __init__(self, tensors_file, **kwargs):
        self.tensors_file = tensors_file
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self):
        data = torch.load(self.tensors_file, weights_only=True)
        return [
            dict(img=img.permute(1, 2, 0).numpy(), gt_label=int(label))
            for img, label in zip(data['images'], data['labels'])
        ]


def _fixture_test_config(folder, tmp_path):
    """The fine-tuning config, sized to the fixture, testing its input."""
    parity = load_tool('analysis_tools', 'check_official_parity.py')
    with open(osp.join(folder, 'meta.json')) as f:
        meta = json.load(f)
    tensors = torch.load(osp.join(folder, 'tensors.pt'), weights_only=True)
    logits = tensors['logits'].float()
    order = logits.argsort(dim=1, descending=True)
    images = tensors['input'].float().repeat_interleave(len(LABEL_RANKS), 0)
    labels = order[:, list(LABEL_RANKS)].flatten()
    torch.save(dict(images=images, labels=labels),
               str(tmp_path / 'labelled.pt'))

    cfg = Config.fromfile(CLS_CONFIG)
    channels = meta['embed_dim']
    cfg.model.backbone.update(
        parity.backbone_kwargs(meta, out_indices=(2, )), init_cfg=None)
    cfg.model.neck.update(
        in_channels=channels, norm_cfg=dict(type='LN', eps=meta['norm_eps']))
    cfg.model.head.update(num_classes=meta['num_classes'],
                          in_channels=channels, init_cfg=None)
    # The fixture input is already normalised.
    cfg.model.data_preprocessor = dict(
        num_classes=meta['num_classes'], mean=[0.] * 3, std=[1.] * 3)
    cfg.test_dataloader = dict(
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='LabelledTensorsForTest',
            tensors_file=str(tmp_path / 'labelled.pt'),
            pipeline=[dict(type='PackInputs')]))
    path = str(tmp_path / 'fixture_test.py')
    cfg.dump(path)
    return path


@pytest.mark.parametrize('fixture', ['cls_pixel', 'cls_clip'])
def test_converted_official_classifier_evaluates(official_ref_dir, fixture,
                                                 tmp_path, capsys):
    folder = osp.join(official_ref_dir, 'fixtures', fixture)
    if not osp.isdir(folder):
        pytest.skip(f'no fixture {folder}')
    converter = load_tool('model_converters', 'official2mmitpn.py')
    checkpoint = str(tmp_path / 'converted.pth')
    assert converter.main([osp.join(folder, 'official.pth'),
                           checkpoint]) == 0
    config = _fixture_test_config(folder, tmp_path)

    test_tool = load_tool('test.py')
    metrics = test_tool.main(
        [config, checkpoint, '--work-dir', str(tmp_path / 'work')])
    assert metrics['accuracy/top1'] == pytest.approx(100 / 3, abs=1e-3)
    assert metrics['accuracy/top5'] == pytest.approx(200 / 3, abs=1e-3)
    printed = ast.literal_eval(capsys.readouterr().out.splitlines()[-1])
    assert printed == {'accuracy/top1': 33.3333, 'accuracy/top5': 66.6667}


def test_checkpoint_that_does_not_fill_the_model_is_refused(
        official_ref_dir, tmp_path):
    folder = osp.join(official_ref_dir, 'fixtures', 'cls_pixel')
    if not osp.isdir(folder):
        pytest.skip(f'no fixture {folder}')
    converter = load_tool('model_converters', 'official2mmitpn.py')
    checkpoint = str(tmp_path / 'converted.pth')
    converter.main([osp.join(folder, 'official.pth'), checkpoint])
    ckpt = torch.load(checkpoint, weights_only=True)
    del ckpt['state_dict']['head.fc.weight']
    torch.save(ckpt, checkpoint)
    config = _fixture_test_config(folder, tmp_path)
    test_tool = load_tool('test.py')
    with pytest.raises(SystemExit) as err:
        test_tool.main(
            [config, checkpoint, '--work-dir', str(tmp_path / 'work')])
    assert 'the rest of the model' in str(err.value)
    assert 'not in the checkpoint: head.fc.weight' in str(err.value)
