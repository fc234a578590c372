# Kinetics-400 at 16 frames: the 8-frame data of kinetics400_8x.py with
# clip_len 16 in every pipeline (step 1, UniformSample); views, sizes and
# loaders as there. See docs/recognition.md, "Data".
_base_ = ['kinetics400_8x.py']

num_frames = 16
train_pipeline = _base_.train_pipeline
val_pipeline = _base_.val_pipeline
test_pipeline = _base_.test_pipeline
train_pipeline[1]['clip_len'] = num_frames
val_pipeline[1]['clip_len'] = num_frames
test_pipeline[1]['clip_len'] = num_frames

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
