# FSDP (fully sharded data parallel) through MMEngine's FlexibleRunner:
# parameters, gradients and AdamW states sharded over the GPUs, bf16
# compute with fp32 master weights and fp32 gradient reduction.
# `tools/train.py` / `tools/dist_train.sh` build the runner from
# `runner_type`. StanFSDPStrategy: FSDPStrategy clipping by the whole
# gradient's norm, resuming optimizer states, and running without CUDA
# (stan_mmaction/engine/sharding.py). Leaf configs using this base set
# `optim_wrapper = dict(type='OptimWrapper')`: FSDP's mixed precision
# replaces AMP autocast and its gradient scaler (bf16 needs no scaling).
# docs/scaling.md; the units: stan_mmaction/engine/sharding.py.
# Leaf configs set `runner_type = 'StanFlexibleRunner'` (FlexibleRunner
# with our resume): the default runtime's 'StanRunner' is in another base,
# and MMEngine refuses a key two bases set.
strategy = dict(
    type='StanFSDPStrategy',
    model_wrapper=dict(
        # Each CLIP block, each STAN layer and the frozen stem are units of
        # their own: frozen and trainable weights never share a flat
        # parameter (no gradient memory on frozen weights).
        type='StanFullyShardedDataParallel',
        sharding_strategy='FULL_SHARD',
        mixed_precision=dict(param_dtype='bfloat16',
                             reduce_dtype='float32',
                             buffer_dtype='float32')),
    # One full checkpoint (rank 0 writes it) that the ordinary model loads:
    # tools/test.py, the demo and search use it as any other checkpoint.
    state_dict_cfg='full')
