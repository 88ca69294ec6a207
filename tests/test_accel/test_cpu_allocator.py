"""keep_freed_memory: freed heap memory stays in the process for reuse."""
import os
import subprocess
import sys

import pytest

# Allocates 256 MiB in 8 MiB blocks (zero-filled, so resident), frees them and
# prints what the process's resident memory fell by, in MiB.
_PROBE = r'''
import os, sys
from mmitpn.accel.cpu_allocator import keep_freed_memory
if sys.argv[1] == 'keep':
    print(keep_freed_memory(), file=sys.stderr)
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
blocks = [bytearray(8 << 20) for _ in range(32)]
before = rss()
del blocks
print((before - rss()) >> 20)
'''

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith('linux') or
    os.confstr('CS_GNU_LIBC_VERSION') is None,
    reason='glibc malloc on Linux only')


def _freed_mib(mode, **env):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
    done = subprocess.run([sys.executable, '-c', _PROBE, mode],
                          capture_output=True, text=True, check=True,
                          env={**environ, **env})
    return int(done.stdout.split()[-1]), done.stderr


def test_freed_memory_is_kept_only_after_the_call():
    default_drop, _ = _freed_mib('default')
    kept_drop, message = _freed_mib('keep')
    assert default_drop > 200, 'glibc returned less than expected by default'
    assert kept_drop < 16
    assert 'M_TRIM_THRESHOLD=2147483647' in message


def test_users_own_malloc_settings_are_left_alone():
    drop, message = _freed_mib('keep', MALLOC_TRIM_THRESHOLD_='131072')
    assert message.strip() == 'malloc: left as the environment sets it'
    assert drop > 200
