"""The docs' Python examples run as written, and their links and paths exist.

Marker convention: a line ``<!-- doc-test: NAME -->`` right before a
```` ```python ```` block of README.md or docs/*.md marks the block as an
example that this test runs. Each NAME has an entry in ``EXAMPLES`` below:
it writes the files the block reads into a scratch folder that also holds
the repository's ``configs/`` (a checkpoint saved as ``tools/train.py``
saves one, from a freshly built model of the config; an image), runs the
block there as a script in a fresh Python (the inferencers change mmengine's
global default scope), and checks the variables the block leaves. A marked
block without an entry, or an entry whose block is gone, fails the test.
"""
import os
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Callable, Dict, NamedTuple, Tuple

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import save_checkpoint
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO / 'README.md'] + sorted((REPO / 'docs').rglob('*.md'))
MARKED_BLOCK = re.compile(
    r'^<!--\s*doc-test:\s*(?P<name>[\w-]+)\s*-->\s*\n'
    r'```python\n(?P<code>.*?)^```', re.M | re.S)

CLS_DEMO = 'configs/cls/itpn-demo_fashion-mnist_finetune.py'
CLS_DEMO_CKPT = 'work_dirs/itpn-demo_fashion-mnist/finetune/iter_400.pth'
PRETRAIN_DEMO = 'configs/pretrain/itpn-demo_fashion-mnist.py'
PRETRAIN_DEMO_CKPT = 'work_dirs/itpn-demo_fashion-mnist/iter_1500.pth'
DET_TINY = ('configs/det/'
            'mask-rcnn_itpn-tiny-p16_overfit-60e_tiny-coco-instances.py')
DET_TINY_CKPT = ('work_dirs/mask-rcnn_itpn-tiny-p16_overfit-60e_'
                 'tiny-coco-instances/epoch_60.pth')
SEG_TINY = ('configs/seg/'
            'upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py')
SEG_TINY_CKPT = ('work_dirs/upernet_itpn_hivit-tiny-p16_1xb4-400it_'
                 'tiny-real-seg-256x256/iter_400.pth')
# Not square, so that a swapped height and width shows.
PHOTO_SIZE = (200, 256)

# Runs a block saved as example.py and saves the named variables it left.
RUNNER = ('import runpy, sys, torch; '
          "ns = runpy.run_path('example.py', run_name='__main__'); "
          "torch.save({k: ns[k] for k in sys.argv[1:]}, 'outputs.pt')")


def marked_blocks() -> Dict[str, str]:
    """NAME -> code of every marked block in the docs (names unique)."""
    blocks: Dict[str, str] = {}
    for path in DOC_FILES:
        for match in MARKED_BLOCK.finditer(path.read_text()):
            name = match['name']
            assert name not in blocks, (
                f'doc-test name {name!r} is used twice (again in '
                f'{path.relative_to(REPO)}); give each example its own name')
            blocks[name] = match['code']
    return blocks


def save_as_trained(config: str, scratch: Path, checkpoint: str) -> dict:
    """Save what a training run of ``config`` would leave at ``checkpoint``:
    the state dict of a freshly built model and, as ``meta.dataset_meta``,
    the training set's metainfo. Returns the state dict."""
    cfg = Config.fromfile(REPO / config)
    registry = import_module(f'{cfg.default_scope}.registry')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
        # lazy_init: the metainfo without reading the data.
        train_set = registry.DATASETS.build(
            dict(cfg.train_dataloader.dataset, lazy_init=True))
    path = scratch / checkpoint
    path.parent.mkdir(parents=True)
    state_dict = model.state_dict()
    save_checkpoint(
        dict(state_dict=state_dict,
             meta=dict(dataset_meta=train_set.metainfo)), str(path))
    return state_dict


def write_image(path: Path, size: Tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), np.uint8)
    Image.fromarray(pixels).save(path)


class Example(NamedTuple):
    prepare: Callable[[Path], None]  # writes the files the block reads
    outputs: Tuple[str, ...]  # variables the block leaves, to check
    check: Callable[..., None]  # (scratch, **outputs) -> asserts


def prepare_classification(scratch):
    save_as_trained(CLS_DEMO, scratch, CLS_DEMO_CKPT)
    write_image(scratch / 'fashion_item.png', (28, 28))


def check_classification_inference(scratch, result):
    from mmitpn.datasets.fashion_mnist import FashionMNIST
    classes = FashionMNIST.METAINFO['classes']
    scores = np.asarray(result['pred_scores'])
    assert scores.shape == (len(classes), )
    assert scores.sum() == pytest.approx(1, abs=1e-4)
    assert result['pred_label'] == scores.argmax()
    assert result['pred_score'] == pytest.approx(scores.max())
    assert result['pred_class'] == classes[result['pred_label']]


def check_classification_features(scratch, pooled, stage3):
    assert pooled.shape == (128, )
    assert stage3.shape == (128, 7, 7)
    # The neck (GlobalAvgPoolNorm) is the mean of the stage-3 map and a
    # LayerNorm, whose fresh affine part is the identity.
    expected = torch.nn.functional.layer_norm(
        stage3.mean((1, 2)), (128, ), eps=1e-6)
    torch.testing.assert_close(pooled, expected, rtol=1e-4, atol=1e-4)


def nothing_to_prepare(scratch):
    pass


