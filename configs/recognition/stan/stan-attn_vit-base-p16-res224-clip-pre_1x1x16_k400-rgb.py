# STAN-attn, CLIP ViT-B/16, Kinetics-400, 16x224x224 (the paper's 16-frame
# row). Twice the activations of 8 frames: 8 videos per GPU, gradients
# accumulated over 2 steps, so the batch stays 128 on 8 GPUs.
_base_ = [
    '../../_base_/models/stan_recognizer.py',
    '../../_base_/datasets/kinetics400_16x.py',
    '../../_base_/schedules/stan_adamw_30e.py',
    '../../_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=8)
optim_wrapper = dict(accumulative_counts=2)
