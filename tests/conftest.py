import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OFFICIAL_REF = osp.join(REPO_ROOT, '..', 'shared', 'reference', 'official')


@pytest.fixture(scope='session')
def official_ref_dir():
    """The shared official-code reference folder (keys, fixtures, tables)."""
    if not osp.isdir(OFFICIAL_REF):
        pytest.skip(f'official reference folder not found at {OFFICIAL_REF}')
    return OFFICIAL_REF
