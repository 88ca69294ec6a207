"""mmitpn's model index: every config is a model named by its file stem,
with consistent metadata, and the names work in mmpretrain's get_model /
list_models / inference_model and in mmdet's and mmseg's inferencers.

Registration is process-wide, so each look-up test runs in a fresh
interpreter.
"""
import glob
import importlib.util
import os.path as osp
import shlex
import subprocess
import sys
import textwrap

import pytest
import yaml
from mmengine.config import Config

from mmitpn import model_index

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OFFICIAL_CONVERTER = 'tools/model_converters/official2mmitpn.py'


def metafile_models():
    """{name: (family, raw metafile entry)} of every indexed model."""
    models = {}
    for metafile in model_index.metafiles():
        family = osp.basename(osp.dirname(metafile))
        with open(metafile, encoding='utf-8') as f:
            for entry in yaml.safe_load(f)['Models']:
                assert entry['Name'] not in models, entry['Name']
                models[entry['Name']] = (family, entry)
    return models


MODELS = metafile_models()


def config_of(name):
    return Config.fromfile(osp.join(REPO, MODELS[name][1]['Config']))


def load_tool(path):
    """A script of ``tools/`` as a module."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python(body, tmp_path):
    """Runs ``body`` in a fresh interpreter (cwd: an empty folder, this
    checkout's mmitpn on the path); returns its stdout."""
    script = f'import sys\nsys.path.insert(0, {REPO!r})\n'
    script += textwrap.dedent(body)
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def said(out, line):
    """Whether ``out`` has ``line`` (after a progress bar of rich, which
    leaves no newline when the output is not a terminal)."""
    return any(printed.endswith(line) for printed in out.splitlines())


def test_every_config_is_a_model_named_by_its_stem():
    configs = {
        osp.splitext(osp.basename(path))[0]: path
        for path in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
        if '_base_' not in path
    }
    assert set(MODELS) == set(configs)
    for name, (family, entry) in MODELS.items():
        assert entry['Config'] == f'configs/{family}/{name}.py'
    assert model_index.index_root() == REPO  # a checkout: no .mim
    found = model_index.find_model('ITPN-DEMO_FASHION-MNIST_FINETUNE')
    assert found == model_index.IndexedModel(
        'itpn-demo_fashion-mnist_finetune', 'mmpretrain',
        osp.join(REPO, 'configs', 'cls',
                 'itpn-demo_fashion-mnist_finetune.py'), None)


def test_index_is_valid_for_modelindex():
    from modelindex.load_model_index import load
    index = load(osp.join(REPO, 'model-index.yml'))
    index.build_models_with_collections()
    assert len(index.models) == len(MODELS)
    assert index.check(silent=True) == []


def test_family_codebase_is_the_configs_default_scope():
    for name in MODELS:
        assert config_of(name).default_scope == (
            model_index.find_model(name).codebase), name


def test_names_refer_to_indexed_models_and_weights_are_not_urls():
    for name, (family, entry) in MODELS.items():
        assert entry['Weights'] is None, name  # nothing to download
        metadata = entry['Metadata']
        assert metadata['Parameters'] > 0 and metadata['FLOPs'] > 0, name
        upstream = metadata.get('Pre-training')
        if family == 'pretrain':
            assert entry['Results'] is None, name
            assert upstream is None
        else:
            assert entry['Results'], name
            assert upstream.startswith('none') or name in MODELS[upstream][
                1].get('Downstream', []), name
        for downstream in entry.get('Downstream', []):
            assert MODELS[downstream][1]['Metadata']['Pre-training'] == name
        for result in entry.get('Downstream Results', []):
            assert MODELS[result['Config']][0] != 'pretrain', name
            assert all(0 < v < 100 for v in result['Metrics'].values())


def test_official_checkpoints_convert_to_what_the_configs_load():
    converter = load_tool(OFFICIAL_CONVERTER)
    official = {
        name: entry['Official Checkpoint']
        for name, (_, entry) in MODELS.items()
        if 'Official Checkpoint' in entry
    }
    # The four pre-trained models of the official release (08/Dec./2022).
    assert sorted(official) == [
        'itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-800e_in1k',
        'itpn-clip-l_hivit-large-p16_8xb256-amp-coslr-300e_in1k',
        'itpn-pixel_hivit-base-p16_8xb512-amp-coslr-1600e_in1k',
        'itpn-pixel_hivit-large-p16_8xb512-amp-coslr-1600e_in1k',
    ]
    for name, release in official.items():
        command = shlex.split(release['Convert'])
        assert command[:2] == ['python', OFFICIAL_CONVERTER], name
        args = converter.parse_args(command[2:])
        assert args.dst == release['Converted']
        # CLIP pre-training heads have no mmitpn counterpart.
        assert args.drop == (['clip_heads'] if 'clip' in name else [])
        assert all(url.startswith('https://') for url in release['Download'])
        # The det and seg configs start from the converted file.
        dense = [
            d for d in MODELS[name][1]['Downstream']
            if MODELS[d][0] in ('det', 'seg')
        ]
        assert len(dense) >= 4, name  # Mask R-CNN 1x, 3x, Cascade, UPerNet
        for downstream in dense:
            model = config_of(downstream).model
            assert model.backbone.init_cfg.checkpoint == args.dst
            assert model.neck.init_cfg.checkpoint == args.dst


def test_counts_are_those_of_the_built_models():
    """Parameters and FLOPs as get_flops.py counts them (the demo models;
    the big ones were counted the same way)."""
    get_flops = load_tool('tools/analysis_tools/get_flops.py')
    for name, size, conv_linear_only in (
            ('itpn-demo_fashion-mnist_finetune', 28, False),
            ('itpn-demo_fashion-mnist_linear', 28, False),
            ('mask-rcnn_itpn-demo_fashion-mnist-det', 56, True)):
        params, macs, _ = get_flops.count_complexity(
            config_of(name), size, size, conv_linear_only)
        metadata = MODELS[name][1]['Metadata']
        assert (metadata['Parameters'], metadata['FLOPs']) == (params, macs)

    # Pre-training: trainable parameters, without the EMA teacher.
    from mmengine.registry import MODELS as REGISTRY
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    cfg = config_of('itpn-demo_fashion-mnist')
    model = REGISTRY.build(cfg.model)
    student = sum(p.numel() for n, p in model.named_parameters()
                  if not n.startswith('teacher.'))
    assert student < sum(p.numel() for p in model.parameters())
    assert MODELS['itpn-demo_fashion-mnist'][1]['Metadata'][
        'Parameters'] == student


def test_import_mmitpn_imports_no_codebase(tmp_path):
    out = run_python('''
        import mmitpn
        print(sorted(m for m in ('mmpretrain', 'mmdet', 'mmseg',
                                 'mmengine.infer.infer') if m in sys.modules))
        print(type(sys.meta_path[0]).__name__)
        from mmengine.infer.infer import BaseInferencer
        print(BaseInferencer._load_model_from_metafile.__module__,
              type(sys.meta_path[0]).__name__)
    ''', tmp_path)
    # The finder waits for mmpretrain's look-up after mmengine's is joined.
    assert out.splitlines() == [
        '[]', '_JoinAfterImport', 'mmitpn.model_index _JoinAfterImport'
    ]


def _write_image(path, size):
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))


