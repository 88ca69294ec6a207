# Table 7 schedule for 800 epochs: 40 warmup epochs, then cosine decay.
_base_ = './itpn_pretrain_pixel_adamw.py'

train_cfg = dict(max_epochs=800)
