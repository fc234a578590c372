# STAN-attn, CLIP ViT-B/16, LSMDC (the paper's B/16 LSMDC row): the LSMDC
# recipe with the authors' B/16 settings (temperature 0.02, 8 videos per
# GPU, global batch 64 on 8 GPUs, as their MSR-VTT B/16 run).
_base_ = ['stan-attn_vit-base-p32-res224-clip-pre_1x1x12_lsmdc-rgb.py']

model = dict(
    backbone=dict(arch='ViT-B/16'),
    text_encoder=dict(arch='ViT-B/16'),
    head=dict(temperature=0.02))
train_dataloader = dict(batch_size=8)
auto_scale_lr = dict(base_batch_size=64)
