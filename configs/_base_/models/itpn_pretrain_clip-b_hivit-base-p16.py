# iTPN-B, MFM with a frozen CLIP-B/16 teacher (Table 9, official itpn_clip):
# BEiT block masks (~75 of 196 patches) as mask tokens, leak-free from the
# patch embedding on; the pyramid levels are fused onto the 14x14 grid and
# regress CLIP's last-layer patch tokens, plus an early-stage branch at 3/4
# of stage 3 (2 attention blocks); smooth-L1 on LayerNorm-ed targets, all
# tokens. Relative position bias and layer scale 0.1 as official.
model = dict(
    type='mmitpn.iTPN',
    backbone=dict(
        type='iTPNHiViT',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        use_abs_pos_embed=True,
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        use_mask_token=True),
    neck=dict(
        type='iTPNPyramid',
        in_channels=(128, 256, 512),
        out_channels=256,
        fpn_depth=1),
    head=None,
    mfm_head=dict(
        type='iTPNCLIPHead',
        in_channels=256,
        embed_dims=512,
        out_channels=512,
        num_heads=8,
        aux_depth=2,
        aux_layer_ratio=0.75,
        aux_drop_path_rate=0.1,
        layer_scale_init_value=0.1,
        rel_pos_grid=(14, 14),
        loss_weight=1.0,
        aux_loss_weight=1.0),
    # Never downloaded: put the open_clip weights of OpenAI's ViT-B/16 here
    # (e.g. open_clip_pytorch_model.bin of the hf-hub repo
    # timm/vit_base_patch16_clip_224.openai) or pass
    # --cfg-options model.teacher.checkpoint=/path/to/file
    teacher=dict(
        type='CLIPTeacher',
        model_name='ViT-B-16-quickgelu',
        checkpoint='data/clip/ViT-B-16-openai.bin'),
    block_mask_patches=75,
    block_min_patches=16,
    block_aspect_ratio=(0.3, 1 / 0.3))
