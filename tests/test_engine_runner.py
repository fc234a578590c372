"""Our behaviour as registered engine parts (stan_mmaction/engine/runner.py,
hooks.py, sharding.py): resume from the newest checkpoint, an atomic
``last_checkpoint``, distributed training without CUDA, FSDP clipping by
the whole norm and its optimizer states on resume; and importing the
plugin leaves MMEngine's own runners, hooks and strategies alone (only
compat repairs change upstream code)."""
import inspect
import json
import os
import socket
import sys
import time
import types

import pytest
import torch
from conftest import run_python
from mmengine.config import Config

from stan_mmaction import compat
from stan_mmaction.engine import (StanCheckpointHook,
                                  StanDistributedDataParallel,
                                  StanFSDPStrategy, find_latest_checkpoint)
from stan_mmaction.registry import config_path

#: Where the compat repairs replace upstream functions (module, name):
#: nothing else of MMEngine, MMAction2 or torch's FSDP may be ours.
REPAIRED = {
    ('mmengine.fileio.backends.local_backend', 'LocalBackend.put'),
    ('mmengine.fileio.backends.local_backend', 'LocalBackend.put_text'),
}


def _ours(obj) -> bool:
    return getattr(obj, '__module__', '').startswith('stan_mmaction')


def test_importing_the_plugin_changes_upstream_only_where_it_repairs():
    """Every function of every loaded mmengine / mmaction / torch FSDP
    module, and every method of their classes, is upstream's, except
    those compat repairs replace (repair 6 here; the others replace module
    functions, listed by where they live)."""
    import mmengine.runner  # noqa: F401

    import stan_mmaction  # noqa: F401
    repair_modules = {m.__name__ for _, m, _ in compat.REPAIRS}
    found = set()
    for modname, module in list(sys.modules.items()):
        if not modname.startswith(('mmengine', 'mmaction',
                                   'torch.distributed.fsdp')):
            continue
        for name, value in list(vars(module).items()):
            if inspect.isfunction(value) and _ours(value):
                found.add((modname, name, value.__module__))
            if inspect.isclass(value) and value.__module__ == modname:
                for attr, member in vars(value).items():
                    if inspect.isfunction(member) and _ours(member):
                        found.add((modname, f'{name}.{attr}',
                                   member.__module__))
    assert found, 'the repairs replace upstream functions on this stack'
    for modname, name, where in found:
        assert (modname, name) in REPAIRED or where in repair_modules, (
            f'{modname}.{name} is replaced by {where}, which is not a '
            'compat repair')
    # In particular, the behaviours now in engine parts are upstream's.
    from mmengine._strategy.fsdp import FSDPStrategy
    from mmengine.hooks import checkpoint_hook
    from mmengine.runner import FlexibleRunner, Runner, checkpoint
    from mmengine.runner import runner as runner_module
    for fn in (Runner.load_or_resume, Runner.setup_env, Runner.wrap_model,
               FlexibleRunner.load_or_resume,
               FSDPStrategy.build_optim_wrapper,
               FSDPStrategy.load_optim_state_dict,
               runner_module.find_latest_checkpoint,
               checkpoint.find_latest_checkpoint):
        assert fn.__module__.startswith('mmengine'), fn
    assert 'open' not in vars(checkpoint_hook)


def test_our_configs_select_the_engine_parts():
    cfg = Config.fromfile(config_path('demo/stan_tiny_synthetic.py'))
    assert cfg.runner_type == 'StanRunner'
    assert cfg.default_hooks.checkpoint.type == 'StanCheckpointHook'
    fsdp = Config.fromfile(config_path('demo/stan_tiny_synthetic_fsdp.py'))
    assert fsdp.runner_type == 'StanFlexibleRunner'
    assert fsdp.strategy.type == 'StanFSDPStrategy'
    from mmaction.registry import HOOKS, RUNNERS
    from mmengine.registry import STRATEGIES

    from stan_mmaction.engine import StanFlexibleRunner, StanRunner
    assert RUNNERS.get('StanRunner') is StanRunner
    assert RUNNERS.get('StanFlexibleRunner') is StanFlexibleRunner
    assert HOOKS.get('StanCheckpointHook') is StanCheckpointHook
    assert STRATEGIES.get('StanFSDPStrategy') is StanFSDPStrategy


