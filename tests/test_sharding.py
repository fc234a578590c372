"""FSDP (and DeepSpeed) training: STAN's FSDP units, 2 CPU processes (gloo)
against one process on the whole batch, checkpoints the ordinary model
loads, kill + resume (docs/scaling.md)."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch
from conftest import (REPO_ROOT, call_main, process_state_kept,
                      start_until_file, subprocess_env, tiny_recognizer)

from stan_mmaction.engine.sharding import (fp32_output_modules,
                                           frozen_root_params, fsdp_units)

TESTS = osp.dirname(osp.abspath(__file__))
ZERO2_CFG = osp.join(
    REPO_ROOT, 'configs', 'recognition', 'stan',
    'stan-attn_vit-large-p14-res224-clip-pre_zero2_1x1x8_k400-rgb.py')
FSDP_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                    'stan_tiny_synthetic_fsdp.py')
PLAIN_CFG = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
           PYTHONPATH=TESTS + os.pathsep + REPO_ROOT)
# Parameters after 8 AdamW steps, FSDP (2 x 2 clips) vs one process (4
# clips): the same arithmetic with the gradient summed in another order, so
# they agree to float rounding (measured: max |diff| 7e-7 on weights of
# ~0.1). One exception: the key part of attention's in_proj_bias, whose
# true gradient is zero (softmax ignores a shift shared by all keys); its
# gradient is rounding noise, which Adam scales to steps of up to lr, so
# the two runs differ there by up to lr x steps (measured: 2.4e-5).
PARAM_ATOL = 2e-6
KEY_BIAS_ATOL = 1e-3 * 8  # the demo's peak lr x steps
LOSS_RTOL = 1e-5


def _names(model, modules):
    ids = {id(m) for m in modules}
    return [n for n, m in model.named_modules() if id(m) in ids]


def test_units_never_mix_frozen_and_trainable():
    model = tiny_recognizer(frozen_stages=0)
    units = fsdp_units(model)
    names = [
        'backbone.visual.conv1', 'backbone.visual.ln_pre',
        *[f'backbone.visual.transformer.resblocks.{i}' for i in range(4)],
        'backbone.stan_branch.layers.0', 'backbone.stan_branch.layers.1']
    assert _names(model, units) == names
    for unit in units:
        assert len({p.requires_grad for p in unit.parameters()}) == 1
    frozen = {id(p) for p in frozen_root_params(model, units)}
    assert [n for n, p in model.named_parameters() if id(p) in frozen] == [
        'backbone.visual.class_embedding',
        'backbone.visual.positional_embedding']
    # Everything else outside the units (the root unit) is trainable.
    inside = {id(p) for u in units for p in u.parameters()} | frozen
    root = [p for p in model.parameters() if id(p) not in inside]
    assert root and all(p.requires_grad for p in root)

    # Two frozen blocks: still one unit each (the same units), frozen and
    # in eval mode; nothing frozen -> no parameter left out.
    model = tiny_recognizer(frozen_stages=2)
    units = fsdp_units(model)
    assert _names(model, units) == names
    assert [u.training for u in units][:4] == [False] * 4
    model = tiny_recognizer(-1)
    assert frozen_root_params(model, fsdp_units(model)) == []


def test_wrapper_refuses_ignored_parameters_it_chooses_itself():
    """Before any sharding (no process group needed): the wrapper leaves
    the frozen root parameters out itself; a user's own list would clash."""
    from stan_mmaction.engine import StanFullyShardedDataParallel
    model = tiny_recognizer(frozen_stages=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match='chooses the ignored parameters'):
        StanFullyShardedDataParallel(
            model, ignored_modules=[model.backbone.visual.conv1])
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_wrapper_without_processes_names_what_to_run(monkeypatch):
    """MMAction2's test.py on a sharded config builds the wrapper in a
    process without a group: our message, not torch's, and the model is
    left as it was (no hooks added)."""
    import torch.distributed as dist

    from stan_mmaction.engine import StanFullyShardedDataParallel
    assert not dist.is_initialized()
    model = tiny_recognizer(frozen_stages=0)
    with pytest.raises(RuntimeError, match=r'FSDP needs distributed '
                       r'processes.*dist_test.sh CONFIG CHECKPOINT N'):
        StanFullyShardedDataParallel(
            model, mixed_precision=dict(param_dtype='bfloat16'))
    assert not model.cls_head._forward_hooks


def test_fp32_outputs_of_recognizers_and_retrievers():
    from mmaction.registry import MODELS
    model = tiny_recognizer(-1)
    assert fp32_output_modules(model) == [model.cls_head]
    retriever = MODELS.build(dict(
        type='StanVideoTextRetriever',
        backbone=dict(type='StanCLIPBackbone', arch='tiny'),
        text_encoder=dict(type='CLIPTextEncoder', arch='tiny'),
        head=dict(type='VideoTextRetrievalHead')))
    assert fp32_output_modules(retriever) == [retriever.backbone,
                                              retriever.text_encoder]


