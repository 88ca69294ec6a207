# 3x detection fine-tuning: the 1x recipe over 36 epochs, lr /10 after epochs
# 27 and 33 (3/4 and 11/12 of training, paper §4.3).
_base_ = './itpn-det_adamw_1x.py'

train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=36,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
