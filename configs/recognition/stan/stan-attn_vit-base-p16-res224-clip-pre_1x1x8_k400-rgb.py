# STAN-attn, CLIP ViT-B/16 (OpenAI weights), Kinetics-400, 8x224x224.
_base_ = [
    '../../_base_/models/stan_recognizer.py',
    '../../_base_/datasets/kinetics400_8x.py',
    '../../_base_/schedules/stan_adamw_30e.py',
    '../../_base_/default_runtime.py',
]
