# iTPN-L/16 with a CLIP-L/14 teacher (768-d targets). As official, the
# teacher sees the crop at 196 px so that its 14x14 tokens match the
# student's patch grid (other sizes work: predictions are resampled).
_base_ = './itpn_pretrain_clip-b_hivit-large-p16.py'

model = dict(
    mfm_head=dict(out_channels=768),
    # open_clip weights of OpenAI's ViT-L/14 (e.g. open_clip_pytorch_model.bin
    # of timm/vit_large_patch14_clip_224.openai); never downloaded.
    teacher=dict(
        model_name='ViT-L-14-quickgelu',
        checkpoint='data/clip/ViT-L-14-openai.bin',
        image_size=196))
