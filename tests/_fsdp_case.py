"""FSDP on CPU processes (gloo), for tests/test_sharding.py.

As a module (imported by the training configs the tests write, through
``custom_imports``): hooks that record what the tests compare, identically
in an FSDP run (``tools/dist_train.sh``) and a single-process run
(``tools/train.py``).

As a script (``python -m torch.distributed.run --nproc_per_node 2
tests/_fsdp_case.py OUT.json``): the wrapper's units, gradient clipping
through FSDP (and without the repair), bf16 mixed precision with activation
checkpointing; rank 0 writes what it measured to OUT.json.
"""
import json
import os.path as osp
import sys

import torch
import torch.distributed as dist
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

#: A fixed input for the outputs a checkpoint must reproduce:
#: (N, num_clips, C, T, H, W) as Recognizer3D takes after preprocessing.
PROBE_SHAPE = (2, 1, 3, 8, 32, 32)
STEM = ('backbone.visual.class_embedding',
        'backbone.visual.positional_embedding', 'backbone.visual.conv1.weight',
        'backbone.visual.ln_pre.weight', 'backbone.visual.ln_pre.bias')


def probe_input() -> torch.Tensor:
    return torch.randn(PROBE_SHAPE, generator=torch.Generator().manual_seed(7))


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


@HOOKS.register_module()
class RecordForFSDPTest(Hook):
    """Writes to the work dir (rank 0): ``losses.json``, the loss of every
    iteration averaged over the ranks (= the loss of the whole batch: equal
    shares); ``probe.pt``, the model's scores on :func:`probe_input` after
    training (eval mode, run by every rank, as FSDP needs);
    ``initial_stem.pt``, the stem before training (single process only)."""

    priority = 'LOWEST'

    def before_train(self, runner):
        if _world() == 1:
            model = runner.model
            state = {k: v.detach().clone() for k, v in
                     model.state_dict().items() if k in STEM}
            torch.save(state, osp.join(runner.work_dir, 'initial_stem.pt'))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        loss = outputs['loss'].detach().clone().double()
        if _world() > 1:
            dist.all_reduce(loss)
            loss /= _world()
        if runner.rank == 0:
            path = osp.join(runner.work_dir, 'losses.json')
            losses = []
            if osp.exists(path):
                with open(path) as f:
                    losses = json.load(f)
            losses.append([runner.iter, float(loss)])
            with open(path, 'w') as f:
                json.dump(losses, f)

    def after_train(self, runner):
        model = runner.model
        model.eval()
        with torch.no_grad():
            scores = model(probe_input(), mode='tensor')
        if runner.rank == 0:
            torch.save(scores, osp.join(runner.work_dir, 'probe.pt'))


# ---------------------------------------------------------------------------
# the script
# ---------------------------------------------------------------------------
def build_tiny(frozen_stages=1, grad_checkpointing=False):
    from conftest import tiny_recognizer  # (this script's folder)
    model = tiny_recognizer(frozen_stages,
                            grad_checkpointing=grad_checkpointing)
    with torch.no_grad():  # the zero-initialised temporal projections
        for name, p in model.named_parameters():
            if 'temporal_fc' in name:
                p.normal_(0, 0.02)
    return model


def global_batch(world):
    gen = torch.Generator().manual_seed(3)
    videos = torch.randn(2 * world, 3, 8, 32, 32, generator=gen)
    labels = torch.arange(2 * world) % 8
    return videos, labels


def loss_of(model, videos, labels):
    """Through the model's ``forward`` (an FSDP root gathers its own
    parameters there)."""
    from mmaction.structures import ActionDataSample
    samples = [ActionDataSample().set_gt_label(int(label))
               for label in labels]
    return model(videos[:, None], samples, mode='loss')['loss_cls']


