# FSDP (fully sharded data parallel) through MMEngine's FlexibleRunner:
# parameters, gradients and AdamW states sharded over the GPUs, bf16
# compute with fp32 master weights and fp32 gradient reduction.
# `tools/train.py` / `tools/dist_train.sh` build the FlexibleRunner from
# `runner_type`. Leaf configs using this base set
# `optim_wrapper = dict(type='OptimWrapper')`: FSDP's mixed precision
# replaces AMP autocast and its gradient scaler (bf16 needs no scaling).
# docs/scaling.md; the units: stan_mmaction/engine/sharding.py.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
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
