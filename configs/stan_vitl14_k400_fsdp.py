# STAN-attn, CLIP ViT-L/14, Kinetics-400 with FSDP (README "Scaling out"):
# the recipe of stan_vitl14_k400.py (8 GPUs x 8 clips, 2x accumulation,
# gradient checkpointing) with parameters, gradients and AdamW states
# sharded over the GPUs and bf16 compute (the strategy's mixed precision
# replaces AMP). `bash tools/dist_train.sh configs/stan_vitl14_k400_fsdp.py 8`
_base_ = ['stan_vitl14_k400.py', '_base_/strategies/fsdp.py']

optim_wrapper = dict(type='OptimWrapper')
