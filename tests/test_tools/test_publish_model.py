"""tools/model_converters/publish_model.py on a pre-training checkpoint of
an iTPN with an EMA teacher."""
import hashlib
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope

from mmitpn.registry import MODELS
from tiny_models import tiny_ema_pretrain_cfg
from tool_test_utils import REPO, load_tool


@pytest.fixture(scope='module')
def publish_tool():
    return load_tool('model_converters', 'publish_model.py')


@pytest.fixture
def training_checkpoint(tmp_path):
    """What CheckpointHook saves for a pre-training run: meta, weights
    (teacher.* included), optimizer, schedulers and message hub."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(tiny_ema_pretrain_cfg())
    model.init_teacher()
    optimizer = torch.optim.AdamW(model.parameters())
    hub = MessageHub.get_instance('publish_test')
    hub.update_scalar('train/loss', 1.5)
    path = str(tmp_path / 'iter_10.pth')
    torch.save(
        dict(
            meta=dict(iter=10, dataset_meta=dict(classes=('a', 'b'))),
            state_dict=model.state_dict(),
            optimizer=optimizer.state_dict(),
            param_schedulers=[dict(last_step=10)],
            message_hub=hub.state_dict()), path)
    return path, model.state_dict()


def test_training_state_and_teacher_are_left_out(training_checkpoint,
                                                 tmp_path):
    path, state = training_checkpoint
    # A fresh process: the tool reads mmengine's checkpoint (HistoryBuffer
    # in its message hub) by itself.
    run = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'model_converters', 'publish_model.py'), path,
        str(tmp_path / 'out' / 'itpn-tiny.pth')
    ], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    published = run.stdout.strip().splitlines()[-1].split()[-1]

    with open(published, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert published == str(tmp_path / 'out' / f'itpn-tiny-{sha[:8]}.pth')
    # written atomically: no temporary file left beside it
    assert os.listdir(tmp_path / 'out') == [os.path.basename(published)]

    content = torch.load(published, weights_only=True)
    assert set(content) == {'meta', 'state_dict'}
    assert content['meta']['iter'] == 10
    assert content['meta']['dataset_meta'] == dict(classes=('a', 'b'))
    assert 'mmitpn_version' in content['meta']
    teacher = [k for k in state if k.startswith('teacher.')]
    assert len(teacher) > 10
    assert set(content['state_dict']) == set(state) - set(teacher)
    for key, value in content['state_dict'].items():
        assert torch.equal(value, state[key])
    assert ('left out: message_hub, optimizer, param_schedulers; '
            f'{len(teacher)} teacher tensors') in run.stdout


def test_keep_teacher_and_same_content_same_name(publish_tool,
                                                 training_checkpoint,
                                                 tmp_path):
    path, state = training_checkpoint
    kept = publish_tool.main(
        [path, str(tmp_path / 'a' / 'x.pth'), '--keep-teacher'])
    assert set(torch.load(kept, weights_only=True)['state_dict']) == set(state)
    # the name follows the content: the same weights give the same hash
    again = publish_tool.main(
        [path, str(tmp_path / 'b' / 'x.pth'), '--keep-teacher'])
    assert os.path.basename(again) == os.path.basename(kept)
    dropped = publish_tool.main([path, str(tmp_path / 'a' / 'x.pth')])
    assert dropped != kept


def test_unusable_input_is_refused(publish_tool, tmp_path):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(SystemExit, match='CheckpointError: .*empty.pth'):
        publish_tool.main([str(empty), str(tmp_path / 'x.pth')])
    official = tmp_path / 'official.pth'
    torch.save({'model': {
        'blocks.2.reduction.weight': torch.zeros(2, 2)
    }}, official)
    with pytest.raises(SystemExit, match='official2mmitpn.py'):
        publish_tool.main([str(official), str(tmp_path / 'x.pth')])
