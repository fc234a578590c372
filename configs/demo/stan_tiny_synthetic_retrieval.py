# The synthetic retrieval demo: a tiny randomly initialised CLIP (both
# towers) + STAN-attn trained from scratch on captions of a square moving
# one way, then another ("a small red square moves left, then up");
# stan_mmaction.datasets.make_synthetic_retrieval_dataset writes the data.
# Sibling: clip_meanp_tiny_synthetic_retrieval.py.
_base_ = [
    '../_base_/models/stan_retriever.py',
    '../_base_/schedules/adamw_from_scratch_20e.py',
    '../_base_/default_runtime.py'
]

data_root = 'data/synthetic_retrieval'
num_frames = 8
context_length = 32

model = dict(
    # K=2 of the tiny CLIP's 4 layers, as in the recognition demo.
    backbone=dict(arch='tiny', num_stan_layers=2,
                  pretrained=None, drop_path_rate=0.0),
    text_encoder=dict(arch='tiny', pretrained=None),
    # One process on its own schedule: the plain mean of the two directions.
    head=dict(temperature=0.05, reference_gpus=None))

file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=num_frames, num_clips=1),
    dict(type='DecordDecode'),
    # No flip: it would swap "left" and "right".
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='OpenCLIPTokenize', context_length=context_length),
    dict(type='PackActionInputs', collect_keys=('imgs', 'text'))
]
test_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=num_frames, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='OpenCLIPTokenize', context_length=context_length),
    dict(type='PackActionInputs', collect_keys=('imgs', 'text'))
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='VideoTextRetrievalDataset',
        ann_file=f'{data_root}/train_captions.json',
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='VideoTextRetrievalDataset',
        ann_file=f'{data_root}/test_captions.json',
        data_prefix=dict(video=data_root),
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='VideoTextRetrievalMetric', dsl=True)
test_evaluator = val_evaluator

# One warm-up epoch of the base's 20 (the base warms up for 2); the list is
# restated because MMEngine replaces lists whole.
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=20 - warmup_epochs, eta_min=0,
         by_epoch=True, begin=warmup_epochs, end=20,
         convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