# resume ----------------------------------------------------------------------
def _work_dir_with_checkpoints(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for n, age in ((1, 30), (2, 20), (10, 40)):  # epoch_2 written last
        path = work / f'epoch_{n}.pth'
        path.write_bytes(b'x')
        os.utime(path, (time.time() - age, time.time() - age))
    (work / 'best_acc.pth').write_bytes(b'x')
    return work


def test_mmengine_resume_finds_nothing_without_last_checkpoint(tmp_path):
    from mmengine.runner.checkpoint import find_latest_checkpoint as plain
    work = _work_dir_with_checkpoints(tmp_path)
    assert plain(str(work)) is None  # a fresh start over epoch_1..10


def test_resume_falls_back_to_the_newest_checkpoint(tmp_path):
    work = _work_dir_with_checkpoints(tmp_path)
    newest = str(work / 'epoch_2.pth')
    assert find_latest_checkpoint(str(work)) == newest  # missing
    (work / 'last_checkpoint').write_text('')
    assert find_latest_checkpoint(str(work)) == newest  # empty
    (work / 'last_checkpoint').write_text(str(work / 'epoch_9.pth'))
    assert find_latest_checkpoint(str(work)) == newest  # stale
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    assert find_latest_checkpoint(str(work)) == str(
        work / 'epoch_1.pth')  # a valid one is followed
    assert find_latest_checkpoint(str(tmp_path / 'none')) is None


def _quiet():
    return types.SimpleNamespace(info=lambda *args, **kwargs: None)


def _runner_stub(work, resume=True, load_from=None):
    """A StanRunner holding only what ``load_or_resume`` reads, recording
    what it calls: the checkpoint resumed from or loaded."""
    from stan_mmaction.engine import StanRunner
    calls = []
    runner = StanRunner.__new__(StanRunner)
    runner.__dict__.update(
        _has_loaded=False, _resume=resume, _load_from=load_from,
        _work_dir=str(work), logger=_quiet(),
        resume=lambda path: calls.append(('resume', path)),
        load_checkpoint=lambda path: calls.append(('load', path)))
    runner.load_or_resume()
    return calls


def test_stan_runner_auto_resume_continues_from_the_newest(tmp_path):
    work = _work_dir_with_checkpoints(tmp_path)
    assert _runner_stub(work) == [('resume', str(work / 'epoch_2.pth'))]
    # A named checkpoint, or no resume, is MMEngine's behaviour.
    assert _runner_stub(work, load_from='/x.pth') == [('resume', '/x.pth')]
    assert _runner_stub(work, resume=False, load_from='/x.pth') == [
        ('load', '/x.pth')]
    # Nothing to resume from: training starts anew, nothing loaded (a
    # stale last_checkpoint is not followed into an error).
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'last_checkpoint').write_text(str(empty / 'epoch_3.pth'))
    assert _runner_stub(empty) == []


# last_checkpoint -------------------------------------------------------------
def test_interrupted_last_checkpoint_write_keeps_the_old_one(
        tmp_path, monkeypatch):
    path = tmp_path / 'last_checkpoint'
    path.write_text('/runs/epoch_1.pth')

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        StanCheckpointHook.write_last_checkpoint(str(tmp_path),
                                                 '/runs/epoch_2.pth')
    assert path.read_text() == '/runs/epoch_1.pth'
    assert sorted(os.listdir(tmp_path)) == ['last_checkpoint']
    monkeypatch.undo()
    StanCheckpointHook.write_last_checkpoint(str(tmp_path),
                                             '/runs/epoch_2.pth')
    assert path.read_text() == '/runs/epoch_2.pth'


def _runner_stand_in(work, save_checkpoint, hub_name: str):
    """What a checkpoint hook uses of a runner: its work dir, its
    ``save_checkpoint``, a message hub and a quiet logger."""
    from mmengine.logging import MessageHub
    return types.SimpleNamespace(
        work_dir=str(work), save_checkpoint=save_checkpoint,
        message_hub=MessageHub.get_instance(hub_name), logger=_quiet())


def _save_steps(hook_type, work, steps):
    """Save ``steps`` through a checkpoint hook with a runner stand-in
    (its ``save_checkpoint`` writes the step); the files left."""
    work.mkdir()

    def save_checkpoint(out_dir, filename, *args, **kwargs):
        (work / filename).write_text(filename)

    runner = _runner_stand_in(work, save_checkpoint,
                              f'hook-{hook_type.__name__}')
    hook = hook_type(interval=1, max_keep_ckpts=2)
    hook.before_train(runner)
    for step in steps:
        hook._save_checkpoint_with_step(runner, step, meta={})
    return {p.name: p.read_text() for p in work.iterdir()}


