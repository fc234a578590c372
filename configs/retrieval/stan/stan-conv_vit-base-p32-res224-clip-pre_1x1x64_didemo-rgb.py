# STAN-conv, CLIP ViT-B/32, DiDeMo paragraph retrieval (the paper's best
# DiDeMo B/32 row): the attention config's recipe (64 frames, 77-token
# paragraphs, temperature 0.05, 8 videos per GPU, gradient checkpointing).
_base_ = ['stan-attn_vit-base-p32-res224-clip-pre_1x1x64_didemo-rgb.py']

model = dict(backbone=dict(temporal='conv'))
