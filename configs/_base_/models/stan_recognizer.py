# STAN video recognizer: MMAction2's Recognizer3D, StanCLIPBackbone, and a
# linear head over the video embedding. Leaf configs set arch, frames,
# temporal variant, pretrained weights and num_classes.
# CLIP normalisation on 0-255 pixels (= stan_mmaction.models.CLIP_MEAN/STD).
# The clip length is the pipeline's clip_len (configs/_base_/datasets/).
clip_mean = [122.771, 116.746, 104.093]
clip_std = [68.500, 66.632, 70.323]

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='StanCLIPBackbone',
        arch='ViT-B/16',
        num_stan_layers=4,
        temporal='attn',
        pretrained='openai',
        drop_path_rate=0.1,
        out='proj'),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes=400,
        in_channels=512,
        dropout_ratio=0.5,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=clip_mean,
        std=clip_std,
        format_shape='NCTHW'))
