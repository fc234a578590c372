"""Repair 7: cpu_distributed.

Breakage: mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and
wraps models in DDP with ``device_ids``, so ``tools/dist_train.sh`` fails on
machines without CUDA. -> :func:`patch_cpu_distributed` (gloo, no device ids,
only when CUDA is unavailable)

Detected by: CUDA is unavailable (the launcher and DDP are then patched for
gloo).

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_cpu_ddp_drops_device_ids,
test_dist_launcher_fails_without_compat_on_cpu.
"""


def _init_dist_pytorch_cpu(backend='nccl', init_backend='torch', **kwargs):
    import torch.distributed as torch_dist
    if init_backend != 'torch':
        raise ValueError('stan_mmaction runs CPU-only distributed training '
                         f'with init_backend="torch", got {init_backend!r}')
    if backend == 'nccl':
        backend = 'gloo'  # NCCL needs GPUs
    torch_dist.init_process_group(backend=backend, **kwargs)


def _ddp_init_cpu(self, module, detect_anomalous_params: bool = False,
                  **kwargs):
    import torch
    if all(p.device.type == 'cpu' for p in module.parameters()):
        kwargs.pop('device_ids', None)
        kwargs.pop('output_device', None)
    torch.nn.parallel.DistributedDataParallel.__init__(
        self, module=module, **kwargs)
    self.detect_anomalous_params = detect_anomalous_params


def patch_cpu_distributed() -> bool:
    import torch
    if torch.cuda.is_available():
        return False
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers.distributed import MMDistributedDataParallel
    if dist_utils._init_dist_pytorch is _init_dist_pytorch_cpu:
        return False
    dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu
    MMDistributedDataParallel.__init__ = _ddp_init_cpu
    return True