def test_checkpoint_hook_keeps_and_names_as_mmengines(tmp_path):
    from mmengine.hooks import CheckpointHook
    steps = [1, 2, 2, 3, 4]  # the best checkpoint may save a step twice
    ours = _save_steps(StanCheckpointHook, tmp_path / 'ours', steps)
    theirs = _save_steps(CheckpointHook, tmp_path / 'theirs', steps)
    assert sorted(ours) == ['epoch_3.pth', 'epoch_4.pth', 'last_checkpoint']
    assert ours['last_checkpoint'] == str(tmp_path / 'ours' / 'epoch_4.pth')
    assert sorted(theirs) == sorted(ours)
    assert theirs['last_checkpoint'] == str(
        tmp_path / 'theirs' / 'epoch_4.pth')


# distributed training without CUDA -------------------------------------------
def _free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason='about CPU machines')
def test_mmengines_launcher_needs_cuda_ours_starts_gloo(monkeypatch):
    import torch.distributed as dist
    from mmengine.dist import init_dist
    from mmengine.model import MMDistributedDataParallel

    from stan_mmaction.engine.runner import init_cpu_process_group
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', _free_port())
    for name, value in dict(RANK='0', LOCAL_RANK='0',
                            WORLD_SIZE='1').items():
        monkeypatch.setenv(name, value)
    with pytest.raises((RuntimeError, AssertionError)):
        init_dist('pytorch', backend='gloo')  # torch.cuda.set_device
    assert not dist.is_initialized()
    assert init_cpu_process_group('pytorch', dict(backend='nccl'))
    try:
        assert dist.get_backend() == 'gloo'
        assert not init_cpu_process_group('pytorch', None)  # running
        with pytest.raises(ValueError, match='device_ids'):
            MMDistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[0])
        model = StanDistributedDataParallel(torch.nn.Linear(2, 2),
                                            device_ids=[0])
        assert model(torch.ones(1, 2)).shape == (1, 2)
    finally:
        dist.destroy_process_group()
    assert not init_cpu_process_group('slurm', None)  # MMEngine's there
    with pytest.raises(ValueError, match='init_backend'):
        init_cpu_process_group('pytorch', dict(init_backend='deepspeed'))