def main(out_path):
    from stan_mmaction import compat
    from stan_mmaction.engine.sharding import (StanFullyShardedDataParallel,
                                               _fsdp_clip_norm,
                                               flat_param_report)
    compat.apply_all()
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    videos, labels = global_batch(world)
    mine = slice(2 * rank, 2 * rank + 2)
    result = {}

    # 1. units: uniform requires_grad, frozen ones get no gradient.
    ref = build_tiny()
    fsdp = StanFullyShardedDataParallel(build_tiny(), device_id=rank)
    result['units'] = [dict(r, requires_grad=sorted(r['requires_grad']))
                       for r in flat_param_report(fsdp)]
    ignored = {id(p) for p in fsdp._ignored_params}
    result['ignored'] = sorted(n for n, p in fsdp.module.named_parameters()
                               if id(p) in ignored)

    # 2. gradient norm: whole-batch reference vs FSDP with and without
    # StanFSDPStrategy's clipping (the same gradients, clipped by a norm
    # far below theirs).
    loss_of(ref, videos, labels).backward()
    ref_norm = torch.nn.utils.clip_grad_norm_(
        [p for p in ref.parameters() if p.grad is not None], 1e9)
    loss_of(fsdp, videos[mine], labels[mine]).backward()
    params = [p for p in fsdp.parameters() if p.grad is not None]
    shard_norm = torch.nn.utils.clip_grad_norm_(params, 1e9)
    repaired = _fsdp_clip_norm(fsdp)(params, max_norm=1e9)
    shard_norms = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(shard_norms, shard_norm.reshape(()))
    result['grad_norm'] = dict(reference=float(ref_norm),
                               repaired=float(repaired),
                               per_shard=[float(n) for n in shard_norms])
    frozen_grads = [n for n, p in fsdp.named_parameters()
                    if not p.requires_grad and p.grad is not None]
    result['frozen_with_grad'] = frozen_grads

    # 3. the full optimizer state FSDPStrategy saves (state_dict_cfg='full':
    # offload to CPU), with compat repair 9 and without it.
    from mmengine.optim import build_optim_wrapper
    from torch.distributed.fsdp import (FullOptimStateDictConfig,
                                        FullStateDictConfig)
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import StateDictType, _optim_utils
    FSDP.set_state_dict_type(
        fsdp, StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(rank0_only=True, offload_to_cpu=True),
        FullOptimStateDictConfig(rank0_only=True, offload_to_cpu=True))
    wrapper = build_optim_wrapper(fsdp, dict(
        optimizer=dict(type='AdamW', lr=1e-3)))
    wrapper.step()  # the gradients of part 2
    repaired = _optim_utils._unflatten_orig_param_states
    states = {}
    original = compat._UNFLATTEN_ORIG_PARAM_STATES[0]
    for label, unflatten in (('repaired', repaired), ('torch', original)):
        _optim_utils._unflatten_orig_param_states = unflatten
        osd = FSDP.optim_state_dict(fsdp, wrapper.optimizer)
        held = osd.get('state', {})  # rank 0's (rank0_only)
        states[label] = sum(not torch.equal(st['exp_avg'], st['exp_avg_sq'])
                            for st in held.values()), len(held)
    _optim_utils._unflatten_orig_param_states = repaired
    result['optim_states_distinct'] = states
    # What FSDPStrategy sets through the wrapper (state_dict_cfg='full'):
    # on CPU processes without the offload (see the wrapper).
    StanFullyShardedDataParallel.set_state_dict_type(
        fsdp, StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(rank0_only=True, offload_to_cpu=True),
        FullOptimStateDictConfig(rank0_only=True, offload_to_cpu=True))
    settings = FSDP.get_state_dict_type(fsdp)
    result['offload_on_cpu'] = [
        settings.state_dict_config.offload_to_cpu,
        settings.optim_state_dict_config.offload_to_cpu,
        settings.state_dict_config.rank0_only]

    # 4. bf16 mixed precision + activation checkpointing (the GPU configs'
    # setting), against the fp32 loss.
    mp = StanFullyShardedDataParallel(
        build_tiny(grad_checkpointing=True), device_id=rank,
        mixed_precision=dict(param_dtype='bfloat16',
                             reduce_dtype='float32',
                             buffer_dtype='float32'))
    mp.train()
    loss = loss_of(mp, videos[mine], labels[mine])
    loss.backward()
    grads = [p.grad for p in mp.parameters() if p.grad is not None]
    fp32_loss = loss_of(ref, videos[mine], labels[mine])
    result['bf16'] = dict(
        loss=float(loss), fp32_loss=float(fp32_loss),
        grads_finite=all(bool(torch.isfinite(g).all()) for g in grads),
        grad_dtypes=sorted({str(g.dtype) for g in grads}),
        param_dtypes=sorted({str(p.dtype) for p in mp.parameters()}))
    if rank == 0:
        with open(out_path, 'w') as f:
            json.dump(result, f, indent=1)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    torch.set_num_threads(1)
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    main(sys.argv[1])
