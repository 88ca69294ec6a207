# The iTPN-B backbone and pyramid of the detectors, shared by the Faster
# R-CNN, Mask R-CNN, Cascade Mask R-CNN and RetinaNet bases; `_delete_` drops
# mmdet's ResNet-50 and FPN keys there. Detectors use the pyramid exactly as
# pre-trained (same module and parameter names, `neck.*` in checkpoints)
# plus two parameter-free levels for the RPN: stride 32 and 64, 2x2 average
# pooling of the level below (official det; mmdet's FPN max-pools). The
# heads take the levels' strides from pyramid_strides(patch_size, num_outs).
itpn_backbone = dict(
    _delete_=True,
    type='mmitpn.iTPNHiViT',
    arch='base',
    # The position table keeps its pre-training grid (14x14) and is resized
    # bicubically to each input's grid at run time, as in the official det
    # code; with use_rel_pos_bias the tables are resized the same way.
    img_size=224,
    patch_size=16,
    drop_path_rate=0.1,
    use_abs_pos_embed=True,
    use_rel_pos_bias=False,
    out_indices=(0, 1, 2),
    # True: gradient checkpointing of every block (activations recomputed in
    # the backward pass), for memory at detection resolution; measured on one
    # 1344x800 image: 7.2 -> 3.0 GiB kept for the backward pass of backbone
    # and pyramid, +42% step time on CPU.
    with_cp=False)
itpn_pyramid = dict(
    _delete_=True,
    type='mmitpn.iTPNPyramid',
    in_channels=(128, 256, 512),
    out_channels=256,
    # As pre-trained: 2 for pixel pre-training, 1 for CLIP pre-training.
    fpn_depth=2,
    num_outs=5,
    extra_pool='avg')

# The official det box head for mmdet's Shared2FCBBoxHead configs: 4 shared
# convs + 1 fc with SyncBN, regressing decoded boxes with a GIoU loss
# (weight 10).
itpn_bbox_head = dict(
    type='Shared4Conv1FCBBoxHead',
    conv_out_channels=256,
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    reg_decoded_bbox=True,
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
