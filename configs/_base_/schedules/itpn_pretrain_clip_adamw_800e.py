# Table 9 schedule for 800 epochs: 10 warmup epochs, then cosine decay.
_base_ = './itpn_pretrain_clip_adamw.py'

train_cfg = dict(max_epochs=800)
