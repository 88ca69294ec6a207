"""Every checkpoint entry point refuses what does not fit, naming why.

Entry points: ``load_from`` and ``--resume`` (CheckedRunner), the exact load
of ``tools/test.py`` (``load_checkpoint(strict=True)``), ``init_cfg``
Pretrained, the reconstruction visualisation and the converter; inputs: a
0-byte, truncated, random, safetensors, plain-state-dict, other-arch and
malicious file.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmitpn.engine import CheckedRunner
from mmitpn.models import iTPNHiViT
from mmitpn.models.utils import CheckpointError, load_pretrained

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'pretrain', 'itpn-demo_fashion-mnist.py')

pytest.importorskip('mmpretrain')


class _ShellPayload:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path_factory.mktemp('work'))
    cfg.train_dataloader.dataset.data_root = cfg.work_dir  # never read
    return CheckedRunner.from_cfg(cfg)


@pytest.fixture(scope='module')
def files(runner, tmp_path_factory):
    """Checkpoint files of each kind, for the runner's model."""
    folder = tmp_path_factory.mktemp('ckpts')
    state = runner.model.state_dict()
    paths = {}

    def save(name, obj):
        paths[name] = str(folder / f'{name}.pth')
        torch.save(obj, paths[name])

    save('training', dict(state_dict=state, meta=dict(iter=2, epoch=0),
                          optimizer={}, message_hub={}))
    save('state_dict', state)
    data = open(paths['training'], 'rb').read()
    for name, content in (('empty', b''), ('truncated', data[:len(data) // 2]),
                          ('random', bytes(range(256)) * 64)):
        paths[name] = str(folder / f'{name}.pth')
        open(paths[name], 'wb').write(content)
    from safetensors.torch import save_file
    paths['safetensors'] = str(folder / 'model.safetensors')
    save_file({k: v.contiguous() for k, v in state.items()},
              paths['safetensors'])
    # Another arch: every backbone tensor has another shape.
    other = iTPNHiViT(arch='tiny', img_size=32, patch_size=16)
    save('other_arch', dict(
        state_dict={f'backbone.{k}': v for k, v in other.state_dict().items()},
        meta=dict(iter=2, epoch=0), optimizer={}, message_hub={}))
    paths['marker'] = str(folder / 'payload-ran')
    save('malicious', dict(state_dict=state,
                           extra=_ShellPayload(paths['marker'])))
    return paths


# What each bad file is called in every entry point's message.
UNREADABLE = {
    'empty': 'is empty (0 bytes)',
    'truncated': 'is truncated or damaged',
    'random': 'is not a PyTorch checkpoint',
    'malicious': 'unpickling it would call',
}


def entry_points(runner):
    from mmitpn.tools.visualization import load_pretrain_model
    return {
        'load_from': runner.load_checkpoint,
        'resume': runner.resume,
        'test': lambda path: runner.load_checkpoint(path, strict=True),
        'Pretrained': lambda path: load_pretrained(
            runner.model.backbone, path, prefix='backbone.'),
        'vis': lambda path: load_pretrain_model(CONFIG, path),
    }


@pytest.mark.parametrize('name', sorted(UNREADABLE))
def test_unreadable_files_are_named_at_every_entry_point(
        runner, files, name):
    from mmitpn.tools.official_converter import (ConversionError,
                                                 load_official_state_dict)
    for entry, load in entry_points(runner).items():
        with pytest.raises(CheckpointError) as err:
            load(files[name])
        assert UNREADABLE[name] in str(err.value), entry
    with pytest.raises(ConversionError) as err:
        load_official_state_dict(files[name])
    assert UNREADABLE[name] in str(err.value)
    assert not osp.exists(files['marker'])


def test_other_arch_is_refused_at_every_entry_point(runner, files):
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    for entry, load in entry_points(runner).items():
        with pytest.raises(CheckpointError) as err:
            load(files['other_arch'])
        message = str(err.value)
        assert 'arch.embed_dims: 192 in the checkpoint, 128 here' in message, \
            entry
        assert 'patch_size: 16 in the checkpoint, 4 here' in message, entry
    # Nothing was half-loaded.
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize('name', ['state_dict', 'safetensors'])
def test_weights_without_training_state_load_but_do_not_resume(
        runner, files, name):
    with pytest.raises(CheckpointError) as err:
        runner.resume(files[name])
    assert 'no optimizer state or iteration to continue from' in str(
        err.value)
    assert f'load_from={files[name]}' in str(err.value)
    assert runner.load_checkpoint(files[name])['state_dict']
    runner.load_checkpoint(files[name], strict=True)


def test_part_of_a_model_and_heads_for_another_dataset(runner, files):
    state = torch.load(files['state_dict'], weights_only=True)
    # A bare backbone: pointed to the backbone's init_cfg.
    bare = {k[len('backbone.'):]: v for k, v in state.items()
            if k.startswith('backbone.')}
    path = osp.join(osp.dirname(files['state_dict']), 'bare.pth')
    torch.save(bare, path)
    with pytest.raises(CheckpointError,
                       match="bare backbone .* model.backbone.init_cfg"):
        runner.load_checkpoint(path)

    # load_from keeps a head of another shape (e.g. another num_classes) at
    # its initialisation; an exact load refuses it.
    key = next(k for k in state if k.startswith('head.')
               and state[k].dim() == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    torch.save(state, path)
    runner.load_checkpoint(path)
    with pytest.raises(CheckpointError, match=f'{key}: '):
        runner.load_checkpoint(path, strict=True)

    # A missing neck tensor is refused even by load_from.
    state = torch.load(files['state_dict'], weights_only=True)
    del state['neck.lateral_s8.weight']
    torch.save(state, path)
    with pytest.raises(CheckpointError,
                       match='(?s)model.neck .*not in the checkpoint: '
                       'lateral_s8.weight'):
        runner.load_checkpoint(path)


def test_training_tool_exits_with_the_message(files, tmp_path):
    """``tools/train.py --resume`` / ``load_from``: exit code 1, no
    traceback."""
    for args in (['--resume', files['empty']],
                 ['--cfg-options', f'load_from={files["other_arch"]}']):
        run = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG,
             '--work-dir', str(tmp_path / 'work'), *args],
            capture_output=True, text=True, cwd=REPO, timeout=300)
        assert run.returncode == 1, run.stderr[-2000:]
        last = run.stderr.strip().splitlines()
        assert 'Traceback' not in run.stderr, run.stderr[-2000:]
        assert any(line.startswith('CheckpointError: ') for line in last)
