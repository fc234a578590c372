# LSMDC, 12 frames, captions of 32 tokens. Tab-separated LSMDC16 annotation
# files (clip id first, sentence last); clip 1001_Flight_00.00.53.430-...
# is read from videos/1001_Flight/<clip id>.avi. See README,
# "Retrieval data".
dataset_type = 'VideoTextRetrievalDataset'
data_root = 'data/lsmdc'
ann_file_train = 'data/lsmdc/LSMDC16_annos_training.csv'
ann_file_test = 'data/lsmdc/LSMDC16_challenge_1000_publictect.csv'
video_prefix = 'data/lsmdc/videos'
ann_format = 'lsmdc'
num_frames = 12
context_length = 32

file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(type='DecordInit', **file_client_args),
    # Uniform segment sampling: one random frame in each segment.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='OpenCLIPTokenize', context_length=context_length),
    dict(type='PackActionInputs', collect_keys=('imgs', 'text'))
]
test_pipeline = [
    dict(type='DecordInit', **file_client_args),
    # The middle frame of each segment, short side 224, center crop.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='OpenCLIPTokenize', context_length=context_length),
    dict(type='PackActionInputs', collect_keys=('imgs', 'text'))
]

train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        ann_format=ann_format,
        data_prefix=dict(video=video_prefix),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        ann_format=ann_format,
        data_prefix=dict(video=video_prefix),
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader

# t2v and v2t R@1/5/10, MdR, MnR, plus dual-softmax (DSL) re-scored ones.
val_evaluator = dict(type='VideoTextRetrievalMetric', dsl=True)
test_evaluator = val_evaluator
