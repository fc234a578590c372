# Kinetics-400, 8 frames, 224x224 (MMAction2's video list format:
# "path/to/video.mp4 label" per line). See docs/recognition.md, "Data".
dataset_type = 'StanVideoDataset'
data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
ann_file_test = ann_file_val
num_frames = 8
num_classes = 400  # labels outside [0, num_classes) stop loading

file_client_args = dict(io_backend='disk')
# The video reader: 'decord' or 'pyav' (stan_mmaction.datasets.VideoInit;
# each needed frame decoded once). Another per run: --cfg-options
# train_dataloader.dataset.pipeline.0.backend=pyav (step 0 of every pipeline).
video_backend = 'decord'
train_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    # Uniform segment sampling: one random frame in each of 8 segments.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    # Test mode: the middle frame of each segment.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1,
         test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Multi-view testing: 4 temporal clips x 3 spatial crops, scores averaged
# by the head (average_clips='prob').
test_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    dict(type='UniformSample', clip_len=num_frames, num_clips=4,
         test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        num_classes=num_classes,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        num_classes=num_classes,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        num_classes=num_classes,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
