import pytest
from det_test_utils import write_synthetic_coco


@pytest.fixture
def synthetic_coco(tmp_path):
    """Data root (with a trailing slash) of a 4-image synthetic COCO set."""
    root = tmp_path / 'synthetic_coco'
    write_synthetic_coco(root)
    return str(root) + '/'
