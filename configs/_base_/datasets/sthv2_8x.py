# Something-Something V2, 8 frames, 224x224 (MMAction2's video list
# format). See docs/recognition.md, "Data".
_base_ = ['kinetics400_8x.py']

data_root = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
num_classes = 174

file_client_args = dict(io_backend='disk')
# The video reader: 'decord' or 'pyav' (stan_mmaction.datasets.VideoInit;
# each needed frame decoded once). Another per run: --cfg-options
# train_dataloader.dataset.pipeline.0.backend=pyav (step 0 of every pipeline).
video_backend = 'decord'
# No horizontal flip: SSv2 labels such as "Pushing something from left to
# right" change meaning under a flip. (MMAction2's Flip takes a
# flip_label_map of swapped class ids if you want flips with relabelling.)
train_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    dict(type='UniformSample', clip_len=8, num_clips=1),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# 2 temporal clips x 3 crops at test time.
test_pipeline = [
    dict(type='VideoInit', backend=video_backend, **file_client_args),
    dict(type='UniformSample', clip_len=8, num_clips=2, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root),
                 num_classes=num_classes, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 num_classes=num_classes))
test_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 num_classes=num_classes, pipeline=test_pipeline))
