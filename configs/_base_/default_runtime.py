# The runtime of every config of ours: MMAction2's default runtime
# (configs/_base_/default_runtime.py of mmaction2 1.2.0) written out here
# rather than inherited as 'mmaction::_base_/default_runtime.py', so that
# the configs load with no `pkg::` resolution: MMAction2's own tools
# (mmaction/.mim/tools/train.py, what `mim train` runs) read bases before
# `custom_imports` can repair MMEngine's `pkg_resources` lookup (gone in
# setuptools >= 82). Plus the plugin import every config of ours needs.
default_scope = 'mmaction'
custom_imports = dict(imports=['stan_mmaction'], allow_failed_imports=False)
# MMEngine's Runner with our resume (the newest checkpoint when
# last_checkpoint is missing) and CPU distributed training
# (stan_mmaction/engine/runner.py).
runner_type = 'StanRunner'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep the last 3 epoch checkpoints besides the best one;
    # last_checkpoint written atomically.
    checkpoint=dict(type='StanCheckpointHook', interval=1, save_best='auto',
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False

# RNG states go into checkpoints: a resumed run continues exactly; the
# processes of a finished distributed run end together.
custom_hooks = [dict(type='RNGStateHook'),
                dict(type='DistributedTeardownHook')]
