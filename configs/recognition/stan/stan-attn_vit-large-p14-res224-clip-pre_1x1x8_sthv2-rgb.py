# STAN-attn, CLIP ViT-L/14, SSv2 (the batch as in the L/14 Kinetics-400
# config beside this file).
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_sthv2-rgb.py']

model = dict(
    backbone=dict(arch='ViT-L/14', grad_checkpointing=True),
    cls_head=dict(in_channels=768))
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(accumulative_counts=2)
