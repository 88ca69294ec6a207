"""Helpers of the tests of tools/test.py --show-dir, the analysis tools,
publish_model and export: demo configs, checkpoints that fill their models,
tiny data sets in the demo layouts."""
import importlib.util
import io
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from PIL import Image

from mmitpn.datasets.tiny_real_seg import CLASSES as SEG_CLASSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIG = osp.join(REPO, 'configs', 'cls',
                      'itpn-demo_fashion-mnist_finetune.py')
DET_CONFIG = osp.join(REPO, 'configs', 'det',
                      'mask-rcnn_itpn-demo_fashion-mnist-det.py')
SEG_CONFIG = osp.join(
    REPO, 'configs', 'seg',
    'upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py')
FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


def load_tool(*parts):
    """A script of tools/ as a module (``load_tool('test.py')``)."""
    path = osp.join(REPO, 'tools', *parts)
    spec = importlib.util.spec_from_file_location(
        osp.splitext(parts[-1])[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_config_model(config):
    """The model of a config file, freshly initialised (seed 0)."""
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    return model


def save_model_checkpoint(config, path, classes=None):
    """A weights checkpoint that fills the config's model exactly (torch's
    default initialisation); returns the path."""
    model = build_config_model(config)
    meta = dict(dataset_meta=dict(classes=tuple(classes))) if classes else {}
    torch.save(dict(meta=meta, state_dict=model.state_dict()), str(path))
    return str(path)


def write_fashion_mnist_det(out_dir, num_val=3):
    """The demo detection set (prepare_fashion_mnist_det.py) from the real
    Fashion-MNIST images, ``num_val`` validation canvases; returns the data
    root with a trailing slash."""
    prep = load_tool('dataset_converters', 'prepare_fashion_mnist_det.py')
    prep.main([
        '--data-root', FASHION_MNIST, '--out-dir',
        str(out_dir), '--num-train', '2', '--num-val',
        str(num_val)
    ])
    return str(out_dir) + '/'


def det_data_options(data_root):
    """--cfg-options pointing the demo det config's test split at
    ``data_root``."""
    return [
        f'test_dataloader.dataset.data_root={data_root}',
        f'test_evaluator.ann_file={data_root}annotations/instances_val.json'
    ]


def write_synthetic_seg_set(root):
    """The tiny seg config's layout (prepare_tiny_real_seg.py) with random
    images whose label is the brighter half: 4 train, 2 val."""
    prep = load_tool('dataset_converters', 'prepare_tiny_real_seg.py')
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        label = np.full((48, 64), 1, np.uint8)
        label[:, 32:] = 1 + i % len(SEG_CLASSES)
        image = rng.integers(0, 100, (48, 64, 3), dtype=np.uint8)
        image[label > 1] += 120
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format='JPEG')
        split = 'validation' if i % 3 == 2 else 'training'
        samples.append(
            prep.Sample(f'img{i}', buffer.getvalue(), label, (split, )))
    prep.write_dataset(samples, root)
