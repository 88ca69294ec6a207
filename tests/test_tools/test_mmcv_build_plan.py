"""``make env``'s choice of mmcv kernels, with the machine's probes stubbed."""
import os
import os.path as osp
import subprocess
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools'))

from mmcv_build_plan import Machine, plan  # noqa: E402

H200 = Machine(torch_version='2.11.0+cu130', torch_cuda='13.0',
               gpus=[(9, 0)], torch_archs=['sm_80', 'sm_90', 'sm_100'],
               nvcc='13.0', force_cuda=False, arch_list=None)


def test_gpu_with_matching_nvcc_builds_cuda_kernels_for_it():
    result = plan(H200)
    assert (result.ops, result.arch_list, result.note) == ('cuda', '9.0', '')
    assert result.wheel_tag == 'torch2.11.0+cu130-cuda-ops-9.0'
    two = plan(H200._replace(gpus=[(8, 0), (9, 0), (8, 0)]))
    assert two.arch_list == '8.0 9.0'
    assert plan(H200._replace(arch_list='9.0+PTX')).wheel_tag.endswith(
        'cuda-ops-9.0PTX')


def test_cpu_machines_build_cpu_kernels_quietly():
    for machine in (H200._replace(gpus=[]),
                    H200._replace(gpus=[], torch_cuda=None,
                                  torch_version='2.11.0+cpu')):
        result = plan(machine)
        assert (result.ops, result.arch_list, result.note) == ('cpu', '', '')
        assert result.wheel_tag == f'torch{machine.torch_version}-cpu-ops'


def test_no_or_mismatched_toolkit_falls_back_and_says_why():
    missing = plan(H200._replace(nvcc=None))
    assert missing.ops == 'cpu'
    assert 'no nvcc found for CUDA 13.0' in missing.note
    assert "torchvision's CUDA kernels" in missing.note
    other = plan(H200._replace(nvcc='12.4'))
    assert other.ops == 'cpu'
    assert 'nvcc is CUDA 12.4 but torch 2.11.0+cu130 was built with CUDA ' \
        '13.0' in other.note
    assert plan(H200._replace(nvcc='13.1')).ops == 'cuda'  # minor may differ
    cpu_torch = plan(H200._replace(torch_cuda=None))
    assert cpu_torch.ops == 'cpu' and 'is a CPU build' in cpu_torch.note
    # The CPU wheel of a CUDA torch is not the CUDA wheel.
    assert missing.wheel_tag != plan(H200).wheel_tag


def test_forced_cuda_without_gpu_uses_torchs_architectures():
    result = plan(H200._replace(gpus=[], force_cuda=True))
    assert (result.ops, result.arch_list) == ('cuda', '8.0 9.0 10.0')


def test_prints_shell_assignments_for_setup_env():
    out = subprocess.run(
        ['bash', '-c', f'eval "$({sys.executable} tools/mmcv_build_plan.py '
         '2>/dev/null)" && echo "$MMCV_OPS|$MMCV_WHEEL_TAG|$MMCV_PLAN_NOTE"'],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert out.returncode == 0, out.stderr
    ops, tag, note = out.stdout.strip().split('|')
    assert (ops, note) == ('cpu', '')
    assert tag == f'torch{torch.__version__}-cpu-ops'
