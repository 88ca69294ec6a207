# iTPN-B, pixel MIM + MFM with an EMA teacher (paper §3.3-3.4): the teacher
# is a moving average (m = 0.996) of the online backbone and sees the same
# visible patches; linear heads on the pyramid levels predict its stage-1/2/3
# outputs. L = L_MIM + 0.3 * sum_s L_MFM^s.
_base_ = './itpn_pretrain_pixel_hivit-base-p16.py'

model = dict(
    mfm_head=dict(
        type='iTPNMFMHead',
        in_channels=256,
        out_channels=(128, 256, 512),
        loss_weight=0.3),
    teacher='ema',
    teacher_input='masked')  # 'full': the teacher sees the whole image

# Updates the teacher after every iteration; end_momentum=1.0 would raise m
# to 1 along a cosine, as BYOL.
custom_hooks = [dict(type='mmitpn.EMATeacherHook', momentum=0.996)]
