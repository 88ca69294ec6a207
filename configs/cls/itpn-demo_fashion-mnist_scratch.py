# The from-scratch baseline of `make demo`: the fine-tuning config's model,
# data and budget (iterations, batch, lr schedule) from random weights. No
# layer-wise lr decay: it protects pre-trained lower layers, which a
# randomly initialised model does not have.
_base_ = './itpn-demo_fashion-mnist_finetune.py'

model = dict(backbone=dict(init_cfg=None))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=1.0))
