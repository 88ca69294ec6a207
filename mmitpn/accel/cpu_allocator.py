"""glibc ``malloc`` settings for training and benchmarking processes.

PyTorch's CPU allocator is plain ``malloc``. glibc hands the top of its heap
back to the OS whenever more than ``M_TRIM_THRESHOLD`` bytes there are free
(by default twice its adaptive mmap threshold, at most 64 MiB). A training
step frees most of its activations at its end, so the heap shrinks after
every step and the next step touches fresh pages again: about 150,000 page
faults per iTPN-B pre-training step (batch 8, 224x224), 12-13 % of the step's
time on the 2-core reference VM; none with these settings.
"""
import ctypes
import ctypes.util
import os

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to glibc's largest mmap threshold on 64-bit systems (32 MiB)
# come from the heap; larger ones are still mapped and unmapped.
MMAP_THRESHOLD = 32 << 20
# Free memory at the top of the heap is kept up to this much (mallopt takes
# an int), i.e. a process keeps what it has once needed.
TRIM_THRESHOLD = (1 << 31) - 1
# Environment variables through which users tune malloc themselves.
_USER_SETTINGS = ('MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_',
                  'MALLOC_TOP_PAD_')


def keep_freed_memory() -> str:
    """Make glibc keep freed heap memory for the next step.

    Setting thresholds switches off glibc's adaptive mmap threshold, so both
    are set. The process's peak memory stays what it was; up to 2 GiB of
    freed heap stays in the process instead of going back to the OS (blocks
    over 32 MiB are still mapped and unmapped each time).

    Returns:
        str: What was done, for the log: applied, or why not (a malloc other
        than glibc's, or the user's own ``MALLOC_*`` / ``GLIBC_TUNABLES``
        malloc settings, which are left alone).
    """
    if any(name in os.environ for name in _USER_SETTINGS) or \
            'glibc.malloc.' in os.environ.get('GLIBC_TUNABLES', ''):
        return 'malloc: left as the environment sets it'
    libc_name = ctypes.util.find_library('c')
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is None or not hasattr(libc, 'mallopt') or \
            not hasattr(libc, 'gnu_get_libc_version'):
        return 'malloc: not glibc, left as it is'
    if not (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        raise RuntimeError('glibc mallopt refused the malloc thresholds')
    return ('malloc: freed heap memory kept for reuse (glibc '
            f'M_MMAP_THRESHOLD={MMAP_THRESHOLD}, '
            f'M_TRIM_THRESHOLD={TRIM_THRESHOLD})')
