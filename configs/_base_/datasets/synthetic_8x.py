# The synthetic time-reversal recognition data of the demos
# (stan_mmaction.datasets.synthetic; `make demo` writes it to data_root): 8
# classes, 8 frames of 32x32, NCTHW clips; loaders, evaluator, logging.
# Used by configs/demo/ and by the MMAction2 models of configs/compare/
# (2D models restate the pipelines for NCHW frames).
data_root = 'data/synthetic'
num_frames = 8

file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=num_frames, num_clips=1),
    dict(type='DecordDecode'),
    # No horizontal flip: it would turn "move_right" into "move_left".
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=num_frames, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Batches of 16: twice the updates of 32 at the same cost per epoch (32
# reached 84% in 20 epochs, 16 reached 99-100%).
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='StanVideoDataset',
        num_classes=8,
        ann_file=f'{data_root}/train_list_videos.txt',
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='StanVideoDataset',
        num_classes=8,
        ann_file=f'{data_root}/val_list_videos.txt',
        data_prefix=dict(video=data_root),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
