"""Which mmcv ops ``make env`` compiles on this machine: CUDA or CPU kernels.

Prints shell assignments that ``tools/setup_env.sh`` evaluates::

    MMCV_OPS=cuda|cpu      the kernels to compile
    MMCV_ARCH_LIST=9.0     TORCH_CUDA_ARCH_LIST of a CUDA build
    MMCV_WHEEL_TAG=...     torch's full version (with its CUDA tag) and the
                           kernels: the cached wheel's folder name has it
    MMCV_PLAN_NOTE=...     what to tell the user (empty: nothing to say)

CUDA kernels are built when torch is a CUDA build, a GPU is visible (or
``FORCE_CUDA=1``) and an ``nvcc`` whose major version is torch's CUDA major
version exists; ``TORCH_CUDA_ARCH_LIST`` overrides the architectures of the
visible GPUs. Otherwise the kernels are CPU ones, and where a GPU would have
wanted CUDA kernels the note says why: mmitpn's ``mmcv_ops_fallback``
(``mmitpn/compat/mmcv_ops.py``) then runs NMS and RoIAlign on torchvision's
CUDA kernels, so the install never fails for it.
"""
import os
import re
import shlex
import shutil
import subprocess
from typing import NamedTuple, Optional, Sequence, Tuple


class Machine(NamedTuple):
    """What the plan depends on (see :func:`probe`)."""
    torch_version: str  # e.g. '2.11.0+cu130'
    torch_cuda: Optional[str]  # torch.version.cuda, e.g. '13.0'; None: CPU
    gpus: Sequence[Tuple[int, int]]  # compute capabilities of visible GPUs
    torch_archs: Sequence[str]  # torch.cuda.get_arch_list(), e.g. 'sm_90'
    nvcc: Optional[str]  # nvcc's CUDA release, e.g. '13.0'; None: none
    force_cuda: bool  # FORCE_CUDA=1
    arch_list: Optional[str]  # TORCH_CUDA_ARCH_LIST, if set


class Plan(NamedTuple):
    ops: str
    arch_list: str
    wheel_tag: str
    note: str


def _major(version: str) -> str:
    return version.split('.')[0]


def plan(machine: Machine) -> Plan:
    """The build for ``machine``."""
    cpu_tag = f'torch{machine.torch_version}-cpu-ops'
    wants_cuda = bool(machine.gpus) or machine.force_cuda
    if not wants_cuda:
        return Plan('cpu', '', cpu_tag, '')
    fallback = ('; mmcv gets CPU kernels only, and mmitpn runs its NMS and '
                "RoIAlign on torchvision's CUDA kernels instead")
    if machine.torch_cuda is None:
        return Plan('cpu', '', cpu_tag,
                    f'torch {machine.torch_version} is a CPU build' +
                    fallback.replace("torchvision's CUDA", "torchvision's"))
    if machine.nvcc is None:
        return Plan(
            'cpu', '', cpu_tag,
            f'no nvcc found for CUDA {machine.torch_cuda} (install the CUDA '
            'toolkit of that major version and set CUDA_HOME to build '
            "mmcv's CUDA kernels)" + fallback)
    if _major(machine.nvcc) != _major(machine.torch_cuda):
        return Plan(
            'cpu', '', cpu_tag,
            f'nvcc is CUDA {machine.nvcc} but torch {machine.torch_version} '
            f'was built with CUDA {machine.torch_cuda}; the major versions '
            'must match (set CUDA_HOME to a CUDA '
            f'{_major(machine.torch_cuda)}.x toolkit)' + fallback)
    if machine.arch_list:
        archs = machine.arch_list
    elif machine.gpus:
        archs = ' '.join(sorted({f'{a}.{b}' for a, b in machine.gpus}))
    else:  # forced without a GPU: what torch itself was built for
        archs = ' '.join(
            f'{a[3:-1]}.{a[-1]}' for a in machine.torch_archs
            if re.fullmatch(r'sm_\d+', a))
    tag = f'torch{machine.torch_version}-cuda-ops-' + archs.replace(
        ' ', '_').replace(';', '_').replace('+', '')
    return Plan('cuda', archs, tag, '')


def _nvcc_release() -> Optional[str]:
    from torch.utils.cpp_extension import CUDA_HOME
    candidates = [shutil.which('nvcc')]
    if CUDA_HOME:
        candidates.insert(0, os.path.join(CUDA_HOME, 'bin', 'nvcc'))
    for nvcc in filter(None, candidates):
        try:
            out = subprocess.run([nvcc, '--version'], capture_output=True,
                                 text=True, timeout=60).stdout
        except OSError:
            continue
        match = re.search(r'release (\d+\.\d+)', out)
        if match:
            return match.group(1)
    return None


def probe() -> Machine:
    """This machine, through torch and nvcc."""
    import torch
    gpus = [
        torch.cuda.get_device_capability(i)
        for i in range(torch.cuda.device_count())
    ] if torch.cuda.is_available() else []
    force_cuda = os.environ.get('FORCE_CUDA', '0') == '1'
    cuda = torch.version.cuda is not None and (gpus or force_cuda)
    return Machine(
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
        gpus=gpus,
        torch_archs=torch.cuda.get_arch_list() if cuda else [],
        nvcc=_nvcc_release() if cuda else None,
        force_cuda=force_cuda,
        arch_list=os.environ.get('TORCH_CUDA_ARCH_LIST') or None)


def main() -> None:
    result = plan(probe())
    for name, value in zip(('MMCV_OPS', 'MMCV_ARCH_LIST', 'MMCV_WHEEL_TAG',
                            'MMCV_PLAN_NOTE'), result):
        print(f'{name}={shlex.quote(value)}')


if __name__ == '__main__':
    main()
