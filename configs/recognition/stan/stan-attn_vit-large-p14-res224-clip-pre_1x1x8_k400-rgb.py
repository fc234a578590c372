# STAN-attn, CLIP ViT-L/14, Kinetics-400 (8 GPUs x 8 clips, gradient
# checkpointing to fit; same global batch via 2x accumulation).
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py']

model = dict(
    backbone=dict(arch='ViT-L/14', grad_checkpointing=True),
    cls_head=dict(in_channels=768))
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(accumulative_counts=2)
