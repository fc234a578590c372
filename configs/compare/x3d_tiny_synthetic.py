# MMAction2's X3D (mmaction::_base_/models/x3d.py, a 3D CNN) with depth
# factor 1 (X3D-S uses 2.2), from random initialisation, on the demo's
# synthetic time-reversal data (8 x 32 x 32 clips, NCTHW) and schedule.
_base_ = [
    'mmaction::_base_/models/x3d.py', '../_base_/datasets/synthetic_8x.py',
    '../_base_/schedules/adamw_from_scratch_20e.py',
    '../_base_/default_runtime.py'
]
model = dict(backbone=dict(gamma_d=1.0),
             cls_head=dict(num_classes=8, dropout_ratio=0.0))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(
    interval=1, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