# FSDP: clipping by the whole norm, optimizer states on resume ----------------
def _fake_fsdp_root(calls):
    """An FSDP instance in type only (no process group): a Linear child
    and a ``clip_grad_norm_`` that records its arguments."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    class Root(FullyShardedDataParallel):
        __getattr__ = torch.nn.Module.__getattr__
        named_parameters = torch.nn.Module.named_parameters
        named_modules = torch.nn.Module.named_modules

        def __init__(self):
            torch.nn.Module.__init__(self)
            self.fc = torch.nn.Linear(2, 2)

        def clip_grad_norm_(self, max_norm, norm_type=2.0):
            calls.append((max_norm, norm_type))
            return torch.tensor(7.0)

    return Root()


def test_fsdp_strategy_clips_through_the_fsdp_root():
    from mmengine._strategy.fsdp import FSDPStrategy
    calls = []
    root = _fake_fsdp_root(calls)
    cfg = dict(optimizer=dict(type='SGD', lr=0.1),
               clip_grad=dict(max_norm=0.5, norm_type=2))
    # MMEngine's: torch's clip_grad_norm_ over what this rank holds (its
    # shards under FSDP).
    plain = FSDPStrategy.build_optim_wrapper(None, dict(cfg), model=root)
    assert plain.clip_func is torch.nn.utils.clip_grad_norm_
    ours = StanFSDPStrategy.__new__(StanFSDPStrategy)  # no process group
    wrapper = ours.build_optim_wrapper(dict(cfg), model=root)
    assert wrapper.clip_func is not torch.nn.utils.clip_grad_norm_
    root.fc.weight.grad = torch.ones(2, 2)
    wrapper._clip_grad()
    assert calls == [(0.5, 2)]  # the root's whole-gradient clipping
    # Not FSDP: nothing changes.
    other = ours.build_optim_wrapper(dict(cfg), model=torch.nn.Linear(2, 2))
    assert other.clip_func is torch.nn.utils.clip_grad_norm_


def test_fsdp_strategy_loads_optimizer_states_in_torchs_order(monkeypatch):
    from mmengine._strategy.fsdp import FSDPStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel
    calls = []

    def to_load(model, optim, optim_state_dict, group=None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"unhashable type: '{type(model).__name__}'")
        calls.append((model, optim, optim_state_dict))
        return optim_state_dict

    monkeypatch.setattr(FullyShardedDataParallel, 'optim_state_dict_to_load',
                        staticmethod(to_load))
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    strategy = types.SimpleNamespace(
        model=model, optim_wrapper=types.SimpleNamespace(
            optimizer=optimizer, load_state_dict=optimizer.load_state_dict))
    saved = optimizer.state_dict()
    with pytest.raises(TypeError, match='unhashable'):
        FSDPStrategy.load_optim_state_dict(strategy, saved)  # MMEngine's
    StanFSDPStrategy.load_optim_state_dict(strategy, saved)
    assert calls == [(model, optimizer, saved)]


KEEP_CODE = '''
import ctypes, importlib.util, json, resource
# the module alone (not the package's imports: mmaction, open_clip, ...)
spec = importlib.util.spec_from_file_location(
    'system', 'stan_mmaction/utils/system.py')
system = importlib.util.module_from_spec(spec)
spec.loader.exec_module(system)
keep_freed_memory = system.keep_freed_memory
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def faults():
    """Minor page faults of 3 steps that allocate, touch and free 80 MiB
    in 4 MiB blocks (what a training step does with its activations)."""
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        blocks = [libc.malloc(4 * 2**20) for _ in range(20)]
        for b in blocks:
            ctypes.memset(b, 1, 4 * 2**20)
        for b in blocks:
            libc.free(b)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

faults()
before = faults()
kept = keep_freed_memory()
faults()
after = faults()
print(json.dumps(dict(before=before, after=after, kept=kept,
                      again=keep_freed_memory())))
'''


def test_keep_freed_memory_stops_refaulting_freed_pages():
    """glibc (the CI machines' libc): after keep_freed_memory(), a step
    that allocates what the last one freed reuses its pages instead of
    faulting in new ones."""
    res = run_python(KEEP_CODE)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['kept'] and out['again']
    # 3 x 80 MiB refaulted before: ~61k faults of 4 KiB pages; where the
    # kernel backs all anonymous memory with 2 MiB pages (transparent huge
    # pages "always"), one fault maps 512 of them: the same bound in those
    # pages (a property of the machine's kernel, not of the code)
    page = 4096
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            if '[always]' in f.read():
                page = 2 * 2**20
    except OSError:
        pass
    assert out['before'] > 3 * 80 * 2**20 // page // 2, out
    assert out['after'] < out['before'] / 10, out


def test_stan_runner_keeps_freed_memory_on_cpu_unless_told(monkeypatch):
    from stan_mmaction.engine import runner as runner_mod
    calls = []
    monkeypatch.setattr(runner_mod, 'keep_freed_memory',
                        lambda: calls.append(1) or True)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert runner_mod.keep_freed_memory_on_cpu({}) is True
    assert runner_mod.keep_freed_memory_on_cpu(
        dict(keep_freed_memory=False)) is False
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert runner_mod.keep_freed_memory_on_cpu({}) is False
    assert calls == [1]


def test_a_save_cut_off_keeps_the_previous_checkpoint(tmp_path):
    """max_keep_ckpts=1: a save that never completes (a kill, a full disk:
    here the writer raises half way) leaves the previous checkpoint and a
    last_checkpoint naming it; MMEngine's hook has already deleted it."""
    from mmengine.hooks import CheckpointHook

    def run(hook_type, work):
        work.mkdir()
        calls = []

        def save_checkpoint(out_dir, filename, *args, **kwargs):
            calls.append(filename)
            if len(calls) == 2:
                (work / f'.{filename}.123.tmp').write_text('half')
                raise KeyboardInterrupt  # killed while writing
            (work / filename).write_text(filename)

        runner = _runner_stand_in(work, save_checkpoint,
                                  f'cut-{hook_type.__name__}')
        hook = hook_type(interval=1, max_keep_ckpts=1)
        hook.before_train(runner)
        hook._save_checkpoint_with_step(runner, 1, meta={})
        with pytest.raises(KeyboardInterrupt):
            hook._save_checkpoint_with_step(runner, 2, meta={})
        return work

    ours = run(StanCheckpointHook, tmp_path / 'ours')
    assert (ours / 'epoch_1.pth').read_text() == 'epoch_1.pth'
    assert (ours / 'last_checkpoint').read_text() == str(ours /
                                                         'epoch_1.pth')
    from stan_mmaction.engine.runner import find_latest_checkpoint
    assert find_latest_checkpoint(str(ours)) == str(ours / 'epoch_1.pth')
    theirs = run(CheckpointHook, tmp_path / 'theirs')
    assert not (theirs / 'epoch_1.pth').exists()  # what --resume lost

    # The next run removes the killed writer's temporary file (a writer
    # still alive keeps its own).
    import os
    killed = ours / '.epoch_2.pth.999999999.0badcafe.tmp'
    killed.write_text('half')
    live = ours / f'.epoch_2.pth.{os.getpid()}.0badcafe.tmp'
    live.write_text('being written')
    runner = types.SimpleNamespace(work_dir=str(ours), logger=_quiet(),
                                   message_hub=None)
    StanCheckpointHook(interval=1).before_train(runner)
    assert not killed.exists() and live.exists()
