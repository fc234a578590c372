# STAN-attn, CLIP ViT-B/32, DiDeMo paragraph retrieval: 64 frames, 77-token
# paragraphs, gradient checkpointing on both towers; the authors' recipe
# (docs/recipes.md): temperature 0.05, 8 videos per GPU, 20 epochs.
_base_ = [
    '../../_base_/models/stan_retriever.py',
    '../../_base_/datasets/didemo_64x.py',
    '../../_base_/schedules/stan_retrieval_didemo_20e.py',
    '../../_base_/default_runtime.py',
]

model = dict(backbone=dict(grad_checkpointing=True),
             text_encoder=dict(grad_checkpointing=True),
             head=dict(temperature=0.05))
train_dataloader = dict(batch_size=8)