def torchrun(args, timeout=300):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
           '--nproc_per_node', '2', *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(ENV),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_fsdp_units_clipping_and_bf16_on_two_processes(tmp_path):
    out = str(tmp_path / 'case.json')
    res = torchrun([osp.join(TESTS, '_fsdp_case.py'), out])
    assert res.returncode == 0, res.stderr[-4000:]
    with open(out) as f:
        case = json.load(f)
    units = {u['name'].replace('_fsdp_wrapped_module.', ''):
             u['requires_grad'] for u in case['units']}
    # frozen_stages=1: the stem and block 0 frozen, each a unit; every
    # flat parameter uniform (FSDP itself refuses mixed ones unless
    # use_orig_params, which would then keep gradients for all of them).
    assert all(len(v) == 1 for v in units.values()), units
    assert units['backbone.visual.conv1'] == [False]
    assert units['backbone.visual.ln_pre'] == [False]
    assert units['backbone.visual.transformer.resblocks.0'] == [False]
    assert units['backbone.visual.transformer.resblocks.1'] == [True]
    assert units['backbone.stan_branch.layers.1'] == [True]
    assert units['(root)'] == [True]
    assert case['ignored'] == ['backbone.visual.class_embedding',
                               'backbone.visual.positional_embedding']
    assert case['frozen_with_grad'] == []
    # The whole-batch gradient norm, through FSDP's clip_grad_norm_
    # (StanFSDPStrategy); each rank's own shard norm, which mmengine's
    # FSDPStrategy would clip by, is another number on each rank.
    norm = case['grad_norm']
    assert norm['repaired'] == pytest.approx(norm['reference'], rel=1e-5)
    for shard in norm['per_shard']:
        assert shard < 0.95 * norm['reference']
    # The full optimizer state: exp_avg and exp_avg_sq of every parameter
    # (rank 0 holds it), as compat repair 9 makes them; torch's own code
    # on CPU leaves the last one gathered in both.
    states = case['optim_states_distinct']
    count = states['repaired'][1]  # every trainable tensor
    assert count > 50 and states['repaired'] == [count, count]
    assert states['torch'] == [0, count]
    # The wrapper drops the offload on CPU processes (rank 0 still saves).
    assert case['offload_on_cpu'] == [False, False, True]
    # bf16 compute with fp32 master weights and gradients, activation
    # checkpointing on: finite, and the loss near the fp32 one.
    bf16 = case['bf16']
    assert bf16['grads_finite']
    assert bf16['grad_dtypes'] == ['torch.float32']
    assert bf16['param_dtypes'] == ['torch.float32']
    assert bf16['loss'] == pytest.approx(bf16['fp32_loss'], rel=2e-2)
    assert bf16['loss'] != bf16['fp32_loss']  # bf16 did run


def _write_case_config(path, base, batch_size, grad_checkpointing=True):
    """A config over ``base``: deterministic clips (test-mode sampling:
    the same clips whichever process decodes them), clipping by a norm
    below the gradients' (so it acts at every step), the recording hook."""
    text = f'''
_base_ = [{base!r}]
custom_imports = dict(imports=['stan_mmaction', '_fsdp_case'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'), dict(type='RecordForFSDPTest'),
                dict(type='DistributedTeardownHook')]
model = dict(backbone=dict(frozen_stages=0,
                           grad_checkpointing={grad_checkpointing}))
pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=8, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(batch_size={batch_size},
                        dataset=dict(pipeline=pipeline))
optim_wrapper = dict(clip_grad=dict(max_norm=0.5, norm_type=2))
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(max_keep_ckpts=-1))
'''
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def _train_cmd(config, work, *extra, gpus=None):
    if gpus:
        return ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
                config, str(gpus), '--work-dir', work, '--seed', '0', *extra]
    return [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
            '--work-dir', work, '--seed', '0', *extra]


