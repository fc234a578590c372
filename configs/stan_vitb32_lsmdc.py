# STAN-attn, CLIP ViT-B/32, LSMDC, 12 frames, captions of 32 tokens.
_base_ = [
    '_base_/models/stan_retriever.py', '_base_/datasets/lsmdc_12x.py',
    '_base_/schedules/stan_retrieval_5e.py', '_base_/default_runtime.py'
]
