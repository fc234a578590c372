# STAN-conv, CLIP ViT-B/16, DiDeMo paragraph retrieval (the paper's best
# DiDeMo row). The DiDeMo recipe (temperature 0.05, 8 videos per GPU) with
# both towers at B/16. Memory: 8 videos x 64 frames of B/16 per GPU need
# the gradient checkpointing the base config turns on (docs/recipes.md,
# "Memory").
_base_ = ['stan-conv_vit-base-p32-res224-clip-pre_1x1x64_didemo-rgb.py']

model = dict(
    backbone=dict(arch='ViT-B/16'),
    text_encoder=dict(arch='ViT-B/16'))
