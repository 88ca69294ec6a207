# Mini ablation (docs/mini_ablation.md), "integral" row: the demo's tiny iTPN
# and budget, pixel MIM through the pre-trained pyramid, no MFM (paper
# Table 6, iPT without MFM). The full method, integral + EMA-MFM, is the demo
# config itself (configs/pretrain/itpn-demo_fashion-mnist.py).
_base_ = './itpn-demo_fashion-mnist.py'

model = dict(mfm_head=None, teacher=None)
# No teacher, so no EMA-teacher hook.
custom_hooks = []
