# MMAction2's TSM (mmaction::_base_/models/tsm_r50.py: temporal shift in a
# 2D ResNet) at ResNet-18 depth, from random initialisation, on the demo's
# synthetic time-reversal data and schedule.
_base_ = [
    'mmaction::_base_/models/tsm_r50.py',
    '../_base_/datasets/synthetic_8x_2d.py',
    '../_base_/schedules/adamw_from_scratch_20e.py',
    '../_base_/default_runtime.py'
]
# pretrained2d=False: ResNetTSM.init_weights would otherwise load ImageNet
# weights from pretrained=None and fail.
model = dict(backbone=dict(depth=18, pretrained=None, pretrained2d=False),
             cls_head=dict(num_classes=8, in_channels=512, dropout_ratio=0.0))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(
    interval=1, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
