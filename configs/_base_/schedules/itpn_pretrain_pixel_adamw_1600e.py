# Table 7 schedule for 1600 epochs: 40 warmup epochs, then cosine decay.
_base_ = './itpn_pretrain_pixel_adamw.py'

train_cfg = dict(max_epochs=1600)
