"""What :func:`read_checkpoint` makes of good, foreign and broken files."""
import os

import pytest
import torch

from mmitpn.models.utils import CheckpointError, read_checkpoint

STATE = {'backbone.w': torch.ones(2, 3), 'neck.b': torch.zeros(4)}


class _ShellPayload:
    """Unpickling this runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return str(path)


@pytest.mark.parametrize('content,kind,described', [
    (dict(state_dict=STATE, meta=dict(iter=6, epoch=0), optimizer={},
          message_hub={}), 'training',
     'an mmengine training checkpoint (iter 6, epoch 0)'),
    (dict(state_dict=STATE, meta={}), 'weights', 'weights-only'),
    (STATE, 'state_dict', 'a plain state dict'),
    ({f'module.{k}': v for k, v in STATE.items()}, 'state_dict',
     'a plain state dict'),
    (dict(model={'blocks.3.reduction.weight': torch.ones(2, 2)}), 'official',
     'official iTPN checkpoint'),
])
def test_kinds(tmp_path, content, kind, described):
    ckpt = read_checkpoint(write(tmp_path / 'x.pth', content))
    assert ckpt.kind == kind
    assert described in ckpt.describe()
    if kind != 'official':
        assert ckpt.state_dict.keys() == STATE.keys()
        assert torch.equal(ckpt.state_dict['backbone.w'], STATE['backbone.w'])
    # mmengine's resume and hooks read the content; a bare state dict is
    # wrapped as mmengine's own checkpoints hold it.
    assert isinstance(ckpt.content['state_dict'] if kind != 'official' else
                      ckpt.content['model'], dict)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file
    path = str(tmp_path / 'model.safetensors')
    save_file(STATE, path)
    ckpt = read_checkpoint(path)
    assert ckpt.kind == 'safetensors'
    assert torch.equal(ckpt.state_dict['neck.b'], STATE['neck.b'])


def test_broken_files_say_what_they_are(tmp_path):
    good = write(tmp_path / 'good.pth', dict(state_dict=STATE))
    data = open(good, 'rb').read()
    cases = {
        'empty': (b'', 'is empty (0 bytes)'),
        'truncated': (data[:len(data) // 2], 'is truncated or damaged'),
        'random': (bytes(range(256)) * 8, 'is not a PyTorch checkpoint'),
        'nothing': ([1, 2, 3], 'holds no tensors (it is a list'),
        'missing': (None, 'not found'),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / f'{name}.pth'
        if content is not None:
            write(path, content)
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(str(path))
        assert expected in str(err.value) and str(path) in str(err.value)
        # torch's own advice for a failed unpickling would run a payload.
        assert 'weights_only=False' not in str(err.value)


def test_code_payload_is_named_and_never_run(tmp_path):
    marker = tmp_path / 'payload-ran'
    path = write(tmp_path / 'evil.pth',
                 dict(state_dict=STATE, extra=_ShellPayload(marker)))
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert 'unpickling it would call' in message and 'system' in message
    assert 'Delete the file' in message
    assert not marker.exists()
