# DiDeMo paragraph-to-video retrieval: all sentences of a video joined into
# one paragraph of up to 77 tokens, 64 frames (train with gradient
# checkpointing). LocalizingMoments annotation files (train_data.json,
# test_data.json: [{"video": ..., "description": ...}]), videos converted to
# .mp4 as CLIP4Clip does. See docs/retrieval.md, "Retrieval data". Loaders
# and metric are MSR-VTT's; the pipelines are restated for 64 frames and 77
# tokens (MMEngine replaces lists whole and does not re-evaluate base
# variables).
_base_ = ['msrvtt_12x.py']

data_root = 'data/didemo'
ann_file_train = 'data/didemo/train_data.json'
ann_file_test = 'data/didemo/test_data.json'
video_prefix = 'data/didemo/videos'
ann_format = 'didemo'  # paragraphs; video names get .mp4
num_frames = 64
context_length = 77

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
    # The middle frame of each segment, short side 256 (the authors' DiDeMo
    # test resize; MSR-VTT and LSMDC use 224), center crop.
    dict(type='UniformSample', clip_len=num_frames, num_clips=1,
         test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='OpenCLIPTokenize', context_length=context_length),
    dict(type='PackActionInputs', collect_keys=('imgs', 'text'))
]

train_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_train,
        ann_format=ann_format,
        video_ext='.mp4',
        data_prefix=dict(video=video_prefix),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_test,
        ann_format=ann_format,
        video_ext='.mp4',
        data_prefix=dict(video=video_prefix),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
