"""get_flops.py on a detector follows MMDetection 2.x forward_dummy: the box
head runs on every proposal, the mask head on the first 100."""
import os.path as osp
import sys

from det_test_utils import REPO_ROOT, tiny_det_cfg

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
from get_flops import count_complexity  # noqa: E402


def test_two_stage_detector_counts_box_head_per_proposal():
    cfg = tiny_det_cfg()
    counts = {
        n: count_complexity(cfg, 128, 128, conv_linear_only=True,
                            num_proposals=n)[1]
        for n in (100, 150, 250)
    }
    # Shared4Conv1FCBBoxHead on a 7x7 RoI: 4 convs 64->64 (3x3), fc
    # 64*49->256, 14 class scores and 4 x 13 box deltas.
    head = cfg.model.roi_head.bbox_head
    c, fc, k = head.conv_out_channels, head.fc_out_channels, head.num_classes
    per_roi = 4 * c * c * 9 * 49 + c * 49 * fc + fc * (k + 1) + fc * 4 * k
    assert counts[150] - counts[100] == 50 * per_roi
    assert counts[250] - counts[150] == 100 * per_roi
