# MMAction2's X3D (the model of its _base_/models/x3d.py, a 3D CNN) with
# depth factor 1 (X3D-S uses 2.2), from random initialisation, on the demo's
# synthetic time-reversal data (8 x 32 x 32 clips, NCTHW) and schedule. The
# model is written out (not inherited as 'mmaction::_base_/models/x3d.py')
# so that MMAction2's own tools load this config too (see
# configs/_base_/default_runtime.py).
_base_ = [
    '../_base_/datasets/synthetic_8x.py',
    '../_base_/schedules/adamw_from_scratch_20e.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='Recognizer3D',
    backbone=dict(type='X3D', gamma_w=1, gamma_b=2.25, gamma_d=1.0),
    cls_head=dict(type='X3DHead', in_channels=432, num_classes=8,
                  spatial_type='avg', dropout_ratio=0.0, fc1_bias=False,
                  average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           mean=[114.75, 114.75, 114.75],
                           std=[57.38, 57.38, 57.38], format_shape='NCTHW'),
    train_cfg=None,
    test_cfg=None)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(
    interval=1, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
