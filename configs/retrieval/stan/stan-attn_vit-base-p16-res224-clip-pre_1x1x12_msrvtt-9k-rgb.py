# STAN-attn, CLIP ViT-B/16, MSR-VTT 9k / 1k-A; as the authors' B/16 run:
# temperature 0.02, 8 videos per GPU (global batch 64 on 8 GPUs).
_base_ = ['stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py']

model = dict(
    backbone=dict(arch='ViT-B/16'),
    text_encoder=dict(arch='ViT-B/16'),
    head=dict(temperature=0.02))
train_dataloader = dict(batch_size=8)
auto_scale_lr = dict(base_batch_size=64)
