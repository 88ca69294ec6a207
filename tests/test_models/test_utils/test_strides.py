"""pyramid_strides: the strides of the feature maps iTPN actually makes."""
import pytest
import torch

from mmitpn.models import iTPNHiViT, iTPNPyramid
from mmitpn.models.utils.strides import pyramid_strides
from tiny_models import TINY_HIVIT


@pytest.mark.parametrize('patch_size,num_levels,expected', [
    (16, 5, [4, 8, 16, 32, 64]),
    (16, 4, [4, 8, 16, 32]),
    (8, 5, [2, 4, 8, 16, 32]),
    (4, 3, [1, 2, 4]),
])
def test_values(patch_size, num_levels, expected):
    assert pyramid_strides(patch_size, num_levels) == expected


@pytest.mark.parametrize('patch_size', [4, 8, 16])
def test_strides_of_the_backbone_and_pyramid_outputs(patch_size):
    backbone = iTPNHiViT(arch=TINY_HIVIT, img_size=64, patch_size=patch_size)
    pyramid = iTPNPyramid(in_channels=(16, 32, 64), out_channels=8,
                          fpn_depth=1, num_outs=5)
    with torch.no_grad():
        levels = pyramid(backbone(torch.zeros(1, 3, 64, 128)))
    assert [(64 // f.shape[2], 128 // f.shape[3]) for f in levels] == [
        (s, s) for s in pyramid_strides(patch_size, 5)]


@pytest.mark.parametrize('patch_size', [6, 0, -4, 16.0, True])
def test_patch_size_must_be_a_positive_multiple_of_four(patch_size):
    with pytest.raises(ValueError, match='positive multiple of 4'):
        pyramid_strides(patch_size)


@pytest.mark.parametrize('num_levels', [2, 6])
def test_num_levels_is_the_pyramids_num_outs(num_levels):
    with pytest.raises(ValueError, match="pyramid's num_outs, 3 to 5"):
        pyramid_strides(16, num_levels)
