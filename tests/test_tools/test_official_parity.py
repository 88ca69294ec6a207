"""check_official_parity.py on the shared and on synthetic fixtures."""
import json
import os
import os.path as osp
from importlib.util import module_from_spec, spec_from_file_location

import pytest
import torch

from mmitpn.models.utils import build_2d_sincos_pos_embed
from official_keys import to_official

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = spec_from_file_location(
    'check_official_parity',
    osp.join(REPO_ROOT, 'tools', 'analysis_tools',
             'check_official_parity.py'))
parity = module_from_spec(_spec)
_spec.loader.exec_module(parity)

COMMON = dict(patch_size=16, inner_patches=4, ape=True, norm_eps=1e-6,
              mlp_ratio=4.0, bridge_mlp_ratio=3.0, qkv_bias=True)
# Sizes, depths, batches and input shapes unlike the shared fixtures.
SYNTHETIC = {
    'cls_rpe_layer_scale': (
        dict(COMMON, task='cls', embed_dim=64, num_heads=2, mlp_depth1=2,
             mlp_depth2=1, depth=3, rpe=True, layer_scale=0.1, img_size=64,
             norm_eps=1e-5, num_classes=5),
        dict(input=torch.randn(1, 3, 64, 64))),
    'det_no_qkv_bias': (
        dict(COMMON, task='det', embed_dim=32, num_heads=2, mlp_depth1=1,
             mlp_depth2=2, depth=1, rpe=False, layer_scale=None, img_size=64,
             qkv_bias=False, fpn_dim=32, fpn_depth=1),
        dict(input=torch.randn(3, 3, 96, 64),
             features=[torch.empty(0)] * 4)),
    'pretrain_rpe_96': (
        dict(COMMON, task='pretrain', embed_dim=64, num_heads=2,
             mlp_depth1=1, mlp_depth2=1, depth=2, rpe=True, layer_scale=0.1,
             img_size=96, mlp_ratio=2.0, bridge_mlp_ratio=2.0, fpn_dim=16,
             fpn_depth=1, decoder_embed_dim=32, decoder_depth=2,
             decoder_num_heads=2, mask_ratio=0.5, norm_pix_loss=True),
        dict(input=torch.randn(1, 3, 96, 96), noise=torch.rand(1, 36))),
}
def make_fixture(root, name):
    """An official-format fixture from a random-weight mmitpn model."""
    meta, inputs = SYNTHETIC[name]
    task = parity.TASKS[meta['task']]
    model = task.build(meta, inputs, False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # Random everything (RPE tables, gammas) so that every weight counts.
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
        outputs = task.run(model.eval(), meta, inputs)
    official = to_official(model.state_dict(),
                           (meta['mlp_depth1'], meta['mlp_depth2']))
    if meta['task'] == 'pretrain':
        grid = meta['img_size'] // meta['patch_size']
        official['decoder_pos_embed'] = build_2d_sincos_pos_embed(
            meta['decoder_embed_dim'], (grid, grid))

    folder = osp.join(root, name)
    os.makedirs(folder)
    with open(osp.join(folder, 'meta.json'), 'w') as f:
        json.dump(dict(meta, outputs={k: k for k in outputs}), f)
    torch.save({'model': official}, osp.join(folder, 'official.pth'))
    torch.save({**inputs, **outputs}, osp.join(folder, 'tensors.pt'))
    return folder


def test_shared_official_fixtures_pass(official_ref_dir, capsys):
    fixtures = osp.join(official_ref_dir, 'fixtures')
    if not osp.isdir(fixtures):
        pytest.skip(f'no official fixtures at {fixtures}')
    code = parity.main([fixtures])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'SUMMARY: PASS' in out


def test_fixtures_of_other_shapes_pass(tmp_path, capsys):
    for name in SYNTHETIC:
        make_fixture(tmp_path, name)
    code = parity.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'SUMMARY: PASS: 3 fixtures' in out
    assert 'det_no_qkv_bias/features[3]' in out  # informational level


def test_perturbed_official_weight_fails(tmp_path, capsys):
    folder = make_fixture(tmp_path, 'det_no_qkv_bias')
    path = osp.join(folder, 'official.pth')
    official = torch.load(path, weights_only=True)
    official['model']['blocks.5.mlp.fc2.bias'] += 0.1  # attention
    torch.save(official, path)
    assert parity.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert 'ABOVE atol' in out and 'SUMMARY: FAIL' in out


def _unknown_output(folder):
    with open(osp.join(folder, 'meta.json')) as f:
        meta = json.load(f)
    meta['outputs']['attention_maps'] = 'an output the tool cannot make'
    with open(osp.join(folder, 'meta.json'), 'w') as f:
        json.dump(meta, f)


def _missing_meta_field(folder):
    with open(osp.join(folder, 'meta.json')) as f:
        meta = json.load(f)
    del meta['norm_eps']
    with open(osp.join(folder, 'meta.json'), 'w') as f:
        json.dump(meta, f)


@pytest.mark.parametrize('breakage, message', [
    (_unknown_output, 'does not know output "attention_maps"'),
    (_missing_meta_field, 'meta.json has no "norm_eps"'),
    (lambda folder: os.remove(osp.join(folder, 'tensors.pt')),
     'missing tensors.pt'),
])
def test_outputs_that_cannot_be_checked_give_exit_2(tmp_path, capsys,
                                                    breakage, message):
    breakage(make_fixture(tmp_path, 'det_no_qkv_bias'))
    assert parity.main([str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert message in out and 'SUMMARY: INCOMPLETE' in out
