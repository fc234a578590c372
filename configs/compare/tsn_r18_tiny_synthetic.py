# MMAction2's TSN (the model of its _base_/models/tsn_r50.py: a 2D ResNet,
# frame scores averaged by AvgConsensus, so frame order is invisible) at
# ResNet-18 depth, from random initialisation, on the demo's synthetic
# time-reversal data and schedule. The model is written out (not inherited
# as 'mmaction::_base_/models/tsn_r50.py') so that MMAction2's own tools
# load this config too (see configs/_base_/default_runtime.py).
_base_ = [
    '../_base_/datasets/synthetic_8x_2d.py',
    '../_base_/schedules/adamw_from_scratch_20e.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='Recognizer2D',
    backbone=dict(type='ResNet', pretrained=None, depth=18, norm_eval=False),
    cls_head=dict(type='TSNHead', num_classes=8, in_channels=512,
                  spatial_type='avg', consensus=dict(type='AvgConsensus',
                                                     dim=1),
                  dropout_ratio=0.0, init_std=0.01, average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCHW'),
    train_cfg=None,
    test_cfg=None)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(
    interval=1, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