def _run(cmd, cwd):
    res = subprocess.run(cmd, cwd=cwd, env=subprocess_env(ENV),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


def _losses(work):
    with open(osp.join(work, 'losses.json')) as f:
        return dict((it, loss) for it, loss in json.load(f))  # last wins


def _state(work, name='epoch_2.pth'):
    ckpt = torch.load(osp.join(work, name), map_location='cpu',
                      weights_only=False)
    return ckpt


def _descendants(pid):
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _kill_all(proc):
    """SIGKILL the launcher and every process under it at once (torchrun
    starts its workers in sessions of their own)."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


@pytest.mark.slow
def test_fsdp_training_equals_one_process_and_resumes(demo_workspace,
                                                      tmp_path):
    fsdp_cfg = _write_case_config(tmp_path / 'fsdp.py', FSDP_CFG, 2)
    plain_cfg = _write_case_config(tmp_path / 'plain.py', PLAIN_CFG, 4)
    fsdp, plain, killed = (str(tmp_path / n) for n in ('f', 'p', 'k'))

    # 1. 2 processes x 2 clips with FSDP vs 1 process x 4 clips: 16 videos,
    # 4 iterations an epoch, 2 epochs.
    log = _run(_train_cmd(fsdp_cfg, fsdp, gpus=2), demo_workspace)
    assert 'FSDPStrategy' in log or 'Distributed training: True' in log
    assert 'Epoch(train) [2][4/4]' in log
    # The one-process reference in this process (tools/train.py's main).
    with process_state_kept():
        torch.set_num_threads(1)
        res = call_main('tools/train.py', _train_cmd(plain_cfg, plain)[2:],
                        cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]

    losses_f, losses_p = _losses(fsdp), _losses(plain)
    assert sorted(losses_f) == list(range(8)) == sorted(losses_p)
    for it in losses_f:
        assert losses_f[it] == pytest.approx(losses_p[it], rel=LOSS_RTOL)

    ckpt_f, ckpt_p = _state(fsdp), _state(plain)
    sd_f, sd_p = ckpt_f['state_dict'], ckpt_p['state_dict']
    assert sd_f.keys() == sd_p.keys()  # a full, ordinary state dict
    for key, value in sd_f.items():
        diff = (value - sd_p[key]).abs()
        if key.endswith('in_proj_bias'):
            q, k, v = diff.view(3, -1)
            assert float(k.max()) < KEY_BIAS_ATOL, key
            diff = torch.cat([q, v])
        assert float(diff.max()) < PARAM_ATOL, key
    # The stem stayed frozen (FSDP left class/positional embeddings out,
    # conv1 and ln_pre are frozen units).
    initial = torch.load(osp.join(plain, 'initial_stem.pt'))
    for key, value in initial.items():
        assert torch.equal(sd_f[key], value), key
        assert torch.equal(sd_p[key], value), key
    moved = sd_f['backbone.stan_branch.layers.0.spatial.mlp.c_fc.weight']
    assert not torch.equal(moved, _state(fsdp, 'epoch_1.pth')['state_dict'][
        'backbone.stan_branch.layers.0.spatial.mlp.c_fc.weight'])

    # 2. The checkpoint in the ordinary model (as tools/test.py, the demo
    # and search load it): the FSDP model's outputs after training.
    from _fsdp_case import probe_input

    from stan_mmaction.apis import init_model
    model = init_model(FSDP_CFG, osp.join(fsdp, 'epoch_2.pth'))
    with torch.no_grad():
        scores = model(probe_input(), mode='tensor')
    expected = torch.load(osp.join(fsdp, 'probe.pt'))
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)

    # 3. SIGKILL of every process after the first epoch's checkpoint, then
    # --resume: the same losses and the same weights, bit for bit.
    proc = start_until_file(_train_cmd(fsdp_cfg, killed, gpus=2),
                            osp.join(killed, 'last_checkpoint'),
                            cwd=demo_workspace, env_extra=ENV)
    _kill_all(proc)
    assert not osp.exists(osp.join(killed, 'epoch_2.pth'))
    log = _run(_train_cmd(fsdp_cfg, killed, '--resume', gpus=2),
               demo_workspace)
    assert 'Auto resumed from the latest checkpoint' in log
    assert _losses(killed) == losses_f
    sd_k = _state(killed)['state_dict']
    for key, value in sd_f.items():
        assert torch.equal(value, sd_k[key]), key


@pytest.mark.deepspeed
def test_deepspeed_strategy_builds_from_the_base_config():
    """Run by ``make test-deepspeed`` (DeepSpeed installed beside the
    pinned stack); DeepSpeed's own config class validates what the
    strategy will pass to ``deepspeed.initialize`` on GPUs."""
    import deepspeed
    from deepspeed.runtime.config import DeepSpeedConfig
    from mmengine.config import Config
    from mmengine.registry import STRATEGIES
    cfg = Config.fromfile(ZERO2_CFG)
    assert cfg.runner_type == 'StanFlexibleRunner'
    strategy = STRATEGIES.build(cfg.strategy)
    assert type(strategy).__name__ == 'DeepSpeedStrategy'
    config = dict(strategy.config,
                  train_micro_batch_size_per_gpu=cfg.train_dataloader[
                      'batch_size'])
    parsed = DeepSpeedConfig(config)
    assert parsed.zero_optimization_stage == 2
    assert parsed.zero_config.reduce_bucket_size == int(2e8)  # the plan's
    assert parsed.gradient_clipping == 5.0
    assert parsed.bfloat16_config.enabled
    assert parsed.train_micro_batch_size_per_gpu == 8
    assert deepspeed.__version__


def test_test_tool_runs_sharded_configs_with_the_ordinary_runner(
        monkeypatch, tmp_path):
    """tools/test.py on an FSDP (or DeepSpeed) config: the checkpoint is a
    full state dict of the ordinary model (its keys are the ordinary ones:
    test above), so it tests with the ordinary Runner, no process group."""
    from conftest import load_script
    from mmengine.config import Config
    tool = load_script('tools/test.py')
    for config in (FSDP_CFG, ZERO2_CFG):
        monkeypatch.setattr(sys, 'argv', ['test.py', config, 'ckpt.pth',
                                          '--work-dir', str(tmp_path)])
        cfg = Config.fromfile(config)
        assert cfg.runner_type == 'StanFlexibleRunner' and 'strategy' in cfg
        cfg = tool.merge_args(cfg, tool.parse_args())
        assert cfg.runner_type == 'StanRunner' and 'strategy' not in cfg
        assert cfg.load_from == 'ckpt.pth'
