# 3x detection fine-tuning: the 1x recipe over 36 epochs, lr /10 after epochs
# 27 and 33 (3/4 and 11/12 of training, paper §4.3).
_base_ = './itpn-det_adamw_1x.py'

train_cfg = dict(max_epochs=36)