@pytest.mark.parametrize('mmitpn_first', [True, False])
def test_mmpretrain_finds_models_by_name(tmp_path, mmitpn_first):
    _write_image(tmp_path / 'img.png', (28, 28))
    imports = ['import mmitpn', 'import mmpretrain']
    order = imports if mmitpn_first else imports[::-1]
    out = run_python('\n'.join(order) + textwrap.dedent('''
        import warnings
        import numpy as np
        import torch
        from mmpretrain import (FeatureExtractor,
                                ImageClassificationInferencer, get_model,
                                inference_model, list_models)
        from mmpretrain.apis import ModelHub

        from mmitpn.datasets.fashion_mnist import FashionMNIST

        print('listed', ' '.join(list_models('itpn*')))
        print('dense', list_models('*rcnn_itpn*') + list_models('upernet*'))
        print('classifiers', ImageClassificationInferencer.list_models(
            'itpn-demo'))
        for name in ('itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e_in1k',
                     'itpn-pixel_hivit-large-p16_8xb512-amp-coslr-800e_in1k'):
            print('config', ModelHub.get(name).config.filename)

        # No weights named: nothing is downloaded.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            model = get_model('itpn-demo_fashion-mnist_finetune',
                              pretrained=True)
        print('warned', any('Unable to find pre-defined checkpoint' in
                            str(w.message) for w in caught))
        # Weights from a local path.
        torch.manual_seed(1)
        state = {k: torch.randn_like(v) if v.is_floating_point() else v
                 for k, v in model.state_dict().items()}
        torch.save({'state_dict': state}, 'weights.pth')
        model = get_model('itpn-demo_fashion-mnist_finetune',
                          pretrained='weights.pth')
        print('loaded', all(torch.equal(model.state_dict()[k], v)
                            for k, v in state.items()),
              type(model.backbone).__name__)

        result = inference_model(model, 'img.png')
        by_name = ImageClassificationInferencer(
            'itpn-demo_fashion-mnist_finetune', pretrained='weights.pth')(
                'img.png')[0]
        # The same prediction by hand: BGR file -> RGB, the config's
        # normalisation, the classifier.
        import cv2
        img = cv2.imread('img.png')[..., ::-1].copy()
        norm = model.data_preprocessor
        x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() -
             norm.mean) / norm.std
        with torch.no_grad():
            scores = model(x, mode='tensor').softmax(-1)[0].numpy()
        print('scores', np.abs(result['pred_scores'] - scores).max() < 1e-5,
              np.abs(by_name['pred_scores'] - scores).max() < 1e-5,
              result['pred_class'] == FashionMNIST.METAINFO['classes'][
                  int(scores.argmax())])
        feats = FeatureExtractor('itpn-demo_fashion-mnist_finetune',
                                 pretrained='weights.pth')('img.png')[0]
        with torch.no_grad():
            own = model.extract_feat(x)
        print('features', [tuple(f.shape) for f in feats],
              all(torch.allclose(f, o[0], atol=1e-5)
                  for f, o in zip(feats, own)))
    '''), tmp_path)
    lines = out.splitlines()
    listed = [line.split()[1:] for line in lines if line.startswith('listed')]
    ours = [n for n, (f, _) in MODELS.items() if f in ('pretrain', 'cls')]
    # Ours, and mmpretrain's own iTPN-L 800e (a name mmitpn has not).
    assert listed == [sorted(
        ours + ['itpn-pixel_hivit-large-p16_8xb512-amp-coslr-800e_in1k'])]
    assert 'dense []' in lines  # det/seg models are not mmpretrain's
    assert ("classifiers ['itpn-demo_fashion-mnist_finetune', "
            "'itpn-demo_fashion-mnist_linear', "
            "'itpn-demo_fashion-mnist_scratch']") in lines
    # A name both indexes have is ours; mmpretrain's others stay its own.
    assert ('config ' + osp.join(
        REPO, 'configs', 'pretrain',
        'itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e_in1k.py')) in lines
    mmpretrain_own = [
        line for line in lines
        if line.startswith('config') and 'large-p16_8xb512-amp-coslr-800e'
        in line
    ]
    assert len(mmpretrain_own) == 1
    assert mmpretrain_own[0].endswith(osp.join(
        'mmpretrain', '.mim', 'configs', 'itpn',
        'itpn-pixel_hivit-large-p16_8xb512-amp-coslr-800e_in1k.py'))
    assert said(out, 'warned True')
    assert said(out, 'loaded True iTPNHiViT')
    assert said(out, 'scores True True True')
    assert said(out, 'features [(128,)] True')  # pooled stage-3 tokens


