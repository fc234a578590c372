# STAN-attn, CLIP ViT-L/14, SSv2 (see stan_vitl14_k400.py for the batch).
_base_ = ['stan_vitb16_ssv2.py']

model = dict(
    backbone=dict(arch='ViT-L/14', grad_checkpointing=True),
    cls_head=dict(in_channels=768))
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(accumulative_counts=2)
