# DeepSpeed ZeRO-2 (optimizer states and gradients sharded, parameters
# replicated) through MMEngine's FlexibleRunner. Needs `pip install
# deepspeed` and CUDA GPUs; not run by this project's tests (no GPU): the
# tests build the strategy from this file wherever `deepspeed` imports
# (docs/scaling.md). Leaf configs using this base set
# `optim_wrapper = dict(type='DeepSpeedOptimWrapper', optimizer=...)`.
# Leaf configs set `runner_type = 'StanFlexibleRunner'` (FlexibleRunner
# with our resume): the default runtime's 'StanRunner' is in another base,
# and MMEngine refuses a key two bases set.
strategy = dict(
    type='DeepSpeedStrategy',
    # bf16 compute, fp32 master weights and optimizer states.
    bf16=dict(enabled=True),
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=int(2e8),
        reduce_scatter=True,
        # 2e8 elements: the bucket tools/analysis_tools/memory_plan.py plans
        reduce_bucket_size=int(2e8),
        overlap_comm=True,
        contiguous_gradients=True),
    # MMEngine fills train_micro_batch_size_per_gpu from the dataloader and
    # gradient_accumulation_steps from optim_wrapper.accumulative_counts.
    gradient_clipping=5.0,
    # ZeRO-2 checkpoints are sharded folders; `zero_to_fp32.py` (shipped in
    # each one by DeepSpeed) consolidates them for tools/test.py.
    exclude_frozen_parameters=False)
