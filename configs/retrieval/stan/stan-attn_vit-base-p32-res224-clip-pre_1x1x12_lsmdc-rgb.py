# STAN-attn, CLIP ViT-B/32, LSMDC, 12 frames, captions of 32 tokens; the
# authors' recipe (docs/recipes.md): lr 1e-6, weight decay 0.2, 100 epochs.
_base_ = [
    '../../_base_/models/stan_retriever.py',
    '../../_base_/datasets/lsmdc_12x.py',
    '../../_base_/schedules/stan_retrieval_lsmdc_100e.py',
    '../../_base_/default_runtime.py',
]
