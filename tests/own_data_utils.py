"""The "your own data" flow of docs/your_own_data.md, as a user runs it: a
copy of configs/ with the data block of a dataset base set to the user's
data, and a small config of theirs on top of an own-data config."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

from tiny_models import TINY_HIVIT

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# TINY_HIVIT's stage widths and the pyramid width of the tiny configs.
TINY_DIMS = (16, 32, 64)
TINY_FPN = 32


def configs_with_data_block(dest, data_file, **values):
    """Copy the repository's configs/ to ``dest/configs`` and set, in the
    data block of ``_base_/datasets/<data_file>``, each ``key = value``.

    Every key must stand once in the block (between ``# --- your data`` and
    the next ``# ---`` line), as the docs promise. Returns the copy's path.
    """
    root = osp.join(dest, 'configs')
    shutil.copytree(osp.join(REPO, 'configs'), root)
    path = osp.join(root, '_base_', 'datasets', data_file)
    with open(path) as f:
        text = f.read()
    start = text.index('# --- your data')
    end = text.index('# ---', start + 1)
    block = text[start:end]
    for key, value in values.items():
        block, count = re.subn(rf'^{key} = .*$', f'{key} = {value!r}',
                               block, flags=re.M)
        assert count == 1, f'{key} is not (once) in the data block'
    with open(path, 'w') as f:
        f.write(text[:start] + block + text[end:])
    return root


def write_config(path, base, lines):
    """A config of the user's: ``_base_ = base``, then ``lines``."""
    with open(path, 'w') as f:
        f.write(f'_base_ = {base!r}\n' + '\n'.join(lines) + '\n')
    return str(path)


def tiny_model_line(**parts):
    """A config line shrinking an iTPN-B config's backbone and pyramid to
    :data:`TINY_HIVIT` without pre-trained weights, and updating the other
    ``parts`` of the model (heads narrowed to the pyramid width)."""
    model = dict(
        backbone=dict(arch=dict(_delete_=True, **TINY_HIVIT), init_cfg=None),
        neck=dict(in_channels=TINY_DIMS, out_channels=TINY_FPN,
                  init_cfg=None))
    for name, part in parts.items():
        model.setdefault(name, {}).update(part)
    return f'model = {model!r}'


def small_images_lines(scale, crop_size=None):
    """Config lines resizing to ``scale`` instead of the config's size (and
    cropping to ``crop_size``), loading data in the main process (the CPU
    cores are few)."""
    sizes = dict(Resize=dict(scale=scale), RandomResize=dict(scale=scale))
    if crop_size is not None:
        sizes['RandomCrop'] = dict(crop_size=crop_size)
    lines = [f'small_sizes = {sizes!r}']
    for split, pipeline in (('train', 'train_pipeline'),
                            ('val', 'test_pipeline')):
        lines += [
            f'{split}_dataloader = dict(num_workers=0, '
            'persistent_workers=False, dataset=dict(pipeline=[',
            '    dict(t, **small_sizes.get(t["type"], {})) for t in '
            f'_base_.{pipeline}]))',
        ]
    return lines + ['test_dataloader = val_dataloader']


def run_tool(tool, *args):
    """Run ``tools/<tool>`` in a fresh process; returns the completed
    process (stdout, stderr as text)."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', tool), *args],
        cwd=REPO, env=env, capture_output=True, text=True)
