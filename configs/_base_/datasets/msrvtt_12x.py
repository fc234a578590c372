# MSR-VTT, 9k training split, 1k-A test (JSFUSION), 12 frames, 224x224,
# captions of 32 tokens. Annotations in MMAction2's VideoTextDataset /
# CLIP4Clip JSON format ({"video7020.mp4": ["caption", ...]}); see
# docs/retrieval.md, "Retrieval data".
dataset_type = 'VideoTextRetrievalDataset'
data_root = 'data/msrvtt'
ann_file_train = 'data/msrvtt/train_9k.json'
ann_file_test = 'data/msrvtt/test_JSFUSION.json'
video_prefix = 'data/msrvtt/videos'
ann_format = 'json'
num_frames = 12
context_length = 32

file_client_args = dict(io_backend='disk')
# The video reader: 'decord' or 'pyav' (stan_mmaction.datasets.VideoInit;
# each needed frame decoded once). Another per run: --cfg-options
# train_dataloader.dataset.pipeline.0.backend=pyav (step 0 of every pipeline).
video_backend = 'decord'
train_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    # Uniform segment sampling: one random frame in each segment.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='OpenCLIPTokenize', context_length=context_length),
    dict(type='PackActionInputs', collect_keys=('imgs', 'text'))
]
test_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    # The middle frame of each segment, short side 224, center crop.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1,
         test_mode=True),
    dict(type='VideoDecode'),
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