def test_det_and_seg_inferencers_find_models_by_name(tmp_path):
    _write_image(tmp_path / 'img.png', (48, 64))
    out = run_python('''
        import mmitpn
        import torch
        from mmdet.apis import DetInferencer
        from mmseg.apis import MMSegInferencer

        def weights_of(inferencer, path):
            torch.manual_seed(1)
            state = {k: v + 0.01 * torch.randn_like(v)
                     if v.is_floating_point() else v
                     for k, v in inferencer.model.state_dict().items()}
            torch.save({'state_dict': state}, path)
            return state

        def loaded(inferencer, state):
            own = inferencer.model.state_dict()
            return all(torch.equal(own[k], v) for k, v in state.items())

        det_name = 'mask-rcnn_itpn-tiny-p16_overfit-60e_tiny-coco-instances'
        state = weights_of(DetInferencer(det_name, device='cpu'), 'det.pth')
        det = DetInferencer(det_name, weights='det.pth', device='cpu')
        pred = det('img.png', no_save_vis=True)['predictions'][0]
        print('det', loaded(det, state), sorted(pred),
              len(pred['labels']) == len(pred['bboxes']) == len(
                  pred['scores']))
        print('det listed', len(DetInferencer.list_models(
            'mmdet', '.*itpn')))

        seg_name = ('upernet_itpn_hivit-tiny-p16_1xb4-400it_'
                    'tiny-real-seg-256x256')
        state = weights_of(MMSegInferencer(seg_name, device='cpu'), 'seg.pth')
        seg = MMSegInferencer(seg_name, weights='seg.pth', device='cpu')
        pred = seg('img.png')['predictions']
        print('seg', loaded(seg, state), pred.shape,
              0 <= pred.min() <= pred.max() < 14)

        for make, name in ((MMSegInferencer, det_name),
                           (DetInferencer, 'no-such-model')):
            try:
                make(name, device='cpu')
            except ValueError as err:
                print('refused', err)
    ''', tmp_path)
    assert said(out, "det True ['bboxes', 'labels', 'masks', 'scores'] True")
    det_names = [n for n, (f, _) in MODELS.items() if f == 'det']
    assert said(out, f'det listed {len(det_names)}')
    assert said(out, 'seg True (48, 64) True')
    assert said(out, "refused 'mask-rcnn_itpn-tiny-p16_overfit-60e_tiny-coco-"
                "instances' is an mmitpn mmdet model; this inferencer runs "
                "'mmseg' models. Load it with mmdet's DetInferencer.")
    assert said(out, 'refused Cannot find model: no-such-model in mmdet')


def test_a_missing_index_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(model_index, 'PACKAGE_DIR',
                        str(tmp_path / 'site-packages' / 'mmitpn'))
    with pytest.raises(FileNotFoundError, match=r'pip install \.'):
        model_index.index_root()
    mim = tmp_path / 'site-packages' / 'mmitpn' / '.mim'
    (mim / 'configs').mkdir(parents=True)
    (mim / 'model-index.yml').write_text('Import: []\n')
    assert model_index.index_root() == str(mim)
