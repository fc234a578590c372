# LSMDC, 12 frames, captions of 32 tokens: MSR-VTT's pipelines, loaders and
# metric with LSMDC's files and parser. Tab-separated LSMDC16 annotation
# files (clip id first, sentence last); clip 1001_Flight_00.00.53.430-...
# is read from videos/1001_Flight/<clip id>.avi. See docs/retrieval.md,
# "Retrieval data".
_base_ = ['msrvtt_12x.py']

data_root = 'data/lsmdc'
ann_file_train = 'data/lsmdc/LSMDC16_annos_training.csv'
ann_file_test = 'data/lsmdc/LSMDC16_challenge_1000_publictect.csv'
video_prefix = 'data/lsmdc/videos'
ann_format = 'lsmdc'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, ann_format=ann_format,
                 data_prefix=dict(video=video_prefix)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_test, ann_format=ann_format,
                 data_prefix=dict(video=video_prefix)))
test_dataloader = val_dataloader
