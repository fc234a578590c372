# STAN-attn, CLIP ViT-B/32 (OpenAI weights), MSR-VTT 9k train / 1k-A test,
# 12 frames, captions of 32 tokens, temperature 0.01; the authors' recipe
# (docs/recipes.md).
_base_ = [
    '../../_base_/models/stan_retriever.py',
    '../../_base_/datasets/msrvtt_12x.py',
    '../../_base_/schedules/stan_retrieval_msrvtt_10e.py',
    '../../_base_/default_runtime.py',
]