def prepare_pretrained_features(scratch):
    save_as_trained(PRETRAIN_DEMO, scratch, PRETRAIN_DEMO_CKPT)


def check_pretrained_features(scratch, backbone, pyramid, features):
    assert [tuple(f.shape) for f in features] == [(2, 64, 28, 28),
                                                  (2, 64, 14, 14),
                                                  (2, 64, 7, 7)]
    saved = torch.load(scratch / PRETRAIN_DEMO_CKPT, map_location='cpu',
                       weights_only=False)['state_dict']
    for module, prefix in ((backbone, 'backbone.'), (pyramid, 'neck.')):
        loaded = module.state_dict()
        assert len(loaded) > 10
        for key, value in loaded.items():
            torch.testing.assert_close(value, saved[prefix + key],
                                       rtol=0, atol=0, msg=key)


def prepare_detection(scratch):
    save_as_trained(DET_TINY, scratch, DET_TINY_CKPT)
    write_image(scratch / 'image.jpg', PHOTO_SIZE)


def check_detection_inference(scratch, prediction):
    height, width = PHOTO_SIZE
    num = len(prediction['labels'])
    assert num > 0
    assert len(prediction['scores']) == len(prediction['masks']) == num
    boxes = np.asarray(prediction['bboxes'])
    assert boxes.shape == (num, 4)
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    assert (boxes[:, [0, 2]] <= width + 1e-3).all()
    assert (boxes[:, [1, 3]] <= height + 1e-3).all()
    assert all(mask['size'] == [height, width]
               for mask in prediction['masks'])
    assert max(prediction['labels']) < 13  # the tiny set's classes
    with Image.open(scratch / 'outputs/det/vis/image.jpg') as drawn:
        assert drawn.size == (width, height)


def prepare_segmentation(scratch):
    save_as_trained(SEG_TINY, scratch, SEG_TINY_CKPT)
    write_image(scratch / 'image.jpg', PHOTO_SIZE)


def check_segmentation_inference(scratch, label_map):
    assert label_map.shape == PHOTO_SIZE
    assert label_map.min() >= 0 and label_map.max() < 14
    with Image.open(scratch / 'outputs/seg/vis/image.jpg') as drawn:
        assert drawn.size == PHOTO_SIZE[::-1]


def check_accelerate(scratch, swapped, plain, fast):
    assert swapped.get('Linear -> OneDNNLinear', 0) > 0
    assert len(fast) == len(plain) == 3
    for f, p in zip(fast, plain):
        torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-4)


EXAMPLES = {
    'classification-inference':
    Example(prepare_classification, ('result', ),
            check_classification_inference),
    'classification-features':
    Example(prepare_classification, ('pooled', 'stage3'),
            check_classification_features),
    'pretrained-features':
    Example(prepare_pretrained_features, ('backbone', 'pyramid', 'features'),
            check_pretrained_features),
    'detection-inference':
    Example(prepare_detection, ('prediction', ), check_detection_inference),
    'segmentation-inference':
    Example(prepare_segmentation, ('label_map', ),
            check_segmentation_inference),
    'accelerate':
    Example(nothing_to_prepare, ('swapped', 'plain', 'fast'),
            check_accelerate),
}


def test_every_marked_block_has_an_example():
    assert sorted(marked_blocks()) == sorted(EXAMPLES), (
        'marked doc blocks and EXAMPLES differ: add an entry for a new '
        '<!-- doc-test: NAME --> block, drop the entry of a removed one')


@pytest.mark.parametrize('name', sorted(EXAMPLES))
def test_doc_example_runs(name, tmp_path):
    example = EXAMPLES[name]
    code = marked_blocks().get(name)
    assert code is not None, f'no <!-- doc-test: {name} --> block in the docs'
    (tmp_path / 'configs').symlink_to(REPO / 'configs')
    example.prepare(tmp_path)
    (tmp_path / 'example.py').write_text(code)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop('MMITPN_ACCEL', None)  # the examples show the default
    proc = subprocess.run([sys.executable, '-c', RUNNER, *example.outputs],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (
        f'the {name} example failed:\n{proc.stdout[-3000:]}\n'
        f'{proc.stderr[-6000:]}')
    outputs = torch.load(tmp_path / 'outputs.pt', weights_only=False)
    example.check(tmp_path, **outputs)


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(path: Path) -> set:
    text = re.sub(r'^```.*?^```', '', path.read_text(), flags=re.M | re.S)
    return {_github_anchor(h) for h in re.findall(r'^#+ (.+)$', text, re.M)}


@pytest.mark.parametrize('doc', DOC_FILES, ids=lambda p: p.name)
def test_doc_links_and_paths_exist(doc):
    """Relative links (and their #anchors) point at existing files and
    headings; every configs/ or tools/ file path that a page names exists."""
    text = doc.read_text()
    broken = []
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue  # http(s), mailto
        file, _, anchor = target.partition('#')
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f'{target} (no such file)')
        elif anchor and path.suffix == '.md' and anchor not in _anchors(path):
            broken.append(f'{target} (no such heading)')
    for named in re.findall(r'(?<![\w/.-])((?:configs|tools)/[\w./-]+'
                            r'\.(?:py|sh))', text):
        if not (REPO / named).is_file():
            broken.append(f'{named} (no such file in the repository)')
    assert not broken, f'{doc.relative_to(REPO)}: ' + '; '.join(broken)
